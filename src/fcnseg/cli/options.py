"""Options shared by the commands: one spelling, one help text and one default each.

Each ``add_*`` function adds an option (or a group of related ones) to a command's parser; the
``*_from_args`` functions turn the parsed values into library settings, checked before any file
is read. :class:`HelpFormatter` shows every default the same way, ``(default: X)``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import yaml

from fcnseg.data.build import DATASET_NAMES, EVAL_SPLIT
from fcnseg.dataset_paths import recipe_paths_found, training_folders
from fcnseg.engine.config import ConfigError, upgrade_recipe
from fcnseg.inference.rasters import TileSettings, default_overlap
from fcnseg.inference.sliding import TTA, SlidingWindow
from fcnseg.models.factories import allow_factory_modules
from fcnseg.utils.hardware import PRECISIONS
from fcnseg.utils.validate import fields_of

CHECKPOINT_HELP = "checkpoint: a .pt or .safetensors file, a pretrained folder, or hf://user/repo[@rev]"
#: The datasets ``--dataset`` names in every command that reads one (evaluate, calibrate,
#: check-data): the ones :func:`fcnseg.data.build_dataset` builds from a folder or a file.
DATASETS = ("synthetic", "voc", "sbd", "seg11valid", "folder", "pascal_context", "nyud",
            "siftflow", "cityscapes", "ade20k", "labelme", "coco", "cvat", "cvat_mask",
            "labelstudio")


def spelled_either_way(choices: Sequence[str], joiner: str) -> Any:
    """An argparse ``type`` taking ``-`` and ``_`` alike and giving the spelling of
    ``choices`` (joined by ``joiner``); an unknown value is argparse's invalid-choice line
    quoting it as given."""
    def choice(text: str) -> str:
        name = text.replace("-", joiner).replace("_", joiner)
        if name not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(map(repr, choices))})")
        return name
    return choice


#: A ``--dataset`` as given, ``-`` taken for ``_`` (``cvat-mask`` as fcnseg import spells it:
#: ``cvat_mask``).
dataset_name = spelled_either_way(DATASETS, "_")


#: What a dataset named on the command line starts from, before the options given.
_DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"num_images": 50, "size": 128, "seed": 0},
}

DEVICE_HELP = "where to run: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N"


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to the help of each option whose default says something (not
    None, False or empty), unless its help already gives the default in that form."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default: " in text or default in (None, False, [], (), argparse.SUPPRESS):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # descriptions and epilogs: file names (fcn8s-heavy-pascal) and URLs stay whole
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent,
                             subsequent_indent=indent, break_on_hyphens=False,
                             break_long_words=False)


class DeprecatedAlias(argparse.Action):
    """An older spelling of an option, hidden from ``--help``: it still works, with a note on
    stderr naming the current spelling."""

    def __init__(self, option_strings: Sequence[str], dest: str, replacement: str,
                 **kwargs: Any) -> None:
        self.replacement = replacement
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _one_spelling(parser, namespace, self.dest, f"{option_string}", values, older=True)
        print(f"{parser.prog}: note: {option_string} is now spelled {self.replacement}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


class CurrentSpelling(argparse._StoreAction):
    """An option that has an older spelling (:class:`DeprecatedAlias`): both given, with
    different values, is refused in one line rather than the last silently winning."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _one_spelling(parser, namespace, self.dest, f"{option_string}", values)
        setattr(namespace, self.dest, values)


def _one_spelling(parser: argparse.ArgumentParser, namespace: argparse.Namespace, dest: str,
                  option: str, value: Any, older: bool = False) -> None:
    """Remember which spelling (``older``: the DeprecatedAlias) set ``dest``; exit with one
    error line when the other spelling set it to another value."""
    given = getattr(namespace, f"_spelled_{dest}", None)
    if given is not None and given[0] != option and given[1] != value:
        (old, old_value, _), (new, new_value, _) = sorted([given, (option, value, older)],
                                                          key=lambda g: not g[2])
        parser.exit(2, f"{parser.prog}: error: {old} (read as {old_value}) contradicts {new} "
                       f"{new_value} ({old} is the older spelling of {new}; keep only {new})\n")
    setattr(namespace, f"_spelled_{dest}", (option, value, older))


