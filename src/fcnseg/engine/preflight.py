"""Start-up warnings name settings that would make a run slow or wasteful, each with its fix.
None stops a run. :func:`preflight_warnings` is a pure function of the config, the training
images' sizes and the machine; :func:`startup_warnings` gathers those facts; :func:`eta_warning`
judges the speed of the first logged iterations."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnseg.data.band_stats import mixed_sample_types
from fcnseg.data.images import upright_size
from fcnseg.data.rasters import raster_info
from fcnseg.engine.config import TrainConfig

#: The recipe suggested when a CPU run would take too long.
CPU_RECIPE = "folder-cpu"
#: A CPU run whose first iterations promise more than this many seconds gets a warning.
ETA_LIMIT_S = 24 * 3600.0
#: Training images longer than this (pixels) are counted in one warning: a crop shows a tiny
#: part of them.
LARGE_IMAGE_SIDE = 2048
#: With ``loss.reduction: mean`` a learning rate under this is in the summed loss's range (the
#: reference recipes sum over pixels at 1e-10...1e-14; the averaged loss takes 1e-3...1e-2 with
#: SGD, 1e-4...5e-5 in the shipped averaged recipes): each step then moves no weight.
MEAN_LR_FLOOR = 1e-8


@dataclass(frozen=True)
class MachineFacts:
    """What the warnings need to know about the machine."""

    cpu_count: int


def machine_facts() -> MachineFacts:
    """This process's usable CPU count (its affinity mask, where the OS has one)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return MachineFacts(cpu_count=max(1, cpus))


