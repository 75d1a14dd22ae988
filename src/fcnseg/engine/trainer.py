"""The training loop: recipes in, checkpoints and metrics out, resumable bit for bit.

One call, :func:`train`, runs a whole recipe on one process or under ``torchrun``. The run folder
holds ``recipe.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON record per log step
and per evaluation), ``last.pt`` (everything needed to resume) and ``best.pt`` (the highest
mean IU so far), plus TensorBoard events when ``tensorboard`` is installed.

Exact resumption rests on three things: the data order is a function of ``(seed, epoch)``
and the position in the epoch is saved; augmentation draws are seeded per sample; and the
model-side RNG states (torch, CUDA, numpy, Python, per process) are saved with the optimizer,
schedule and gradient scaler at every checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader

from fcnseg.engine.config import TrainConfig, config_to_dict, load_config
from fcnseg.engine.distributed import DistInfo, all_gather_objects, setup_distributed
from fcnseg.engine.optim import build_optimizer, build_scheduler, segmentation_loss
from fcnseg.engine.preflight import EtaCheck, startup_warnings
from fcnseg.engine.sampling import ResumableSampler, SeededSamples
from fcnseg.utils.files import DiskFullError, is_disk_full, remove_stale_temporaries

__all__ = ["BadSampleError", "TrainResult", "TrainingDiverged", "build_training_model", "train"]

#: The files a run writes; start-up removes temporaries of theirs that a kill left behind.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "recipe.yaml")

_FIX_DATA = "find every bad sample with `fcnseg check-data`, or set data.skip_bad: true"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class BadSampleError(ValueError):
    """A training or validation sample could not be read; the message names the file, says
    what was saved and how to go on."""


@dataclass
class TrainResult:
    """What a run ended with."""

    out: Path
    iteration: int
    #: "completed" or "interrupted" (a signal stopped it after saving ``last.pt``).
    status: str
    best_mean_iu: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Signal number that stopped the run, if any.
    signal: int | None = None


# -- model -----------------------------------------------------------------------------------


def _backbone_file(spec: str) -> Path:
    from fcnseg.models import PRETRAINED, fetch_pretrained

    if spec in PRETRAINED:
        return fetch_pretrained(spec)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.backbone_weights: {path}: no such file. Give the path of an ImageNet VGG16 "
            f"state dict, or one of {sorted(PRETRAINED)} to download it (e.g. "
            f"--set model.backbone_weights=vgg16_caffe; fcnseg.models.fetch_pretrained"
            f"('vgg16_caffe') fetches it ahead of time)"
        )
    return path


def build_training_model(
    config: TrainConfig, num_classes: int, *, pretrained: bool = True
) -> nn.Module:
    """Build the recipe's model: backbone weights, staged ``init``, frozen or trained
    upsampling. Parameters are created from the torch RNG, so seed it first.

    ``pretrained=False`` skips the backbone weights and ``init`` (a resumed run takes its
    weights and input convention from its own checkpoint, so those files need not exist)."""
    from fcnseg.checkpoint import CheckpointError, load_checkpoint
    from fcnseg.conventions import get_convention
    from fcnseg.models import build_model, init_from
    from fcnseg.models.builders import uses_vgg_trunk

    m = config.model
    kwargs: dict[str, Any] = {"num_classes": num_classes, **m.options}
    if uses_vgg_trunk(m.arch):  # the VGG16 trunk's own options; other backbones take `options`
        kwargs.update(geometry=m.geometry, width=m.width, fc_channels=m.fc_channels,
                      dropout=m.dropout)
    if m.input_convention is not None:
        kwargs["input_convention"] = m.input_convention
    if m.backbone_weights and pretrained:
        # every builder loads its own backbone's ImageNet file and records its convention
        kwargs["backbone_weights"] = _backbone_file(m.backbone_weights)
        kwargs["backbone_convention"] = m.backbone_convention
    model = build_model(m.arch, **kwargs)
    if config.init and pretrained:
        try:
            ckpt = load_checkpoint(config.init)
        except CheckpointError:
            ckpt = None  # not a checkpoint: a plain state dict file
        if ckpt is not None:
            init_from(model, ckpt["model_state_dict"])
            model.input_convention = get_convention(ckpt["model"]["input_convention"])
        else:
            if not Path(config.init).is_file():
                raise FileNotFoundError(f"init: {config.init}: no such checkpoint")
            init_from(model, config.init)
    for layer in model.upsampling_layers():
        layer.weight.requires_grad_(m.train_upsampling)
    return model


# -- data ------------------------------------------------------------------------------------


def _build_datasets(config: TrainConfig, convention: Any, ignore_index: int) -> tuple[Any, Any]:
    from fcnseg.data import build_dataset
    from fcnseg.data.transforms import build_eval_transform, build_train_transform

    d = config.data
    train_spec = dict(d.train)
    train_tf = build_train_transform(
        convention, crop_size=d.crop_size,
        scale_range=tuple(d.scale_range) if d.scale_range else None,
        flip=d.flip, jitter=d.jitter, ignore_index=ignore_index)
    train_ds = build_dataset(train_spec, split=train_spec.get("split") or "train",
                             transform=train_tf)
    val_ds = None
    if d.val:
        val_spec = dict(d.val)
        val_ds = build_dataset(val_spec, split=val_spec.get("split") or "val",
                               transform=build_eval_transform(convention))
        if val_ds.num_classes != train_ds.num_classes:
            raise ValueError(f"data.val: {val_ds.num_classes} classes, but data.train has "
                             f"{train_ds.num_classes}")
    if d.skip_bad:
        from fcnseg.data import SkipBad

        train_ds = SkipBad(train_ds)
        if val_ds is not None:
            val_ds = _without_bad_samples(val_ds)
    elif val_ds is not None:
        problems = _sample_file_problems(val_ds)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BadSampleError(f"data.val: {problems[0]}{more}; {_FIX_DATA} to leave bad "
                                 f"samples out")
    return train_ds, val_ds


def _sample_file_problems(dataset: Any) -> list[str]:
    """Problems found by reading only the headers of a file dataset's images and masks:
    missing or unreadable files and masks whose size differs from their image's.

    A few milliseconds per sample, so that a bad validation sample stops the run before
    training rather than at its first evaluation. Mask values need a full decode; a bad one
    is caught when the evaluation reads it."""
    from PIL import Image, UnidentifiedImageError

    if not (hasattr(dataset, "image_path") and hasattr(dataset, "label_path")):
        return []  # generated data (synthetic): no files to check
    problems = []
    for i in range(len(dataset)):
        sizes = []
        for what, path in (("image", dataset.image_path(i)), ("mask", dataset.label_path(i))):
            if not Path(path).is_file():
                problems.append(f"{path}: missing {what} (no such file)")
                break
            try:
                with Image.open(path) as img:
                    sizes.append(_upright_size(img))
            except UnidentifiedImageError:
                if what == "image":
                    problems.append(f"{path}: unreadable image: not an image file")
                break  # masks that are no image files (SBD's .mat) are read in full later
            except OSError as e:
                problems.append(f"{path}: unreadable {what}: {e}")
                break
        if len(sizes) == 2 and sizes[0] != sizes[1]:
            (iw, ih), (mw, mh) = sizes
            problems.append(f"{dataset.label_path(i)}: mask is {mw}×{mh} but its image "
                            f"{Path(dataset.image_path(i)).name} is {iw}×{ih} (W×H)")
    return problems


def _upright_size(img: Any) -> tuple[int, int]:
    """(width, height) once the EXIF orientation is applied (tags 5-8 turn the image)."""
    w, h = img.size
    if img.format == "PNG" and "exif" not in img.info:
        return w, h  # Pillow would decode the whole PNG looking for a late EXIF chunk
    return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)


def _without_bad_samples(dataset: Any) -> Any:
    """``dataset`` less its bad samples, each named in a logged warning.

    Validation leaves bad samples out rather than standing the next one in for them (as
    :class:`~fcnseg.data.SkipBad` does for training), so that no image is scored twice."""
    import logging

    from torch.utils.data import Subset

    from fcnseg.data.check import scan_dataset

    problems = scan_dataset(dataset).problems
    if not problems:
        return dataset
    for p in problems:
        logging.getLogger(__name__).warning("validation: leaving out bad sample %d (%s)",
                                            p.index, p)
    bad = {p.index for p in problems}
    return Subset(dataset, [i for i in range(len(dataset)) if i not in bad])


# -- RNG state -------------------------------------------------------------------------------


def _rng_state(device: torch.device) -> dict[str, Any]:
    """Every RNG state of this process as plain data (checkpoints are read weights-only)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


