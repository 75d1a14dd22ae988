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
    """``warnings.catch_warnings`` ignoring ``categories``, one thread at a time.

    ``catch_warnings`` swaps the process's filter list and restores it on exit: entered from
    two threads at once, the first to leave restores the list under the other (whose hidden
    warning then shows) and the last leaves the list changed for good. Every such swap in
    fcnseg goes through this one lock, so that they never overlap. Keep the body short (a
    header read, a file open)."""
    with _SWAPPED, warnings.catch_warnings():
        for category in categories:
            warnings.simplefilter("ignore", category)
        yield
