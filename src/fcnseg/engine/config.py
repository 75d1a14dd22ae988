"""Training configuration: plain dataclasses, read once from a recipe (YAML) at the edge.

A recipe's keys mirror :class:`TrainConfig`; shipped recipes live in ``fcnseg/recipes``
(:func:`list_recipes`). ``section.field=value`` strings (values parsed as YAML) override any
field; an unknown key is an error that names it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import yaml

from fcnseg.utils.hardware import PRECISIONS
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import expect_mapping, fields_of
from fcnseg.utils.yaml_errors import yaml_problem


class ConfigError(ValueError):
    """A recipe or override names an unknown field or gives a value of the wrong kind."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any, least: int) -> bool:
    """Whether ``value`` is an integer (not YAML's true or false) of at least ``least``."""
    return _number(value) and isinstance(value, int) and value >= least


def _field_value(config: Any, key: str) -> Any:
    """The value of a dotted field name, e.g. ``optim.lr``."""
    return functools.reduce(getattr, key.split("."), config)


_LOGGERS = ("tensorboard", "mlflow", "csv")

_CHOICES = {
    "loss.reduction": ("sum", "mean"),
    "optim.name": ("sgd", "adam", "adamw"),
    "schedule.name": ("fixed", "poly", "cosine"),
    "precision": PRECISIONS,
    "data.cache": ("auto", "ram", "none"),
}

#: ``(field, whether a value is right, what is expected)`` for the fields checked alone, in order.
_FIELD_CHECKS: list[tuple[str, Callable[[Any], bool], str]] = [
    *((key, lambda v: _count(v, 1), "must be a positive integer")
      for key in ("data.batch_size", "train.iterations", "train.eval_every",
                  "train.checkpoint_every", "train.log_every", "optim.accumulate")),
    ("data.crop_size", lambda v: v in (None, "auto") or _count(v, 1),
     "expected a number of pixels, auto or null"),
    ("data.crop_size_max", lambda v: v is None or _count(v, 32),
     "expected a number of pixels (32 or more) or null"),
    ("train.progress_every", lambda v: _number(v) and v > 0, "expected seconds above 0"),
    ("data.val_batch_size", lambda v: v == "auto" or _count(v, 1),
     "expected a positive integer or auto"),
    ("data.num_workers", lambda v: v == "auto" or _count(v, 0),
     "expected a number of processes (0 or more) or auto"),
    ("channels_last", lambda v: v is None or isinstance(v, bool),
     "expected true, false or null (by device)"),
    ("optim.lr", lambda v: v > 0, "must be positive"),
    ("loss.sample_rate", lambda v: 0.0 < v <= 1.0, "must be in (0, 1]"),
    ("loss.max_weight", lambda v: v is None or v > 0, "must be positive or null"),
    ("loss.focal_gamma", lambda v: v >= 0, "must be 0 or more"),
    ("train.loggers", lambda v: v is None or (isinstance(v, list)
                                              and all(x in _LOGGERS for x in v)),
     f"expected a list of {', '.join(_LOGGERS)}"),
    ("train.sync_batchnorm", lambda v: isinstance(v, bool), "expected true or false"),
    ("train.ema", lambda v: v is None or (_number(v) and 0.0 < v < 1.0),
     "expected a decay between 0 and 1 (e.g. 0.999) or null"),
    ("data.scale_range", lambda v: v is None or (isinstance(v, (list, tuple)) and len(v) == 2),
     "expected [min, max]"),
]


@dataclass
class ModelConfig:
    """Which FCN to build (arguments of :func:`fcnseg.models.build_model`)."""

    arch: str = "fcn8s"
    geometry: str = "caffe"
    #: Channel multiplier of the VGG16 trunk (smaller for the CPU demo preset).
    width: float = 1.0
    fc_channels: int = 4096
    dropout: float = 0.5
    #: ImageNet file for the trunk, or a name from ``fcnseg.models.PRETRAINED``; null = random.
    backbone_weights: str | None = None
    backbone_convention: str | None = None
    #: Input convention when no backbone weights set it ("caffe_bgr" or "torchvision_rgb").
    input_convention: str | None = None
    #: Train the bilinear upsampling layers too (the reference keeps them frozen).
    train_upsampling: bool = False
    #: Further builder keyword arguments, e.g. ``{base_channels: 32}`` for a slim ResNet.
    options: dict[str, Any] = field(default_factory=dict)


