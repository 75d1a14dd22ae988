"""Calibration in evaluation: counted alongside the confusion matrix, with the checkpoint's
temperature, reported by ``fcnseg evaluate`` with a reliability diagram."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from fcnseg.checkpoint import build_model_from_checkpoint
from fcnseg.cli.main import main
from fcnseg.data import SYNTHETIC_CLASSES, build_dataset
from fcnseg.data.transforms import build_eval_transform
from fcnseg.engine.evaluation import evaluate_checkpoint
from fcnseg.inference.calibration import save_with_temperature
from fcnseg.metrics import CalibrationBins

SPEC = {"name": "synthetic", "num_images": 2, "size": 40, "seed": 0, "split": "val"}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint(list(SYNTHETIC_CLASSES), score_std=0.5)


def test_evaluation_counts_calibration_with_the_checkpoint_temperature(checkpoint,
                                                                       tmp_path) -> None:
    hot = save_with_temperature(checkpoint, tmp_path / "t.pt", 3.0)
    result = evaluate_checkpoint(hot, SPEC, calibration=True, coverages=(0.5,),
                                 precision="fp32")
    calibration = result["calibration"]
    assert calibration["temperature"] == 3.0

    model = build_model_from_checkpoint(checkpoint)
    data = build_dataset(dict(SPEC), transform=build_eval_transform())
    expected = CalibrationBins(len(SYNTHETIC_CLASSES))
    with torch.inference_mode():
        for i in range(len(data)):
            image, label = data[i]
            expected.update(torch.as_tensor(label)[None],
                            (model(image[None]) / 3.0).softmax(1))
    want = expected.compute(coverages=(0.5,))
    assert calibration["pixels"] == want["pixels"] == 2 * 40 * 40
    assert calibration["ece"] == pytest.approx(want["ece"], rel=1e-4)
    assert [b["count"] for b in calibration["bins"]] == [b["count"] for b in want["bins"]]
    # Labels do not depend on the temperature.
    plain = evaluate_checkpoint(checkpoint, SPEC, calibration=True, precision="fp32")
    assert plain["confusion"] == result["confusion"]
    assert plain["calibration"]["ece"] != pytest.approx(calibration["ece"], rel=1e-3)


def test_evaluation_without_calibration_reports_none(checkpoint) -> None:
    assert "calibration" not in evaluate_checkpoint(checkpoint, SPEC)


def test_evaluate_command_reports_calibration_and_draws_the_diagram(checkpoint, tmp_path,
                                                                    capsys) -> None:
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic",
               "--num-images", "2", "--size", "40", "--out", str(out), "--device", "cpu",
               "--coverage", "0.5,0.9"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "expected calibration error" in printed and "most confident 90%" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["calibration"]["pixels"] == 2 * 40 * 40
    assert [c["fraction"] for c in report["calibration"]["coverage"]] == [0.5, 0.9]
    with Image.open(out / "reliability.png") as img:
        assert img.mode == "RGB" and img.size[0] > 300

    rc = main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic",
               "--num-images", "2", "--size", "40", "--out", str(tmp_path / "plain"),
               "--device", "cpu", "--no-calibration"])
    assert rc == 0
    assert not (tmp_path / "plain" / "reliability.png").exists()
    assert "calibration" not in json.loads((tmp_path / "plain" / "report.json").read_text())


def test_bad_coverage_is_a_clear_error(checkpoint, tmp_path, capsys) -> None:
    rc = main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic",
               "--out", str(tmp_path), "--coverage", "1.5"])
    assert rc == 2 and "--coverage" in capsys.readouterr().err


def test_pixels_of_one_confidence_are_said_not_to_rank() -> None:
    # An untrained model whose logits are all equal: every pixel has confidence 1/C, so no
    # most confident half exists; the summary says so instead of "took 100%, confidence ≥ 0".
    from fcnseg.engine.evaluation import format_calibration

    bins = CalibrationBins(19)
    bins.update(torch.zeros((1, 4, 4), dtype=torch.long), torch.full((1, 19, 4, 4), 1 / 19))
    text = format_calibration({"temperature": 1.0, **bins.compute()})
    assert "took" not in text and "confidence ≥" not in text
    assert "most confident 50%, 80%, 90% of pixels: not told apart" in text


def test_the_summary_says_how_many_classes_the_confident_mean_iu_averages() -> None:
    # Classes 0 and 1 sure and right; class 2 unsure: the confident half's truth holds 2 of
    # the 3 classes, and its line says its mean IU is over those.
    from fcnseg.engine.evaluation import format_calibration

    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 2, 2]])
    probs = torch.full((1, 3, 8), 0.2)
    probs[0, labels[0], torch.arange(8)] = torch.tensor([0.999] * 4 + [0.6] * 4)
    probs[:, :, :4] = torch.where(probs[:, :, :4] == 0.2, 0.0005, probs[:, :, :4])
    bins = CalibrationBins(3)
    bins.update(labels, probs)
    text = format_calibration({"temperature": 1.0, **bins.compute(coverages=(0.5, 1.0))})
    assert "most confident 50% of pixels" in text
    half_line = next(line for line in text.splitlines() if "most confident 50%" in line)
    assert "mean IU 100.00 over 2 of 3 classes, pixel acc 100.00" in half_line
    full_line = next(line for line in text.splitlines() if "most confident 100%" in line)
    assert "over" not in full_line


def test_a_row_that_took_more_than_asked_is_labelled_by_what_it_took() -> None:
    # Half the pixels sure, half at confidence 0.45: the level of 0.42-0.5 is taken whole, so
    # asking for 90% takes them all, and the row says it scores all of them.
    from fcnseg.engine.evaluation import format_calibration

    labels = torch.zeros((1, 20), dtype=torch.long)
    probs = torch.full((1, 5, 20), 0.0025)
    probs[0, 0, :10] = 0.99
    probs[0, :, 10:] = torch.tensor([0.45, 0.2, 0.15, 0.1, 0.1]).view(5, 1)
    bins = CalibrationBins(5)
    bins.update(labels, probs)
    text = format_calibration({"temperature": 1.0, **bins.compute(coverages=(0.5, 0.9))})
    rows = [line for line in text.splitlines() if "most confident" in line]
    assert rows[0].startswith("  most confident 50% of pixels (took 50.00%")
    assert rows[1].startswith("  most confident 100.00% of pixels (90% asked")
