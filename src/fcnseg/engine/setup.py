"""Everything a run trains with is built once from the recipe into a :class:`TrainSetup`.
That is data, model, optimizer, schedule, gradient scaler and the DDP wrap. Nothing here is
resumed: :class:`~fcnseg.engine.state.TrainState` restores a checkpoint into it."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from fcnseg.checkpoint import CheckpointError, load_checkpoint, no_such_checkpoint
from fcnseg.conventions import InputConvention, get_convention
from fcnseg.data import SkipBad, build_dataset, collate_segmentation
from fcnseg.data.base import refuse_withheld_labels
from fcnseg.data.bit_depth import narrow_range_warning
from fcnseg.data.cache import cache_decoded, cached_problems
from fcnseg.data.check import scan_dataset
from fcnseg.data.errors import DataError, problem_line
from fcnseg.data.images import ImageError, looks_cut_short
from fcnseg.data.transforms import build_eval_transform, build_train_transform
from fcnseg.dataset_paths import folder_holding, recipe_paths_found, training_folders
from fcnseg.engine.checkpoint_writer import CheckpointWriter
from fcnseg.engine.config import TrainConfig, config_to_dict
from fcnseg.engine.distributed import DistInfo
from fcnseg.engine.ema import WeightAverage
from fcnseg.engine.errors import FIX_DATA, BadSampleError
from fcnseg.engine.eval_batching import auto_eval_batch, sample_sizes
from fcnseg.engine.evaluation import ShardedEvalSampler
from fcnseg.engine.loss import LossSampler, build_class_weights, score_grid
from fcnseg.engine.optim import build_optimizer, build_scheduler
from fcnseg.engine.preflight import (
    crop_from_sizes,
    header_size,
    images_reaching,
    machine_facts,
    sample_image_sizes,
    startup_warnings,
)
from fcnseg.engine.sampling import ResumableSampler, SeededSamples
from fcnseg.engine.signals import ignore_stop_signals
from fcnseg.models import build_model, init_from
from fcnseg.models.builders import bands_problem, builder_parameters
from fcnseg.models.fastpath import optimize
from fcnseg.models.multitask import LateFusionFCN, init_late_fusion
from fcnseg.models.weights import ConventionUnknown
from fcnseg.pretrained.fetch import PRETRAINED, backbone_weights_file
from fcnseg.utils.batches import same_size_batches
from fcnseg.utils.hardware import default_channels_last, resolve_precision

log = logging.getLogger(__name__)

#: ``make_optimizer(model, config.optim)``: how the optimizer is built (see build_optimizer).
OptimizerFactory = Callable[[nn.Module, Any], torch.optim.Optimizer]


@dataclass
class TrainSetup:
    """What a run trains with. ``model`` is the plain module (saved, evaluated, restored);
    ``train_model`` is what the steps run through (DDP and/or torch.compile around it)."""

    config: TrainConfig
    info: DistInfo
    run_dir: Path
    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    sampler: ResumableSampler
    loader: DataLoader
    #: The training loader's own generator (it only seeds worker processes); saved to resume.
    loader_generator: torch.Generator
    val_loader: DataLoader | None
    class_names: list[str]
    palette: Any
    ignore_index: int
    #: The resolved recipe, as checkpoints save it (computed class weights included).
    recipe: dict[str, Any]
    loss_sampler: LossSampler
    #: Settings that look wrong for this machine or data (printed at start, not fatal).
    warnings: list[str]
    class_weights: torch.Tensor | None = None
    #: Training pixels per class, when the weights were computed from them.
    class_pixels: np.ndarray | None = None
    channels_last: bool = False
    #: The precision of steps and validation ("auto" resolved).
    precision: str = "fp32"
    #: ``{head: class names}`` for data labelled per head (SIFT Flow); None with one head.
    head_classes: dict[str, list[str]] | None = None
    #: The dataset's ``eval_exclude_classes`` (``{head: classes}`` with several heads).
    eval_exclude_classes: Any = ()
    ema: WeightAverage | None = None
    #: What start-up decided and the run should say (e.g. the data cache's line).
    notes: list[str] = field(default_factory=list)
    checkpoint_writer: CheckpointWriter = field(default_factory=CheckpointWriter)
    #: The class the dataset declares as background (dataset.yaml ``background:``), or None.
    background_class: str | None = None
    #: ``{class: {id, supercategory}}`` of COCO categories (dataset.yaml ``coco_categories``).
    coco_categories: dict[str, Any] | None = None
    #: The folder training runs in, which checkpoints record (see :mod:`fcnseg.dataset_paths`).
    trained_in: str | None = None

    @property
    def eval_model(self) -> nn.Module:
        """What evaluations score and checkpoints hold (the moving average with ``train.ema``)."""
        return self.model if self.ema is None else self.ema.module

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def eval_num_classes(self) -> int | dict[str, int]:
        """What validation scores: the class count, or ``{head: class count}``."""
        if self.head_classes is None:
            return self.num_classes
        return {h: len(names) for h, names in self.head_classes.items()}

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"


def build_setup(config: TrainConfig, info: DistInfo, resume_ckpt: Mapping[str, Any] | None,
                *, make_optimizer: OptimizerFactory = build_optimizer) -> TrainSetup:
    """Build the run's data, model and optimisation from ``config``.

    Seed the torch RNG with ``config.seed`` first, the same on every process
    (:func:`fcnseg.engine.state.seed_everything`). With ``resume_ckpt`` no pretrained weights
    are read: the run's own checkpoint supplies them. ``train_model`` is ``model`` until
    :func:`wrap_model`, called after the checkpoint is restored."""
    check_sync_batchnorm(config, info)
    # Data first (the classes size the model), opened once; the model normalises its pixels.
    notes: list[str] = []
    with _paths_found(config, resume_ckpt) as trained_in:
        train_ds, val_ds = build_datasets(config, notes)
    plain = _unwrapped(train_ds)
    if info.is_main:
        _warn_about_data(plain)
    class_names, ignore_index = list(plain.classes), plain.ignore_index
    heads = getattr(plain, "heads", None)  # {head: class names} of data labelled per head
    head_classes = {str(h): [str(n) for n in names] for h, names in heads.items()} \
        if heads else None
    if head_classes is not None and config.loss.class_weights != "none":
        raise ValueError(f"loss.class_weights: {config.data.train.get('name')} is labelled per "
                         f"head ({', '.join(head_classes)}); class weights apply to one head "
                         f"only: set loss.class_weights=none")
    model = _run_model(config, info, plain, len(class_names), resume_ckpt)
    class_weights, class_pixels = build_class_weights(
        _saved_class_weights(resume_ckpt) or config.loss.class_weights, plain,
        max_weight=config.loss.max_weight, workers=loader_workers(config.data.num_workers),
        distributed=info.distributed, is_main=info.is_main)
    # every field; relative dataset paths stay as typed (``trained_in`` records the folder)
    recipe = config_to_dict(config)
    if class_weights is not None:
        recipe["loss"]["class_weights"] = class_weights.tolist()
    cell, offset = score_grid(model)
    loss_sampler = LossSampler(config.loss.sample_rate, ignore_index=ignore_index, cell=cell,
                               offset=offset, seed=config.seed, rank=info.rank)
    precision = resolve_precision(config.precision, info.device)
    channels_last = (default_channels_last(info.device, precision)
                     if config.channels_last is None else config.channels_last)
    optimize(model, "training", device=info.device, channels_last=channels_last)
    optimizer = make_optimizer(model, config.optim)
    ema = WeightAverage(model, config.train.ema) if config.train.ema else None
    scheduler = build_scheduler(optimizer, config.train.iterations, config.schedule)
    scaler = torch.amp.GradScaler(info.device.type, enabled=precision == "fp16")
    sampler, loader, generator = _train_loader(config, info, train_ds, ignore_index,
                                               channels_last)
    return TrainSetup(
        config=config, info=info, run_dir=Path(config.out), model=model, train_model=model,
        optimizer=optimizer, scheduler=scheduler, scaler=scaler, sampler=sampler,
        loader=loader, loader_generator=generator,
        val_loader=_val_loader(config, info, val_ds, ignore_index, model, notes),
        class_names=class_names, palette=plain.palette, ignore_index=ignore_index,
        recipe=recipe, loss_sampler=loss_sampler,
        class_weights=None if class_weights is None else class_weights.to(info.device),
        class_pixels=class_pixels, warnings=startup_warnings(config, plain),
        channels_last=channels_last, precision=precision, head_classes=head_classes,
        eval_exclude_classes=getattr(plain, "eval_exclude_classes", ()), ema=ema,
        notes=notes, background_class=getattr(plain, "background_class", None),
        coco_categories=getattr(plain, "coco_categories", None),
        trained_in=str(trained_in))


def _warn_about_data(dataset: Any) -> None:
    """Warn, one line each, of 16-bit images read as dark 8-bit ones and of mask values a
    remap table leaves as classes (in the first mask; ``check-data`` looks at every one)."""
    found = [narrow_range_warning(dataset)]
    if hasattr(dataset, "unlisted_values") and len(dataset) > 0:
        # a bad mask is reported where training reads it
        with contextlib.suppress(DataError, ImageError, OSError):
            found.append(dataset.remap_warning(dataset.unlisted_values(0)))
    for message in found:
        if message is not None:
            warnings.warn(message, UserWarning, stacklevel=3)  # one line, from the command line


@contextmanager
def _paths_found(config: TrainConfig, resume_ckpt: Mapping[str, Any] | None
                 ) -> Iterator[Path]:
    """While the datasets are built: for a resumed run, the dataset paths the current folder
    lacks taken from where its checkpoint was trained (the recipe keeps them as typed). Yields
    the folder training runs in: the first that holds the roots."""
    here = Path.cwd()
    if resume_ckpt is None:
        yield here
        return
    folders = training_folders(resume_ckpt)
    typed = config.data.train, config.data.val
    source = str(resume_ckpt.get("path") or config.out)
    config.data.train, config.data.val = (
        recipe_paths_found(spec, folders, source=source,
                           option=f"--set data.{split}.{{key}}=DIR") if spec else spec
        for split, spec in zip(("train", "val"), typed, strict=True))
    try:
        yield folder_holding(typed[0], [here, *folders]) or here
    finally:
        config.data.train, config.data.val = typed


def _run_model(config: TrainConfig, info: DistInfo, plain: Any, num_classes: int,
               resume_ckpt: Mapping[str, Any] | None) -> nn.Module:
    """The model to train: pretrained weights unless resuming, the bands of multi-band data."""
    if info.distributed and config.model.backbone_weights and resume_ckpt is None:
        # Rank 0 downloads published weights first; the others then find them in the cache.
        if info.is_main:
            _backbone_file(config.model.backbone_weights)
        dist.barrier()
    convention = plain.band_convention() if getattr(plain, "bands", None) else None
    model = build_training_model(config, num_classes, pretrained=resume_ckpt is None,
                                 convention=convention)
    if resume_ckpt is not None:
        model.input_convention = get_convention(resume_ckpt["model"]["input_convention"])
    return model


def _unwrapped(dataset: Any) -> Any:
    """The dataset inside a :class:`~fcnseg.data.SkipBad` or ``Subset`` (itself otherwise)."""
    while isinstance(dataset, (SkipBad, Subset)):
        dataset = dataset.dataset
    return dataset


def _collate(dataset: Any, ignore_index: int,
             channels_last: bool = False) -> Callable[..., Any]:
    """The collate function of ``dataset``'s loaders: pads with its ``pad_values``."""
    return partial(collate_segmentation, ignore_index=ignore_index,
                   fill=getattr(_unwrapped(dataset), "pad_values", None),
                   channels_last=channels_last)