#: The fields of :class:`ModelConfig` passed to the builder where it takes them.
_BUILDER_FIELDS = ("geometry", "width", "fc_channels", "dropout", "input_convention",
                   "backbone_weights", "backbone_convention")


def model_fields_not_taken(arch: str) -> tuple[str, ...]:
    """The fields of :class:`ModelConfig` that model ``arch``'s builder does not take (a
    ResNet's: ``geometry`` … ``dropout``); ValueError for an unknown model."""
    from fcnseg.models.builders import builder_parameters

    taken = builder_parameters(arch)
    return tuple(name for name in _BUILDER_FIELDS if name not in taken)


@dataclass
class DataConfig:
    """Datasets (specs for :func:`fcnseg.data.build_dataset`), augmentation and batching."""

    train: dict[str, Any] = field(default_factory=lambda: {"name": "synthetic",
                                                           "num_images": 200})
    val: dict[str, Any] | None = None
    #: Images per step on each process.
    batch_size: int = 1
    #: Side of the square training crops; null = whole images; "auto": from the images' sizes.
    crop_size: int | str | None = None
    crop_size_max: int | None = None
    scale_range: list[float] | None = None
    flip: bool = False
    jitter: bool | float = False
    #: DataLoader worker processes, or "auto" (see :func:`fcnseg.engine.setup.loader_workers`).
    num_workers: int | str = "auto"
    #: Validation images per batch, or "auto": as many as fit (at most 16), of one size each.
    val_batch_size: int | str = "auto"
    #: Skip unreadable samples with a warning instead of stopping.
    skip_bad: bool = False
    #: Keep decoded samples in memory: "ram", "auto" (when they fit) or "none".
    cache: str = "auto"


@dataclass
class LossConfig:
    """Per-pixel softmax cross-entropy; ``sum`` is the reference, ``mean`` modern practice
    (the weighted mean over the step's valid pixels, see :mod:`fcnseg.engine.loss`)."""

    #: ``ce``, ``focal``, ``dice``, ``lovasz``, or a sum such as ``ce+0.5*lovasz``.
    name: str = "ce"
    reduction: str = "sum"
    #: The focal loss's γ in ``(1 - p)^γ`` (0 = CE).
    focal_gamma: float = 2.0
    #: Loss sampling: keep each cell of the stride-32 score grid with this probability.
    sample_rate: float = 1.0
    #: Scale the images per batch by 1/sample_rate (the paper's compensation).
    sample_rate_scales_batch: bool = False
    #: "none" (the paper's), "median_frequency", "inverse_frequency", or one weight per class.
    class_weights: str | list[float] = "none"
    #: Clip computed class weights at this value (null = no clip).
    max_weight: float | None = 10.0


