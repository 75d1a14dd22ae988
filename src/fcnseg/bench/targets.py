"""Speed and accuracy targets as one machine-readable line each.

Every benchmark script under ``benchmarks/`` ends by printing one line per target it measures::

    TARGET <name> measured=<float> goal=<float> ok=<true|false>

``name`` has no spaces; ``ok`` is decided by the benchmark (whether higher or lower is better
is its business), so a reader never needs to know the direction. Further ``key=value`` fields
may follow ``ok`` and are kept. ``benchmarks/run_all.py`` (``make bench``) reads them back and
gathers them into one table.
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
