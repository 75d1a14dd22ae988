"""Pretrained weights whose description is hostile JSON (a number of thousands of digits,
which Python refuses to convert) are refused in one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.cli.main import main

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

HUGE_NUMBER = '{"a": ' + "9" * 5000 + "}"


def refused_in_one_line(capsys: pytest.CaptureFixture[str], path: Path, named: Path) -> None:
    assert main(["info", str(path)]) != 0
    said = capsys.readouterr()
    lines = [x for x in (said.out + said.err).splitlines() if "error" in x]
    assert len(lines) == 1 and str(named) in lines[0] and "not valid JSON" in lines[0]


def test_a_safetensors_file_whose_description_holds_a_huge_number_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file({"w": torch.zeros(2)}, str(path), metadata={"fcnseg": HUGE_NUMBER})
    refused_in_one_line(capsys, path, path)


def test_a_pretrained_folder_whose_config_holds_a_huge_number_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    safetensors_torch.save_file({"w": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(HUGE_NUMBER)
    refused_in_one_line(capsys, tmp_path, tmp_path / "config.json")
