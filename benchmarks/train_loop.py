"""fcnseg's training loop against a plain PyTorch loop: same model, data, settings, iterations.

``fcnseg`` is one whole :func:`fcnseg.engine.train` call with the demo recipe
(``synthetic-fcn8s``) shortened to ``--iterations`` steps and no validation set: start-up
(datasets, model, optimizer), the loop (sampler, augmentation, step, logging, schedule) and
the checkpoint it writes at the end. The plain loop builds the same model (same seed) with
:func:`fcnseg.models.build_model`, reads the same augmented samples through a plain DataLoader,
and runs ``F.cross_entropy`` + AdamW for the same number of steps, then saves model and
optimizer once; it runs once in NCHW and once with the model and its input channels-last.
All variants are timed interleaved (A, B, C, A, B, C, ...), so a busy machine slows them
alike. What counts is the paired ratio ``plain / fcnseg``: in each round, the time of the
faster plain loop (by median) over fcnseg's, and the median of these over the rounds (goal: at
least 0.95); a busy machine's load changes between rounds far more than within one, so it is
steadier than the ratio of the medians (also printed). Each call includes its fixed costs
(building the setup, saving the checkpoint; about 0.1-0.2 s for fcnseg, a little less for the
plain loop), so short runs understate the loop: ``--quick`` runs 60 iterations.

It also times validation of the demo's 100 validation images, one image per batch against
the recipe's batches of 10 (padded to a common size; the padding is not scored), and, with
``--startup N``, start-up in fresh processes: ``fcnseg train`` for one iteration against a
plain script doing the same (imports, data, model, optimizer, one step, one save), N times
each, interleaved, on one thread's CPU time, with where fcnseg's went (imports, building the
setup, up to the first step, the rest).

    python benchmarks/train_loop.py                    # ~3 minutes on 2 idle cores
    python benchmarks/train_loop.py --iterations 300 --repeats 3
    python benchmarks/train_loop.py --quick            # 60 iterations, ~3 minutes
    python benchmarks/train_loop.py --quick --threads 1 --clock cpu   # on a busy machine
    python benchmarks/train_loop.py --files            # image files: benchmarks/train_files.py

Last lines (see benchmarks/README.md): ``TARGET train_loop_ratio ...`` (goal 0.95) and
``TARGET validation_batched_speedup ...`` (batched validation no slower than one image per
batch).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see fcnseg demo)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from fcnseg.bench.targets import format_target, print_target  # noqa: E402
from fcnseg.bench.timing import OtherLoad, time_interleaved  # noqa: E402
from fcnseg.data import build_dataset, collate_segmentation  # noqa: E402
from fcnseg.data.transforms import build_eval_transform, build_train_transform  # noqa: E402
from fcnseg.engine import load_config, train  # noqa: E402
from fcnseg.engine.evaluation import evaluate_model  # noqa: E402
from fcnseg.engine.setup import build_training_model  # noqa: E402
from fcnseg.engine.signals import STOP_SIGNALS  # noqa: E402
from fcnseg.models import optimize  # noqa: E402

RECIPE = "synthetic-fcn8s"
GOAL = 0.95

#: One iteration of ``fcnseg train`` in a fresh process; prints where its CPU time went.
FCNSEG_ONCE = """
import json, sys, time
start = time.process_time()
from fcnseg.cli.main import main
import fcnseg.engine.trainer as trainer
marks = {"imports": time.process_time() - start}
build, step = trainer.build_setup, trainer.accumulated_step
def timed_build(*a, **k):
    t = time.process_time()
    try:
        return build(*a, **k)
    finally:
        marks["build_setup"] = time.process_time() - t
def first_step(*a, **k):
    marks.setdefault("to_first_step", time.process_time() - start)
    return step(*a, **k)
trainer.build_setup, trainer.accumulated_step = timed_build, first_step
code = main(sys.argv[1:])
marks["total"] = time.process_time() - start
print("PHASES " + json.dumps(marks))
sys.exit(code)
"""

#: The same in a plain script: imports, data, model, optimizer, one step, one save.
PLAIN_ONCE = """
import sys
from functools import partial
import torch, torch.nn.functional as F
from torch.utils.data import DataLoader
from fcnseg.data import build_dataset, collate_segmentation
from fcnseg.data.transforms import build_train_transform
from fcnseg.models import build_model
torch.manual_seed(0)
spec = {"name": "synthetic", "num_images": 2000, "size": 96, "seed": 0}
plain = build_dataset(spec, split="train")
model = build_model("fcn8s", num_classes=len(plain.classes), geometry="same", width=0.25,
                    fc_channels=256, dropout=0.0, input_convention="torchvision_rgb")
