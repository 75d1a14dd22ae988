"""The reference VOC recipes run end to end on small SBD / VOC2011 trees in their real layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from floats import assert_close_to_scale
from ondisk import write_sbd, write_voc

from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine import load_config, train

pytest.importorskip("scipy", reason="SBD's .mat files need scipy (the data extra)")


@pytest.fixture
def voc_and_sbd(tmp_path: Path) -> tuple[Path, Path]:
    voc = write_voc(tmp_path, "2011", {"val": ["2008_000001", "2008_000002", "2008_000003"]})
    sbd = write_sbd(tmp_path, {"train": ["2008_000001", "2008_000010", "2008_000011"],
                               "val": ["2008_000012"]})
    return voc.parent, sbd.parent


def _run(recipe: str, out: Path, voc: Path, sbd: Path, *extra: str) -> dict:
    overrides = [
        "model.width=0.0625", "model.fc_channels=8", "model.backbone_weights=null",
        "model.input_convention=caffe_bgr", f"data.train.root={sbd}",
        f"data.val.voc_root={voc}", f"data.val.sbd_root={sbd}", "train.iterations=3",
        "train.eval_every=3", "train.checkpoint_every=3", "train.progress=false",
        "threads=1", *extra,
    ]
    train(load_config(recipe, overrides, out=str(out)))
    return load_checkpoint(out / "best.pt")


def test_fcn32s_then_16s_train_on_sbd_and_score_on_seg11valid(
    tmp_path: Path, voc_and_sbd: tuple[Path, Path]
) -> None:
    voc, sbd = voc_and_sbd
    stage32 = _run("voc-fcn32s", tmp_path / "fcn32s", voc, sbd)
    assert stage32["model"]["arch"] == "fcn32s"
    assert stage32["model"]["build_kwargs"]["geometry"] == "caffe"
    assert stage32["recipe"]["loss"]["reduction"] == "sum"
    assert len(stage32["classes"]["names"]) == 21
    log = [json.loads(line) for line in (tmp_path / "fcn32s" / "metrics.jsonl").open()]
    evals = [row for row in log if row.get("split") == "val"]
    # seg11valid = VOC2011 val minus SBD train: 2008_000002 and 2008_000003
    assert evals[-1]["num_images"] == 2
    # summed over ~2,000 valid pixels, not averaged (an average would be about ln 21 ≈ 3)
    assert min(row["loss"] for row in log if "loss" in row) > 100
    stage16 = _run("voc-fcn16s", tmp_path / "fcn16s", voc, sbd,
                   f"init={tmp_path / 'fcn32s' / 'best.pt'}")
    assert stage16["model"]["arch"] == "fcn16s"
    sd32, sd16 = stage32["model_state_dict"], stage16["model_state_dict"]
    # lr 1e-12 for three steps: the trunk is still the FCN-32s one it was initialised from
    assert_close_to_scale(sd16["conv1_1.weight"], sd32["conv1_1.weight"], rtol=1e-5)
