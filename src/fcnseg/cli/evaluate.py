"""``fcnseg evaluate``: score a checkpoint on a dataset; print the metrics, write a report."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcnseg.checkpoint import load_checkpoint
from fcnseg.cli import options
from fcnseg.cli.demo import save_predictions
from fcnseg.data.errors import DataError
from fcnseg.engine.evaluation import (
    data_summary,
    evaluate_checkpoint,
    format_calibration,
    format_report,
    write_report,
)
from fcnseg.engine.signals import until_signal
from fcnseg.inference.runner import resolve_device
from fcnseg.metrics import DEFAULT_COVERAGES
from fcnseg.utils.files import check_output_folder, prepare_output_folder

NAME = "evaluate"
HELP = "Score a checkpoint on a dataset: pixel acc, mean acc, mean IU, fw IU, per-class table."


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint(p, help="checkpoint file to evaluate")
    p.add_argument("--out", default=None,
                   help="folder for report.json, confusion.png and reliability.png (default: "
                        "eval/ beside the checkpoint; eval-2/, eval-3/ ... when an earlier "
                        "evaluation is there)")
    p.add_argument("--strips", type=int, default=0, metavar="N",
                   help="also write titled image | ground truth | prediction strips of the "
                        "first N images into OUT/strips/")
    options.add_dataset(p, split_help="split to score (default: val)",
                        limit_help="score only the first N images")
    r = p.add_argument_group("running")
    options.add_device(r)
    options.add_batch_size(r, default=1,
                           help="images per batch (1: each whole image; more pad each batch to "
                                "its largest image, padded pixels unscored)")
    options.add_num_workers(r)
    options.add_precision(r, amp_alias=True, default=None,
                          help=options.PRECISION_HELP + " (default: the precision the "
                               "checkpoint's training validated at, its recipe's precision: "
                               "fp32 when the checkpoint records no recipe; an exported "
                               "model runs in its own precision, int8 when quantized)")
    options.add_window_and_tta(r)
    options.add_no_progress(r)
    c = p.add_argument_group("calibration")
    c.add_argument("--calibration", action=argparse.BooleanOptionalAction, default=True,
                   help="report the expected calibration error and the mean IU of the most "
                        "confident pixels, and write reliability.png (default: on)")
    c.add_argument("--coverage", nargs="+", metavar="F", default=None,
                   help="fractions of the most confident pixels to score (default: 0.5 0.8 "
                        "0.9; also comma-separated)")


def _parse_coverage(items: list[str]) -> tuple[float, ...]:
    values = options.parse_numbers(items, "--coverage: expected fractions like 0.5 0.9, got {}")
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise ValueError(f"--coverage: fractions must be in (0, 1], got {items}")
    return values


def run(args: argparse.Namespace) -> int:
    device = str(resolve_device(args.device))
    # --sliding-window and --tta-* as fcnseg predict takes them, checked before any data is read
    sliding, tta = options.sliding_window_from_args(args), options.tta_from_args(args)
    inner = None if sliding is None else sliding.predict_fn()
    scales = list(tta.scales) if args.tta_scales else None
    coverages = _parse_coverage(args.coverage) if args.coverage else DEFAULT_COVERAGES
    if args.strips < 0:
        raise ValueError(f"--strips: expected a number of images, 0 or more, got {args.strips}")
    # checked before the data is scored, said once it is (where a run replaces a report)
    check_output_folder(output_folder(args.checkpoint, args.out, say=lambda line: None))
    scored, stopped = until_signal(lambda: _score(  # model loading included
        args, device=device, predict_fn=inner if tta is None else tta.predict_fn(inner),
        coverages=coverages))
    if stopped is not None or scored is None:
        print(f"fcnseg evaluate: stopped by signal {stopped} before the scores were complete; "
              f"nothing written; run the same command to evaluate", file=sys.stderr)
        return 128 + int(stopped or 0)
    ckpt, spec, result = scored
    precision_from = precision_source(ckpt, args.precision)
    out = prepare_output_folder(output_folder(args.checkpoint, args.out))
    precision = args.precision or (None if ckpt.get("artifact") else result["precision"])
    result["options"] = {"device": device, "batch_size": args.batch_size,
                         "precision": precision, "precision_from": precision_from,
                         "sliding_window": args.sliding_window, "stride": args.stride,
                         "tta_scales": scales, "tta_flip": args.tta_flip}
    written = write_report(out, result)
    print(f"{args.checkpoint} on {data_summary(result['dataset'])} "
          f"({result['num_images']} images, {result['seconds']:.1f} s, precision "
          f"{result['precision']}, {header_method(args, precision_from, scales)})")
    if result["dataset"].get("classes_matched_by_name"):
        print(result["dataset"]["classes_matched_by_name"])
    for head, scores in (result.get("heads") or {None: result}).items():
        if head is not None:
            print(f"\nhead {head}:")
        print(format_report(scores))
    if result.get("excluded_images"):
        print(f"\nimages left out by the dataset: {', '.join(result['excluded_images'])}")
    if result.get("calibration"):
        print(f"\n{format_calibration(result['calibration'])}")
    elif result.get("calibration_skipped"):
        print(f"\n{result['calibration_skipped']}")
    for key in ("report", "reliability_plot", "confusion_plot"):
        if written.get(key) is not None:
            print(f"wrote {written[key]}")
    if written["confusion_plot"] is None:
        print("note: matplotlib is not installed (pip install 'fcnseg[viz]'); "
              "skipped confusion.png")
    if args.strips:
        saved = save_predictions(ckpt["path"], spec, out / "strips", args.strips,
                                 scene_pictures=False)
        print(f"wrote {len(saved)} image | ground truth | prediction strips to {out / 'strips'}")
    return 0


def _score(args: argparse.Namespace, **running: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The checkpoint, the dataset and their scores (``running``: device, predict_fn,
    coverages)."""
    ckpt = load_checkpoint(args.checkpoint)
    spec = options.dataset_spec(args, ckpt)
    try:
        return ckpt, spec, evaluate_checkpoint(  # without --precision, at its default
            ckpt, spec, batch_size=args.batch_size, num_workers=args.num_workers,
            precision=args.precision, limit=args.limit,
            progress=not args.no_progress and sys.stderr.isatty(),
            calibration=args.calibration, **running)
    except DataError as e:  # not skip_bad's advice: a sample left out would change the scores
        raise DataError(e.path, e.problem, "evaluation scores every image of the split: fix or "
                        "remove it ('fcnseg check-data' lists every bad sample)") from None


