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
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_CHECKPOINT = Path("runs/demo/best.pt")

_LINE = re.compile(r"^TARGET\s+(?P<name>\S+)\s+(?P<fields>.*)$")


@dataclass(frozen=True)
class Target:
    """One measured target: its value, its goal and whether the goal was met."""

    name: str
    measured: float
    goal: float
    ok: bool
    #: Further ``key=value`` fields of the line.
    extra: dict[str, str] = field(default_factory=dict)


def parse_targets(text: str) -> list[Target]:
    """Every well-formed ``TARGET`` line of ``text``, in order. A line that starts with
    ``TARGET`` but lacks ``measured``, ``goal`` or ``ok``, or whose numbers do not parse, raises
    ValueError naming the line: a benchmark that prints a broken line has a bug worth seeing."""
    targets = []
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            continue
        fields = dict(token.split("=", 1) for token in match["fields"].split() if "=" in token)
        try:
            measured, goal = float(fields.pop("measured")), float(fields.pop("goal"))
            ok = fields.pop("ok").lower()
        except (KeyError, ValueError) as e:
            raise ValueError(f"malformed TARGET line (needs measured=<float> goal=<float> "
                             f"ok=<true|false>): {line.strip()!r}") from e
        if ok not in ("true", "false"):
            raise ValueError(f"malformed TARGET line (ok must be true or false): "
                             f"{line.strip()!r}")
        targets.append(Target(match["name"], measured, goal, ok == "true", fields))
    return targets


@dataclass
class BenchmarkRun:
    """What one benchmark script gave: its targets, or why it measured nothing."""

    script: str
    #: Target names the script is expected to print: shown as "not measured" when it does
    #: not (a missing script, a crash, a timeout).
    expected: tuple[str, ...] = ()
    targets: list[Target] = field(default_factory=list)
    #: "ok", "missing", "failed (exit N)", "timed out after N s", "no TARGET lines" or
    #: "malformed TARGET line: ...".
    status: str = "ok"
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, Target | None, str]]:
        """``(name, target or None, note)`` for every target measured and every expected one
        that was not (note: why not)."""
        rows: list[tuple[str, Target | None, str]] = [(t.name, t, "") for t in self.targets]
        measured = {t.name for t in self.targets}
        why = {"missing": "script missing",
               "ok": "not printed by the script"}.get(self.status, self.status)
        rows += [(name, None, why) for name in self.expected if name not in measured]
        if not rows:
            rows.append(("(any)", None, why))
        return rows


def run_benchmark(script: Path, args: Sequence[str] = (), *, expected: Sequence[str] = (),
                  timeout: float | None = None,
                  echo: Callable[[str], None] | None = print) -> BenchmarkRun:
    """Run ``python script args...`` and gather its ``TARGET`` lines.

    Its output is passed line by line to ``echo`` as it comes (None: kept quiet). A script
    that does not exist, fails, runs past ``timeout`` seconds or prints no ``TARGET`` line is
    reported as such; the targets it printed before failing are kept."""
    if not script.is_file():
        return BenchmarkRun(script=script.name, expected=tuple(expected), status="missing")
    return run_command(script.name, [sys.executable, str(script), *args], expected=expected,
                       timeout=timeout, echo=echo)


def run_command(name: str, command: Sequence[str], *, expected: Sequence[str] = (),
                timeout: float | None = None,
                echo: Callable[[str], None] | None = print) -> BenchmarkRun:
    """:func:`run_benchmark` for any command (e.g. ``python -m fcnseg bench``), reported
    under ``name``."""
    run = BenchmarkRun(script=name, expected=tuple(expected))
    start = time.perf_counter()
    proc = subprocess.Popen(list(command), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)  # its own group: a timeout ends it all
    lines: list[str] = []

    def read() -> None:  # in a thread, so that a silent, hung script still times out
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if echo is not None:
                echo(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and anything it started
        proc.wait()
        run.status = f"timed out after {timeout:.0f} s"
    except BaseException:  # Ctrl-C: the script is in its own group and would live on
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    reader.join()
    run.seconds = time.perf_counter() - start
    try:
        run.targets = parse_targets("".join(lines))
    except ValueError as e:
        run.status = str(e)
        return run
    if run.status == "ok" and proc.returncode != 0:
        run.status = f"failed (exit {proc.returncode})"
    if run.status == "ok" and not run.targets:
        run.status = "no TARGET lines"
    return run


def format_targets_table(runs: Sequence[BenchmarkRun]) -> str:
    """One Markdown table of every target of ``runs``: benchmark, target, measured, goal and
    whether it was met ("yes", "NO", or "not measured: <why>")."""
    header = ["benchmark", "target", "measured", "goal", "met"]
    body = []
    for run in runs:
        for name, target, note in run.rows():
            if target is None:
                body.append([run.script, name, "-", "-", f"not measured: {note}"])
            else:
                body.append([run.script, name, f"{target.measured:.4g}", f"{target.goal:.4g}",
                             "yes" if target.ok else "NO"])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


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
    Benchmark("model_identity.py", ("model_identity_over_load",)),
    Benchmark("serve_load.py", ("serve_concurrent_over_model", "serve_default_over_best_batching")),
    Benchmark("serve_memory.py", ("serve_fcn8s_bf16_gb_at_default_limit",)),
    Benchmark("train_loop.py", ("train_loop_ratio",)),
    Benchmark("train_files.py", ("train_files_ratio",)),
    Benchmark("train_precision.py", ("bf16_train_speedup", "bf16_train_mean_iu_delta")),
    Benchmark("geometry_speed.py", ("geometry_same_over_caffe_nchw",
                                    "geometry_same_over_caffe_channels_last")),
    Benchmark("data_loading.py", ("data_loading_ratio",)),
    Benchmark("raster_predict.py", ("raster_peak_rss_largest_over_smallest",
                                    "raster_tiled_over_model_throughput")),
    Benchmark("large_photo_memory.py", ("large_photo_tiled_over_whole_peak_rss",
                                        "large_photo_tiled_label_agreement",
                                        "large_photo_heatmap_over_tiled_peak_rss")),
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