@dataclass
class OptimConfig:
    """Optimizer and its parameter groups."""

    name: str = "sgd"
    lr: float = 1e-10
    momentum: float = 0.99
    weight_decay: float = 5e-4
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    #: Biases learn at this multiple of the lr, without weight decay unless ``bias_decay``.
    bias_lr_mult: float = 2.0
    bias_decay: bool = False
    #: Clip the gradient norm to this value; null = no clipping.
    grad_clip: float | None = None
    #: Accumulate gradients over this many batches per step (Caffe's iter_size).
    accumulate: int = 1


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``fixed``, ``poly`` or ``cosine``, warm-up from ``warmup_factor``."""

    name: str = "fixed"
    power: float = 0.9
    warmup_iters: int = 0
    warmup_factor: float = 0.001


@dataclass
class RunConfig:
    """Length of the run and how often to evaluate, save and log."""

    iterations: int = 100_000
    eval_every: int = 4000
    #: Save ``last.pt`` every this many iterations (and at evaluations and the end).
    checkpoint_every: int = 1000
    log_every: int = 20
    progress: bool = True
    #: Without a terminal: one progress line every this many seconds.
    progress_every: float = 30.0
    tensorboard: bool = True
    #: Any of "tensorboard", "csv", "mlflow"; null = TensorBoard when ``tensorboard`` is true.
    loggers: list[str] | None = None
    #: Train for as long as fits in this time ("5m", "1h30m", 300 = seconds) from the start of
    #: the process, at most ``iterations``; null = no budget.
    time_budget: str | float | None = None
    #: Evaluate and save a moving average of the weights with this decay (e.g. 0.999).
    ema: float | None = None
    #: Under torchrun on CUDA GPUs: BatchNorm normalises by the whole global batch.
    sync_batchnorm: bool = False
    #: ``{patience: 5, min_delta: 0.001}``: stop after ``patience`` evaluations in a row without
    #: a rise of mean IU above ``min_delta``; null = never.
    early_stop: dict[str, Any] | None = None


@dataclass
class TrainConfig:
    """Everything a training run needs. Build it with :func:`load_config`."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: RunConfig = field(default_factory=RunConfig)
    #: Checkpoint or weights file to start from; for a late-fusion net ``{modality: checkpoint}``.
    init: str | dict[str, str] | None = None
    #: Output folder (set by ``--out``).
    out: str | None = None
    seed: int = 0
    #: "cpu", "cuda", "cuda:N" or "auto" (CUDA when available).
    device: str = "auto"
    #: "fp32", "bf16", "fp16" (autocast) or "auto" (what the hardware runs natively).
    precision: str = "fp32"
    #: Channels-last memory format; null = by device.
    channels_last: bool | None = None
    compile: bool = False
    #: CPU threads for torch (null = one per core; 1 is often faster on a busy machine).
    threads: int | None = None
    #: What a run of this recipe should reach, as published (shown by ``fcnseg recipes``).
    published: dict[str, Any] | None = None
    #: The folder of the recipe file read (set by :func:`load_config`; not a recipe field):
    #: where a missing relative ``init`` is also looked for, to explain that it is not there.
    recipe_folder: ClassVar[Path | None] = None

    def validate(self) -> TrainConfig:
        """Check values whose errors would otherwise surface deep inside training."""
        for key, allowed in _CHOICES.items():
            if (value := _field_value(self, key)) not in allowed:
                raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
        for key, right, expected in _FIELD_CHECKS:
            if not right(value := _field_value(self, key)):
                raise ConfigError(f"{key}: {expected}, got {value!r}")
        self._validate_model()
        self._validate_class_weights()
        self._validate_loss_name()
        if self.train.time_budget is not None:
            from fcnseg.engine.budget import parse_duration

            try:
                parse_duration(self.train.time_budget)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        self._validate_early_stop()
        if self.published is not None:
            expect_mapping(self.published, "published", error=ConfigError)
        spec = "a dataset spec with a 'name'"
        if "name" not in expect_mapping(self.data.train, "data.train", spec, error=ConfigError):
            raise ConfigError(f"data.train: expected {spec}")
        return self

    def _validate_model(self, weights_origin: str = "",
                        weights_advice: str = "set model.backbone_weights to ") -> None:
        """A model field the architecture does not take must hold its default (saved recipes
        list every field); published backbone weights must fit the trunk
        (:func:`backbone_weights_problem`)."""
        m = self.model
        if not isinstance(m.arch, str):
            raise ConfigError(f"model.arch: expected a model name, got {m.arch!r}")
        try:
            not_taken = model_fields_not_taken(m.arch)
        except ValueError as e:
            raise ConfigError(f"model.arch: {e}") from None
        defaults = ModelConfig()
        for name in not_taken:
            if (value := getattr(m, name)) != getattr(defaults, name):
                raise ConfigError(f"model.{name}: {m.arch} takes no {name} (given {value!r}); "
                                  f"its own options, under model.options: "
                                  f"{', '.join(_own_options(m.arch)) or 'none'}")
        self._validate_model_options()
        if problem := backbone_weights_problem(m, weights_origin, weights_advice):
            raise ConfigError(f"model.backbone_weights: {problem}")

    def _validate_model_options(self) -> None:
        """``model.options`` against the builder's signature: a misspelt option is one line
        now, not an error from deep inside the builder later."""
        from fcnseg.models.builders import check_builder_options

        arch = self.model.arch
        options = expect_mapping(self.model.options, "model.options", error=ConfigError)
        for key in options:
            if key in _BUILDER_FIELDS and key not in model_fields_not_taken(arch):
                raise ConfigError(f"model.options.{key}: a field of model: set model.{key}")
            if key == "num_classes":
                raise ConfigError("model.options.num_classes: set by the dataset's classes "
                                  "(data.train)")
            if key not in _own_options(arch):
                raise ConfigError(f"model.options.{key}: unknown option of {arch}; known: "
                                  f"{', '.join(_own_options(arch)) or 'none'}")
        try:
            check_builder_options(arch, options)
        except ValueError as e:
            raise ConfigError(f"model.options.{e}") from None

    def _validate_class_weights(self) -> None:
        weights = self.loss.class_weights
        methods = ("none", "median_frequency", "inverse_frequency")
        if isinstance(weights, str):
            if weights not in methods:
                raise ConfigError(f"loss.class_weights: {weights!r} is not one of "
                                  f"{', '.join(methods)} or a list of weights")
        elif not (isinstance(weights, list) and weights
                  and all(_number(w) and w >= 0 for w in weights)):
            raise ConfigError(f"loss.class_weights: expected one of {', '.join(methods)} or a "
                              f"list of non-negative numbers, got {weights!r}")

    def _validate_early_stop(self) -> None:
        stop = self.train.early_stop
        if stop is None:
            return
        expected = "{patience: N, min_delta: d} or null"
        if set(expect_mapping(stop, "train.early_stop", expected, error=ConfigError)) \
                - {"patience", "min_delta"}:
            raise ConfigError(f"train.early_stop: expected {expected}, got {stop!r}")
        patience, min_delta = stop.get("patience"), stop.get("min_delta", 0.0)
        if not _count(patience, 1):
            raise ConfigError(f"train.early_stop.patience: expected a number of evaluations "
                              f"(1 or more), got {patience!r}")
        if not (_number(min_delta) and min_delta >= 0):
            raise ConfigError(f"train.early_stop.min_delta: expected a mean IU difference "
                              f"(0 or more, e.g. 0.001), got {min_delta!r}")

    def _validate_loss_name(self) -> None:
        from fcnseg.engine.loss import SET_TERMS, parse_loss_name

        try:
            terms = parse_loss_name(self.loss.name)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.loss.reduction == "sum" and any(term in SET_TERMS for _, term in terms):
            raise ConfigError(f"loss.name: {self.loss.name!r}: dice and lovasz are means over "
                              f"classes; set loss.reduction=mean")

    def images_per_batch(self) -> int:
        """Images per loader batch on each process: ``data.batch_size``, scaled by
        1/``loss.sample_rate`` with ``loss.sample_rate_scales_batch``."""
        if not self.loss.sample_rate_scales_batch or self.loss.sample_rate >= 1.0:
            return self.data.batch_size
        return max(1, round(self.data.batch_size / self.loss.sample_rate))


