"""``fcnseg bench``: measure inference, training, evaluation and the fast paths; print + JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fcnseg.bench import BenchConfig, format_report, run_suite
from fcnseg.cli import options
from fcnseg.engine.signals import STOP_SIGNALS, restore_handlers, stop_handlers
from fcnseg.utils.files import atomic_write_bytes

NAME = "bench"
HELP = "Benchmark the models (CPU, and CUDA when present): tables plus a JSON file."

SECTIONS = ("inference", "training", "evaluation", "options")


def _size(text: str) -> tuple[int, int]:
    """``500`` or ``512x1024`` → (h, w)."""
    parts = options.size_parts(text)
    if parts is None:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}")
    if min(parts) < 1 or len(parts) > 2:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with positive N, got {text!r}")
    return parts[0], parts[-1]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="FCN-8s, 500×500, batch 1 (about 3 minutes on 2 idle cores)")
    options.add_device(p, help="cpu, cuda, or auto (cpu, plus cuda when present)")
    p.add_argument("--models", type=_csv, default=None,
                   help="comma-separated, e.g. fcn32s,fcn16s,fcn8s (default: all three)")
    p.add_argument("--sizes", type=_size, nargs="+", default=None,
                   help="input sizes, N or HxW (default: 500 512x1024)")
    p.add_argument("--batches", type=int, nargs="+", default=None,
                   help="batch sizes (default: 1 4)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per variant (default: 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up rounds (default: 1)")
    p.add_argument("--sections", type=_csv, default=SECTIONS,
                   help="comma-separated subset")
    p.add_argument("--train-crop", type=int, default=None, help="training crop (default: 320)")
    p.add_argument("--train-batch", type=int, default=None, help="training batch (default: 2)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--no-loader", action="store_true", help="skip the DataLoader settings")
    p.add_argument("--width", type=float, default=None,
                   help="channel width multiplier (default: 1.0 = VGG16; smaller for smoke tests)")
    p.add_argument("--fc-channels", type=int, default=None, help="fc6/fc7 channels (default: 4096)")
    p.add_argument("--peak-size", type=int, default=None,
                   help="matrix size of the mm peak measurement (default: 4096)")
    p.add_argument("--clock", choices=("wall", "cpu"), default=None,
                   help="wall time (the default) or process CPU time: with --threads 1 it counts "
                        "only this process's work on a machine shared with other jobs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--targets", action="store_true",
                   help="also print the design goals of the fast paths and whether this machine "
                        "met them (always in the JSON)")
    p.add_argument("--out", type=Path, default=Path("bench_results.json"),
                   help="JSON output file")


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - BenchConfig, imported lazily
    """The :class:`~fcnseg.bench.BenchConfig` that the command-line arguments describe."""
    bad = set(args.sections) - set(SECTIONS)
    if bad:
        raise ValueError(f"--sections: unknown {sorted(bad)}; choose from {list(SECTIONS)}")
    if args.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or auto, got {args.device!r}")
    devices = ("cpu", "cuda") if args.device == "auto" else (args.device,)
    # the options left out keep BenchConfig's (or quick()'s) defaults
    given = {k: getattr(args, k) for k in ("models", "repeats", "warmup", "train_crop",
                                            "train_batch", "width", "fc_channels", "peak_size",
                                            "clock", "sizes", "batches")}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()
                 if v is not None}
    overrides.update(devices=devices, sections=tuple(args.sections), compile=args.compile)
    if args.no_loader:
        overrides["loader"] = False
    if args.sizes:
        overrides["option_size"] = overrides["sizes"][0]
        overrides["eval_size"] = overrides["sizes"][0]
    return BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    kept: list[dict[str, Any]] = []  # the latest report written

    def keep(report: dict[str, Any]) -> None:
        _write(args.out, report)
        kept[:] = [report]

    try:
        with _stop_on_signal():
            report = run_suite(cfg, log=lambda msg: print(msg, flush=True), on_section=keep)
    except _Stopped as stop:
        return _say_stopped(args.out, kept[0] if kept else None, stop.args[0])
    print(format_report(report, targets=args.targets))
    _write(args.out, report)
    print(f"wrote {args.out}")
    return 0


def _write(path: Path, report: dict[str, Any]) -> None:
    """The JSON report, written atomically: a reader never sees half a file."""
    atomic_write_bytes(path, json.dumps(report, indent=2).encode())


def _say_stopped(out: Path, report: dict[str, Any] | None, signum: int) -> int:
    """Say what a stopped run kept; exit as a process ended by ``signum`` (as train does)."""
    if report is None:
        print(f"fcnseg bench: stopped by signal {signum} before any section finished; "
              f"nothing written to {out}", file=sys.stderr, flush=True)
    else:
        report["stopped_by_signal"] = signum
        _write(out, report)
        print(f"fcnseg bench: stopped by signal {signum}; kept the finished sections "
              f"({', '.join(report['finished_sections'])}) in {out}, marked partial",
              file=sys.stderr, flush=True)
    return 128 + signum


class _Stopped(Exception):
    """The run was stopped by the signal in ``args[0]``."""


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[None]:
    """SIGINT/SIGTERM raise :class:`_Stopped` at once: a section can run for minutes."""
    def handle(signum: int, frame: Any) -> None:
        for sig in STOP_SIGNALS:  # a second signal while the report is written waits
            signal.signal(sig, signal.SIG_IGN)
        raise _Stopped(signum)

    previous = stop_handlers()
    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        restore_handlers(previous)
