"""Every speed target in one table (what ``make bench`` runs).

Runs each benchmark script below that exists (``--quick``: each with its own ``--quick``, a few
minutes in all) and gathers the ``TARGET <name> measured=<float> goal=<float> ok=<true|false>``
lines they end with (benchmarks/README.md) into one table; a script that is missing, fails or
times out shows its targets as "not measured". The full run (no ``--quick``) also runs the
``fcnseg bench`` suite (~11 minutes idle; JSON in benchmarks/results/bench.json) and adds its
targets; arguments this script does not know go to ``fcnseg bench`` (e.g. ``--compile``).
The table and every target are also written as JSON (``--json``, default
benchmarks/results/targets.json).

    python benchmarks/run_all.py --quick          # ~5 minutes on 2 idle cores
    python benchmarks/run_all.py                  # everything, ~40 minutes
    python benchmarks/run_all.py --only train_loop,geometry_speed --quick
    python benchmarks/run_all.py --only fcnseg_bench --compile   # the suite alone
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from fcnseg.bench.targets import (
    BenchmarkRun,
    Target,
    format_targets_table,
    run_benchmark,
    run_command,
)

HERE = Path(__file__).resolve().parent
DEMO_CHECKPOINT = Path("runs/demo/best.pt")


@dataclass(frozen=True)
class Benchmark:
    """A script of this folder, the targets it prints, and its arguments."""

    script: str
    expected: tuple[str, ...]
    args: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("inference_precision.py",
              ("precision_auto_label_agreement", "precision_auto_mean_iu_delta",
               "precision_auto_speedup")),
    Benchmark("inference_peak.py", ("inference_bf16_peak_fraction",
                                    "inference_fp32_peak_fraction")),
    Benchmark("predict_pipeline.py", ("predict_over_model", "predict_cli_over_model",
                                      "predict_outputs_identical")),
    Benchmark("serve_load.py", ("serve_concurrent_over_model", "serve_default_over_best_batching")),
    Benchmark("train_loop.py", ("train_loop_ratio",)),
    Benchmark("train_files.py", ("train_files_ratio",)),
    Benchmark("train_precision.py", ("bf16_train_speedup", "bf16_train_mean_iu_delta")),
    Benchmark("geometry_speed.py", ("geometry_same_over_caffe_nchw",
                                    "geometry_same_over_caffe_channels_last")),
    Benchmark("data_loading.py", ("data_loading_ratio",)),
    Benchmark("raster_predict.py", ("raster_peak_rss_largest_over_smallest",
                                    "raster_tiled_over_model_throughput")),
    Benchmark("raster_seams.py", ("raster_tiled_vs_whole_max_prob_error",
                                  "raster_seam_jump_over_elsewhere",
                                  "raster_fcn8s_seam_jump_over_elsewhere")),
    Benchmark("int8_inference.py", ("int8_speedup_over_bf16", "int8_demo_mean_iu_drop",
                                    "int8_demo_pixel_agreement", "int8_thin_mean_iu_drop",
                                    "int8_thin_pixel_agreement")),
    Benchmark("multiband_bands.py", ("multiband_all_bands_mean_iu", "multiband_rgb_over_chance")),
)


def suite_run(timeout: float | None, args: list[str]) -> BenchmarkRun:
    """``fcnseg bench args...`` (the full suite): its JSON's targets as rows of the table."""
    out = HERE / "results" / "bench.json"
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
    else:
        args = [*args, "--out", str(out)]
    run = run_command("fcnseg bench", [sys.executable, "-m", "fcnseg", "bench", *args],
                      timeout=timeout)
    if out.is_file() and run.status in ("ok", "no TARGET lines"):
        report = json.loads(out.read_text())
        run.targets = [Target(t["target"].replace(" ", "_"), float(t["value"]), float(t["goal"]),
                              bool(t["met"])) for t in report.get("targets", [])]
        run.status = "ok" if run.targets else "no targets in the report"
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="each benchmark's --quick, no fcnseg bench suite (a few minutes)")
    p.add_argument("--only", default="",
                   help="comma-separated script names (without .py) to run; default: all")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per benchmark before it counts as not measured "
                        "(default: 900 with --quick, 3600 otherwise)")
    p.add_argument("--json", default=str(HERE / "results" / "targets.json"))
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a target is missed or not measured")
    args, suite_args = p.parse_known_args(argv)
    if suite_args and args.quick:
        p.error(f"unrecognized arguments: {' '.join(suite_args)} (only the full run passes "
                f"arguments on to fcnseg bench)")
    timeout = args.timeout or (900.0 if args.quick else 3600.0)
    only = {name.strip().removesuffix(".py") for name in args.only.split(",") if name.strip()}
    runs: list[BenchmarkRun] = []
    for bench in BENCHMARKS:
        if only and bench.script.removesuffix(".py") not in only:
            continue
        extra = list(bench.args)
        if bench.script in ("inference_precision.py", "int8_inference.py") \
                and DEMO_CHECKPOINT.is_file():
            extra += ["--checkpoint", str(DEMO_CHECKPOINT)]  # the trained demo: no training
        print(f"\n=== {bench.script} {' '.join(extra)}{' --quick' if args.quick else ''}",
              flush=True)
        run = run_benchmark(HERE / bench.script, [*extra, *(["--quick"] if args.quick else [])],
                            expected=bench.expected, timeout=timeout)
        print(f"=== {bench.script}: {run.status} ({run.seconds:.0f} s)", flush=True)
        runs.append(run)
    if not args.quick and (not only or "fcnseg_bench" in only):
        print("\n=== fcnseg bench", flush=True)
        runs.append(suite_run(timeout, suite_args))
    print("\nTargets (measured on this machine; a NO describes this machine and its load):\n")
    print(format_targets_table(runs))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"quick": args.quick, "runs": [asdict(r) for r in runs]}, indent=2))
        print(f"\nwrote {args.json}")
    missed = [row for r in runs for row in r.rows() if row[1] is None or not row[1].ok]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