def add_checkpoint(p: argparse.ArgumentParser, help: str = CHECKPOINT_HELP,
                   required: bool = True) -> None:
    """``--checkpoint PATH``, with ``--allow-factory`` for custom-backbone checkpoints."""
    p.add_argument("--checkpoint", required=required, metavar="PATH", help=help)
    add_allow_factory(p)


def add_checkpoint_or_path(p: argparse.ArgumentParser, help: str) -> None:
    """The checkpoint as a positional ``CHECKPOINT`` or as ``--checkpoint PATH`` (read back
    with :func:`checkpoint_or_path`)."""
    p.add_argument("path", nargs="?", metavar="CHECKPOINT", help=help)
    add_checkpoint(p, help=f"{help} (as the other commands take it)", required=False)


def checkpoint_or_path(args: argparse.Namespace, command: str, usage: str) -> str:
    """The one checkpoint given by :func:`add_checkpoint_or_path`'s options; a ValueError when
    none or two different ones are given (``usage`` is the command line to show)."""
    if args.path and args.checkpoint and args.path != args.checkpoint:
        raise ValueError(f"two checkpoints given ({args.path} and --checkpoint "
                         f"{args.checkpoint}); {command} takes one")
    path = args.path or args.checkpoint
    if not path:
        raise ValueError(f"no checkpoint given: {usage}")
    return path


class _AllowFactory(argparse.Action):
    """Allows the module as soon as the option is parsed, so every later load sees it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        try:
            allow_factory_modules(str(values))
        except ValueError as e:
            parser.error(str(e))
        getattr(namespace, self.dest).append(str(values))


def add_allow_factory(p: argparse.ArgumentParser) -> None:
    """``--allow-factory MODULE`` (repeatable): let custom-backbone checkpoints import their
    backbone factory from MODULE (and its sub-modules). Nothing else is ever imported."""
    p.add_argument(
        "--allow-factory", action=_AllowFactory, default=[], metavar="MODULE",
        help="let a custom-backbone checkpoint import its @backbone_factory from MODULE "
             "(repeatable; or FCNSEG_ALLOW_FACTORIES=mod1,mod2). Trusted code only: importing "
             "a module runs it")


def add_device(p: argparse.ArgumentParser | argparse._ArgumentGroup,
               help: str = DEVICE_HELP) -> None:
    """``--device``, ``auto`` by default in every command."""
    p.add_argument("--device", default="auto", type=device_name, help=help)


def device_name(value: str) -> str:
    """A ``--device`` value torch understands (or ``auto``), checked before anything is read."""
    if value != "auto":
        try:
            torch.device(value)
        except (RuntimeError, ValueError):
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    return value


def add_batch_size(p: argparse.ArgumentParser | argparse._ArgumentGroup, default: int,
                   help: str = "images per forward pass") -> None:
    """``--batch-size N`` (at least 1)."""
    p.add_argument("--batch-size", type=positive_int, default=default, metavar="N", help=help)


def add_num_workers(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                    help: str = "DataLoader worker processes (0: load in this process)",
                    dest: str = "num_workers") -> None:
    """``--num-workers N``; ``--workers`` is kept as a hidden older spelling."""
    p.add_argument("--num-workers", type=non_negative_int, default=0, metavar="N", dest=dest,
                   help=help)
    p.add_argument("--workers", type=non_negative_int, dest=dest, metavar="N",
                   action=DeprecatedAlias, replacement="--num-workers")


PRECISION_HELP = ("arithmetic precision: auto (bf16 on CPUs with AVX512-BF16/AMX and on GPUs "
                  "from compute capability 8.0, fp16 on older GPUs, else fp32), fp32, bf16 or "
                  "fp16; outputs are float32 either way")


def _precision(text: str) -> str:
    """A ``--precision`` value: one of auto, fp32, bf16, fp16."""
    value = text.strip().lower()
    if value not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(PRECISIONS)}, got {text!r}")
    return value


def _older_precision(text: str) -> str:
    """An older ``--amp`` value as a precision, read as recipes read it."""
    try:
        return upgrade_recipe({"amp": text.strip().lower()})["precision"]
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_precision(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                  help: str = PRECISION_HELP, amp_alias: bool = False,
                  default: str | None = "auto") -> None:
    """``--precision auto|fp32|bf16|fp16``; with ``amp_alias``, ``--amp`` is kept as a hidden
    older spelling."""
    p.add_argument("--precision", type=_precision, default=default, help=help,
                   metavar="{auto,fp32,bf16,fp16}", action=CurrentSpelling if amp_alias else None)
    if amp_alias:
        p.add_argument("--amp", type=_older_precision, dest="precision", action=DeprecatedAlias,
                       replacement="--precision")


def add_compile(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--compile``: torch.compile with a warm-up at start-up (see ``Segmenter.compile``)."""
    p.add_argument("--compile", action="store_true",
                   help="compile the model with torch.compile and warm it up at start-up (a slower "
                        "start; where compiling fails, a warning and the uncompiled model)")


