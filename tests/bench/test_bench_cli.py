"""``fcnseg bench`` at a tiny size, and the timing tools it is built on."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from fcnseg.bench import Timing, agreement, time_interleaved
from fcnseg.bench.timing import OtherLoad
from fcnseg.cli.main import main

TINY_ARGS = ["--width", "0.03125", "--fc-channels", "8", "--sizes", "36", "--batches", "1",
             "--repeats", "1", "--warmup", "0", "--peak-size", "128", "--device", "cpu"]


def test_bench_writes_a_json_report_with_every_requested_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", *TINY_ARGS, "--models", "fcn8s", "--train-crop", "36",
                 "--no-loader", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {r["geometry"] for r in report["inference"]} == {"caffe", "same"}
    assert all(r["median_s"] > 0 and r["gflop"] > 0 for r in report["inference"])
    assert len(report["training"]) == 2 and report["evaluation"][0]["pipeline"]["median_s"] > 0
    variants = {r["variant"] for r in report["options"][0]["rows"]}
    assert {"plain (same, no_grad)", "+channels_last", "+bf16 autocast"} <= variants
    assert report["options"][0]["cudnn_benchmark"] == "n/a on CPU"
    assert any("same / caffe" in t["target"] for t in report["targets"])


def test_bench_rejects_an_unknown_section(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["bench", *TINY_ARGS, "--sections", "inference,speed",
                 "--out", str(tmp_path / "x.json")])
    assert code == 2
    assert "unknown ['speed']" in capsys.readouterr().err


def test_variants_are_timed_round_robin() -> None:
    calls: list[str] = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4
    assert len(times["a"].samples) == 3 and times["a"].low <= times["a"].median


def test_timing_summarises_its_samples() -> None:
    t = Timing((0.3, 0.1, 0.2))
    assert (t.median, t.low, t.high) == (0.2, 0.1, 0.3)
    assert t.spread == pytest.approx(1.0, rel=1e-9)
    assert t.as_dict() == {"median": 0.2, "low": 0.1, "high": 0.3, "samples": [0.3, 0.1, 0.2],
                           "spread": t.spread}


def test_a_paired_speedup_is_the_median_of_the_per_round_ratios() -> None:
    fast, base = Timing((1.0, 2.0, 1.0)), Timing((2.0, 3.0, 4.0))
    assert fast.paired_speedup(base) == pytest.approx(2.0)  # rounds: 2, 1.5, 4
    with pytest.raises(ValueError):
        fast.paired_speedup(Timing((1.0,)))  # not timed in the same rounds


def test_the_other_load_summary_warns_only_where_wall_clock_ratios_suffer() -> None:
    load = OtherLoad()
    assert load.summary() is None
    load.fraction = 0.05
    assert load.summary() == "other processes used 5% of the machine's CPU time meanwhile"
    load.fraction = 0.4
    assert "unreliable" in load.summary("wall") and "unreliable" not in load.summary("cpu")


def test_agreement_reports_largest_difference_and_label_match() -> None:
    ref = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # 1×2×1×2: labels 0, 1
    other = ref.clone()
    other[0, 0, 0, 1] = 2.0  # second pixel flips to label 0
    result = agreement(ref, other)
    assert result["max_abs_diff"] == 2.0
    assert result["argmax_agreement_pct"] == 50.0


@pytest.mark.parametrize("option, value", [("--batches", "0"), ("--train-crop", "0"),
                                           ("--repeats", "0"), ("--warmup", "-1"),
                                           ("--threads", "0")])
def test_bench_refuses_unmeasurable_settings_before_timing(tmp_path: Path, capsys, option,
                                                           value) -> None:
    args = list(TINY_ARGS)
    if option in args:
        i = args.index(option)
        del args[i : i + 2]
    code = main(["bench", *args, option, value, "--out", str(tmp_path / "x.json")])
    assert code == 2
    captured = capsys.readouterr()
    name = option.lstrip("-").replace("-", "_")
    assert f"bench {name}: must be" in captured.err or f"{option}: must be" in captured.err
    assert "inference ..." not in captured.out, "the check must come before any timing"
    assert not (tmp_path / "x.json").exists()


def _stop_with(signum: int):  # noqa: ANN202 - a stand-in for a section
    def section(*args: object, **kwargs: object) -> list:
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler interrupts this
        return []
    return section


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_bench_keeps_its_finished_sections_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
        signum: int) -> None:
    monkeypatch.setattr("fcnseg.bench.suite.bench_training", _stop_with(signum))
    out = tmp_path / "bench.json"
    code = main(["bench", *TINY_ARGS, "--models", "fcn8s", "--sections", "inference,training",
                 "--out", str(out)])
    assert code == 128 + signum
    report = json.loads(out.read_text())
    assert report["complete"] is False and report["stopped_by_signal"] == signum
    assert report["finished_sections"] == ["cpu inference"]
    assert {r["geometry"] for r in report["inference"]} == {"caffe", "same"}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cpu inference" in err[0] and str(out) in err[0]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_finished_bench_report_says_it_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", *TINY_ARGS, "--models", "fcn8s", "--sections", "inference",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["complete"] is True and report["stopped_by_signal"] is None
    assert report["finished_sections"] == ["cpu inference"]
    assert not list(tmp_path.glob("*.tmp"))
