"""Reading labelme's labels.txt (LabelSet.from_file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.data import layout
from fcnseg.data.annotations import LabelSet


class _CountedName(str):
    """A label name that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        type(self).comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__

    def strip(self, chars: str | None = None) -> _CountedName:
        return _CountedName(str.strip(self, chars))


class _CountedText(str):
    def splitlines(self, keepends: bool = False) -> list[_CountedName]:
        return [_CountedName(line) for line in str.splitlines(self, keepends)]


def test_a_label_listed_twice_is_refused_naming_the_first_repeated(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label 'b' listed twice"):
        LabelSet.from_file(labels)


def test_a_long_labels_file_is_read_without_comparing_every_pair_of_labels(
        tmp_path: Path, monkeypatch) -> None:
    # Checking for repeats pair by pair would take minutes for a file of 100,000 labels.
    count = 2000
    labels = tmp_path / "labels.txt"
    text = "".join(f"label{i}\n" for i in range(count))
    labels.write_text(text, encoding="utf-8")
    monkeypatch.setattr(layout, "read_utf8", lambda path, what: _CountedText(text))
    _CountedName.comparisons = 0
    assert len(LabelSet.from_file(labels).classes) == count
    assert _CountedName.comparisons < 10 * count
