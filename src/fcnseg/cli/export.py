"""``fcnseg export``: a checkpoint to ONNX or TorchScript, verified in the same command."""

from __future__ import annotations

import argparse
import time

from fcnseg.cli import options
from fcnseg.export import export_onnx, export_torchscript
from fcnseg.export.common import DEFAULT_ATOL, DEFAULT_RTOL, checkpoint_record
from fcnseg.inference import Segmenter
from fcnseg.inference.calibration import TemperatureScaled
from fcnseg.models.fastpath import make_plain
from fcnseg.utils.files import check_writable

NAME = "export"
HELP = ("Export a checkpoint to ONNX (dynamic batch, height, width) or TorchScript, verified "
        "against PyTorch on two input sizes.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    # No --device: the export is traced and verified on the CPU, and the file runs anywhere.
    options.add_checkpoint(p)
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"),
                   help="onnx (for onnxruntime and other runtimes) or torchscript (for "
                        "torch.jit.load, no fcnseg needed)")
    p.add_argument("--out", required=True, help="output file (written only if verified)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy",
                   help="ONNX exporter: TorchScript-based 'legacy' or 'dynamo' (torch.export)")
    p.add_argument("--height", type=options.positive_int, default=64,
                   help="export sample height (the graph takes any size; a small sample keeps "
                        "the verification's memory small)")
    p.add_argument("--width", type=options.positive_int, default=64,
                   help="export sample width")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                   help="absolute difference to PyTorch accepted")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                   help="difference to PyTorch accepted as a fraction of the largest logit, where "
                        "that is more than --atol (float32 rounding grows with the logits)")
    p.add_argument("--input", choices=("pixels", "normalized"), default="pixels",
                   help="what the graph takes: RGB pixel values 0-255 (N×3×H×W float32, "
                        "normalised inside the graph; no preprocessing code needed), or input "
                        "already normalised per the model's input convention")
    p.add_argument("--labels-out", action="store_true",
                   help="ONNX: end the graph in an argmax, N×H×W uint8 labels instead of "
                        "N×C×H×W float logits (C× less output memory)")


def run(args: argparse.Namespace) -> int:
    check_writable(args.out)  # before the slow export, naming the path asked for
    seg = Segmenter.from_checkpoint(args.checkpoint, device="cpu")
    # inference settings are not properties of the model
    description = {k: v for k, v in seg.describe().items() if k not in ("sliding_window", "tta")}
    description.update(checkpoint_record(seg.validation_data, seg.checkpoint_metrics))
    # The segmenter is dropped after this: its model goes back to plain layers in place, so
    # that the export needs no copy of the weights.
    model = make_plain(seg.model)
    del seg.model
    if seg.temperature != 1.0:  # a calibrated checkpoint: the graph outputs logits / T
        model = TemperatureScaled(model, seg.temperature)
    size = (args.height, args.width)
    start = time.perf_counter()
    if args.format == "onnx":
        result = export_onnx(model, args.out, description=description, sample_size=size,
                             opset=args.opset, exporter=args.exporter, atol=args.atol,
                             rtol=args.rtol,
                             raw_pixels=args.input == "pixels", labels_out=args.labels_out)
        what = f"ONNX (opset {result.opset}, {result.exporter} exporter)"
    else:
        if args.labels_out:
            raise ValueError("--labels-out: only for --format onnx")
        result = export_torchscript(model, args.out, description=description,
                                    sample_size=size, atol=args.atol, rtol=args.rtol,
                                    raw_pixels=args.input == "pixels")
        what = "TorchScript"
    for check in result.checks:  # each sample has its own tolerance, from its own logits
        print(f"verified {check}, below its tolerance {check.tolerance:.3g}")
    print(f"wrote {what} {result.path} ({result.size_bytes / 1e6:.1f} MB, "
          f"{seg.arch}{f', geometry {seg.geometry}' if seg.geometry else ''}) in "
          f"{time.perf_counter() - start:.1f} s; "
          f"max abs difference {max(c.max_abs_diff for c in result.checks):.3g}, each sample's "
          f"below its tolerance (max(--atol {args.atol:g}, --rtol {args.rtol:g} × that "
          f"sample's largest logit))")
    return 0