def _own_options(arch: str) -> list[str]:
    """The builder arguments of ``arch`` that go in ``model.options``: all but the model's
    fields, the classes (the dataset's) and a live ``backbone`` module."""
    from fcnseg.models.builders import builder_parameters

    return [name for name in builder_parameters(arch)
            if name not in (*_BUILDER_FIELDS, "num_classes", "backbone")]


def backbone_weights_problem(model: ModelConfig, origin: str = "",
                             advice: str = "set model.backbone_weights to ") -> str | None:
    """Why ``model.backbone_weights``, a published name (:data:`fcnseg.models.PRETRAINED`),
    does not fit the model's trunk, in one line that lists what does; None otherwise (a file,
    null). ``origin`` follows the name (``", set by voc-fcn32s for its fcn32s,"``), ``advice``
    precedes the values that fit."""
    from fcnseg.models.builders import backbone_trunk
    from fcnseg.weightfiles.published import PRETRAINED, backbones_fitting

    name = model.backbone_weights
    if not isinstance(name, str) or name not in PRETRAINED or Path(name).is_file():
        return None
    try:
        trunk = backbone_trunk(model.arch, model.options)
    except (ValueError, TypeError):
        return None  # an unknown model or options: validate names them
    weights = PRETRAINED[name]
    if trunk is None or (weights.kind == "backbone" and weights.trunk == trunk):
        return None
    held = (f"{weights.trunk} trunk weights" if weights.kind == "backbone"
            else "a whole trained model, not trunk weights")
    names = backbones_fitting(trunk)
    fitting = f"{' or '.join(names)} (published {trunk} weights), " if names else ""
    return (f"{name}{origin} holds {held}, and {model.arch}'s trunk is {trunk}: {advice}"
            f"{fitting}the path of a {trunk} file, or null (random trunk weights)")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as plain data (what ``recipe.yaml`` and checkpoints store)."""
    return dataclasses.asdict(config)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Accept YAML's unambiguous spellings (1e-10 is a string in YAML 1.1, an int where a
    float is expected); reject the rest naming ``key``."""
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    return value


