"""What ``fcnseg bench`` prints: progress while it runs, a fraction of the mm peak that never
reads above 100%, targets only on request, and a reason wherever a setting is timed twice."""

from __future__ import annotations

from typing import Any

import pytest

from fcnseg.bench import BenchConfig, format_report, run_suite
from fcnseg.bench.suite import Report, check_targets

TINY = {"width": 0.03125, "fc_channels": 8, "sizes": ((36, 36),), "repeats": 1, "warmup": 0,
        "peak_size": 64, "models": ("fcn8s",), "train_crop": 36, "loader": False}


def _row(geometry: str, median_s: float, fraction: float = 0.5, batch: int = 1) -> dict:
    return {"device": "cpu", "model": "fcn8s", "geometry": geometry, "size": [500, 500],
            "batch": batch, "median_s": median_s, "spread": 0.02, "images_per_s": 1 / median_s,
            "gflop": 216.0, "gflop_per_s": 216.0 / median_s, "fraction_of_mm_peak": fraction,
            "peak_rss_mib": 2000.0}


def _option(variant: str, median_s: float, fraction: float = 0.5) -> dict:
    return {"variant": variant, "dtype": "float32", "median_s": median_s, "spread": 0.02,
            "gflop_per_s": 216.0 / median_s, "fraction_of_mm_peak": fraction,
            "speedup_vs_plain_same": 1.0, "speedup_vs_caffe_plain_fp32": 1.0,
            "max_abs_diff": 0.0, "argmax_agreement_pct": 100.0}


def _report(inference=(), options=(), targets=()) -> dict[str, Any]:
    return {
        "config": {"clock": "wall", "repeats": 3, "warmup": 1, "peak_size": 4096},
        "machine": {"torch": "2.13.0", "threads": 2, "cpu": "test cpu", "cpu_flags": [],
                    "mm_peak_gflop_per_s": {"cpu_float32": 300.0},
                    "other_processes_cpu_share": {}},
        "inference": list(inference), "training": [], "evaluation": [],
        "options": [{"device": "cpu", "size": [500, 500], "rows": list(options),
                     "cudnn_benchmark": "n/a on CPU"}] if options else [],
        "targets": list(targets), "not_measured": [],
    }


def test_every_measurement_and_round_of_a_section_is_logged() -> None:
    lines: list[str] = []
    cfg = BenchConfig(**TINY, batches=(1, 2), sections=("inference", "training"))
    run_suite(cfg, log=lines.append)
    text = "\n".join(lines)
    assert "[cpu] inference 1/2: fcn8s 36×36 batch 1: round 1/1" in text
    assert "[cpu] inference 2/2: fcn8s 36×36 batch 2: round 1/1" in text
    assert "[cpu] training step: round 1/1" in text
    assert "[cpu] training done in" in text


def test_a_fraction_of_the_mm_peak_above_100_percent_is_not_printed_as_a_number() -> None:
    text = format_report(_report(inference=[_row("caffe", 1.0, fraction=1.3),
                                            _row("same", 0.6, fraction=0.8)]))
    assert "130%" not in text
    assert ">100%*" in text and "80%" in text
    assert "* above 100%" in text and "not hardware utilisation" in text


def test_the_peak_note_is_left_out_when_every_fraction_is_below_100_percent() -> None:
    text = format_report(_report(inference=[_row("same", 0.6, fraction=0.8)]))
    assert "above 100%" not in text and "of mm peak" in text


def test_targets_are_printed_only_on_request_and_then_explained() -> None:
    target = {"target": "[cpu] same / caffe", "value": 1.2, "goal": 1.65, "met": False,
              "note": ""}
    report = _report(inference=[_row("same", 0.6)], targets=[target])
    assert "Targets" not in format_report(report)
    text = format_report(report, targets=True)
    assert "Targets: speed ratios the fast paths were designed to reach" in text
    assert "[cpu] same / caffe" in text


def test_a_setting_timed_in_two_tables_shows_both_times_and_why_they_differ() -> None:
    report = _report(inference=[_row("caffe", 1.5), _row("same", 0.829)],
                     options=[_option("plain (same, no_grad)", 0.9),
                              _option("+gemm fc6/fc7", 0.801), _option("caffe fast", 1.43)])
    text = format_report(report)
    assert "Timed in two tables" in text and "absolute times follow the machine's load" in text
    assert "fcn8s same 500×500 batch 1: 0.829 s in Inference, 0.801 s in Fast paths" in text
    assert "fcn8s caffe 500×500 batch 1: 1.5 s in Inference, 1.43 s in Fast paths" in text


def test_no_reason_is_printed_when_no_setting_is_timed_twice() -> None:
    report = _report(inference=[_row("same", 0.829, batch=4)],
                     options=[_option("+gemm fc6/fc7", 0.801)])
    assert "Timed in two tables" not in format_report(report)


def test_the_bf16_path_is_held_to_85_percent_of_the_bf16_mm_peak() -> None:
    bf16 = {**_option("+bf16 autocast", 0.3, fraction=0.8), "dtype": "bfloat16"}
    report = _report(options=[_option("+channels_last", 0.7, fraction=0.9), bf16])
    targets = check_targets(Report(**report))
    found = [t for t in targets if t["target"] == "[cpu] bf16 FCN-8s inference FLOP/s / bf16 "
             "mm peak"]
    assert [(t["value"], t["goal"], t["met"]) for t in found] == [(0.8, 0.85, False)]


def test_the_header_quotes_the_mm_peak_that_the_percentages_divide_by() -> None:
    report = run_suite(BenchConfig(**TINY, batches=(1,), sections=("inference",)),
                       log=lambda _: None)
    row_peak = report["inference"][0]["mm_peak_gflop_per_s"]
    assert report["machine"]["mm_peak_gflop_per_s"] == {"cpu_float32": row_peak}
    row = report["inference"][0]
    # the same division, in float64 with the units scaled differently
    assert row["fraction_of_mm_peak"] == pytest.approx(row["gflop_per_s"] / row_peak, rel=1e-12)
    header = format_report(report).splitlines()[1]
    assert f"cpu_float32 {row_peak:.3g}" in header and "same interleaved rounds" in header


def test_a_narrower_model_counts_fewer_flops() -> None:
    def gflop(width: float) -> float:
        cfg = BenchConfig(**{**TINY, "width": width}, batches=(1,), sections=("inference",))
        return run_suite(cfg, log=lambda _: None)["inference"][0]["gflop"]

    assert gflop(0.03125) < gflop(0.0625) / 2
