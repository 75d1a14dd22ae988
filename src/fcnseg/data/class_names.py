"""Class names that differ only in case or surrounding spaces are one class spelled two ways.
``fcnseg import`` refuses them and ``fcnseg check-data`` reports them (:func:`spelling_groups`)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path


def spelling_groups(named: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """The groups (of two or more) of names differing only in case or surrounding spaces,
    each name with where it was first found (``named``: (name, where) pairs)."""
    groups: dict[str, dict[str, str]] = {}
    for name, where in named:
        groups.setdefault(name.strip().casefold(), {}).setdefault(name, where)
    return [g for g in groups.values() if len(g) > 1]


def class_spelling_problem(classes: Sequence[str], config: Path | str) -> str | None:
    """One line when the ``classes`` of the dataset.yaml ``config`` spell one class two ways
    (each with its index), with the ``--rename`` that merges them on import; None when not."""
    groups = spelling_groups((name, str(k)) for k, name in enumerate(classes))
    if not groups:
        return None
    shown = "; ".join(" and ".join(f"{n!r} ({k})" for n, k in g.items()) for g in groups)
    renames = " ".join(f"--rename {shlex.quote(f'{n}={next(iter(g))}')}"
                       for g in groups for n in list(g)[1:])
    return (f"{config}: classes {shown} differ only in case or surrounding spaces, so a model "
            f"learns each spelling as a class of its own: merge them by importing the "
            f"annotations again into a new folder with {renames}, or edit the classes in "
            f"{config}")
