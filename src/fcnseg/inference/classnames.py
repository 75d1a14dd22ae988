"""Class names as users type them: ``car`` finds the class ``Car`` when no other class is spelt
that way ignoring case. One lookup for every command that takes class names (predict's
``--heatmap``, serve's ``heatmap=``), and one reading of class indices."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["AmbiguousClassName", "class_by_name", "class_index"]


class AmbiguousClassName(ValueError):
    """A name that matches several classes once case is ignored, and none exactly."""


def class_by_name(token: str, names: Sequence[str]) -> int | None:
    """The index of the class named ``token``: the exact name first, else the one class whose
    name equals it ignoring case; None when no class has that name.

    Raises:
        AmbiguousClassName: several classes match ignoring case and none exactly.
    """
    names = list(names)
    if token in names:
        return names.index(token)
    folded = token.casefold()
    matches = [i for i, name in enumerate(names) if name.casefold() == folded]
    if len(matches) > 1:
        spelt = ", ".join(repr(names[i]) for i in matches)
        raise AmbiguousClassName(f"class {token!r} matches {spelt} ignoring case; "
                                 "give the name exactly as the model spells it")
    return matches[0] if matches else None


def class_index(token: str, count: int) -> int | None:
    """``token`` as a class index below ``count``, or None when it is no such index.

    Only ASCII digits count: ``str.isdigit`` also accepts ``²`` or ``①``, which ``int`` then
    refuses, and ``int`` refuses numbers of thousands of digits."""
    if not (token.isascii() and token.isdigit()) or len(token) > 18:
        return None
    index = int(token)
    return index if index < count else None
