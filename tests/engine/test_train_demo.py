"""`fcnseg demo` wiring: train, evaluate, report, predictions (shortened to seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fcnseg.cli.main import main


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the demo below trains with threads=1


def test_demo_writes_report_and_predictions(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # the demo sets it; keep it scoped
    out = tmp_path / "demo"
    short = ["--set", "train.iterations=2", "--set", "train.eval_every=2", "--set", "threads=1",
             "--set", "data.train.num_images=16", "--set", "data.val.num_images=3",
             "--set", "data.val.size=64", "--set", "model.width=0.0625",
             "--set", "model.fc_channels=16"]
    assert main(["demo", "--out", str(out), "--predictions", "2", *short]) == 0
    printed = capsys.readouterr().out
    assert "mean_iu" in printed and "background" in printed and "target" in printed
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["num_images"] == 3 and 0.0 <= report["metrics"]["mean_iu"] <= 1.0
    assert report["checkpoint"]["recipe"] == "synthetic-fcn8s"
    assert report["precision"] == "fp32"  # as training validated (amp none), whatever the CPU
    pictures = sorted(p.name for p in (out / "predictions").glob("*.png"))
    assert len([n for n in pictures if n.startswith("synthetic-")]) == 2
    assert [n for n in pictures if n.startswith("overlay_")], pictures
    assert [n for n in pictures if n.startswith("heatmap_")], pictures
    # A second call finds the finished run and only evaluates it again.
    assert main(["demo", "--out", str(out), "--predictions", "0", *short]) == 0
    assert "resumed" in capsys.readouterr().out


def test_a_shortened_demo_is_not_said_to_miss_the_target() -> None:
    from fcnseg.cli.demo import target_verdict

    assert target_verdict("synthetic-fcn8s", 0.5433, 150) == (
        " after 150 of the demo's 1,500 iterations (the 85 target applies to the full demo)")


def test_the_full_demo_reaches_or_misses_the_target() -> None:
    from fcnseg.cli.demo import target_verdict

    assert target_verdict("synthetic-fcn8s", 0.70, 1500) == " (MISSED the 85 target)"
    assert target_verdict("synthetic-fcn8s", 0.88, 1500) == " (reached the 85 target)"
    assert target_verdict("synthetic-fcn8s", 0.88, 150) == " (reached the 85 target)"


def test_a_demo_stopped_early_by_its_recipe_is_evaluated_and_succeeds(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    out = tmp_path / "demo"
    short = ["--set", "train.iterations=6", "--set", "train.eval_every=1", "--set", "threads=1",
             "--set", "train.early_stop={patience: 1, min_delta: 1.0}",
             "--set", "data.train.num_images=8", "--set", "data.val.num_images=2",
             "--set", "data.val.size=64", "--set", "model.width=0.0625",
             "--set", "model.fc_channels=16"]
    assert main(["demo", "--out", str(out), "--predictions", "0", *short]) == 0
    assert (out / "eval" / "report.json").is_file()
