"""A sample's inputs (by modality), label maps and a model's scores (by head) are handled as dicts.
A single array or tensor is the dict ``{None: value}``, converted here and nowhere else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def keyed(value: T | Mapping[Any, T]) -> tuple[dict[Any, T], bool]:
    """``value`` as a dict (a single value under the key None), and whether it was one."""
    if isinstance(value, Mapping):
        return dict(value), True
    return {None: value}, False


def first_of(value: T | Mapping[Any, T]) -> T:
    """A single value itself; the first value of a dict (a model's first head)."""
    return next(iter(keyed(value)[0].values()))


def unkeyed(values: dict[Any, T], was_dict: bool) -> T | dict[Any, T]:
    """The inverse of :func:`keyed`: ``values`` as the caller gave them."""
    return values if was_dict else values[None]