def preflight_warnings(config: TrainConfig, machine: MachineFacts,
                       image_sizes: Sequence[tuple[int, int]] = ()) -> list[str]:
    """Warnings about ``config`` on ``machine`` for training images of ``image_sizes`` ((height,
    width) of some of them; empty when unknown): one per problem, naming the setting and a
    value to try."""
    messages = []
    workers = config.data.num_workers  # "auto" is sized to the machine
    if isinstance(workers, int) and workers > machine.cpu_count:
        messages.append(
            f"data.num_workers is {workers} but this machine has {machine.cpu_count} CPU "
            f"cores: the loader processes and the model fight over them. Set "
            f"data.num_workers={machine.cpu_count} or less (0 on a busy machine)")
    crop = config.data.crop_size
    if isinstance(crop, int) and crop and image_sizes:  # "auto" is chosen from the images
        smaller = [(h, w) for h, w in image_sizes if h < crop or w < crop]
        if 2 * len(smaller) > len(image_sizes):
            median = sorted(min(h, w) for h, w in image_sizes)[len(image_sizes) // 2]
            suggest = max(32, median // 32 * 32)
            messages.append(
                f"data.crop_size is {crop} but {len(smaller)} of the {len(image_sizes)} "
                f"training images looked at are smaller on at least one side (median shorter "
                f"side {median} pixels): their crops are mostly padding, which costs time and "
                f"teaches nothing. Set data.crop_size={suggest} or less")
    found = (large_images_warning(image_sizes), summed_lr_warning(config, image_sizes))
    messages += [message for message in found if message is not None]
    warmup, total = config.schedule.warmup_iters, config.train.iterations
    if warmup and warmup >= total:
        fit = max(1, total // 20)  # about 5% of the run
        suggest = (f"{fit} (about {round(100 * fit / total)}% of the run)" if total >= 2 else
                   "0 (no warm-up: a run of one iteration has no room for one)")
        messages.append(
            f"schedule.warmup_iters is {warmup}, not fewer than train.iterations ({total}): "
            f"the learning rate never reaches optim.lr. Set schedule.warmup_iters={suggest}")
    return messages


def summed_lr_warning(config: TrainConfig,
                      image_sizes: Sequence[tuple[int, int]] = ()) -> str | None:
    """A warning when ``optim.lr`` is under :data:`MEAN_LR_FLOOR` with the averaged loss: a
    rate meant for the loss summed over pixels, whose gradient is larger by the valid pixels per
    step. It names the rate that makes the same steps: ``optim.lr`` times those pixels (from
    the crop, else the median image of ``image_sizes``); None otherwise, and for Adam and
    AdamW, whose steps do not grow with the gradient (the reduction leaves them as they are)."""
    lr = config.optim.lr
    if config.loss.reduction != "mean" or lr >= MEAN_LR_FLOOR or config.optim.name != "sgd":
        return None
    pixels = step_pixels(config, image_sizes)
    same = (f"the same steps take optim.lr={lr * pixels:.2g} (optim.lr × the ~{pixels:,} "
            f"pixels per step)" if pixels else
            "the same steps take optim.lr × the valid pixels per step")
    return (f"optim.lr is {lr:g} with loss.reduction mean: rates this small are for the loss "
            f"summed over pixels (the reference recipes' 1e-10...1e-14); averaged, the weights "
            f"will not move. Set loss.reduction=sum, or a larger optim.lr: {same}; from "
            f"ImageNet weights, 1e-3...1e-2 with SGD (docs/training.md)")


def step_pixels(config: TrainConfig, image_sizes: Sequence[tuple[int, int]] = ()) -> int | None:
    """About how many pixels one optimisation step's loss covers: images per step × pixels of
    a crop (else of the median image of ``image_sizes``, else of a generated scene's ``size``)
    × the loss sampling rate; None when unknown."""
    crop, size = config.data.crop_size, config.data.train.get("size")
    if isinstance(crop, int) and crop > 0:
        per_image = crop * crop
    elif image_sizes:
        per_image = sorted(h * w for h, w in image_sizes)[len(image_sizes) // 2]
    elif isinstance(size, int) and size > 0:
        per_image = size * size
    else:
        return None
    images = config.images_per_batch() * config.optim.accumulate
    return max(1, round(images * per_image * config.loss.sample_rate))


def large_images_warning(image_sizes: Sequence[tuple[int, int]],
                         images: str = "training images looked at") -> str | None:
    """One line counting the ``image_sizes`` ((height, width)) over :data:`LARGE_IMAGE_SIDE`
    pixels, with the largest, and what to do; None when there are none."""
    large = [(h, w) for h, w in image_sizes if max(h, w) > LARGE_IMAGE_SIDE]
    if not large:
        return None
    h, w = max(large, key=lambda size: size[0] * size[1])
    verb = "is" if len(large) == 1 else "are"
    return (f"{len(large)} of the {len(image_sizes)} {images} {verb} over {LARGE_IMAGE_SIDE} "
            f"pixels on the long side (the largest {w}×{h}): a training crop shows a tiny part "
            f"of such a photo. Resize them to about 500-1000 pixels on the long side first "
            f"(docs/own-data-cpu.md, \"Large photos\"), or narrow data.scale_range")


def eta_warning(config: TrainConfig, device_type: str, seconds_per_iteration: float,
                remaining_iterations: int) -> str | None:
    """A warning when a CPU run would take longer than :data:`ETA_LIMIT_S` (a day) at the speed
    measured so far, suggesting the CPU recipe; None otherwise (and always on a GPU)."""
    if device_type != "cpu" or remaining_iterations <= 0:
        return None
    eta = seconds_per_iteration * remaining_iterations
    if eta <= ETA_LIMIT_S:
        return None
    if config.name == CPU_RECIPE:
        fix = "lower train.iterations, data.crop_size or data.batch_size, or train on a GPU"
    else:
        fix = (f"on a CPU, the {CPU_RECIPE} recipe (ResNet-18 FCN-8s, 224-pixel crops) trains "
               f"a few hundred images in minutes: fcnseg train --recipe {CPU_RECIPE} "
               f"--out DIR --set data.train.root=DIR data.val.root=DIR (see `fcnseg recipes "
               f"{CPU_RECIPE}`)")
    return (f"at {seconds_per_iteration:.3g} s per iteration, the remaining "
            f"{remaining_iterations} iterations take about {eta / 3600:.0f} hours on this CPU; "
            f"{fix}")


def crop_from_sizes(image_sizes: Sequence[tuple[int, int]],
                    upper: int | None = None) -> tuple[int, int]:
    """The crop ``data.crop_size: auto`` chooses, and the shorter side it came from: the largest
    multiple of 32 (at least 32, at most ``upper``) not above the shorter side that three in
    four of ``image_sizes`` (height, width) reach."""
    side = sorted(min(h, w) for h, w in image_sizes)[len(image_sizes) // 4]
    crop = max(32, side // 32 * 32)
    return (min(crop, upper) if upper else crop), side


def images_reaching(image_sizes: Sequence[tuple[int, int]], side: int) -> str:
    """How many of ``image_sizes`` reach ``side``: ``all 18`` or ``15 of the 18``."""
    reach = sum(min(h, w) >= side for h, w in image_sizes)
    return f"all {reach}" if reach == len(image_sizes) else f"{reach} of the {len(image_sizes)}"


#: Suffixes whose headers the raster reader reads (multi-band, 16-bit, GeoTIFF ...): Pillow
#: decodes only some of these files.
RASTER_HEADER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt")


def header_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from the file's header: rasters (any band count) by
    :func:`fcnseg.data.rasters.raster_info`, other images by Pillow, upright. Raises
    ``OSError``/``ValueError`` for a file neither can read."""
    if Path(path).suffix.lower() in RASTER_HEADER_SUFFIXES:
        info = raster_info(path)
        return info.width, info.height
    return upright_size(path)


def sample_image_sizes(dataset: Any, limit: int = 64) -> list[tuple[int, int]]:
    """(height, width) of up to ``limit`` images spread over a file dataset, from their headers
    (upright); for windows of large rasters, the windows'; empty for generated data."""
    window, rasters = getattr(dataset, "window", None), getattr(dataset, "rasters", None)
    if isinstance(window, int) and rasters is not None:
        return [(min(h, window), min(w, window)) for h, w in sample_image_sizes(rasters, limit)]
    if not hasattr(dataset, "image_path"):
        return []
    n = len(dataset)
    picks = sorted({i * n // limit for i in range(limit)}) if n > limit else range(n)
    sizes = []
    for i in picks:
        try:
            w, h = header_size(dataset.image_path(i))
        except (OSError, ValueError):
            continue  # a bad file is reported by the data checks, not here
        sizes.append((h, w))
    return sizes


def startup_warnings(config: TrainConfig, dataset: Any) -> list[str]:
    """:func:`preflight_warnings` with the facts gathered: this machine and ``dataset``; for a
    multi-band dataset, :func:`~fcnseg.data.band_stats.mixed_sample_types` from the band
    statistics already taken."""
    found = preflight_warnings(config, machine_facts(), sample_image_sizes(dataset))
    if getattr(dataset, "bands", None) is not None and hasattr(dataset, "band_statistics") \
            and (mixed := mixed_sample_types(dataset.band_statistics())) is not None:
        found.append(mixed)
    return found
