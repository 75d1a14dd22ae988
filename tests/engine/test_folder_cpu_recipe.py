"""The CPU recipe for own data: it trains as shipped on a generated folder, and a backbone
download that fails says how to go on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import fcnseg.pretrained.fetch as fetch_mod
from fcnseg.bench.folder import write_synthetic_folder
from fcnseg.checkpoint import load_checkpoint
from fcnseg.cli.main import main
from fcnseg.data import FolderSegmentation
from fcnseg.engine import load_config, train
from fcnseg.pretrained.fetch import Source

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_synthetic_folder_is_a_folder_dataset_with_disjoint_splits(tmp_path: Path) -> None:
    root = write_synthetic_folder(tmp_path / "mine", train=5, val=3, size=40)
    train_set = FolderSegmentation(root, split="train")
    val_set = FolderSegmentation(root, split="val")
    assert (len(train_set), len(val_set)) == (5, 3)
    assert not set(train_set.ids) & set(val_set.ids)
    image, label = train_set.load(0)
    assert image.shape == (40, 40, 3) and label.shape == (40, 40)
    assert train_set.classes[0] == "background" and int(label.max()) < len(train_set.classes)


def test_the_cpu_recipe_trains_as_shipped_for_a_few_iterations(tmp_path: Path) -> None:
    root = write_synthetic_folder(tmp_path / "mine", train=8, val=2, size=96)
    config = load_config("folder-cpu", [
        f"data.train.root={root}", f"data.val.root={root}", "model.backbone_weights=null",
        "train.iterations=2", "train.progress=false", "train.tensorboard=false"])
    result = train(config, out=str(tmp_path / "run"))
    assert result.status == "completed" and result.best_mean_iu is not None
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["model"]["arch"] == "fcn8s_resnet18"
    assert ckpt["recipe"]["channels_last"] is True
    assert ckpt["recipe"]["schedule"]["name"] == "poly"
    assert ckpt["recipe"]["loss"]["reduction"] == "mean"


def test_a_failed_backbone_download_names_the_settings_and_the_cache_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    filename = fetch_mod.PRETRAINED["resnet18"].sources[0].filename
    offline = replace(fetch_mod.PRETRAINED["resnet18"],
                      sources=(Source(f"http://127.0.0.1:9/{filename}", filename),))
    monkeypatch.setitem(fetch_mod.PRETRAINED, "resnet18", offline)
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "cache"))
    root = write_synthetic_folder(tmp_path / "mine", train=8, val=2, size=48)
    code = main(["train", "--recipe", "folder-cpu", "--out", str(tmp_path / "run"),
                 "--set", f"data.train.root={root}", f"data.val.root={root}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--set model.backbone_weights=PATH" in err
    assert "model.backbone_weights=null" in err
    assert str(tmp_path / "cache" / filename) in err
