"""``fcnseg info CHECKPOINT``: what a checkpoint describes, as a short summary or as JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from fcnseg.checkpoint import load_checkpoint
from fcnseg.cli import options
from fcnseg.pretrained.resolve import checkpoint_files

NAME = "info"
HELP = ("Show what a checkpoint describes: architecture, geometry, classes, input convention, "
        "metrics, size (--json: the full record).")

#: Scalar metrics shown in the summary, in this order, with their names in the paper.
METRICS = {"mean_iu": "mean IU", "pixel_acc": "pixel acc", "mean_acc": "mean acc",
           "fw_iu": "f.w. IU"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", metavar="CHECKPOINT", help="checkpoint file")
    options.add_checkpoint(p, help="the checkpoint, as the other commands take it", required=False)
    p.add_argument("--json", action="store_true",
                   help="print the full record (model, classes with palette, iteration, "
                        "metrics, recipe, size) as JSON")


def record(path: str) -> dict[str, Any]:
    """Everything ``fcnseg info --json`` prints about the checkpoint at ``path``."""
    ckpt = load_checkpoint(path)
    names = list(ckpt["classes"]["names"])
    state = ckpt.get("model_state_dict") or {}
    return {
        "path": str(path),
        # A pretrained folder or hf:// is the size of its files, not of the cached copy.
        "file_bytes": sum(os.path.getsize(f) for f in checkpoint_files(path)),
        "parameters": sum(int(t.numel()) for t in state.values() if hasattr(t, "numel")),
        "model": ckpt.get("model"),
        "classes": {**ckpt["classes"], "palette": list(ckpt["classes"]["palette"])[: len(names)]},
        "iteration": ckpt.get("iteration"),
        "epoch": ckpt.get("epoch"),
        "metrics": ckpt.get("metrics") or {},
        "recipe": ckpt.get("recipe") or {},
        # Present once ``fcnseg calibrate`` has stored one; None for an uncalibrated model.
        "temperature": ckpt.get("temperature"),
    }


def summary(rec: dict[str, Any]) -> str:
    """A few lines a person reads: what the model is, what it predicts, how well, how big."""
    model = rec.get("model") or {}
    kwargs = dict(model.get("build_kwargs") or {})
    geometry = kwargs.pop("geometry", None) or "-"
    kwargs.pop("num_classes", None)
    built = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    convention = model.get("input_convention") or {}
    conv_text = convention.get("name", "-")
    if convention.get("channel_order"):
        scale = "0-1" if convention.get("scale") not in (1, 1.0) else "0-255"
        conv_text += f" ({convention['channel_order']} {scale}, minus the mean"
        conv_text += ", over the std)" if any(s != 1 for s in convention.get("std") or []) else ")"
    classes = rec["classes"]["names"]
    shown = ", ".join(classes[:8]) + (f", … ({len(classes) - 8} more)" if len(classes) > 8 else "")
    recipe = (rec.get("recipe") or {}).get("name")
    trained = f"iteration {rec.get('iteration')}, epoch {rec.get('epoch')}"
    metrics = rec.get("metrics") or {}
    scores = [f"{label} {metrics[key]:.4f}" for key, label in METRICS.items()
              if isinstance(metrics.get(key), (int, float)) and not math.isnan(metrics[key])]
    lines = [
        f"checkpoint:  {rec['path']}",
        f"model:       {model.get('arch', '-')}, geometry {geometry}"
        + (f" ({built})" if built else ""),
        f"input:       {conv_text}",
        f"classes:     {len(classes)}: {shown}; ignore value {rec['classes'].get('ignore_index')}",
        f"trained:     {trained}" + (f", recipe {recipe}" if recipe else ""),
        f"metrics:     {', '.join(scores) if scores else 'none recorded'}",
        f"size:        {rec['parameters'] / 1e6:.2f} M parameters, "
        f"{rec['file_bytes'] / 1e6:.1f} MB on disk",
    ]
    if rec.get("temperature") is not None:
        lines.insert(-1, f"calibrated:  temperature {rec['temperature']:.4g} "
                         f"(divides the logits before the softmax)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.path and args.checkpoint and args.path != args.checkpoint:
        raise ValueError(f"two checkpoints given ({args.path} and --checkpoint "
                         f"{args.checkpoint}); info shows one")
    path = args.path or args.checkpoint
    if not path:
        raise ValueError("no checkpoint given: fcnseg info CHECKPOINT (or --checkpoint PATH)")
    rec = record(path)
    print(json.dumps(rec, indent=2, default=str) if args.json else summary(rec))
    return 0
