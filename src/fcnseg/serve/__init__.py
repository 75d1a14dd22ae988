"""The web service (``fcnseg serve``): a Segmenter behind FastAPI, with a page to try it.

``create_app`` needs the ``serve`` extra (``pip install "fcnseg[serve]"``); it is imported on
first use so that the limits here can be read without FastAPI installed. The work behind each
route is in plain modules (``segment``, ``service``, ``admission``, ``body``, ``errors``).
"""

from __future__ import annotations

import importlib
from typing import Any

from fcnseg.serve import limits
from fcnseg.serve.limits import *  # noqa: F403 - the limits, by limits.__all__

# The app's names by module, imported on first use: they need fastapi and uvicorn, an optional
# extra (fcnseg[serve]), which the limits and the CLI's --help do not.
_LAZY = {"create_app": "app", "encode_label_png": "app", "serve_app": "server"}
__all__ = limits.__all__ + list(_LAZY)  # noqa: F405


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"fcnseg.serve.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'fcnseg.serve' has no attribute {name!r}")
