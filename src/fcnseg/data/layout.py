"""This module finds a dataset's folder under what the user passed and reads its split lists.
A split list has one image name a line; errors name the places looked in and the file."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from fcnseg.utils.typing import PathLike

log = logging.getLogger("fcnseg.data")


@functools.cache
def say_once(message: str) -> None:
    """Log ``message`` as a warning the first time this process says it."""
    log.warning(message)


def find_dataset_dir(root: PathLike, places: Sequence[str], looks_right: Callable[[Path], bool],
                     *, what: str, looked_for: str, advice: str) -> Path:
    """The first ``root / place`` (``"."``: ``root``) that ``looks_right`` (which may raise);
    else a FileNotFoundError naming ``what``, ``looked_for``, every place, and ``advice``."""
    root = Path(root).expanduser()
    candidates = [root / place for place in places]
    for c in candidates:
        if looks_right(c):
            return c
    raise FileNotFoundError(f"no {what} under {root}: looked for {looked_for} in "
                            + ", ".join(str(c) for c in candidates) + advice)


def read_utf8(path: Path, what: str) -> str:
    """The text of ``path``; a byte that is not UTF-8 is a ValueError naming the file and line."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # the mark Windows' Notepad starts with
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: line {line}: byte 0x{raw[e.start]:02x} is not UTF-8: the "
                         f"{what} must be UTF-8 text, file names included (save it as UTF-8, "
                         f"and rename files whose names are not UTF-8)") from None


def read_split_list(path: PathLike, *, first_word: bool = False) -> list[str]:
    """A UTF-8 split list: one image name a line (spaces inside kept), blank lines skipped;
    ``first_word`` keeps each line's first word (the benchmarks' ids)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} not found")
    lines = read_utf8(path, "split list").splitlines()
    if first_word:
        return [parts[0] for line in lines if (parts := line.split())]
    return [name for line in lines if (name := line.strip())]


def read_split(path: Path, split: str, *, dataset: str, kind: str = "split",
               hint: str | None = None) -> list[str]:
    """The ids of a benchmark dataset's ``split`` (the first word of each line of ``path``);
    a missing list is a ValueError with ``hint`` (default: the lists beside it)."""
    if not path.is_file():
        if hint is None:
            have = sorted(p.stem for p in path.parent.glob("*.txt"))
            hint = f"available: {', '.join(have) or 'none'}"
        raise ValueError(f"split: {dataset} has no {kind} {split!r} ({path} missing); {hint}")
    return read_split_list(path, first_word=True)
