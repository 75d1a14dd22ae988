"""``fcnseg info CHECKPOINT``: print what a checkpoint describes."""

from __future__ import annotations

import argparse
import json

from fcnseg.cli._checkpoint_options import add_allow_factory_option

NAME = "info"
HELP = "Show what a checkpoint describes (architecture, classes, convention, metrics)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_allow_factory_option(p)
    p.add_argument("checkpoint", help="checkpoint file")


def run(args: argparse.Namespace) -> int:
    from fcnseg.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    fields = ("model", "classes", "iteration", "epoch", "metrics", "recipe")
    shown = {k: ckpt.get(k) for k in fields}
    shown["classes"] = {**shown["classes"],
                        "palette": shown["classes"]["palette"][: len(ckpt["classes"]["names"])]}
    print(json.dumps(shown, indent=2, default=str))
    return 0