def add_no_progress(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress``."""
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it shows only on a terminal anyway)")


def add_overrides(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                  help: str = "override recipe fields; values are YAML") -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]`` (repeatable) into ``args.overrides``."""
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[],
                   metavar="KEY=VALUE",
                   help=f"{help}, e.g. --set optim.lr=0.001 data.batch_size=4 (one or more "
                        f"after each --set)")


def add_window_and_tta(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--sliding-window``, ``--stride``, ``--tta-flip`` and ``--tta-scales``; read them with
    :func:`sliding_window_from_args` and :func:`tta_from_args`."""
    p.add_argument("--sliding-window", type=int, metavar="PIXELS",
                   help="run PIXELS×PIXELS windows instead of whole images (for images too "
                        "large at once)")
    p.add_argument("--stride", type=int, metavar="PIXELS",
                   help="sliding-window step (default: 2/3 of the window)")
    p.add_argument("--tta-flip", action="store_true",
                   help="test-time augmentation: also average over the mirrored image")
    p.add_argument("--tta-scales", nargs="+", metavar="S",
                   help="test-time augmentation: average over these input scales, e.g. "
                        "0.75,1,1.25 or 0.75 1 1.25")


def add_tiles(p: argparse.ArgumentParser | argparse._ArgumentGroup, tile_help: str) -> None:
    """``--tile`` and ``--overlap`` of ``fcnseg predict`` and ``fcnseg serve`` (read them with
    :func:`tiles_from_args`); ``tile_help`` says what the command cuts into tiles."""
    p.add_argument("--tile", type=positive_int, default=None, metavar="PIXELS",
                   help=tile_help)
    p.add_argument("--overlap", type=non_negative_int, default=None, metavar="PIXELS",
                   help="pixels shared by neighbouring tiles, blended smoothly; less than "
                        "half the tile (default: a quarter of --tile, 128 for 512; 512 for "
                        "a large photo's tiles of 2048 without --tile)")


def tiles_from_args(args: argparse.Namespace) -> dict[str, int | str | None]:
    """The run's one tile setting by ``--tile`` and ``--overlap``: ``tile`` and ``overlap`` of
    ``Segmenter``, which derives from it the tiles of rasters (512 without a tile, the overlap
    a quarter of the tile where none is given) and of large photos (``"auto"``: 2048 sharing
    512); what ``TileSettings`` refuses is a ValueError naming the options."""
    tile = TileSettings.tile if args.tile is None else args.tile
    overlap = default_overlap(tile) if args.overlap is None else args.overlap
    if tile < 16:
        raise ValueError(f"--tile must be at least 16 pixels, got {tile}")
    if not 2 * overlap < tile:
        raise ValueError(f"--overlap must be less than half of --tile ({tile}), got {overlap}")
    return {"tile": "auto" if args.tile is None else args.tile, "overlap": args.overlap}


def add_threads(p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str,
                *aliases: str) -> None:
    """``--threads N`` (and ``aliases``): the threads a command's model runs on; None (the
    default) leaves the count to the command (all cores)."""
    p.add_argument("--threads", *aliases, type=positive_int, default=None, metavar="N",
                   help=help)


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def parse_numbers(items: Sequence[str], bad: str) -> tuple[float, ...]:
    """Space- or comma-separated numbers (``--tta-scales``, ``--coverage``); ``bad`` is the
    ValueError's message, ``{}`` standing for the items, when one is not a number."""
    try:
        return tuple(float(v) for item in items for v in item.split(",") if v.strip())
    except ValueError:
        raise ValueError(bad.format(items)) from None