def header_method(args: argparse.Namespace, precision_from: str,
                  scales: list[float] | None) -> str:
    """How the images were scored, for the header: where the precision comes from, and the
    sliding windows and test-time augmentation when asked for (then the scores are not those
    training validated, which ran whole images once)."""
    ways = []
    if args.sliding_window is not None:
        stride = args.stride or max(1, args.sliding_window * 2 // 3)
        ways.append(f"{args.sliding_window}×{args.sliding_window} sliding windows at "
                    f"stride {stride}")
    if args.tta_flip or args.tta_scales:
        ways.append("test-time augmentation: " + " and ".join(
            ([f"scales {', '.join(f'{v:g}' for v in scales)}"] if scales else [])
            + (["flips"] if args.tta_flip else [])))
    if not ways:
        return precision_from
    if precision_from == "as training validated":
        precision_from = "the precision training validated at"
    return "; ".join([precision_from, *ways])


def precision_source(ckpt: dict[str, Any], asked: str | None) -> str:
    """Where the precision comes from: an exported model's own file (int8 when quantized, else
    the float graph), whatever ``--precision`` says; else ``--precision``, or the one training
    validated at where the recipe records it, or fp32, the default."""
    artifact = ckpt.get("artifact")
    if artifact:
        kind = {"onnx": "ONNX", "torchscript": "TorchScript"}.get(artifact.get("kind"), "exported")
        text = f"the {'int8 ' if artifact.get('quantization') else ''}{kind} model's own"
        return text + (f"; --precision {asked} does not apply to it" if asked else "")
    if asked:
        return "--precision"
    recipe = ckpt.get("recipe") or {}
    if "precision" in recipe or "amp" in recipe:
        return "as training validated"
    if recipe.get("converted_from"):
        return "the default for a converted model, never validated in training"
    return "the default, as the checkpoint records no training precision"


def output_folder(checkpoint: str, out: str | None,
                  say: Callable[[str], None] = print) -> Path:
    """Where the report goes: ``out`` (``say`` it when it replaces an earlier report), else
    ``eval/`` beside the checkpoint file (in a pretrained folder: inside it; for ``hf://``:
    under ``runs/eval/``), or the first free ``eval-N/`` when an earlier report is there."""
    if out is not None:
        folder = Path(out)
        if (folder / "report.json").is_file():
            say(f"replacing the earlier evaluation in {folder}")
        return folder
    source = Path(checkpoint)
    if source.is_dir():
        base = source / "eval"
    elif source.is_file():
        base = source.parent / "eval"
    else:  # hf://owner/repo[@rev]: a name of its own under runs/eval
        name = re.sub(r"[^A-Za-z0-9._-]+", "--", checkpoint.split("://", 1)[-1]).strip("-")
        base = Path("runs") / "eval" / name
    folder, n = base, 1
    while (folder / "report.json").is_file():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    if folder != base:
        say(f"{base} holds an earlier evaluation; writing to {folder}")
    return folder
