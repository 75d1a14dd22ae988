"""Parsed JSON and YAML are checked where they are read.
A value that should be a mapping (a recipe, a ``dataset.yaml``, a checkpoint's section) is one,
or the reader gets one line naming the file or field, what was expected and what it found."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def expect_mapping(value: object, where: str, what: str = "a mapping", *,
                   error: Callable[[str], Exception] = ValueError) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a dict, as JSON and YAML parsers give); else raises
    ``error("WHERE: expected WHAT, got ...")`` (:func:`describe` says what it got)."""
    if not isinstance(value, Mapping):
        raise error(f"{where}: expected {what}, got {describe(value)}")
    return value


def fields_of(value: object) -> Mapping[str, Any]:
    """The fields of a parsed JSON or YAML object, none for any other value (for readers that
    skip a malformed entry and list it)."""
    return value if isinstance(value, Mapping) else {}


def describe(value: object) -> str:
    """What a parsed value is, as the user who wrote the file would name it: ``a list``,
    ``a number``, ``a string``, ``a boolean``, ``null``, ``a mapping``."""
    if value is None:
        return "null"
    kinds = [(Mapping, "a mapping"), (bool, "a boolean"), (int | float, "a number"),
             (str, "a string"), (list | tuple, "a list")]
    return next((name for t, name in kinds if isinstance(value, t)),
                f"a value of type {type(value).__name__}")
