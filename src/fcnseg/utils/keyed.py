"""One shape inside: a sample's inputs (by modality), its label maps (by head) and a model's
scores (by head) are handled as dicts. A single array or tensor, as a plain dataset, a
single-head model or a caller gives it, is the dict ``{None: value}``; the conversion happens
here, at the edge, and nowhere else."""

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
    """A single value itself; the first value of a dict (a batch's first input, a model's
    first head)."""
    return next(iter(keyed(value)[0].values()))


def unkeyed(values: dict[Any, T], was_dict: bool) -> T | dict[Any, T]:
    """The inverse of :func:`keyed`: ``values`` as the caller gave them, a dict or a single
    value."""
    return values if was_dict else values[None]
