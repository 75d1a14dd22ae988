"""Split lists: one image name a line, whole (folder datasets), or the first word (the
benchmarks' lists, whose VOC per-class variants add a column)."""

from __future__ import annotations

from pathlib import Path

from fcnseg.data.layout import read_split, read_split_list


def test_a_split_list_line_is_one_whole_name(tmp_path: Path) -> None:
    listed = tmp_path / "train.txt"
    listed.write_text("IMG 0001\n猫 写真\r\n\n  plain  \n", encoding="utf-8")
    assert read_split_list(listed) == ["IMG 0001", "猫 写真", "plain"]


def test_benchmark_lists_keep_the_first_word_of_name_and_label_lines(tmp_path: Path) -> None:
    listed = tmp_path / "train.txt"
    listed.write_text("2008_000002 -1\n2008_000003  1\n", encoding="utf-8")
    assert read_split(listed, "train", dataset="VOC") == ["2008_000002", "2008_000003"]
