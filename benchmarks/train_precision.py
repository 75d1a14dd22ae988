"""What bf16 autocast training costs in accuracy and gains in speed on the CPU.

Trains the demo recipe (``synthetic-fcn8s``: FCN-8s, batch 8 of 96×96, AdamW, poly schedule)
twice from the same seed, once in float32 (``precision=fp32``) and once with bf16 autocast
(``precision=bf16``), each with ``--iterations`` steps (the demo uses 1500) and one evaluation
at the end on the 100 validation images in float32, and prints both runs' mean IU and training
time. The time is the process's CPU time when ``--threads 1`` (it holds on a busy machine),
wall time otherwise; the runs are sequential, not interleaved, so on a busy machine compare CPU
times.

    python benchmarks/train_precision.py --threads 1            # full demo length, ~8 min
    python benchmarks/train_precision.py --iterations 300 --quick-eval

Last lines (see benchmarks/README.md): ``TARGET bf16_train_speedup ...`` and
``TARGET bf16_train_mean_iu_delta ...`` (points; within 1 point of float32 counts as met).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see fcnseg demo)

import torch  # noqa: E402

from fcnseg.bench.targets import print_target  # noqa: E402
from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint  # noqa: E402
from fcnseg.data import build_dataset, collate_segmentation  # noqa: E402
from fcnseg.data.transforms import build_eval_transform  # noqa: E402
from fcnseg.engine import load_config, train  # noqa: E402
from fcnseg.engine.evaluation import evaluate_model  # noqa: E402

RECIPE = "synthetic-fcn8s"
#: bf16 training's mean IU may fall at most this many points below float32's.
MAX_DROP_POINTS = 1.0
#: bf16 training should be at least this much faster than float32 to be worth offering.
MIN_SPEEDUP = 1.0


def train_one(precision: str, iterations: int, threads: int, work: Path,
              overrides: list[str]) -> dict:
    """Train the recipe in ``precision``; return its time and float32 validation scores."""
    out = work / precision
    config = load_config(RECIPE, [
        f"train.iterations={iterations}", f"train.eval_every={iterations}",
        f"train.checkpoint_every={iterations}", "train.tensorboard=false",
        "train.progress=false", "device=cpu", f"threads={threads}", "data.val=null",
        f"precision={precision}", *overrides], out=str(out))
    wall, cpu = time.perf_counter(), time.process_time()
    train(config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ckpt = load_checkpoint(out / "last.pt")
    val_spec = dict(load_config(RECIPE).data.val)
    model = build_model_from_checkpoint(ckpt).eval()
    val = build_dataset(val_spec, split="val",
                        transform=build_eval_transform())
    loader = torch.utils.data.DataLoader(
        val, batch_size=10,
        collate_fn=lambda b: collate_segmentation(b, ignore_index=val.ignore_index))
    scores = evaluate_model(model, loader, num_classes=val.num_classes,
                            ignore_index=val.ignore_index)
    return {"precision": precision, "wall_s": wall, "cpu_s": cpu,
            "mean_iu": float(scores["mean_iu"]), "pixel_acc": float(scores["pixel_acc"])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="300 iterations (a few minutes)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[],
                   help="recipe overrides for both runs, e.g. data.batch_size=4")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    iterations = 300 if args.quick else args.iterations
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="fcnseg-train-precision-"))
    try:
        runs = [train_one(precision, iterations, args.threads, work, args.overrides)
                for precision in ("fp32", "bf16")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    clock = "cpu_s" if args.threads == 1 else "wall_s"
    fp32, bf16 = runs
    print(f"\n{RECIPE}: {iterations} iterations, batch 8 of 96×96, CPU, {args.threads} "
          f"thread(s); scored in float32 on the 100 validation images")
    print(f"{'training':<16} {'mean IU %':>10} {'pixel acc %':>12} {'CPU s':>8} {'wall s':>8}")
    for run in runs:
        name = "fp32" if run["precision"] == "fp32" else "bf16 autocast"
        print(f"{name:<16} {100 * run['mean_iu']:>10.2f} {100 * run['pixel_acc']:>12.2f} "
              f"{run['cpu_s']:>8.1f} {run['wall_s']:>8.1f}")
    speedup = fp32[clock] / bf16[clock]
    delta = 100 * (bf16["mean_iu"] - fp32["mean_iu"])
    print(f"bf16 / fp32: {speedup:.2f}× faster ({clock[:-2]} clock), mean IU "
          f"{delta:+.2f} points")
    if args.json:
        Path(args.json).write_text(json.dumps({"iterations": iterations,
                                               "threads": args.threads, "runs": runs},
                                              indent=2))
    print_target("bf16_train_speedup", speedup, MIN_SPEEDUP)
    print_target("bf16_train_mean_iu_delta", delta, -MAX_DROP_POINTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
