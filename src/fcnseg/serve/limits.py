"""Limits of the web service (importable without FastAPI, e.g. by ``fcnseg --help``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "PREVIEW_MAX_SIDE",
    "ServiceLimits",
]

#: Largest request body accepted (10 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
#: Largest image accepted, 2048×2048. Memory per request grows with pixels × classes (scores,
#: probabilities), so the default is modest; the page scales larger photos down in the browser
#: before uploading them.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: Images decoded and segmented at once. One thread runs the model, on all cores, and the
#: requests waiting for it share a forward pass (a batch of up to this many images), while the
#: others decode and encode beside it.
DEFAULT_MAX_CONCURRENCY = 4
#: Requests that may wait for a worker before new ones get 503.
DEFAULT_MAX_QUEUE = 8
#: Seconds a client has to send a request's whole body; slower uploads get 408. 30 s lets the
#: default 10 MiB arrive over a link of about 3 Mbit/s.
DEFAULT_BODY_TIMEOUT_S = 30.0
#: Overlays and heatmaps in JSON answers are pictures for a screen: their longer side is at
#: most this many pixels (the label map is always at full size).
PREVIEW_MAX_SIDE = 1024


@dataclass(frozen=True)
class ServiceLimits:
    """The bounds one service keeps, checked when made.

    Attributes:
        max_upload_bytes: largest request body accepted; larger ones get 413.
        max_pixels: largest image (width × height) accepted; larger ones get 413.
        max_concurrency: images decoded and segmented at once (worker threads); at most as
            many share one forward pass.
        max_queue: requests admitted beyond those running; beyond that, 503.
        body_timeout_s: seconds a client has to send a request's whole body; then 408.
    """

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_queue: int = DEFAULT_MAX_QUEUE
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S

    def __post_init__(self) -> None:
        for name, least in (("max_upload_bytes", 1), ("max_pixels", 1),
                            ("max_concurrency", 1), ("max_queue", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers too, as plain ints
        timeout = self.body_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"body_timeout_s must be a positive number of seconds, "
                             f"got {timeout!r}")

    def to_dict(self) -> dict[str, Any]:
        """The limits as reported by ``GET /v1/model``."""
        return {**asdict(self), "preview_max_side": PREVIEW_MAX_SIDE}
