"""``fcnseg evaluate``: score a checkpoint on a dataset; print the metrics, write a report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fcnseg.cli import options

NAME = "evaluate"
HELP = "Score a checkpoint on a dataset: pixel acc, mean acc, mean IU, fw IU, per-class table."

DATASETS = ("synthetic", "voc", "sbd", "seg11valid", "folder")


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint(p, help="checkpoint file to evaluate")
    p.add_argument("--out", default="runs/eval", help="folder for report.json, confusion.png and reliability.png")
    d = p.add_argument_group("dataset")
    d.add_argument("--dataset", choices=DATASETS,
                   help="which dataset (default: the validation set named in the checkpoint's "
                        "recipe, as it was scored during training)")
    d.add_argument("--root", help="dataset folder (voc: VOCdevkit, its parent or VOC<year>; "
                                  "sbd: benchmark_RELEASE or its parent; folder: your dataset)")
    d.add_argument("--voc-root", help="seg11valid: VOC2011 (as --root for voc)")
    d.add_argument("--sbd-root", help="seg11valid: SBD (as --root for sbd)")
    d.add_argument("--year", help="voc: 2012 or 2011 (default: 2012)")
    d.add_argument("--split", help="split to score (default: val)")
    d.add_argument("--config", help="folder: its dataset.yaml (default: ROOT/dataset.yaml)")
    d.add_argument("--num-images", type=options.positive_int,
                   help="synthetic: how many images (default: 50)")
    d.add_argument("--size", help="synthetic: image size, S or HxW (default: 128)")
    d.add_argument("--seed", type=int, help="synthetic: seed (default: 0)")
    d.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="any other dataset field (repeatable), e.g. --data cache_dir=cache "
                        "(seg11valid)")
    d.add_argument("--limit", type=options.positive_int, help="score only the first N images")
    r = p.add_argument_group("running")
    options.add_device(r)
    options.add_batch_size(r, default=1,
                           help="images per batch (1: each whole image; more pad each batch to "
                                "its largest image, padded pixels unscored)")
    options.add_num_workers(r, help="DataLoader worker processes (0: load in this process)")
    r.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="mixed precision")
    options.add_window_and_tta(r)
    options.add_no_progress(r)
    c = p.add_argument_group("calibration")
    c.add_argument("--calibration", action=argparse.BooleanOptionalAction, default=True,
                   help="report the expected calibration error and the mean IU of the most "
                        "confident pixels, and write reliability.png (default: on)")
    c.add_argument("--coverage", nargs="+", metavar="F", default=None,
                   help="fractions of the most confident pixels to score (default: 0.5 0.8 "
                        "0.9; also comma-separated)")


def _parse_size(text: str) -> int | list[int]:
    try:
        parts = [int(v) for v in text.lower().replace("×", "x").split("x")]
    except ValueError:
        raise ValueError(f"--size: expected S or HxW, got {text!r}") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts
    raise ValueError(f"--size: expected S or HxW, got {text!r}")


def dataset_spec(args: argparse.Namespace, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The :func:`fcnseg.data.build_dataset` spec that the options describe.

    With ``--dataset``, that dataset (synthetic defaults: 50 images of 128 px, seed 0, split
    val); without it, the validation set recorded in the checkpoint's recipe. The dataset
    options given, then ``--data KEY=VALUE`` fields, go on top of either.
    """
    import yaml

    if args.dataset is None:
        recipe_val = ((ckpt.get("recipe") or {}).get("data") or {}).get("val")
        if not recipe_val:
            raise ValueError(f"--dataset: {args.checkpoint} records no validation dataset in "
                             f"its recipe; choose one of {', '.join(DATASETS)}")
        spec: dict[str, Any] = dict(recipe_val)
    elif args.dataset == "synthetic":
        spec = {"name": "synthetic", "num_images": 50, "size": 128, "seed": 0, "split": "val"}
    else:
        spec = {"name": args.dataset, "split": "val"}
    options = {"root": args.root, "voc_root": args.voc_root, "sbd_root": args.sbd_root,
               "year": args.year, "split": args.split, "num_images": args.num_images,
               "size": None if args.size is None else _parse_size(args.size),
               "seed": args.seed, "config": args.config}
    spec.update({k: v for k, v in options.items() if v is not None})
    for item in args.data:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--data: expected KEY=VALUE, got {item!r}")
        spec[key.strip()] = yaml.safe_load(value)
    required = {"voc": ("root",), "sbd": ("root",), "folder": ("root",),
                "seg11valid": ("voc_root", "sbd_root")}
    for key in required.get(spec.get("name"), ()):
        if spec.get(key) is None:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag}: required for --dataset {spec['name']}")
    return spec


def _parse_coverage(items: list[str]) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for item in items for v in item.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--coverage: expected fractions like 0.5 0.9, got {items}") from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise ValueError(f"--coverage: fractions must be in (0, 1], got {items}")
    return values


def predict_fn_from_args(args: argparse.Namespace) -> Any:
    """The ``predict_fn`` for ``--sliding-window`` / ``--tta-*``, or None for a plain forward.

    Built from the same :class:`~fcnseg.inference.SlidingWindow` and
    :class:`~fcnseg.inference.TTA` settings as ``fcnseg predict``, so options are checked here,
    before any image is read.
    """
    sliding = options.sliding_window_from_args(args)
    inner = None if sliding is None else sliding.predict_fn()
    tta = options.tta_from_args(args)
    return inner if tta is None else tta.predict_fn(inner)


def run(args: argparse.Namespace) -> int:
    import torch

    from fcnseg.checkpoint import load_checkpoint
    from fcnseg.engine.evaluation import (
        evaluate_checkpoint,
        format_calibration,
        format_report,
        write_report,
    )
    from fcnseg.metrics import DEFAULT_COVERAGES

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    predict_fn = predict_fn_from_args(args)  # bad options fail before any data is read
    coverages = _parse_coverage(args.coverage) if args.coverage else DEFAULT_COVERAGES
    ckpt = load_checkpoint(args.checkpoint)
    spec = dataset_spec(args, ckpt)
    if args.dataset is None:
        print(f"dataset from the checkpoint's recipe: {spec}")
    result = evaluate_checkpoint(
        ckpt, spec, device=device, batch_size=args.batch_size,
        num_workers=args.num_workers, amp=None if args.amp == "none" else args.amp,
        predict_fn=predict_fn, limit=args.limit,
        progress=not args.no_progress and sys.stderr.isatty(),
        calibration=args.calibration, coverages=coverages,
    )
    scales = list(options.parse_scales(args.tta_scales)) if args.tta_scales else None
    result["options"] = {"device": device, "batch_size": args.batch_size, "amp": args.amp,
                         "sliding_window": args.sliding_window, "stride": args.stride,
                         "tta_scales": scales, "tta_flip": args.tta_flip}
    written = write_report(args.out, result)
    print(f"{args.checkpoint} on {spec['name']} ({result['num_images']} images, "
          f"{result['seconds']:.1f} s)")
    print(format_report(result))
    if result.get("calibration"):
        print()
        print(format_calibration(result["calibration"]))
    print(f"wrote {written['report']}")
    if written.get("reliability_plot") is not None:
        print(f"wrote {written['reliability_plot']}")
    if written["confusion_plot"] is not None:
        print(f"wrote {written['confusion_plot']}")
    else:
        print("note: matplotlib is not installed (pip install 'fcnseg[viz]'); "
              "skipped confusion.png")
    return 0