def _fill(obj: Any, data: dict[str, Any], prefix: str) -> Any:
    expect_mapping(data, prefix.rstrip(".") or "recipe", error=ConfigError)
    for key, value in data.items():
        _set_field(obj, key, value, f"{prefix}{key}")
    return obj


def _field(obj: Any, name: str, where: str, *, sort_known: bool = False) -> Any:
    """Field ``name`` of dataclass ``obj``; an unknown one is refused, listing the known ones
    (sorted with ``sort_known``)."""
    names = [f.name for f in dataclasses.fields(obj)]
    if name not in names:
        known = sorted(names) if sort_known else names
        raise ConfigError(f"{where}: unknown field; known: {', '.join(known)}")
    return getattr(obj, name)


def _set_field(obj: Any, name: str, value: Any, where: str) -> None:
    """Set field ``name`` of dataclass ``obj``: a section from a mapping, a field checked."""
    current = _field(obj, name, where)
    if dataclasses.is_dataclass(current):
        _fill(current, value, f"{where}.")
    else:
        setattr(obj, name, _coerce(where, value, current))


#: The older ``amp`` values (recipes and checkpoints written before ``precision``) as precisions.
_AMP_PRECISIONS = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}


def upgrade_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """A recipe's plain data in today's vocabulary: the older ``amp: none|bf16|fp16`` becomes
    ``precision: fp32|bf16|fp16``. Every recipe (file, mapping, override, checkpoint) is read
    through here."""
    if "amp" not in data:
        return data
    data = dict(data)
    amp = data.pop("amp")
    if amp not in _AMP_PRECISIONS:
        raise ConfigError(f"amp: {amp!r} is not one of {', '.join(_AMP_PRECISIONS)} (amp is "
                          f"the older spelling of precision: {', '.join(PRECISIONS)})")
    if data.get("precision", _AMP_PRECISIONS[amp]) != _AMP_PRECISIONS[amp]:
        raise ConfigError(f"amp: {amp!r} contradicts precision: {data['precision']!r} (amp is "
                          f"the older spelling of precision; keep only precision)")
    data["precision"] = _AMP_PRECISIONS[amp]
    return data


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a config from plain data; unknown keys raise :class:`ConfigError` naming them."""
    return _fill(TrainConfig(), upgrade_recipe(dict(data or {})), "")


def apply_overrides(config: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Apply ``key=value`` overrides (``optim.lr=0.01``, ``data.train.root=data/x``).

    Values are parsed as YAML (numbers, booleans, null, lists, mappings). Keys inside a
    dataclass section must exist; keys inside a dataset spec (a free-form mapping) are created.
    """
    precision_set: dict[str, tuple[str, Any]] = {}  # by spelling: the override and its value
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML "
                              f"({yaml_problem(e)})") from None
        if "." not in key:  # a top-level field, perhaps in the older spelling (amp=bf16)
            spelling, ((key, value),) = key, upgrade_recipe({key: value}).items()
            if key == "precision":  # amp and precision must agree, as in a recipe file
                precision_set[spelling] = (item, value)
                if len({v for _, v in precision_set.values()}) > 1:
                    raise ConfigError(f"override {precision_set['amp'][0]!r} contradicts override "
                                      f"{precision_set['precision'][0]!r} (amp is the older "
                                      f"spelling of precision; keep only precision)")
        parts = key.split(".")
        target: Any = config
        for depth, part in enumerate(parts[:-1]):
            target = _child(target, part, ".".join(parts[: depth + 1]))
        last = parts[-1]
        if dataclasses.is_dataclass(target):
            _set_field(target, last, value, key)
        else:
            section = expect_mapping(target, ".".join(parts[:-1]), "a section with fields",
                                     error=ConfigError)
            section[last] = value  # type: ignore[index]  # a dict, read from YAML
    if "amp" in precision_set:
        item, precision = precision_set["amp"]
        _note_older_amp(f"override {item!r}", item.partition("=")[2].strip(), precision)
    return config


