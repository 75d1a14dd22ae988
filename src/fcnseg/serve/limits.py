"""Default limits of the web service (importable without FastAPI, e.g. by ``fcnseg --help``)."""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "PREVIEW_MAX_SIDE",
]

#: Largest request body accepted (10 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
#: Largest image accepted, 2048×2048. Memory per request grows with pixels × classes (scores,
#: probabilities), so the default is modest; the page scales larger photos down in the browser
#: before uploading them.
DEFAULT_MAX_PIXELS = 2048 * 2048
#: Images decoded and segmented at once. One suits a CPU, where one request already uses all
#: cores through torch's intra-op threads.
DEFAULT_MAX_CONCURRENCY = 1
#: Requests that may wait for a worker before new ones get 503.
DEFAULT_MAX_QUEUE = 8
#: Overlays and heatmaps in JSON answers are pictures for a screen: their longer side is at
#: most this many pixels (the label map is always at full size).
PREVIEW_MAX_SIDE = 1024
