"""Memory the tests measure: the peak of what Python's allocators (NumPy's included) traced."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def peak_traced(work: Callable[[], T]) -> tuple[T, int]:
    """What ``work()`` returns, and the peak bytes traced while it ran."""
    tracemalloc.start()
    try:
        value = work()
        return value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