def _child(target: Any, part: str, where: str) -> Any:
    if dataclasses.is_dataclass(target):
        # a section of a dotted override: its many fields are easier to scan sorted
        child = _field(target, part, where, sort_known=True)
        if child is None:  # e.g. data.val: null, then data.val.name=...
            child = {}
            setattr(target, part, child)
        return child
    parent = where.rpartition(".")[0] or where
    section = expect_mapping(target, parent, "a section with fields", error=ConfigError)
    return section.setdefault(part, {})  # type: ignore[attr-defined]  # a dict, from YAML


def _recipe_dir() -> Any:
    return resources.files("fcnseg") / "recipes"


def list_recipes() -> dict[str, str]:
    """Names of the shipped recipes and the first sentence of each one's description (the
    comment at the top of its file, which may wrap over several lines)."""
    return {entry.name.removesuffix(".yaml"): _first_sentence(entry.read_text(encoding="utf-8"))
            for entry in sorted(_recipe_dir().iterdir(), key=lambda p: p.name)
            if entry.name.endswith(".yaml")}


def _first_sentence(text: str) -> str:
    """The first sentence of a recipe file's first comment paragraph."""
    found = re.search(r"^#+[ \t]*[^#\s].*(?:\n#+[ \t]*[^#\s].*)*", text, re.MULTILINE)
    paragraph = " ".join(re.sub(r"(?m)^#+", "", found.group(0)).split()) if found else ""
    end = re.search(r"[.!?](?=\s|$)", paragraph)
    return paragraph[: end.end()] if end else paragraph


def recipe_path(name: str) -> Any:
    """The file of a shipped recipe, by name."""
    entry = _recipe_dir() / f"{name}.yaml"
    if not entry.is_file():
        raise ConfigError(f"unknown recipe {name!r}; known: {', '.join(list_recipes())}")
    return entry


def load_recipe(name_or_path: PathLike) -> dict[str, Any]:
    """A recipe as plain data, its ``base`` chain resolved (see :func:`resolve_recipe`): a
    shipped recipe by name, or any YAML file by path."""
    return resolve_recipe(*_read_recipe(name_or_path))


