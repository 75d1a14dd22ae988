"""``fcnseg info``: a short summary for people, the full record with --json."""

from __future__ import annotations

import json

import pytest
import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.cli.main import main
from fcnseg.data.palette import voc_palette
from fcnseg.inference.calibration import save_with_temperature
from fcnseg.models import fcn8s

CLASSES = ["background", "cat", "dog"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = fcn8s(num_classes=3, geometry="same", width=0.0625, fc_channels=16)
    path = tmp_path_factory.mktemp("info") / "model.pt"
    save_checkpoint(path, model, class_names=CLASSES, palette=voc_palette(),
                    recipe={"name": "synthetic-fcn8s"}, iteration=1200, epoch=3,
                    metrics={"mean_iu": 0.8123, "pixel_acc": 0.95, "iu": [0.9, 0.8, 0.7]})
    return path, sum(p.numel() for p in model.state_dict().values())


def test_summary_names_model_geometry_classes_convention_metrics_and_size(checkpoint,
                                                                           capsys) -> None:
    path, parameters = checkpoint
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert "fcn8s, geometry same" in lines["model"]
    assert "caffe_bgr (BGR 0-255" in lines["input"]
    assert lines["classes"].strip() == "3: background, cat, dog; ignore value 255"
    assert "iteration 1200, epoch 3, recipe synthetic-fcn8s" in lines["trained"]
    assert "mean IU 0.8123" in lines["metrics"] and "pixel acc 0.9500" in lines["metrics"]
    assert f"{parameters / 1e6:.2f} M parameters" in lines["size"]
    assert len(out.splitlines()) <= 10, "a summary, not the whole record"


def test_json_gives_the_full_record(checkpoint, capsys) -> None:
    path, parameters = checkpoint
    assert main(["info", "--checkpoint", str(path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model"]["arch"] == "fcn8s"
    assert record["classes"]["names"] == CLASSES and len(record["classes"]["palette"]) == 3
    assert record["metrics"]["iu"] == [0.9, 0.8, 0.7]
    assert record["recipe"] == {"name": "synthetic-fcn8s"}
    assert record["parameters"] == parameters and record["file_bytes"] == path.stat().st_size


def test_no_checkpoint_is_a_clear_error(capsys) -> None:
    assert main(["info"]) == 2
    assert "no checkpoint given" in capsys.readouterr().err


def test_a_stored_temperature_is_shown_and_recorded(checkpoint, tmp_path, capsys) -> None:
    path, _ = checkpoint
    calibrated = save_with_temperature(path, tmp_path / "calibrated.pt", 1.75)
    assert main(["info", str(calibrated)]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert "temperature 1.75" in lines["calibrated"]
    assert main(["info", str(calibrated), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["temperature"] == 1.75


def test_an_uncalibrated_checkpoint_shows_no_temperature(checkpoint, capsys) -> None:
    path, _ = checkpoint
    assert main(["info", str(path)]) == 0
    assert "calibrated" not in capsys.readouterr().out