def _saved_class_weights(resume_ckpt: Mapping[str, Any] | None) -> list[float] | None:
    """The weights a resumed run trained with, so that a mask edited since changes nothing."""
    if resume_ckpt is None:
        return None
    saved = (resume_ckpt.get("recipe") or {}).get("loss", {}).get("class_weights")
    return saved if isinstance(saved, list) else None


def check_sync_batchnorm(config: TrainConfig, info: DistInfo) -> None:
    """Refuse ``train.sync_batchnorm`` where torch cannot do it (processes on CPUs)."""
    if config.train.sync_batchnorm and info.distributed and info.device.type != "cuda":
        raise ValueError(
            f"train.sync_batchnorm: torch's SyncBatchNorm runs on CUDA GPUs only, not on "
            f"{info.device.type} processes (gloo); set train.sync_batchnorm=false (each process "
            f"then normalises by its own batch's statistics)")


def wrap_model(setup: TrainSetup) -> None:
    """Put DistributedDataParallel (under torchrun, with ``train.sync_batchnorm``'s layers)
    and torch.compile (``compile: true``) around ``setup.model`` for the training steps."""
    train_model: nn.Module = setup.model
    if setup.info.distributed:
        device = setup.device
        if setup.config.train.sync_batchnorm:  # in place: the optimizer's parameters stay
            train_model = setup.model = nn.SyncBatchNorm.convert_sync_batchnorm(train_model)
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    if setup.config.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]
    setup.train_model = train_model


