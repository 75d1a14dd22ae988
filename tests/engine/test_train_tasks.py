"""PASCAL-Context, NYUDv2 (dict inputs) and SIFT Flow (dict labels, two heads) train for a few
iterations on tiny trees in their real layouts, then ``fcnseg evaluate`` scores the checkpoint."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ondisk import write_nyud, write_pascal_context, write_siftflow
from PIL import Image

from fcnseg.checkpoint import load_checkpoint
from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.siftflow import SIFTFLOW_EXCLUDED_CLASSES, SIFTFLOW_SEMANTIC_CLASSES
from fcnseg.data.transforms import build_eval_transform
from fcnseg.engine import train
from fcnseg.inference import Segmenter

pytest.importorskip("scipy", reason="the datasets' .mat labels need scipy (the data extra)")

TINY = {"width": 0.0625, "fc_channels": 8, "backbone_weights": None}


def _config(arch: str, train_spec: dict, val_spec: dict, out: Path, **model: Any) -> dict:
    return {"name": "tiny", "model": {"arch": arch, **TINY, **model},
            "data": {"train": train_spec, "val": val_spec, "batch_size": 1, "num_workers": 0,
                     "crop_size": None},
            "optim": {"lr": 1e-4}, "loss": {"reduction": "mean"},
            "train": {"iterations": 2, "eval_every": 2, "log_every": 1, "progress": False},
            "out": str(out)}


def _evaluate(checkpoint: Path, out: Path, capsys: pytest.CaptureFixture) -> tuple[dict, str]:
    """``fcnseg evaluate`` on the dataset the checkpoint's recipe validated on."""
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    return json.loads((out / "report.json").read_text()), capsys.readouterr().out


@contextlib.contextmanager
def _model_inputs() -> Iterator[list]:
    """The inputs every FCN (a module with ``input_names``) is called with meanwhile."""
    seen: list = []

    def hook(module: torch.nn.Module, args: tuple) -> None:
        if hasattr(module, "input_names") and args:
            seen.append(args[0])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _val_inputs(root: Path, modalities: list[str], checkpoint: Path) -> dict:
    """The first validation sample's inputs as training hands them to the model (raw)."""
    dataset = build_dataset({"name": "nyud", "root": str(root), "split": "val",
                             "modalities": modalities},
                            transform=build_eval_transform())
    return {m: x.float() for m, x in dataset[0][0].items()}


@pytest.fixture
def siftflow_run(tmp_path: Path) -> tuple[Path, dict]:
    write_siftflow(tmp_path, {"trainval": ["a", "b"], "test": ["c", "d"]}, size=(32, 32))
    spec = {"name": "siftflow", "root": str(tmp_path)}
    result = train(_config("siftflow_fcn32s", {**spec, "split": "trainval"},
                           {**spec, "split": "test"}, tmp_path / "run"))
    return tmp_path, result.metrics


def test_siftflow_validation_scores_each_head(siftflow_run):
    _, metrics = siftflow_run
    assert set(metrics["heads"]) == {"semantic", "geometric"}
    assert len(metrics["heads"]["geometric"]["iu"]) == 3


def test_siftflow_best_checkpoint_is_chosen_by_the_semantic_mean_iu(siftflow_run):
    root, metrics = siftflow_run
    best = load_checkpoint(root / "run" / "best.pt")
    assert best["metrics"]["mean_iu"] == metrics["heads"]["semantic"]["mean_iu"]


def test_siftflow_validation_leaves_the_absent_classes_out(siftflow_run):
    _, metrics = siftflow_run
    assert metrics["heads"]["semantic"]["excluded_classes"] == sorted(SIFTFLOW_EXCLUDED_CLASSES)


def test_siftflow_checkpoint_names_the_classes_of_each_head(siftflow_run):
    root, _ = siftflow_run
    heads = load_checkpoint(root / "run" / "last.pt")["classes"]["heads"]
    assert heads["semantic"] == list(SIFTFLOW_SEMANTIC_CLASSES)
    assert len(heads["geometric"]) == 3


def test_siftflow_log_records_each_heads_scores(siftflow_run):
    root, _ = siftflow_run
    records = [json.loads(line) for line in (root / "run" / "metrics.jsonl").open()]
    val = [r for r in records if r.get("split") == "val"]
    assert val and "geometric/pixel_acc" in val[-1] and "semantic/mean_iu" in val[-1]


def test_evaluate_reports_each_head_of_a_siftflow_checkpoint(siftflow_run, capsys):
    root, metrics = siftflow_run
    report, printed = _evaluate(root / "run" / "best.pt", root / "eval", capsys)
    geometric = report["heads"]["geometric"]
    assert geometric["pixel_acc"] == pytest.approx(metrics["heads"]["geometric"]["pixel_acc"],
                                                   rel=1e-5)
    assert report["heads"]["semantic"]["excluded_classes"] == sorted(SIFTFLOW_EXCLUDED_CLASSES)
    assert "head geometric:" in printed and "(excluded from the means)" in printed


