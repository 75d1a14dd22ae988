"""``fcnseg demo``: the embedded default. Train FCN-8s on the built-in synthetic scenes,
evaluate it on their validation split, write the report and a few predictions."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

NAME = "demo"
HELP = "Run the embedded default: train FCN-8s on synthetic data, evaluate, write a report."

#: Mean IU the demo is expected to reach on the synthetic validation split.
TARGET_MEAN_IU = 0.85


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--recipe", default="synthetic-fcn8s",
                   help="training recipe (default: synthetic-fcn8s; try synthetic-fcn32s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, as in `fcnseg train`")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: recipe's)")
    p.add_argument("--predictions", type=int, default=6,
                   help="validation images to save as image | truth | prediction (default 6)")


def run(args: argparse.Namespace) -> int:
    # OpenMP threads that spin while waiting make torch many times slower (20x measured) as
    # soon as anything else runs on a small CPU; sleeping waits cost little when it is idle.
    # Read when torch loads, so this must come before the first torch import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from fcnseg.engine import load_config, train
    from fcnseg.engine.evaluation import evaluate_checkpoint, format_report, write_report

    out = Path(args.out)
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    config = load_config(args.recipe, overrides, out=str(out))
    start = time.perf_counter()
    # Resuming makes the demo restartable: an interrupted run continues, a finished one is
    # only re-evaluated.
    result = train(config, resume=True)
    if result.status != "completed":
        return 128 + int(result.signal) if result.signal else 130  # as `fcnseg train` exits
    trained = time.perf_counter() - start

    best = out / "best.pt"
    report = evaluate_checkpoint(best, dict(config.data.val or {}), device=_device(config.device))
    report["training_seconds"] = round(trained, 1)
    written = write_report(out / "eval", report)
    print(format_report(report))
    print(f"wrote {written['report']}")
    if written.get("confusion_plot"):
        print(f"wrote {written['confusion_plot']}")
    if args.predictions > 0:
        saved = save_predictions(best, dict(config.data.val or {}), out / "predictions",
                                 args.predictions)
        print(f"wrote {len(saved)} predictions to {out / 'predictions'}")
    mean_iu = float(report["mean_iu"])
    verdict = ""
    if args.recipe == "synthetic-fcn8s":
        verdict = (" (reached" if mean_iu >= TARGET_MEAN_IU else " (MISSED") + \
            f" the {100 * TARGET_MEAN_IU:.0f} target)"
    print(f"{config.name}: mean IU {100 * mean_iu:.2f} on {report['num_images']} validation "
          f"images{verdict}; trained in {trained / 60:.1f} min")
    return 0


def _device(spec: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def save_predictions(checkpoint: Path, val_spec: dict, folder: Path, count: int) -> list[Path]:
    """Save ``count`` validation images as image | ground truth | prediction strips."""
    import numpy as np
    from PIL import Image

    from fcnseg.data import build_dataset
    from fcnseg.inference import Segmenter, colorize

    segmenter = Segmenter.from_checkpoint(checkpoint)
    dataset = build_dataset(val_spec, split=val_spec.get("split") or "val")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(count, len(dataset))):
        image, truth = dataset[i]
        pred = segmenter.predict(image).label
        strip = np.concatenate([image, colorize(truth, segmenter.palette),
                                colorize(pred, segmenter.palette)], axis=1)
        path = folder / f"{dataset.name(i)}.png"
        Image.fromarray(strip).save(path)
        paths.append(path)
    return paths
