"""Speed and accuracy targets are each one machine-readable line.
Every benchmark script prints them; ``make bench`` gathers them into one table::

    TARGET <name> measured=<float> goal=<float> ok=<true|false>

``ok`` is the benchmark's decision (a reader need not know the direction); further
``key=value`` fields may follow it.
"""

from __future__ import annotations

import math


def format_target(name: str, measured: float, goal: float, ok: bool | None = None) -> str:
    """The ``TARGET`` line for ``name``; ``ok`` defaults to ``measured >= goal``."""
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"target name must be one word without spaces, got {name!r}")
    if ok is None:
        ok = bool(math.isfinite(measured) and measured >= goal)
    return (f"TARGET {name} measured={float(measured):.6g} goal={float(goal):.6g} "
            f"ok={'true' if ok else 'false'}")


def print_target(name: str, measured: float, goal: float, ok: bool | None = None) -> None:
    """Print :func:`format_target`'s line (flushed, so that a reader of a pipe sees it)."""
    print(format_target(name, measured, goal, ok), flush=True)