@pytest.mark.parametrize(("arch", "modalities"), [
    ("nyud_fcn32s_color", ["color"]),
    ("nyud_fcn32s_color_d", ["color", "depth"]),
    ("nyud_fcn32s_color_hha", ["color", "hha"]),
])
def test_nyud_trains_on_dict_inputs_and_evaluates(tmp_path, capsys, arch, modalities):
    write_nyud(tmp_path, {"train": ["1", "2"], "val": ["3", "4"]}, size=(32, 32))
    spec = {"name": "nyud", "root": str(tmp_path), "modalities": modalities}
    result = train(_config(arch, {**spec, "split": "train"}, {**spec, "split": "val"},
                           tmp_path / "run"))
    assert result.iteration == 2
    report, _ = _evaluate(tmp_path / "run" / "best.pt", tmp_path / "eval", capsys)
    assert report["metrics"]["mean_iu"] == pytest.approx(result.metrics["mean_iu"], rel=1e-5)


def test_pascal_context_trains_60_outputs_and_evaluates(tmp_path, capsys):
    write_pascal_context(tmp_path, {"train": ["2008_000001", "2008_000002"],
                                    "val": ["2008_000003"]})
    spec = {"name": "pascal_context", "root": str(tmp_path)}
    result = train(_config("fcn32s", {**spec, "split": "train"}, {**spec, "split": "val"},
                           tmp_path / "run"))
    report, _ = _evaluate(tmp_path / "run" / "best.pt", tmp_path / "eval", capsys)
    assert len(report["class_names"]) == 60
    assert report["metrics"]["mean_iu"] == pytest.approx(result.metrics["mean_iu"], rel=1e-5)


def test_predict_writes_the_label_map_of_each_head(siftflow_run, capsys):
    root, _ = siftflow_run
    images = sorted((root / "SiftFlowDataset" / "Images").rglob("*.jpg"))
    assert main(["predict", "--checkpoint", str(root / "run" / "best.pt"), str(images[0]),
                 "--out", str(root / "pred"), "--device", "cpu", "--no-progress"]) == 0
    geometric = np.asarray(Image.open(root / "pred" / f"{images[0].stem}_geometric_label.png"))
    assert (root / "pred" / f"{images[0].stem}_label.png").is_file()
    assert geometric.shape == (32, 32) and geometric.max() < 3


@pytest.fixture
def nyud_fusion_run(tmp_path: Path) -> Path:
    write_nyud(tmp_path, {"train": ["1", "2"], "val": ["3"]}, size=(32, 32))
    spec = {"name": "nyud", "root": str(tmp_path), "modalities": ["color", "hha"]}
    train(_config("nyud_fcn32s_color_hha", {**spec, "split": "train"}, {**spec, "split": "val"},
                  tmp_path / "run"))
    return tmp_path


def test_segmenter_normalises_each_modality_as_training_does(nyud_fusion_run):
    best = nyud_fusion_run / "run" / "best.pt"
    seg = Segmenter.from_checkpoint(best, precision="fp32", channels_last=False)
    data = nyud_fusion_run / "nyud" / "data"
    with _model_inputs() as seen:
        seg.predict_inputs({"color": data / "images" / "img_3.png",
                            "hha": data / "hha" / "img_3.png"})
    expected = _val_inputs(nyud_fusion_run, ["color", "hha"], best)
    assert set(seen[0]) == {"color", "hha"}
    for modality, x in expected.items():
        torch.testing.assert_close(seen[0][modality][0].float(), x, rtol=1e-5, atol=1e-4)


def test_predict_reads_the_other_modalities_from_input_dirs(nyud_fusion_run):
    data = nyud_fusion_run / "nyud" / "data"
    out = nyud_fusion_run / "pred"
    assert main(["predict", "--checkpoint", str(nyud_fusion_run / "run" / "best.pt"),
                 str(data / "images" / "img_3.png"), "--input-dir", f"hha={data / 'hha'}",
                 "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    assert np.asarray(Image.open(out / "img_3_label.png")).shape == (32, 32)


def _predict(checkpoint: Path, *args: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), *args, "--device", "cpu",
                 "--no-progress"])


def test_predict_finds_the_hha_image_in_the_sibling_folder(nyud_fusion_run):
    data = nyud_fusion_run / "nyud" / "data"
    best = nyud_fusion_run / "run" / "best.pt"
    out = nyud_fusion_run / "pred"
    assert _predict(best, str(data / "images" / "img_3.png"), "--out", str(out)) == 0
    expected = Segmenter.from_checkpoint(best).predict_inputs(
        {"color": data / "images" / "img_3.png", "hha": data / "hha" / "img_3.png"})
    np.testing.assert_array_equal(np.asarray(Image.open(out / "img_3_label.png")),
                                  expected.label)


