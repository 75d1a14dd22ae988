"""The web service (``fcnseg serve``): a Segmenter behind FastAPI, with a page to try it.

``create_app`` needs the ``serve`` extra (``pip install "fcnseg[serve]"``); it is imported on
first use so that the limits here can be read without FastAPI installed.
"""

from __future__ import annotations

from typing import Any

from fcnseg.serve.limits import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_UPLOAD_BYTES,
    PREVIEW_MAX_SIDE,
)

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "PREVIEW_MAX_SIDE",
    "create_app",
    "encode_label_png",
]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "encode_label_png"):
        from fcnseg.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'fcnseg.serve' has no attribute {name!r}")