data = build_dataset(spec, split="train", transform=build_train_transform(
    flip=True, ignore_index=plain.ignore_index))
model = model.to(memory_format=torch.channels_last).train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.002)
loader = DataLoader(data, batch_size=8, shuffle=True, drop_last=True,
                    collate_fn=partial(collate_segmentation, ignore_index=data.ignore_index))
images, labels = next(iter(loader))
images = images.contiguous(memory_format=torch.channels_last)
loss = F.cross_entropy(model(images), labels, ignore_index=data.ignore_index)
optimizer.zero_grad(set_to_none=True)
loss.backward()
optimizer.step()
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, sys.argv[1])
"""


def startup(work: Path, repeats: int) -> dict:
    """CPU seconds of one iteration in a fresh process, fcnseg's CLI against a plain script,
    interleaved; with fcnseg's phases."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    sets = ["train.iterations=1", "train.eval_every=1", "train.checkpoint_every=1",
            "train.tensorboard=false", "train.progress=false", "device=cpu", "data.val=null",
            "threads=1"]
    times: dict[str, list[float]] = {"fcnseg train": [], "plain script": []}
    phases: list[dict] = []

    def child_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    for i in range(repeats + 1):  # the first round warms the file cache
        out = work / f"startup{i}"
        before = child_cpu()
        done = subprocess.run(
            [sys.executable, "-c", FCNSEG_ONCE, "train", "--recipe", RECIPE, "--out", str(out),
             *[a for kv in sets for a in ("--set", kv)]],
            env=env, capture_output=True, text=True, check=True)
        fcnseg_s = child_cpu() - before
        before = child_cpu()
        subprocess.run([sys.executable, "-c", PLAIN_ONCE, str(work / "plain_once.pt")],
                       env=env, capture_output=True, text=True, check=True)
        plain_s = child_cpu() - before
        shutil.rmtree(out, ignore_errors=True)
        if i == 0:
            continue
        times["fcnseg train"].append(fcnseg_s)
        times["plain script"].append(plain_s)
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PHASES "))
        phases.append(json.loads(line.split(" ", 1)[1]))
    keys = phases[0].keys()
    return {"cpu_s": {k: statistics.median(v) for k, v in times.items()},
            "phases": {k: statistics.median(p[k] for p in phases) for k in keys}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--files" in argv:  # the file-dataset variant: benchmarks/train_files.py
        from train_files import main as files_main  # this script's folder is on sys.path

        return files_main([a for a in argv if a != "--files"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: this process's CPU time (with --threads 1, holds on a busy "
                        "machine; leaves out loader worker processes)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[],
                   help="recipe overrides for both loops, e.g. data.batch_size=4")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="60 iterations, 5 repeats (about three minutes)")
    p.add_argument("--startup", type=int, default=0, metavar="N",
                   help="also time start-up in N fresh processes of each kind")
    args = p.parse_args(argv)
    if args.quick:
        args.iterations, args.repeats = 60, 5
    torch.set_num_threads(args.threads)
    # Removed however the run ends, SIGINT/SIGTERM included.
    with work_folder(Path(tempfile.mkdtemp(prefix="fcnseg-train-loop-"))) as work:
        return measure(args, work)


def loop_overrides(iterations: int, extra: list[str]) -> list[str]:
    """The recipe overrides of both loops: ``iterations`` steps, no validation during them,
    one checkpoint at the end, no TensorBoard or progress bar; then ``extra`` (``--set``)."""
    return [f"train.iterations={iterations}", f"train.eval_every={iterations}",
            f"train.checkpoint_every={iterations}", "train.tensorboard=false",
            "train.progress=false", "device=cpu", *extra]


def fcnseg_config(overrides: list[str], iterations: int, out: Path) -> Any:
    """The config of one ``fcnseg train()`` call of ``iterations`` steps into ``out``. A run
    shorter than the recipe's warm-up (the 3-iteration warm-up call) gets a warm-up that fits,
    as a user would set it, so that ``fcnseg train`` has nothing to warn about."""
    sets = [*overrides, "data.val=null", f"train.iterations={iterations}"]
    config = load_config(RECIPE, sets, out=str(out))
    if config.schedule.warmup_iters >= iterations:
        config = load_config(RECIPE, [*sets, f"schedule.warmup_iters={iterations - 1}"],
                             out=str(out))
    return config


class RoundLog:
    """Wraps the variants of :func:`time_interleaved` to time each call (on the same clock)
    and prints one line per finished round, so a run stopped part way still shows what it
    measured."""

    def __init__(self, variants: dict[str, Callable[[], object]], clock: str) -> None:
        self._now = time.perf_counter if clock == "wall" else time.process_time
        self.last: dict[str, float] = {}
        self.variants = {name: self._timed(name, fn) for name, fn in variants.items()}

    def _timed(self, name: str, fn: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            start = self._now()
            try:
                return fn()
            finally:
                self.last[name] = self._now() - start
        return call

    def progress(self, done: int, total: int) -> None:
        """The ``progress`` callback: this round's seconds per variant, one line."""
        print(f"round {done}/{total}: "
              + ", ".join(f"{name} {s:.2f} s" for name, s in self.last.items()), flush=True)


@contextlib.contextmanager
def work_folder(work: Path) -> Iterator[Path]:
    """``work``, removed on the way out; SIGINT/SIGTERM end the run at once (exit status
    128 + the signal, as ``fcnseg train``'s) after removing it."""
    def stop(signum: int, frame: Any) -> None:
        for sig in STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        print(f"train_loop: stopped by signal {signum}; the rounds above are what it "
              f"measured", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def measure(args: argparse.Namespace, work: Path) -> int:
    """Time both loops and validation (and start-up with ``--startup``) in ``work``; print
    the tables and the TARGET lines."""
    overrides = loop_overrides(args.iterations, args.overrides)
    base = load_config(RECIPE, overrides)
    runs = {"n": 0}

    def next_config(iterations: int) -> Any:
        runs["n"] += 1
        return fcnseg_config(overrides, iterations, work / f"fcnseg{runs['n']}")

    # Read beforehand, as the plain loop's is: the recipe file is no part of the loop.
    configs = [next_config(args.iterations) for _ in range(args.repeats)]

    def fcnseg_loop(iterations: int = args.iterations) -> None:
        config = configs.pop(0) if iterations == args.iterations else next_config(iterations)
        result = train(config)
        if result.status == "interrupted":  # train() took the signal itself: stop here too
            signum = int(result.signal or signal.SIGTERM)
            print(f"train_loop: stopped by signal {signum}", file=sys.stderr, flush=True)
            raise SystemExit(128 + signum)
        shutil.rmtree(config.out)

    def plain_loop(channels_last: bool, iterations: int = args.iterations) -> None:
        config = base
        torch.manual_seed(config.seed)
        d = config.data
        plain = build_dataset(dict(d.train), split="train")
        model = build_training_model(config, len(plain.classes))
        transform = build_train_transform(crop_size=d.crop_size,
                                          flip=d.flip, ignore_index=plain.ignore_index)
        data = build_dataset(dict(d.train), split="train", transform=transform)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        params = [q for q in model.parameters() if q.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.optim.lr,
                                      weight_decay=config.optim.weight_decay)
        loader = DataLoader(data, batch_size=d.batch_size, shuffle=True, drop_last=True,
                            collate_fn=partial(collate_segmentation,
                                               ignore_index=plain.ignore_index),
                            generator=torch.Generator().manual_seed(config.seed))
        step = 0
        while step < iterations:
            for images, labels in loader:
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                loss = F.cross_entropy(model(images), labels, ignore_index=plain.ignore_index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                if step >= iterations:
                    break
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                   work / "plain.pt")

    variants = {"fcnseg train()": fcnseg_loop,
                "plain NCHW": partial(plain_loop, False),
                "plain channels_last": partial(plain_loop, True)}
    # A short warm-up of each (first calls create oneDNN primitives and fill caches).
    fcnseg_loop(3)
    plain_loop(False, 3)
    plain_loop(True, 3)
    rounds = RoundLog(variants, args.clock)
    print(f"training loops, {args.repeats} interleaved rounds of {args.iterations} iterations "
          f"each ({args.clock} clock):", flush=True)
    with OtherLoad() as load:
        timings = time_interleaved(rounds.variants, warmup=0, repeats=args.repeats,
                                   clock=args.clock, progress=rounds.progress)

    # Validation: one image per batch against the recipe's batches, same model and images.
    val_spec = dict(base.data.val)
    torch.manual_seed(0)
    val = build_dataset(val_spec, split=val_spec.get("split") or "val")
    model = build_training_model(base, val.num_classes)
    val = build_dataset(val_spec, split=val_spec.get("split") or "val",
                        transform=build_eval_transform())
    model = optimize(model, "inference", channels_last=base.channels_last)

    def validate(batch_size: int) -> None:
        loader = DataLoader(val, batch_size=batch_size,
                            collate_fn=partial(collate_segmentation,
                                               ignore_index=val.ignore_index))
        evaluate_model(model, loader, num_classes=val.num_classes,
                       ignore_index=val.ignore_index)

    val_rounds = RoundLog({"1 per batch": partial(validate, 1),
                           f"{base.data.val_batch_size} per batch":
                               partial(validate, base.data.val_batch_size)}, args.clock)
    print(f"validation, 1 warm-up + {args.repeats} interleaved rounds:", flush=True)
    val_timings = time_interleaved(val_rounds.variants, warmup=1, repeats=args.repeats,
                                   clock=args.clock, progress=val_rounds.progress)
    started = startup(work, args.startup) if args.startup else None

    images = args.iterations * base.data.batch_size
    print(f"\n{RECIPE}: {args.iterations} iterations of batch {base.data.batch_size}, CPU, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats, "
          f"{args.clock} clock")
    print(f"{'loop':<22} {'median s':>9} {'spread':>7} {'img/s':>7}")
    for name, t in timings.items():
        print(f"{name:<22} {t.median:>9.2f} {100 * t.spread:>6.0f}% {images / t.median:>7.1f}")
    plain = min(("plain NCHW", "plain channels_last"), key=lambda k: timings[k].median)
    ratio_of_medians = timings[plain].median / timings["fcnseg train()"].median
    # Paired: in each round, the faster plain loop (by median; taking the faster of the two in
    # each round would favour the plain side by picking its lucky samples) over fcnseg's.
    ratio = timings["fcnseg train()"].paired_speedup(timings[plain])
    # Other jobs only ever add time, so the fastest repeats are the least disturbed ones.
    fastest = (min(timings["plain NCHW"].low, timings["plain channels_last"].low)
               / timings["fcnseg train()"].low)
    if load.summary(args.clock):
        print(load.summary(args.clock))
    print(f"\nspeed of fcnseg's loop / the faster plain loop, paired by round: {ratio:.3f} "
          f"(goal >= {GOAL}: {'met' if ratio >= GOAL else 'MISSED'}); of the medians: "
          f"{ratio_of_medians:.3f}; fastest repeats: {fastest:.3f}")
    print(f"\nvalidation, {len(val)} images ({val_spec.get('size')} px):")
    for name, t in val_timings.items():
        print(f"  {name:<14} {t.median:.2f} s ({len(val) / t.median:.1f} img/s)")
    one, many = val_timings.values()
    print(f"  batched / one per batch speed: {one.median / many.median:.2f}")
    if started:
        cpu, ph = started["cpu_s"], started["phases"]
        print(f"\nstart-up: one iteration in a fresh process, 1 thread, CPU s, median of "
              f"{args.startup}: fcnseg train {cpu['fcnseg train']:.2f}, plain script "
              f"{cpu['plain script']:.2f} (difference "
              f"{cpu['fcnseg train'] - cpu['plain script']:+.2f})")
        print(f"  fcnseg train: imports {ph['imports']:.2f}, building the setup (data, "
              f"model, optimizer) {ph['build_setup']:.2f}, up to the first step "
              f"{ph['to_first_step']:.2f}, in all {ph['total']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "iterations": args.iterations, "threads": torch.get_num_threads(),
            "clock": args.clock,
            "loops": {k: v.as_dict() for k, v in timings.items()}, "ratio": ratio,
            "ratio_of_medians": ratio_of_medians,
            "ratio_fastest_repeats": fastest,
            "validation": {k: v.as_dict() for k, v in val_timings.items()},
            "startup": started}, indent=2))
    print(format_target("train_loop_ratio", ratio, GOAL)
          + f" of_medians={ratio_of_medians:.4g} fastest_repeats={fastest:.4g}")
    print_target("validation_batched_speedup", one.median / many.median, 1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