def _backbone_file(spec: str) -> Path:
    path = backbone_weights_file(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.backbone_weights: {path}: no such file. Give the path of the backbone's "
            f"ImageNet weights (--set model.backbone_weights=PATH), one of "
            f"{sorted(PRETRAINED)} to download them (fcnseg.pretrained.fetch.fetch_pretrained("
            f"NAME) fetches one ahead of time), or null to start from random weights")
    return path


def build_training_model(config: TrainConfig, num_classes: int, *, pretrained: bool = True,
                         convention: InputConvention | None = None) -> nn.Module:
    """Build the recipe's model (seed the torch RNG first): backbone weights, staged ``init``,
    frozen or trained upsampling. ``pretrained=False`` skips the backbone weights and ``init``
    (a resumed run takes its weights from its checkpoint). ``convention`` (a multi-band
    dataset's) sizes the first convolution for its bands, to which colour weights widen."""
    m = config.model
    kwargs: dict[str, Any] = {"num_classes": num_classes, **m.options}
    kwargs.update({k: getattr(m, k) for k in ("geometry", "width", "fc_channels", "dropout")
                   if k in builder_parameters(m.arch)})
    if convention is not None:
        if (problem := bands_problem(m.arch)) is not None:
            raise ValueError(f"model.arch: {problem}")
        kwargs["input_convention"] = convention
    elif m.input_convention is not None:
        kwargs["input_convention"] = m.input_convention
    if m.backbone_weights and pretrained:
        # every builder loads its own backbone's ImageNet file and records its convention
        kwargs["backbone_weights"] = _backbone_file(m.backbone_weights)
        kwargs["backbone_convention"] = m.backbone_convention
    try:
        model = build_model(m.arch, **kwargs)
    except ConventionUnknown as e:  # its advice names the recipe's field
        raise e.naming("model.backbone_convention") from None
    if config.init and pretrained:
        _init_from_file(model, config.init, config.recipe_folder)
    for layer in model.upsampling_layers():
        layer.weight.requires_grad_(m.train_upsampling)
    return model


