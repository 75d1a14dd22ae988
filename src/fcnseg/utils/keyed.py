"""A sample's inputs (by modality), label maps and a model's scores (by head) are handled as dicts.
A single array or tensor is the dict ``{None: value}``: the key None records that the caller gave
one value, so :func:`unkeyed` gives it back at the edge, the only place it is converted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def keyed(value: T | Mapping[Any, T]) -> dict[Any, T]:
    """``value`` as a dict: a dict's items in order, a single value under the key None."""
    return dict(value) if isinstance(value, Mapping) else {None: value}


def first_of(value: T | Mapping[Any, T]) -> T:
    """A single value itself; the first value of a dict (a model's first head)."""
    return next(iter(keyed(value).values()))


def unkeyed(values: dict[Any, T]) -> T | dict[Any, T]:
    """The inverse of :func:`keyed`: the single value of ``{None: value}``, another dict as is."""
    return values.get(None, values)
