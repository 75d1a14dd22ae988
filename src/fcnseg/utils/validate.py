"""Parsed JSON and YAML checked where it is read, in one place: a value that should be a mapping
(a recipe, a ``dataset.yaml``, an annotation file's object) either is one, or the reader gets one
line naming the file or field and what it found."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["expect_mapping", "fields_of"]


def expect_mapping(value: object, where: str, what: str = "a mapping", *,
                   error: type[Exception] = ValueError) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a dict, as JSON and YAML parsers give); else
    ``error("WHERE: expected WHAT, got VALUE")``, the value shortened so that the message stays
    one line."""
    if not isinstance(value, Mapping):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else f"{shown[:40]}…{shown[-12:]}"
        raise error(f"{where}: expected {what}, got {shown}")
    return value


def fields_of(value: object) -> Mapping[str, Any]:
    """The fields of a parsed JSON or YAML object, none for any other value: readers of
    annotation exports that skip a malformed entry (and list it) read its fields through this."""
    return value if isinstance(value, Mapping) else {}
