"""Class names are found as users type them (predict's ``--heatmap``, serve's ``heatmap=``).
``car`` finds the class ``Car`` when no other is spelt so ignoring case, and a class's name wins
over an index (a class named ``"3"`` is found by its name)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class AmbiguousClassName(ValueError):
    """A name that matches several classes once case is ignored, and none exactly."""


def class_by_name(token: str, names: Sequence[str]) -> int | None:
    """The index of the class named ``token``: the exact name first, else the one class whose
    name equals it ignoring case (:class:`AmbiguousClassName` for several); None for none."""
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


def find_class(token: str, names: Sequence[str], *, indices: bool = True) -> int | None:
    """The class ``token`` names: by name first (:func:`class_by_name`), else, when ``indices``,
    as a class index of up to 18 ASCII digits; None when it is neither."""
    index = class_by_name(token, names)
    if index is None and indices and token.isascii() and token.isdigit() and len(token) <= 18:
        index = int(token) if int(token) < len(names) else None
    return index


def shown_token(token: str, limit: int = 40) -> str:
    """``token`` quoted for a message, its middle cut when it is long."""
    return repr(token if len(token) <= limit else f"{token[:limit // 2]}…{token[-8:]}")


def parse_classes(items: str | Iterable[str], class_names: Sequence[str]) -> list[int]:
    """Class indices for names or indices (:func:`find_class`), each item possibly
    comma-separated (``"cat,3"``), ``"all"`` every class unless one is named so; duplicates
    dropped, order kept; an unknown class is one line naming the model's classes."""
    if isinstance(items, str):
        items = [items]
    names = list(class_names)
    out: list[int] = []
    for item in items:
        for token in (t.strip() for t in item.split(",")):
            if not token:
                continue
            index = find_class(token, names)
            if index is not None:
                chosen = [index]
            elif token == "all":
                chosen = list(range(len(names)))
            else:
                raise ValueError(f"unknown class {shown_token(token)}; the model's classes are "
                                 f"{names} (names or indices 0-{len(names) - 1}, comma-separated)")
            out += [c for c in chosen if c not in out]
    return out
