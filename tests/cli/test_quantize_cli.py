"""``fcnseg quantize --val recipe``: the validation set the checkpoint's recipe records."""

from __future__ import annotations

import pytest
import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data import palette_for
from fcnseg.data.synthetic import SyntheticSegmentation
from fcnseg.models import fcn8s

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

CALIB = "synthetic:num_images=2,size=32,split=train"


def _checkpoint(path, recipe):
    torch.manual_seed(0)
    names = list(SyntheticSegmentation.classes)
    model = fcn8s(num_classes=len(names), geometry="same", width=0.0625, fc_channels=16)
    return save_checkpoint(path, model, class_names=names, palette=palette_for(len(names)),
                           recipe=recipe)


def test_val_recipe_scores_on_the_recipes_validation_set(tmp_path, capsys) -> None:
    from fcnseg.export import read_onnx_metadata

    val = {"name": "synthetic", "num_images": 2, "size": 32, "seed": 5, "split": "val"}
    ckpt = _checkpoint(tmp_path / "m.pt", {"data": {"val": val}})
    out = tmp_path / "m.int8.onnx"
    assert main(["quantize", str(ckpt), "--calib", CALIB, "--val", "recipe", "--out", str(out),
                 "--keep-float", "none", "--max-drop", "100"]) == 0
    assert "no --val given" not in capsys.readouterr().out
    assert read_onnx_metadata(out)["quantization"]["validation"]["images"] == 2


def test_val_recipe_without_one_in_the_recipe_is_refused(tmp_path, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "m.pt", {"name": "mine"})
    out = tmp_path / "m.int8.onnx"
    assert main(["quantize", str(ckpt), "--calib", CALIB, "--val", "recipe",
                 "--out", str(out)]) == 2
    assert "--val recipe: the checkpoint's recipe names no validation set" in \
        capsys.readouterr().err
    assert not out.exists()


def test_an_unwritable_out_is_refused_before_calibrating(tmp_path, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "m.pt", {"name": "mine"})
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "m.int8.onnx"
    assert main(["quantize", str(ckpt), "--calib", CALIB, "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"fcnseg quantize: error: --out {out}: ")


def test_val_recipe_finds_a_relative_root_where_the_checkpoint_was_trained(
        tmp_path, monkeypatch) -> None:
    from ondisk import write_folder

    from fcnseg.export import read_onnx_metadata

    write_folder(tmp_path / "project" / "data" / "mine", list(SyntheticSegmentation.classes),
                 {"val": 2})
    val = {"name": "folder", "root": "data/mine", "split": "val"}
    torch.manual_seed(0)
    names = list(SyntheticSegmentation.classes)
    ckpt = save_checkpoint(
        tmp_path / "m.pt", fcn8s(num_classes=len(names), geometry="same", width=0.0625,
                                 fc_channels=16),
        class_names=names, recipe={"data": {"val": val}},
        trained_in=str(tmp_path / "project"))
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", str(ckpt), "--calib", CALIB, "--val", "recipe",
                 "--out", "m.int8.onnx", "--keep-float", "none", "--max-drop", "100"]) == 0
    meta = read_onnx_metadata(tmp_path / "m.int8.onnx")
    assert meta["quantization"]["validation"]["images"] == 2
    assert meta["validation_data"] == val  # as typed: no folder of this machine


def test_the_synthetic_example_of_the_help_quantizes_as_written(tmp_path) -> None:
    import re

    from fcnseg.cli.quantize import DATA_HELP

    example = next(e for e in re.findall(r"(\S+:\S+)", DATA_HELP) if e.startswith("synthetic:"))
    ckpt = _checkpoint(tmp_path / "m.pt", {"name": "mine"})
    out = tmp_path / "m.int8.onnx"
    assert main(["quantize", str(ckpt), "--calib", example, "--calib-images", "2",
                 "--calib-size", "32", "--keep-float", "none", "--out", str(out)]) == 0
    assert out.is_file()
