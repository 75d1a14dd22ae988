"""``fcnseg train``: run a training recipe."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from fcnseg.cli import options
from fcnseg.engine import load_config, train
from fcnseg.engine.budget import parse_duration, process_start_time
from fcnseg.engine.config import TrainConfig, apply_overrides
from fcnseg.engine.errors import ProcessLost
from fcnseg.models.factories import allow_factory_modules
from fcnseg.utils.files import check_output_folder

NAME = "train"
HELP = "Train an FCN from a recipe (see `fcnseg recipes`); resumable with --resume."


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_allow_factory(p)
    p.add_argument("--recipe", help="recipe name (fcnseg recipes) or YAML file; with --resume "
                   "it defaults to the run folder's recipe.yaml")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, recipe.yaml)")
    options.add_overrides(p)
    p.add_argument("--budget", metavar="TIME",
                   help="train for as long as fits in TIME (5m, 1h30m, 300 = seconds), start-up, "
                        "final evaluation and checkpoint included: sets train.time_budget")
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from OUT/last.pt (if it exists)")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out)  # before the data is read
    recipe = args.recipe
    if recipe is None:
        saved = Path(args.out) / "recipe.yaml"
        if not (args.resume and saved.is_file()):
            raise ValueError("--recipe is required (except with --resume on a run folder that "
                             "holds recipe.yaml); list recipes with `fcnseg recipes`")
        recipe = str(saved)
    overrides = list(args.overrides)
    if args.budget is not None:
        parse_duration(args.budget, "--budget")  # a bad one is named as the user wrote it
        overrides.append(f"train.time_budget={args.budget}")
    config = load_config(recipe, overrides, out=args.out)
    # The run folder's recipe.yaml is a file like any checkpoint: only what this command was
    # given (--recipe, --set) is the user's own word.
    own = config if args.recipe is not None else apply_overrides(TrainConfig(), overrides)
    _trust_own_factory(own)
    try:
        result = train(config, resume=args.resume, started=process_start_time())
    except ProcessLost as e:
        if e.reported_elsewhere:
            return 2  # another process left prints the line, once for the whole run
        raise
    if result.status == "interrupted":
        return 128 + int(result.signal or signal.SIGTERM)
    return 0


def _trust_own_factory(config: TrainConfig) -> None:
    """Let the backbone factory that the user's own recipe or ``--set`` names be imported by
    this command: naming it there is the user's decision, as ``--allow-factory`` is. The
    checkpoints record the factory; reading them elsewhere still needs ``--allow-factory``."""
    factory = (config.model.options or {}).get("factory")
    if not isinstance(factory, str) or ":" not in factory:
        return
    module = factory.partition(":")[0]
    try:
        allow_factory_modules(module)
    except ValueError:
        return  # not a module name: building the model says what is wrong with it
    print(f"backbone factory {factory}: named by this command, so {module} may be imported "
          f"(reading its checkpoints elsewhere needs --allow-factory {module})")