# -- logging ---------------------------------------------------------------------------------


class _RunLog:
    """metrics.jsonl (always) and TensorBoard (when installed), written by rank 0 only."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool, resume_at: int | None):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.tb: Any = None
        if not enabled:
            return
        if resume_at is None:
            # A new run: a log left by an earlier attempt killed before its first checkpoint
            # would otherwise repeat its iterations.
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            # Records written after the checkpoint we resume from are about to be redone.
            from fcnseg.utils.files import atomic_write

            kept = [line for line in self.path.read_text().splitlines()
                    if _iteration_of(line) <= resume_at]
            # atomically: a crash here must not cost the log of the iterations already run
            with atomic_write(self.path, "w") as f:
                f.write("".join(line + "\n" for line in kept))
        self.file = self.path.open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                # events after the checkpoint (or, for a new run, all) are redone
                self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=(resume_at or 0) + 1)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            self.file.write(json.dumps(record, default=_json_default) + "\n")
            self.file.flush()
        except OSError as e:
            if is_disk_full(e):
                raise DiskFullError(self.path, "the records already written are kept") from e
            raise
        if self.tb is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("iteration", "epoch"):
                    self.tb.add_scalar(f"{prefix}/{key}", value, record["iteration"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


def _iteration_of(line: str) -> float:
    """The iteration a metrics.jsonl line is about; a line cut short by a crash counts as
    after any checkpoint (so it is dropped)."""
    try:
        return float(json.loads(line).get("iteration", 0))
    except (ValueError, AttributeError):
        return math.inf


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C and SIGTERM to the main process, which saves a
    checkpoint and then shuts them down: `timeout`, Slurm and Kubernetes signal every process
    of the group, and a worker killed by one would fail the main process's next fetch."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # blocked by _start_batches across the fork; pending signals are now discarded
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _start_batches(loader: DataLoader) -> Any:
    """``iter(loader)``, which forks the workers, with SIGINT/SIGTERM blocked: a signal to the
    whole group between a fork and the worker's :func:`_ignore_stop_signals` stays pending
    in the worker (which then discards it) instead of killing it. The main process gets its
    own copy as soon as the fork is done."""
    if loader.num_workers == 0:
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def data_error_message(error: BaseException) -> str | None:
    """``"<file>: <problem>"`` when ``error`` is a sample that could not be read, in this
    process or in a DataLoader worker (whose DataError arrives as a RuntimeError holding the
    worker's traceback); None for any other error."""
    from fcnseg.data import DataError

    if isinstance(error, DataError):
        return str(error)
    text = str(error)
    if isinstance(error, RuntimeError) and text.startswith("Caught DataError"):
        found = re.search(r"^\S*DataError: (.*)", text, re.MULTILINE | re.DOTALL)
        if found:
            return " ".join(found.group(1).split())
    return None


def _bad_sample(message: str, when: str, saved: str) -> BadSampleError:
    fix = "" if "check-data" in message else f"; {_FIX_DATA}"
    return BadSampleError(f"{message.rstrip('.')}{fix}. {when}; {saved}")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """Evaluation scores without the confusion matrix, NaN written as null."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key == "confusion":
            continue
        if isinstance(value, (list, tuple, np.ndarray)):
            value = [None if (isinstance(v, float) and math.isnan(v)) else float(v)
                     for v in np.asarray(value, dtype=float).tolist()]
        elif isinstance(value, float) and math.isnan(value):
            value = None
        out[key] = value
    return out


# -- signals ---------------------------------------------------------------------------------


class _StopRequest:
    """SIGINT/SIGTERM set a flag that the loop checks between iterations; a second SIGINT
    interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# -- the loop --------------------------------------------------------------------------------


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def train(
    config: TrainConfig | dict[str, Any] | str,
    *,
    resume: bool = False,
    out: str | None = None,
) -> TrainResult:
    """Run a training recipe; see the module docstring for what lands in the run folder.

    Args:
        config: a :class:`TrainConfig`, a mapping, or a recipe name / YAML path.
        resume: continue from ``<out>/last.pt`` (exactly where it stopped) when it exists.
        out: the run folder (overrides ``config.out``).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the last good checkpoint is kept).
    """
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    if out is not None:
        config.out = str(out)
    config.validate()
    if not config.out:
        raise ValueError("out: the run folder is not set (fcnseg train --out DIR)")
    run_dir = Path(config.out)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    if config.threads:
        torch.set_num_threads(config.threads)
    info = setup_distributed(config.device)
    try:
        result = _train(config, info, run_dir, last_path, best_path, resume)
        if info.owns_group:
            # every rank finishes before the group goes away (only on success: after an error
            # on one rank, a barrier would wait forever for it)
            dist.barrier()
        return result
    finally:
        if info.owns_group:
            dist.destroy_process_group()


def _train(config: TrainConfig, info: DistInfo, run_dir: Path, last_path: Path,
           best_path: Path, resume: bool) -> TrainResult:
    from tqdm.auto import tqdm

    from fcnseg.checkpoint import load_checkpoint, save_checkpoint
    from fcnseg.data import build_dataset, collate_segmentation
    from fcnseg.engine.evaluation import ShardedEvalSampler, evaluate_model

    device, world = info.device, info.world_size
    say = print if info.is_main else (lambda *a, **k: None)

    resume_ckpt = None
    if resume and last_path.exists():
        resume_ckpt = load_checkpoint(last_path)
    elif resume:
        say(f"no checkpoint in {run_dir} yet: starting a new run")
    elif last_path.exists():
        raise ValueError(f"out: {run_dir} already holds a run ({last_path.name}); pass --resume "
                         f"to continue it or choose another --out")
    if info.is_main:
        # files a kill cut short while they were being written (never read, up to a
        # checkpoint's size each)
        removed = remove_stale_temporaries(run_dir, RUN_FILES)
        if removed:
            say(f"removed {len(removed)} temporary file(s) left by an interrupted write")

    # Same seed on every process for the model (DDP also broadcasts rank 0's weights).
    _seed_everything(config.seed)
    # The classes come from the data and the input convention from the model's weights;
    # the transforms need the latter, so the training set is opened once without them first.
    plain = build_dataset(dict(config.data.train), split=config.data.train.get("split") or "train")
    class_names, palette, ignore_index = list(plain.classes), plain.palette, plain.ignore_index
    num_classes = len(class_names)
    if info.distributed and config.model.backbone_weights and resume_ckpt is None:
        # Rank 0 downloads published weights first; the others then find them in the cache.
        if info.is_main:
            _backbone_file(config.model.backbone_weights)
        dist.barrier()
    model = build_training_model(config, num_classes, pretrained=resume_ckpt is None)
    if resume_ckpt is not None:
        from fcnseg.conventions import get_convention

        # The run's own checkpoint says how its weights expect their pixels.
        model.input_convention = get_convention(resume_ckpt["model"]["input_convention"])
    train_ds, val_ds = _build_datasets(config, model.input_convention, ignore_index)
    for message in startup_warnings(config, plain, device.type):
        say(f"warning: {message}")

    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config.optim)
    total = config.train.iterations
    scheduler = build_scheduler(optimizer, total, config.schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")

    batch = config.data.batch_size
    sampler = ResumableSampler(len(train_ds), seed=config.seed, shuffle=True,
                               rank=info.rank, world_size=world, pad=True)
    batches_per_epoch = sampler.per_epoch() // batch
    if batches_per_epoch < 1:
        raise ValueError(f"data.batch_size: {batch} per process is more than the "
                         f"{sampler.per_epoch()} training images each process gets")
    # The loader's own generator only seeds worker processes; keeping it off the global RNG
    # means creating a loader never shifts the model's random stream.
    loader_gen = torch.Generator().manual_seed(config.seed)
    collate = partial(collate_segmentation, ignore_index=ignore_index)
    loader = DataLoader(SeededSamples(train_ds, config.seed), batch_size=batch, sampler=sampler,
                        drop_last=True, num_workers=config.data.num_workers,
                        collate_fn=collate, generator=loader_gen,
                        pin_memory=device.type == "cuda", worker_init_fn=_ignore_stop_signals)
    val_loader = None
    if val_ds is not None:
        val_loader = DataLoader(val_ds, batch_size=config.data.val_batch_size,
                                sampler=ShardedEvalSampler(len(val_ds), info.rank, world),
                                num_workers=config.data.num_workers, collate_fn=collate,
                                generator=torch.Generator().manual_seed(0),
                                worker_init_fn=_ignore_stop_signals)

    iteration, epoch, position = 0, 0, 0
    best_mean_iu: float | None = None
    last_metrics: dict[str, Any] = {}
    if resume_ckpt is not None:
        state = resume_ckpt["state"]
        if not state:
            raise ValueError(f"{last_path}: holds no training state to resume from")
        from fcnseg.models.weights import describe_mismatch

        problem = describe_mismatch(last_path, model, resume_ckpt["model_state_dict"])
        if problem:
            raise ValueError(f"resume: the recipe's model ({config.model.arch}) is not the one "
                             f"this run trained; {problem}")
        model.load_state_dict(resume_ckpt["model_state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        iteration = int(resume_ckpt["iteration"])
        epoch, position = int(state["data"]["epoch"]), int(state["data"]["position"])
        loader_gen.set_state(state["data"]["generator"])
        best_mean_iu = state.get("best_mean_iu")
        last_metrics = dict(resume_ckpt.get("metrics") or {})
        rngs = state["rng"]
        if len(rngs) != world:
            say(f"resume: the run was saved by {len(rngs)} processes and continues on {world}; "
                f"the data order is kept but random streams will differ")
        _set_rng_state(rngs[info.rank % len(rngs)], device)
        say(f"resumed {last_path} at iteration {iteration} (epoch {epoch}, batch {position})")
    else:
        # Each process gets its own model-side random stream (dropout) from here on.
        _seed_everything(config.seed + 7919 * info.rank)

    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        from fcnseg.utils.files import atomic_write

        # atomically: `--resume` without `--recipe` reads this file back
        with atomic_write(run_dir / "recipe.yaml", "w") as f:
            f.write(yaml.safe_dump(config_to_dict(config), sort_keys=False))

    train_model: nn.Module = model
    if info.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)  # type: ignore[assignment]

    recipe_dict = config_to_dict(config)

    def save(path: Path, metrics: dict[str, Any], with_state: bool) -> None:
        # An overflowing step can leave NaN/inf weights behind a finite loss; writing them would
        # replace the last good checkpoint with a broken one. Every process holds the same
        # weights, so all of them stop here together.
        bad = _non_finite_parameters(model)
        if bad:
            kept = (f"the last good checkpoint {last_path} (iteration "
                    f"{_saved_iteration(last_path)}) is kept"
                    if last_path.exists() else "no checkpoint was written")
            raise TrainingDiverged(
                f"weights became NaN or infinite by iteration {iteration} ({_listing(bad)}); "
                f"not saving {path.name}: {kept}. Lower optim.lr, use loss.reduction=mean, "
                f"set optim.grad_clip, or amp=none."
            )
        rngs = all_gather_objects(_rng_state(device), info) if with_state else None
        if not info.is_main:
            return
        state = {}
        if with_state:
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rngs,
                "data": {"epoch": epoch, "position": position,
                         "generator": loader_gen.get_state()},
                "best_mean_iu": best_mean_iu,
                "world_size": world,
            }
        save_checkpoint(path, model, class_names=class_names, palette=palette,
                        ignore_index=ignore_index, recipe=recipe_dict, iteration=iteration,
                        epoch=epoch, metrics=metrics, state=state)

    def evaluate() -> dict[str, Any]:
        assert val_loader is not None
        # Saved first: a sample that cannot be read must not cost the iterations since the
        # last checkpoint. (Evaluation draws from no RNG, so this state is the one after it.)
        save(last_path, last_metrics, with_state=True)
        try:
            result = evaluate_model(model, val_loader, num_classes=num_classes,
                                    ignore_index=ignore_index, device=device,
                                    amp=None if config.amp == "none" else config.amp)
        except (ValueError, RuntimeError) as e:
            message = data_error_message(e)
            if message is None:
                raise
            raise _bad_sample(message, f"The evaluation at iteration {iteration} stopped",
                              f"saved {last_path}; continue with --resume") from None
        return _summary(result)

    log = _RunLog(run_dir, info.is_main, config.train.tensorboard,
                  iteration if resume_ckpt is not None else None)
    # disable=None: tqdm draws only on a terminal; logs get metrics.jsonl and eval lines.
    show = info.is_main and config.train.progress
    bar = tqdm(total=total, initial=iteration, disable=None if show else True,
               dynamic_ncols=True, unit="it", desc=config.name)
    reduction = config.loss.reduction
    status, stop_signal = "completed", None
    window_start, window_images = time.perf_counter(), 0
    eta_check = EtaCheck(config, device.type, batch * world)
    try:
        with _StopRequest() as stop:
            while iteration < total and status == "completed":
                sampler.set_epoch(epoch, start=position * batch)
                batches = _start_batches(loader)
                while True:
                    try:
                        images, labels = next(batches)
                    except StopIteration:
                        epoch, position = epoch + 1, 0
                        break
                    except (ValueError, RuntimeError) as e:
                        message = data_error_message(e)
                        if message is None:
                            raise
                        # The batch was not used: the state is the one after the last step.
                        # Under torchrun the other processes wait in a collective, so only a
                        # single process can save here.
                        saved = "not saved (several processes)"
                        if not info.distributed:
                            save(last_path, last_metrics, with_state=True)
                            saved = f"saved {last_path}; continue with --resume"
                        raise _bad_sample(message, f"Training stopped at iteration "
                                          f"{iteration}", saved) from None
                    # Agree across processes on the stop flag and the valid-pixel count.
                    flags = torch.tensor(
                        [float(stop.signum is not None), float((labels != ignore_index).sum())],
                        dtype=torch.float64)
                    if info.distributed:
                        flags = flags.to(device)
                        dist.all_reduce(flags)
                        flags = flags.cpu()
                    if flags[0] > 0:
                        stop_signal = stop.signum or signal.SIGTERM
                        status = "interrupted"
                        break
                    images = images.to(device, non_blocking=True)
                    labels = labels.to(device, non_blocking=True)
                    if config.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    train_model.train()
                    with _autocast(device, config.amp):
                        logits = train_model(images)
                    loss = segmentation_loss(logits, labels, reduction=reduction,
                                             ignore_index=ignore_index,
                                             normalizer=float(flags[1]))
                    global_loss = loss.detach().clone()
                    if info.distributed:
                        dist.all_reduce(global_loss)
                    loss_value = float(global_loss)
                    if not math.isfinite(loss_value):
                        kept = (f"the last good checkpoint {last_path} (iteration "
                                f"{_saved_iteration(last_path)}) is kept"
                                if last_path.exists() else "no checkpoint was written")
                        log.write({"iteration": iteration + 1, "epoch": epoch,
                                   "loss": None, "event": "diverged"})
                        raise TrainingDiverged(
                            f"loss is {loss_value} at iteration {iteration + 1}; stopping. "
                            f"{kept}. Lower optim.lr, use loss.reduction=mean, or amp=none."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    # DDP averages gradients over processes; scale so they add up instead,
                    # which makes N processes × batch b equal one process × batch N·b.
                    scaler.scale(loss * world if info.distributed else loss).backward()
                    if config.optim.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    with warnings.catch_warnings():
                        # fp16's scaler skips steps with inf gradients; the schedule still
                        # follows the iteration count, which is what we want.
                        warnings.filterwarnings("ignore", message=r"Detected call of `lr_sch")
                        scheduler.step()
                    iteration += 1
                    position += 1
                    window_images += images.shape[0] * world
                    bar.update(1)

                    if iteration % config.train.log_every == 0 or iteration == total:
                        elapsed = max(time.perf_counter() - window_start, 1e-9)
                        lr = optimizer.param_groups[0]["lr"]
                        speed = window_images / elapsed
                        record = {"iteration": iteration, "epoch": epoch, "loss": loss_value,
                                  "lr": lr, "images_per_s": round(speed, 3)}
                        log.write(record)
                        bar.set_postfix(loss=f"{loss_value:.4g}", lr=f"{lr:.3g}",
                                        img_s=f"{speed:.1f}")
                        window_start, window_images = time.perf_counter(), 0
                        eta_message = eta_check(iteration, speed)
                        if eta_message and info.is_main:
                            bar.write(f"warning: {eta_message}")
                    evaluated = False
                    if val_loader is not None and (iteration % config.train.eval_every == 0
                                                   or iteration == total):
                        last_metrics = evaluate()
                        evaluated = True
                        log.write({"iteration": iteration, "epoch": epoch, "split": "val",
                                   **{k: v for k, v in last_metrics.items()
                                      if not isinstance(v, list)}})
                        miu = last_metrics.get("mean_iu")
                        say_line = (f"iteration {iteration}: mean IU {_pct(miu)}, pixel acc "
                                    f"{_pct(last_metrics.get('pixel_acc'))}")
                        if info.is_main:
                            bar.write(say_line)
                        if miu is not None and (best_mean_iu is None or miu > best_mean_iu):
                            best_mean_iu = float(miu)
                            save(best_path, last_metrics, with_state=False)
                    if (evaluated or iteration % config.train.checkpoint_every == 0
                            or iteration == total):
                        save(last_path, last_metrics, with_state=True)
                    if iteration >= total:
                        break
            if status == "interrupted":
                save(last_path, last_metrics, with_state=True)
                say(f"\nstopped by signal {stop_signal} at iteration {iteration}; saved "
                    f"{last_path}. Continue with --resume.")
    finally:
        bar.close()
        log.close()
    if info.is_main and status == "completed":
        say(f"done: {iteration} iterations; best mean IU {_pct(best_mean_iu)}; "
            f"checkpoints in {run_dir}")
    return TrainResult(out=run_dir, iteration=iteration, status=status,
                       best_mean_iu=best_mean_iu, metrics=last_metrics, signal=stop_signal)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f}"


def _non_finite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters holding NaN or infinite values."""
    return [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]


def _listing(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _saved_iteration(path: Path) -> int | str:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["iteration"])
    except Exception:
        return "?"
