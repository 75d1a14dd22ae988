"""``fcnseg train``: run a training recipe."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from fcnseg.cli import options
from fcnseg.engine import load_config, train

NAME = "train"
HELP = "Train an FCN from a recipe (see `fcnseg recipes`); resumable with --resume."


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_allow_factory(p)
    p.add_argument("--recipe", help="recipe name (fcnseg recipes) or YAML file; with --resume "
                   "it defaults to the run folder's recipe.yaml")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, recipe.yaml)")
    options.add_overrides(p)
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from OUT/last.pt (if it exists)")


def run(args: argparse.Namespace) -> int:

    recipe = args.recipe
    if recipe is None:
        saved = Path(args.out) / "recipe.yaml"
        if not (args.resume and saved.is_file()):
            raise ValueError("--recipe is required (except with --resume on a run folder that "
                             "holds recipe.yaml); list recipes with `fcnseg recipes`")
        recipe = str(saved)
    config = load_config(recipe, args.overrides, out=args.out)
    result = train(config, resume=args.resume)
    if result.status == "interrupted":
        return 128 + int(result.signal or signal.SIGTERM)
    return 0