def test_predict_finds_the_hha_image_beside_the_colour_image(nyud_fusion_run):
    data = nyud_fusion_run / "nyud" / "data"
    photos = nyud_fusion_run / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes((data / "images" / "img_3.png").read_bytes())
    (photos / "a_hha.png").write_bytes((data / "hha" / "img_3.png").read_bytes())
    out = nyud_fusion_run / "pred"
    assert _predict(nyud_fusion_run / "run" / "best.pt", str(photos), "--out", str(out)) == 0
    assert (out / "a_label.png").is_file()
    assert not (out / "a_hha_label.png").exists(), "the companion file is no input of its own"


def test_predict_names_the_image_and_the_paths_tried_when_hha_is_missing(nyud_fusion_run,
                                                                         capsys):
    photos = nyud_fusion_run / "photos"
    photos.mkdir()
    (photos / "b.png").write_bytes(
        (nyud_fusion_run / "nyud" / "data" / "images" / "img_3.png").read_bytes())
    assert _predict(nyud_fusion_run / "run" / "best.pt", str(photos / "b.png"),
                    "--out", str(nyud_fusion_run / "pred")) == 1
    err = capsys.readouterr().err
    assert "b.png: no hha input found" in err
    for tried in (photos / "b_hha.png", photos / "b.hha.png", nyud_fusion_run / "hha" / "b.png"):
        assert str(tried) in err


def test_predict_normalises_the_images_of_an_hha_model_as_hha(tmp_path):
    write_nyud(tmp_path, {"train": ["1", "2"], "val": ["3"]}, size=(32, 32))
    spec = {"name": "nyud", "root": str(tmp_path), "modalities": ["hha"]}
    train(_config("nyud_fcn32s_hha", {**spec, "split": "train"}, {**spec, "split": "val"},
                  tmp_path / "run"))
    best = tmp_path / "run" / "best.pt"
    with _model_inputs() as seen:
        assert main(["predict", "--checkpoint", str(best),
                     str(tmp_path / "nyud" / "data" / "hha" / "img_3.png"),
                     "--out", str(tmp_path / "pred"), "--device", "cpu", "--no-progress"]) == 0
    expected = _val_inputs(tmp_path, ["hha"], best)["hha"]
    assert isinstance(seen[0], dict), "the image must go in as the model's hha input"
    torch.testing.assert_close(seen[0]["hha"][0].float(), expected, rtol=1e-5, atol=1e-4)


def test_siftflow_training_line_shows_the_geometric_pixel_acc(capsys, siftflow_run):
    _, metrics = siftflow_run
    printed = capsys.readouterr()
    line = next(x for x in (printed.out + printed.err).splitlines() if ": mean IU" in x)
    pixel_acc = 100 * metrics["heads"]["geometric"]["pixel_acc"]
    assert f"geometric pixel acc {pixel_acc:.2f}" in line
    done = next(x for x in (printed.out + printed.err).splitlines() if x.startswith("done:"))
    assert f"(geometric pixel acc {pixel_acc:.2f}" in done  # the best evaluation is the last


def test_info_shows_the_geometric_pixel_acc_of_a_siftflow_run(siftflow_run, capsys):
    root, metrics = siftflow_run
    pixel_acc = f"geometric pixel acc {100 * metrics['heads']['geometric']['pixel_acc']:.2f}"
    _evaluate(root / "run" / "best.pt", root / "eval", capsys)
    for path in ("run/best.pt", "run/metrics.jsonl", "eval/report.json"):
        assert main(["info", str(root / path)]) == 0
        printed = capsys.readouterr().out
        assert pixel_acc in printed, path
    assert main(["info", str(root / "run" / "best.pt")]) == 0
    assert "heads:       semantic 33 classes" in capsys.readouterr().out


def test_predict_probs_writes_the_probabilities_of_each_head(siftflow_run, capsys):
    root, _ = siftflow_run
    image = sorted((root / "SiftFlowDataset" / "Images").rglob("*.jpg"))[0]
    assert main(["predict", "--checkpoint", str(root / "run" / "best.pt"), str(image),
                 "--out", str(root / "pred"), "--probs", "--no-progress"]) == 0
    semantic = np.load(root / "pred" / f"{image.stem}_probs.npz")
    geometric = np.load(root / "pred" / f"{image.stem}_geometric_probs.npz")
    assert semantic["probs"].shape[0] == 33 and geometric["probs"].shape[0] == 3
    assert np.allclose(geometric["probs"].sum(0), 1, atol=1e-3)