def parse_scales(items: Sequence[str]) -> tuple[float, ...]:
    """``--tta-scales`` values (space- or comma-separated) as positive floats."""
    scales = parse_numbers(items, "--tta-scales: expected numbers like 0.75 1 1.25, got {} (give "
                                  "the inputs before --tta-scales, or the scales as 0.75,1,1.25)")
    if not scales or min(scales) <= 0:
        raise ValueError(f"--tta-scales: scales must be positive, got {items}")
    return scales


def sliding_window_from_args(args: argparse.Namespace) -> SlidingWindow | None:
    """The :class:`SlidingWindow` that ``--sliding-window`` / ``--stride`` describe, or None."""
    if args.stride is not None and args.sliding_window is None:
        raise ValueError("--stride: only meaningful with --sliding-window")
    if args.sliding_window is None:
        return None
    try:
        return SlidingWindow(args.sliding_window, args.stride)
    except ValueError as e:
        raise ValueError(f"--sliding-window/--stride: {e}") from None


def tta_from_args(args: argparse.Namespace) -> TTA | None:
    """The :class:`TTA` that ``--tta-flip`` / ``--tta-scales`` describe, or None."""
    if not (args.tta_flip or args.tta_scales):
        return None
    return TTA(parse_scales(args.tta_scales or ["1"]), args.tta_flip)


def add_dataset(p: argparse.ArgumentParser, split_help: str, limit_help: str) -> None:
    """The ``dataset`` option group (``--dataset``, ``--root``, ... ``--data KEY=VALUE``) that
    :func:`dataset_spec` reads."""
    d = p.add_argument_group("dataset")
    d.add_argument("--dataset", choices=DATASETS, type=dataset_name,
                   help="which dataset (default: the validation set named in the checkpoint's "
                        "recipe, as it was scored during training)")
    d.add_argument("--root", help="dataset folder (voc: VOCdevkit, its parent or VOC<year>; "
                                  "sbd: benchmark_RELEASE or its parent; folder: your dataset; "
                                  "coco, cvat, labelstudio: the annotation file)")
    d.add_argument("--voc-root", help="seg11valid: VOC2011 (as --root for voc: the folder "
                   "download_voc extracted into, VOCdevkit or VOC2011)")
    d.add_argument("--sbd-root", help="seg11valid: SBD (as --root for sbd)")
    d.add_argument("--year", help="voc: 2012 or 2011 (default: 2012)")
    d.add_argument("--split", help=split_help)
    d.add_argument("--config", help="folder: its dataset.yaml (default: ROOT/dataset.yaml)")
    d.add_argument("--num-images", type=positive_int,
                   help="synthetic: how many images (default: 50)")
    d.add_argument("--size", help="synthetic: image size, S or HxW (default: 128)")
    d.add_argument("--seed", type=int, help="synthetic: seed (default: 0)")
    add_data_fields(d)
    d.add_argument("--limit", type=positive_int, help=limit_help)