def _read_recipe(name_or_path: PathLike) -> tuple[dict[str, Any], str, Path | None]:
    """One recipe file as written, how errors name it, and the folder its relative ``base``
    paths start from (None for a shipped recipe)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"{path}: no such recipe file")
        text, where, folder = path.read_text(encoding="utf-8"), str(path), path.parent
    else:
        entry = recipe_path(str(name_or_path))
        text, where, folder = entry.read_text(encoding="utf-8"), f"recipe {name_or_path}", None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({yaml_problem(e)})") from None
    except RecursionError:  # lists or mappings nested thousands deep
        raise ConfigError(f"{where}: not valid YAML (nested too deeply)") from None
    data = dict(expect_mapping(data, where, "a mapping at the top level", error=ConfigError))
    return data, where, folder


#: The top-level keys a recipe merges field by field into its base's (the dataclasses).
_SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                  if isinstance(f.default_factory, type)
                  and dataclasses.is_dataclass(f.default_factory))


def resolve_recipe(data: dict[str, Any], where: str = "recipe",
                   folder: Path | None = None) -> dict[str, Any]:
    """A recipe with its ``base`` chain applied.

    ``base: voc-fcn32s`` (a shipped recipe's name or a YAML file's path, relative to
    ``folder``) starts from that recipe, itself resolved. Sections (``model``, ``data`` ...)
    merge field by field; any other value, a section's field's included (a dataset spec),
    replaces the base's whole; ``null`` sets a field to null. ``published`` (the score reported
    for one recipe) is never inherited: only the recipe's own counts. An unknown base or a
    chain that comes back to a recipe raises one :class:`ConfigError` naming ``where``.
    """
    merged: dict[str, Any] = {}
    layers = _recipe_layers(data, where, folder)
    for depth, (layer, layer_where) in reversed(list(enumerate(layers))):
        upgraded = upgrade_recipe(layer)  # each in today's vocabulary before they meet
        if "amp" in layer:
            _note_older_amp(layer_where, layer["amp"], upgraded["precision"])
        layer = upgraded
        if depth:  # a base's published score describes the base, not the recipe built on it
            layer = {k: v for k, v in layer.items() if k != "published"}
        # The model fields and options below that the model this layer chooses does not take
        # described the model below; those set beside it or above stay, for validate to refuse.
        arch, model = fields_of(layer.get("model")).get("arch"), fields_of(merged.get("model"))
        if isinstance(arch, str) and model and (fitted := _fit_model(model, arch)) is not None:
            merged = {**merged, "model": fitted}
        for key, value in layer.items():  # sections merged field by field, others replaced
            if key in _SECTIONS:
                section = expect_mapping(value, f"{where}: {key}", error=ConfigError)
                value = {**merged.get(key, {}), **section}
            merged[key] = value
    if folder is not None and "base" in data and "name" not in data:  # a file: named by it
        merged["name"] = Path(where).stem
    return merged


def _recipe_layers(data: dict[str, Any], where: str,
                   folder: Path | None) -> list[tuple[dict[str, Any], str]]:
    """The recipe ``data`` and each base it chains to, as written, with how each is named
    (``where``; ``recipe NAME`` for a shipped one): the recipe first."""
    chain = [where]
    resolved = dict(data)
    layers = [(resolved, where)]
    while "base" in resolved:
        base = resolved.pop("base")
        if not isinstance(base, (str, os.PathLike)) or not str(base):
            raise ConfigError(f"{where}: base: expected a recipe name or file, got {base!r}")
        if folder is not None and Path(base).suffix in (".yaml", ".yml"):
            base = folder / base  # an absolute path stays itself
        try:
            resolved, base_where, folder = _read_recipe(base)
        except ConfigError as e:
            raise ConfigError(f"{where}: base: {e}") from None
        chain.append(base_where)
        if _recipe_key(base_where) in map(_recipe_key, chain[:-1]):
            raise ConfigError(f"{where}: the base chain comes back to a recipe: "
                              f"{' -> '.join(chain)}")
        layers.append((resolved, base_where))
    return layers


def base_chain(name_or_path: PathLike) -> list[str]:
    """The recipes that ``name_or_path`` (a shipped recipe's name or a file) starts from, its
    base first, then that one's base ...: shipped ones by name, files by path."""
    layers = _recipe_layers(*_read_recipe(name_or_path))
    return [where.removeprefix("recipe ") for _, where in layers[1:]]


def _note_older_amp(where: str, amp: str, precision: str) -> None:
    """One warning that the recipe at ``where`` uses the older spelling ``amp`` (once: the
    warnings registry shows a message from one line once)."""
    warnings.warn(f"{where}: amp is now spelled precision (amp: {amp} is read as precision: "
                  f"{precision}; write that instead)", UserWarning, stacklevel=1)


def _fit_model(model: Mapping[str, Any], arch: Any,
               keep: Collection[str] = ()) -> dict[str, Any] | None:
    """``model`` less the fields and options ``arch`` does not take (they described another
    model), but those in ``keep``; None for an unknown model (validate names it)."""
    try:
        not_taken, own = model_fields_not_taken(arch), _own_options(arch)
    except (ValueError, AttributeError):
        return None
    fitted = {k: v for k, v in model.items() if k not in not_taken or k in keep}
    if "options" not in keep and isinstance(fitted.get("options"), dict):
        fitted["options"] = {k: v for k, v in fitted["options"].items() if k in own}
    return fitted


def _recipe_key(where: str) -> str:
    """One spelling per recipe, for finding loops."""
    return where if where.startswith("recipe ") or where == "recipe" else os.path.realpath(where)


def load_config(recipe: PathLike | dict[str, Any] | None = None,
                overrides: list[str] | tuple[str, ...] = (), **fields: Any) -> TrainConfig:
    """Resolve a recipe (name, path or mapping) plus ``key=value`` overrides into a config.

    Keyword ``fields`` are top-level overrides given from Python (e.g. ``out="runs/x"``).
    """
    given_file = bool(recipe) and isinstance(recipe, (str, os.PathLike))
    top, read_as, folder = (_read_recipe(recipe) if given_file  # type: ignore[arg-type]
                            else (dict(recipe or {}), "recipe", None))
    data, where = resolve_recipe(top, read_as, folder), recipe if given_file else "recipe"
    try:
        config = config_from_dict(data)
        named = _model_fields_named(overrides, fields)
        if not named:  # the recipe's own model: named with its file, or its base
            inherited = "base" in top and "backbone_weights" not in fields_of(top.get("model"))
            config._validate_model(f", inherited from its base {top['base']}," if inherited else "")
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    arch = config.model.arch
    apply_overrides(config, list(overrides))
    _fill(config, fields, "")
    if config.model.arch != arch:
        # the recipe's fields that the chosen model does not take go back to their defaults
        fitted = _fit_model(dataclasses.asdict(config.model), config.model.arch, named)
        if fitted is not None:
            config.model = ModelConfig(**fitted)
        if "backbone_weights" not in named:  # the recipe's, set for its own model
            config._validate_model(f", set by {where} for its {arch},",
                                   "add --set model.backbone_weights=")
    if config.name == "custom" and isinstance(recipe, str) and not recipe.endswith(".yaml"):
        config.name = recipe
    config.recipe_folder = folder
    return config.validate()


def _model_fields_named(overrides: list[str] | tuple[str, ...],
                        fields: dict[str, Any]) -> set[str]:
    """The model fields that ``model.X=...`` overrides or a ``model`` mapping name."""
    named = set(fields_of(fields.get("model")))
    for item in overrides:
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if parts[0] == "model" and len(parts) > 1:
            named.add(parts[1])
        elif parts == ["model"]:
            value = yaml.safe_load(raw) if raw.strip() else None
            named |= set(fields_of(value))
    return named

