"""The web service (``fcnseg serve``): a Segmenter behind FastAPI, with a page to try it.

``create_app`` needs the ``serve`` extra (``pip install "fcnseg[serve]"``); it is imported on
first use so that the limits here can be read without FastAPI installed. The work behind each
route is in plain modules (``segment``, ``service``, ``admission``, ``body``, ``errors``).
"""

from __future__ import annotations

from typing import Any

from fcnseg.serve import limits
from fcnseg.serve.limits import *  # noqa: F403 - the limits, by limits.__all__

# The limits (readable without FastAPI), and the app's names, imported on first use.
__all__ = limits.__all__ + ["create_app", "encode_label_png", "serve_app"]  # noqa: F405


def __getattr__(name: str) -> Any:
    if name in ("create_app", "encode_label_png"):
        # Lazy: the app needs fastapi, an optional extra (fcnseg[serve]), which the limits and
        # the CLI's --help do not.
        from fcnseg.serve import app

        return getattr(app, name)
    if name == "serve_app":  # needs uvicorn, the same extra
        from fcnseg.serve import server

        return server.serve_app
    raise AttributeError(f"module 'fcnseg.serve' has no attribute {name!r}")