def _init_from_file(model: nn.Module, init: str | Mapping[str, str],
                    recipe_folder: Path | None = None) -> None:
    """Staged initialisation from a checkpoint (with its input convention) or a state dict;
    ``{modality: checkpoint}`` starts each stream of a late-fusion net from its own."""
    if isinstance(init, Mapping):
        if not isinstance(model, LateFusionFCN):
            raise ValueError(f"init: {{modality: checkpoint}} starts the streams of a late-fusion "
                             f"net (nyud_fcn32s_color_hha ...), not {type(model).__name__}; give "
                             f"one checkpoint")
        missing = [str(f) for f in init.values() if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(_no_init_file(missing[0], recipe_folder))
        init_late_fusion(model, dict(init))
        return
    try:
        ckpt = load_checkpoint(init)
    except CheckpointError:
        ckpt = None  # not a checkpoint: a plain state dict file
    if ckpt is not None:
        convention = get_convention(ckpt["model"]["input_convention"])
        report = init_from(model, ckpt["model_state_dict"], name=init, convention=convention,
                           recorded=ckpt["model"])
        if not report.widened:  # a multi-band model from colour weights keeps its bands
            model.input_convention = convention
        print(report.summary())
        return
    if not Path(init).is_file():
        raise FileNotFoundError(_no_init_file(init, recipe_folder))
    print(init_from(model, init).summary())


def _no_init_file(init: str, recipe_folder: Path | None) -> str:
    """One line: where a missing ``init`` was looked for, and the recipe's folder when the file
    is there (``init`` is relative to the current folder, ``base`` to the recipe file)."""
    message = no_such_checkpoint(init, "init")
    beside = None if recipe_folder is None else (recipe_folder / init).absolute()
    if beside is not None and beside != Path(init).absolute() and beside.is_file():
        message += (f"; {beside} exists, but init is relative to the current folder, not to "
                    f"the recipe file (as base is): --set init={beside}")
    return message


def _recipe_dataset(config: TrainConfig, split: str, transform: Any = None) -> Dataset:
    """:func:`build_dataset` for ``data.<split>``; a missing root (a recipe's placeholder) or a
    split without images is one line naming the field and what to do."""
    field, spec = f"data.{split}", dict(getattr(config.data, split))
    try:
        dataset = build_dataset(spec, split=spec.get("split") or split, transform=transform)
    except FileNotFoundError as e:
        root = spec.get("root")
        if root is None:
            raise
        shared = [f for f, s in (("data.train", config.data.train), ("data.val", config.data.val))
                  if isinstance(s, Mapping) and s.get("root") == root]
        sets = " ".join(f"{f}.root=DIR" for f in shared or [field])
        problem = (f"{root} does not exist" if not Path(str(root)).expanduser().exists()
                   else str(e))
        raise FileNotFoundError(f"{field}.root: {problem}; point it at your dataset with "
                                f"--set {sets}") from None
    if len(dataset) == 0:  # type: ignore[arg-type]
        fix = ("set data.val=null to train without validation" if split == "val"
               else "point it at a split with images")
        raise ValueError(f"{field}: the {spec.get('split') or split!r} split of "
                         f"{spec.get('root') or spec.get('name')} holds no images; list some "
                         f"image names in its split list, or {fix}")
    return dataset


def build_datasets(config: TrainConfig,
                   notes: list[str] | None = None) -> tuple[Dataset, Dataset | None]:
    """The training set (augmented) and the validation set (or None), giving raw pixels, kept
    in memory per ``data.cache`` (what was decided is added to ``notes``), and checked: with
    ``data.skip_bad`` bad samples are skipped, else a bad validation sample stops the run now
    rather than at its first evaluation."""
    d, notes = config.data, [] if notes is None else notes
    train_ds = _recipe_dataset(config, "train")
    if d.crop_size == "auto":
        d.crop_size = _auto_crop(config, train_ds, notes)
    train_ds.transform = build_train_transform(
        crop_size=d.crop_size, scale_range=tuple(d.scale_range) if d.scale_range else None,
        flip=d.flip, jitter=d.jitter, ignore_index=train_ds.ignore_index,
        fill=train_ds.pad_values)
    val_ds = None
    if d.val:
        val_ds = _recipe_dataset(config, "val", build_eval_transform())
        refuse_withheld_labels(val_ds, "data.val")
        if val_ds.num_classes != train_ds.num_classes:
            raise ValueError(f"data.val: {val_ds.num_classes} classes, but data.train has "
                             f"{train_ds.num_classes}")
    # With loader workers, decoded up front so that the forked workers share one copy; without,
    # each sample as first used (a short run decodes no more than it uses).
    plan = cache_decoded(d.cache, [train_ds, val_ds],
                         processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
                         threads=min(4, machine_facts().cpu_count),
                         eager=loader_workers(d.num_workers) > 0)
    notes.append(plan.message)
    if d.skip_bad:
        train_ds = SkipBad(train_ds)
        # bad validation samples are left out, each logged, not replaced as SkipBad does for
        # training, so that no image is scored twice
        if val_ds is not None and (found := scan_dataset(val_ds).problems):
            for p in found:
                log.warning("validation: leaving out bad sample %d (%s)", p.index, p)
            bad = {p.index for p in found}
            val_ds = Subset(val_ds, [i for i in range(len(val_ds)) if i not in bad])
    else:  # a training sample the cache failed to decode, or any bad validation sample
        _stop_at("data.train", cached_problems(train_ds, decode_rest=False))
        if val_ds is not None:  # decoded by the cache, else its files' headers read
            problems = cached_problems(val_ds)
            _stop_at("data.val", sample_file_problems(val_ds) if problems is None else problems)
    return train_ds, val_ds


def _stop_at(field: str, problems: list[str] | None) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        # A problem that says its own fix (one naming check-data) needs no general advice.
        fix = "" if "check-data" in problems[0] else f"; {FIX_DATA} to leave bad samples out"
        raise BadSampleError(f"{field}: {problems[0]}{more}{fix}")


def _auto_crop(config: TrainConfig, dataset: Any, notes: list[str]) -> int | None:
    """``data.crop_size: auto`` resolved from the training images' header sizes, said in
    ``notes``."""
    upper = config.data.crop_size_max
    sizes = sample_image_sizes(dataset)
    if not sizes:  # generated data, or no readable file: nothing to measure
        why = ("generated images have no files to measure" if not hasattr(dataset, "image_path")
               else "no training image header could be read")
        message = f"data.crop_size auto: {upper or 'whole images'} ({why})"
        crop = upper
    else:
        crop, side = crop_from_sizes(sizes, upper)
        bound = f", at most data.crop_size_max={upper}" if upper else ""
        message = (f"data.crop_size auto: {crop}, the largest multiple of 32 not above the "
                   f"shorter side that 3 in 4 training images reach ({side} pixels: "
                   f"{images_reaching(sizes, side)} looked at reach it){bound}; set "
                   f"data.crop_size=N to fix it")
    notes.append(message)
    return crop


def sample_file_problems(dataset: Any) -> list[str]:
    """Problems found in a file dataset's image and mask headers: missing or unreadable files,
    masks whose size differs from their image's. A sample is decoded only where a file looks
    cut short (:func:`~fcnseg.data.images.looks_cut_short`); bad mask values are found later."""
    if not (hasattr(dataset, "image_path") and hasattr(dataset, "label_path")):
        return []  # generated data (synthetic): no files to check
    problems = []
    for i in range(len(dataset)):
        image, mask = Path(dataset.image_path(i)), Path(dataset.label_path(i))
        image_size, problem = _header_size(image, "image")
        if problem is None:
            mask_size, problem = _header_size(mask, "mask")
            if problem is None and mask_size is not None and mask_size != image_size:
                problem = (f"{mask}: mask is {mask_size[0]}×{mask_size[1]} but its image "
                           f"{image.name} is {image_size[0]}×{image_size[1]} (W×H)")
        if problem is None and (looks_cut_short(image) or looks_cut_short(mask)):
            try:
                dataset.load(i)
            except (ValueError, OSError) as e:
                problem = problem_line(e)
        if problem is not None:
            problems.append(problem)
    return problems


def _header_size(path: Path, what: str) -> tuple[tuple[int, int] | None, str | None]:
    """``((width, height), None)`` from the file's header (upright), ``(None, problem)``, or
    ``(None, None)`` for a mask that is no image file (SBD's .mat)."""
    if not path.is_file():
        return None, f"{path}: missing {what} (no such file)"
    try:
        return header_size(path), None
    except UnidentifiedImageError:
        if what == "mask":
            return None, None
        return None, f"{path}: unreadable image: not an image file Pillow can decode"
    except ImageError as e:  # too large, or a raster the raster reader cannot read
        return None, f"{path}: unreadable {what}: {e.problem}"
    except OSError as e:
        return None, f"{path}: unreadable {what}: {e}"


def loader_workers(setting: int | str, cpus: int | None = None) -> int:
    """DataLoader workers for ``data.num_workers``: ``"auto"`` leaves two cores to the model and
    gives half the rest to loading, at most 4 (none on 2 cores: decoding in the training
    process measured fastest there)."""
    if setting != "auto":
        return int(setting)
    if cpus is None:
        cpus = machine_facts().cpu_count
    return min(4, max(0, (cpus - 2) // 2))


def shutdown_workers(*loaders: DataLoader | None) -> None:
    """End the workers that persistent loaders keep between epochs, now rather than when the
    loader is collected (after an error, perhaps at interpreter exit). Safe on any loader, more
    than once; a loader used again starts new workers."""
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)  # DataLoader's persistent iterator
        if iterator is None:
            continue
        loader._iterator = None  # type: ignore[union-attr]
        shutdown = getattr(iterator, "_shutdown_workers", None)  # only multi-process ones
        if shutdown is not None:
            shutdown()


def _train_loader(config: TrainConfig, info: DistInfo, train_ds: Dataset, ignore_index: int,
                  channels_last: bool = False,
                  ) -> tuple[ResumableSampler, DataLoader, torch.Generator]:
    batch = config.images_per_batch()
    workers = loader_workers(config.data.num_workers)
    sampler = ResumableSampler(len(train_ds), seed=config.seed,  # type: ignore[arg-type]
                               rank=info.rank, world_size=info.world_size)
    if sampler.per_epoch() // batch < 1:  # a batch holds an image once, random crops or not
        size = config.data.batch_size
        fits = max(1, sampler.per_epoch() * size // batch)
        scaled = f" (÷ loss.sample_rate: {batch} images)" if batch != size else ""
        raise ValueError(f"data.batch_size: {size}{scaled} per process is more than the "
                         f"{sampler.per_epoch()} training images each process gets: a batch "
                         f"holds each image once; set data.batch_size={fits} or less, with "
                         f"optim.accumulate={config.optim.accumulate * -(-size // fits)} for "
                         f"as many images a step (or add training images)")
    # off the global RNG: creating a loader never shifts the model's random stream
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(SeededSamples(train_ds, config.seed), batch_size=batch, sampler=sampler,
                        drop_last=True, num_workers=workers, persistent_workers=workers > 0,
                        collate_fn=_collate(train_ds, ignore_index, channels_last),
                        generator=generator, pin_memory=info.device.type == "cuda",
                        worker_init_fn=ignore_stop_signals)
    return sampler, loader, generator


def _val_loader(config: TrainConfig, info: DistInfo, val_ds: Dataset | None,
                ignore_index: int, model: nn.Module, notes: list[str]) -> DataLoader | None:
    if val_ds is None:
        return None
    shards = ShardedEvalSampler(len(val_ds), info.rank, info.world_size)  # type: ignore[arg-type]
    workers = loader_workers(config.data.num_workers)
    batch, sizes = config.data.val_batch_size, None
    if batch == "auto":
        batch, sizes = 1, sample_sizes(val_ds)
        if sizes:
            batch, message = auto_eval_batch(model, val_ds, sizes, info.device)
            notes.append(message)
    # auto: each batch of images of one size, in order of first appearance
    batching = ({"batch_sampler": same_size_batches(sizes, batch, shards)} if sizes and batch > 1
                else {"batch_size": batch, "sampler": shards})
    return DataLoader(val_ds, **batching,
                      num_workers=workers, persistent_workers=workers > 0,
                      collate_fn=_collate(val_ds, ignore_index),
                      generator=torch.Generator().manual_seed(0),
                      worker_init_fn=ignore_stop_signals)
