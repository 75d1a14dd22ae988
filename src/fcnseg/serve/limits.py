"""Limits of the web service (importable without FastAPI, e.g. by ``fcnseg --help``)."""

from __future__ import annotations

import math
import numbers
import resource
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_BODY_TIMEOUT_S", "DEFAULT_HEADER_TIMEOUT_S", "DEFAULT_MAX_CONNECTIONS",
           "DEFAULT_MAX_CONCURRENCY", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_QUEUE",
           "DEFAULT_MAX_UPLOAD_BYTES", "MIN_CONNECTIONS", "PREVIEW_MAX_SIDE", "ConnectionGauge",
           "ServiceLimits", "connection_cap", "connection_cap_problem", "too_few_connections"]

#: Largest request body accepted (a 50-megapixel JPEG is 10-25 MB); larger ones get 413.
DEFAULT_MAX_UPLOAD_BYTES = 32 * 2**20
#: Largest image (width × height) accepted, else 413: 24-megapixel photos are segmented whole.
#: It bounds a forward pass's memory (a batch never holds more pixels): about 330 bytes per
#: pixel for FCN-8s in bf16, so about 8 GB here (docs/serve.md, benchmarks/serve_memory.py).
DEFAULT_MAX_PIXELS = 24_000_000
#: Images decoded and segmented at once (one thread runs the model; waiting requests share a
#: forward pass of up to this many images).
DEFAULT_MAX_CONCURRENCY = 4
#: Requests admitted beyond those running; beyond that, 503.
DEFAULT_MAX_QUEUE = 8
#: Seconds a client has to send a request's whole body (32 MiB at about 3 Mbit/s); then 408.
DEFAULT_BODY_TIMEOUT_S = 90.0
#: Seconds a connection has to send a request's complete headers; then 408 and closed.
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: Connections open at once (well below the common open-file limit of 1,024); one more: 503.
DEFAULT_MAX_CONNECTIONS = 256
#: Fewest connections a service works with: a health check beside one request.
MIN_CONNECTIONS = 2
# Descriptors kept for everything but client connections (listening socket, files, logs).
_RESERVED_FILES = 64
#: Longer side of the overlays and heatmaps of JSON answers (the label map stays full size).
PREVIEW_MAX_SIDE = 1024


@dataclass(frozen=True)
class ServiceLimits:
    """The bounds one service keeps, checked when made (each field: its ``DEFAULT_`` above)."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_queue: int = DEFAULT_MAX_QUEUE
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        for name, least in (("max_upload_bytes", 1), ("max_pixels", 1),
                            ("max_concurrency", 1), ("max_queue", 0), ("max_connections", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers too, as plain ints
        for name in ("body_timeout_s", "header_timeout_s"):
            timeout = getattr(self, name)
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                    or not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, "
                                 f"got {timeout!r}")

    def to_dict(self) -> dict[str, Any]:
        """The limits as reported by ``GET /v1/model``."""
        return {**asdict(self), "preview_max_side": PREVIEW_MAX_SIDE}


@dataclass
class ConnectionGauge:
    """The open connections of one server and its cap, as ``GET /healthz`` reports them.
    ``enforced`` turns true once fcnseg's server (:mod:`fcnseg.serve.server`) counts a
    connection: under another one (plain ``uvicorn.run(app)``) nothing does, and ``/healthz``
    says so."""

    limit: int
    open: int = 0
    refused: int = 0
    header_timeouts: int = 0
    enforced: bool = False

    def to_dict(self) -> dict[str, int]:
        """The counts as ``GET /healthz`` reports them (in the order docs/serve.md shows)."""
        return {"open": self.open, "limit": self.limit, "refused": self.refused,
                "header_timeouts": self.header_timeouts}


def connection_cap(max_connections: int) -> int:
    """``max_connections`` lowered to what the open-file limit leaves (never below 1)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return max_connections
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _RESERVED_FILES))


def too_few_connections(cap: int, max_connections: int) -> str | None:
    """One line when the open-file limit lowered the connection cap below
    :data:`MIN_CONNECTIONS` (a health check would block the only request), else None."""
    if cap >= min(max_connections, MIN_CONNECTIONS):
        return None
    return "--max-connections: " + _too_few(cap, f"the {MIN_CONNECTIONS} a health check beside "
                                                 f"one request needs", MIN_CONNECTIONS)


def connection_cap_problem(cap: int, max_connections: int, admitted: int) -> str | None:
    """One line when the open-file limit lowered the connection cap below the ``admitted``
    requests the service holds at once plus a health check's connection, else None."""
    if cap >= max_connections or cap > admitted:
        return None
    return _too_few(cap, f"the {admitted} requests the service admits plus a health check",
                    admitted + 1)


def _too_few(cap: int, needed: str, least: int) -> str:
    """The open-file limit leaves ``cap`` connections, fewer than ``needed`` (``least``)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (f"the open-file limit (ulimit -n {soft}) leaves room for only {cap} "
            f"connection{'s' if cap != 1 else ''} at once, fewer than {needed}; raise it to at "
            f"least {least + _RESERVED_FILES} (ulimit -n, or LimitNOFILE= under systemd)")
