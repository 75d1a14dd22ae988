"""Self-describing checkpoints: round trip, the port's format, atomic writes, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnseg.checkpoint import (
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from fcnseg.conventions import TORCHVISION_RGB
from fcnseg.data.palette import voc_palette
from fcnseg.models import fcn8s, fcn16s
from fcnseg.utils.files import atomic_write

NAMES = ["background", "disc", "bar"]


def _model() -> torch.nn.Module:
    model = fcn16s(num_classes=3, geometry="same", width=0.0625, fc_channels=8)
    model.input_convention = TORCHVISION_RGB
    with torch.no_grad():
        model.score_fr.weight.normal_()
    return model.eval()


def test_checkpoint_describes_and_rebuilds_the_model(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(tmp_path / "best.pt", model, class_names=NAMES,
                           palette=voc_palette(), iteration=7, metrics={"mean_iu": 0.5},
                           recipe={"name": "synthetic-fcn8s"})
    ckpt = load_checkpoint(path)
    assert ckpt["model"]["arch"] == "fcn16s"
    assert ckpt["model"]["build_kwargs"]["geometry"] == "same"
    assert ckpt["model"]["input_convention"]["name"] == "torchvision_rgb"
    assert ckpt["classes"]["names"] == NAMES
    assert ckpt["classes"]["palette"][1] == [128, 0, 0]
    assert ckpt["iteration"] == 7 and ckpt["metrics"]["mean_iu"] == 0.5
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.input_convention == TORCHVISION_RGB
    x = torch.randn(1, 3, 37, 41)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_port_checkpoint_is_read_as_a_caffe_voc_model(tmp_path: Path) -> None:
    model = fcn8s(width=0.0625, fc_channels=8)
    path = tmp_path / "model_best.pth.tar"
    torch.save({"model_state_dict": model.state_dict(), "arch": "FCN8s", "epoch": 2,
                "iteration": 5000, "optim_state_dict": {}, "best_mean_iu": 0.65}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["model"]["arch"] == "fcn8s" and ckpt["classes"]["names"][15] == "person"
    # the port's file says nothing about width: rebuilding at full width must fail clearly
    with pytest.raises(ValueError, match="model_best.pth.tar.*shape mismatches"):
        build_model_from_checkpoint(ckpt)


def test_class_names_must_match_the_model(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="2 class names"):
        save_checkpoint(tmp_path / "x.pt", _model(), class_names=NAMES[:2], palette=voc_palette())


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "last.pt", _model(), class_names=NAMES,
                           palette=voc_palette(), iteration=1)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(path) as f:
        f.write(b"partial")
        raise RuntimeError("disk full")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_garbage_file_is_reported_by_name(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
