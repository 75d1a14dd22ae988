"""Warnings hidden from several threads at once (serve's requests, predict's readers)."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

#: Held while a thread has the process's warning filters swapped (see :func:`ignoring`).
_SWAPPED = threading.RLock()


@contextlib.contextmanager
def ignoring(*categories: type[Warning]) -> Iterator[None]:
    """``warnings.catch_warnings`` ignoring ``categories``, one thread at a time: it swaps the
    process's filter list, so two threads overlapping would restore it under each other. Keep
    the body short (a header read, a file open)."""
    with _SWAPPED, warnings.catch_warnings():
        for category in categories:
            warnings.simplefilter("ignore", category)
        yield