def add_data_fields(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--data KEY=VALUE``: any other field of the dataset's spec (:func:`data_fields` reads
    them), as evaluate, calibrate and check-data take it."""
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="any other dataset field (repeatable; the value is YAML), e.g. --data "
                        "cache_dir=cache (seg11valid), --data 'bands=[intensity]' (labelme, "
                        "coco, cvat, cvat_mask, labelstudio: images read as their bands, at "
                        "their depth); --data name=NAME is --dataset NAME")


def data_fields(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """The dataset that ``--dataset`` or ``--data name=`` names (None: neither) and the other
    ``--data KEY=VALUE`` fields, their values read as YAML."""
    fields = yaml_fields(args.data, "--data: expected KEY=VALUE")
    name = fields.pop("name", None)
    if name is None:
        return args.dataset, fields
    if name not in DATASETS:
        raise ValueError(f"--data name={name}: unknown dataset; known: {', '.join(DATASETS)}")
    if args.dataset is not None and args.dataset != name:
        raise ValueError(f"--data name={name} and --dataset {args.dataset} name two datasets; "
                         f"give one")
    return str(name), fields


def yaml_fields(items: Iterable[str], where: str) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict, each value read as YAML; a ValueError ``where``, then
    the item, for an item that is not ``KEY=VALUE``."""
    fields: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{where}, got {item!r}")
        fields[key.strip()] = yaml.safe_load(value)
    return fields


def size_parts(text: str) -> list[int] | None:
    """The integers of a size written ``S`` or ``HxW`` (or ``H×W``); None when one is not an
    integer."""
    try:
        return [int(v) for v in text.lower().replace("×", "x").split("x")]
    except ValueError:
        return None


def dataset_spec(args: argparse.Namespace, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The :func:`fcnseg.data.build_dataset` spec that the options describe.

    With ``--dataset`` (or ``--data name=NAME``), that dataset (synthetic defaults: 50 images
    of 128 px, seed 0, split val), nothing of the recipe's carried over; without either, the
    validation set recorded in the checkpoint's recipe, said on stdout. The dataset options
    given, then ``--data KEY=VALUE`` fields, go on top.
    """
    name, data = data_fields(args)
    recipe_val = fields_of(((ckpt.get("recipe") or {}).get("data") or {}).get("val"))
    if name is None:
        if not recipe_val:
            raise ValueError(f"--dataset: {args.checkpoint} records no validation dataset in "
                             "its recipe; name one (e.g. --dataset folder --root DIR, DIR holding "
                             f"a dataset.yaml) of {', '.join(DATASETS)}")
        spec: dict[str, Any] = dict(recipe_val)
    elif args.dataset is None and recipe_val.get("name") == name:
        spec = dict(recipe_val)  # --data name= naming the recipe's own dataset
    else:  # another dataset: nothing of the recipe's carries over
        spec = {"name": name, **_DATASET_DEFAULTS.get(name, {}), "split": EVAL_SPLIT}
    fields = {k: getattr(args, k) for k in ("root", "voc_root", "sbd_root", "year", "split",
                                             "num_images", "size", "seed", "config")}
    spec.update({k: v for k, v in fields.items() if v is not None})
    if args.size is not None:
        parts = size_parts(args.size)
        if parts is None or len(parts) > 2:
            raise ValueError(f"--size: expected S or HxW, got {args.size!r}")
        spec["size"] = parts[0] if len(parts) == 1 else parts
    spec.update(data)
    required = () if spec.get("name") == "synthetic" else DATASET_NAMES.get(spec.get("name"), ())
    for key in required:
        if spec.get(key) is None:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag}: required for --dataset {spec['name']}")
    if name is None or spec.get("name") == recipe_val.get("name"):
        kept = {k for k, v in spec.items() if k in recipe_val and recipe_val[k] == v}
        spec = recipe_paths_found(spec, training_folders(ckpt, args.checkpoint),
                                  source=str(args.checkpoint), kept=kept)
    if name is None:
        print(f"dataset from the checkpoint's recipe: {spec}")
    return spec
