"""``fcnseg calibrate``: fit a temperature on a validation split and store it in a checkpoint.

The temperature divides the logits before the softmax, so that probabilities (heatmaps,
uncertainty maps, ``--probs``) match how often the model is right; labels never change.
``predict``, ``serve`` and ``export`` apply the stored temperature, ``evaluate`` reports the
calibration with it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from fcnseg.checkpoint import load_checkpoint
from fcnseg.cli import options
from fcnseg.inference.calibration import (
    DEFAULT_MAX_PIXELS,
    calibrate_checkpoint,
    output_format,
    refuse_exported,
)
from fcnseg.inference.segmenter import resolve_device
from fcnseg.utils.files import check_writable

NAME = "calibrate"
HELP = ("Fit a temperature on a validation split (temperature scaling) and store it in the "
        "checkpoint, for calibrated probabilities.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint(p, help="checkpoint to calibrate")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", default=None,
                       help="checkpoint to write, .pt or .safetensors (default: "
                            "NAME_calibrated.pt next to the input, in its format; for hf:// "
                            "in the current folder); the input is never modified")
    where.add_argument("--in-place", action="store_true",
                       help="replace the checkpoint file itself, in its own format (atomically: a "
                            "crash leaves the old file or the new one, never a broken one)")
    options.add_dataset(p, split_help="split to fit on (default: val; never the test split)",
                        limit_help="use only the first N images")
    r = p.add_argument_group("running")
    r.add_argument("--max-pixels", type=options.positive_int, default=DEFAULT_MAX_PIXELS,
                   help="pixels sampled for the fit, spread evenly over the images (memory is "
                        "pixels × classes × 4 bytes)")
    options.add_device(r)
    options.add_batch_size(r, default=1)
    options.add_num_workers(r)
    options.add_no_progress(r)


def default_output(checkpoint: str) -> Path:
    """``runs/x/best.pt`` → ``runs/x/best_calibrated.pt`` (``.safetensors`` stays
    ``.safetensors``); a pretrained folder ``models/x`` → ``models/x_calibrated.pt``;
    ``hf://owner/repo[@rev]``, no local file, → ``owner--repo[@rev]_calibrated.pt`` in the current
    folder."""
    if checkpoint.startswith("hf://"):
        name = re.sub(r"[^\w.@-]+", "-", checkpoint.removeprefix("hf://").replace("/", "--", 1))
        return Path.cwd() / f"{name.strip('.-') or 'hub'}_calibrated.pt"
    path = Path(checkpoint)
    if path.is_dir():
        return path.parent / f"{path.name}_calibrated.pt"
    return path.with_name(f"{path.stem}_calibrated{path.suffix or '.pt'}")


def output_path(args: argparse.Namespace) -> Path:
    """Where the calibrated checkpoint goes (``--out``, ``--in-place`` or
    :func:`default_output`), checked before any work: a one-line error for a place that
    cannot take it."""
    spec = args.checkpoint
    if args.in_place:
        if spec.startswith("hf://"):
            raise ValueError(f"--in-place: {spec} is a Hub repository, not a file here; give "
                             f"--out FILE (.pt or .safetensors)")
        if Path(spec).is_dir():
            raise ValueError(f"--in-place: {spec} is a pretrained folder, not a checkpoint "
                             f"file; give --out FILE (.pt or .safetensors)")
        out = Path(spec)
    else:
        out = Path(args.out) if args.out else default_output(spec)
    output_format(out)  # a name saying another format is refused now, not after the fit
    check_writable(out)  # a folder, or a place no file can be written, before the fit too
    return out


def run(args: argparse.Namespace) -> int:
    refuse_exported(args.checkpoint)  # before any name is checked or anything read
    out = output_path(args)
    ckpt = load_checkpoint(args.checkpoint)
    spec = options.dataset_spec(args, ckpt)
    del ckpt  # calibrate_checkpoint reads it again; do not hold two copies of the weights
    result = calibrate_checkpoint(
        args.checkpoint, spec, out, device=resolve_device(args.device),
        batch_size=args.batch_size, num_workers=args.num_workers, max_pixels=args.max_pixels,
        limit=args.limit, progress=not args.no_progress and sys.stderr.isatty())
    if result.get("classes_matched_by_name"):
        print(result["classes_matched_by_name"])
    print(f"temperature {result['temperature']:.4g} fitted on {result['pixels']:,} pixels of "
          f"{result['num_images']} images; per pixel: NLL {result['nll_before']:.4f} → "
          f"{result['nll_after']:.4f}, expected calibration error "
          f"{100 * result['ece_before']:.2f}% → {100 * result['ece_after']:.2f}%")
    if args.split is None:
        data = result["dataset"]
        where = data.get("root") or data.get("name")
        fitted = f"the {data['split']} split of {where}" if data.get("split") else f"{where}"
        print(f"fitted on {fitted}, the split fcnseg evaluate scores by "
              f"default, so its calibration figures there will look better than on new "
              f"images; --split NAME fits on another labelled split")
    if result["written_temperature"] != result["temperature"]:
        print(f"the fitted temperature raised the expected calibration error of these pixels: "
              f"wrote {out} with temperature 1 (the model's own probabilities); fit on more "
              f"images for a temperature that helps")
    else:
        print(f"wrote {out} (predict, serve, export and evaluate apply the temperature)")
    return 0

