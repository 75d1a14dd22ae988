"""Decode once: a dataset's decoded samples (before any random augmentation) kept in memory.

``data.cache``: ``ram`` keeps them, ``none`` decodes at every use, ``auto`` keeps them when
they fit in a quarter of the memory available now (for all training processes here).
:func:`cache_decoded` decodes every sample once, in threads, into one NumPy buffer forked
loader workers share; ``load`` copies a sample out for augmentation, so samples and draws are
an uncached run's. Labels are kept as uint8 where they fit (else int32), handed out as int64.
A sample that cannot be read keeps its error, raised when used, as without the cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.errors import problem_line
from fcnseg.data.images import upright_size
from fcnseg.utils.files import proc_value
from fcnseg.utils.keyed import keyed

CACHE_SETTINGS = ("auto", "ram", "none")

#: A decoded sample's arrays: (part: "image" or "label", key in a dict or None, array).
_Stored = list[tuple[str, Any, np.ndarray]]


def available_memory() -> int:
    """Bytes of memory available to new allocations now (``MemAvailable``), or 0 if unknown."""
    if (available := proc_value("/proc/meminfo", "MemAvailable")) is not None:
        return int(available) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


class DecodedSamples:
    """The decoded samples of a dataset kept in memory; called with an index, that sample as
    ``load`` gives it (fresh arrays), or the error reading it raised.

    ``eager``: decode every sample now, in ``threads`` threads, into one buffer (shared by
    loader workers forked later); else each sample is kept when first decoded (loading in the
    training process: nothing decoded that a run does not use, nor twice)."""

    def __init__(self, load: Callable[[int], Any], count: int, *, eager: bool = True,
                 threads: int = 1) -> None:
        self.load, self.count, self.eager = load, count, eager
        self.errors: dict[int, Exception] = {}
        #: The samples kept: index → their arrays (eager: views of one buffer).
        self.kept: dict[int, _Stored] = {}
        if eager:
            self._decode_all(threads)

    def _decode(self, index: int) -> _Stored | None:
        """Sample ``index``'s arrays, kept; None where reading it failed (the error kept)."""
        try:
            image, label = self.load(index)
        except (ValueError, OSError) as e:  # a bad sample: raised again when it is used
            self.errors[index] = e
            return None
        self.kept[index] = _flatten(image, label)
        return self.kept[index]

    def _decode_all(self, threads: int) -> None:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            decoded = list(pool.map(self._decode, range(self.count)))
        buffer = np.empty(sum(a.nbytes for d in decoded if d for *_, a in d), dtype=np.uint8)
        offset = 0
        for index, sample in enumerate(decoded):
            if sample is None:
                continue
            self.kept[index] = []  # the sample's views of the buffer
            for part, key, array in sample:
                view = buffer[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
                view[...] = array
                self.kept[index].append((part, key, view))
                offset += array.nbytes
            decoded[index] = None  # free the sample once copied

    def decode_rest(self) -> None:
        """Decode and keep every sample not decoded yet, recording the errors."""
        for index in range(self.count):
            if index not in self.kept and index not in self.errors:
                self._decode(index)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for stored in self.kept.values() for *_, a in stored)

    def shape(self, index: int) -> tuple[int, ...] | None:
        """Sample ``index``'s image shape where it is known without decoding."""
        if not (self.eager and self.kept.get(index)):
            return None
        _, _, image = self.kept[index][0]  # the image's arrays come first
        return image.shape

    def __call__(self, index: int) -> tuple[Any, Any]:
        if index not in self.kept and index not in self.errors:
            self._decode(index)
        if index in self.errors:
            raise self.errors[index]
        return _unflatten(self.kept[index])


def cached_problems(dataset: Any, *, decode_rest: bool = True) -> list[str] | None:
    """The problems (``"file: what is wrong"``) of a cached dataset's samples, decoding those
    not decoded yet unless not ``decode_rest``; None when the dataset is not cached."""
    store = getattr(dataset, "load", None)
    if not isinstance(store, DecodedSamples):
        return None
    if decode_rest:
        store.decode_rest()
    return [problem_line(e) for _, e in sorted(store.errors.items())]


def _unflatten(stored: _Stored) -> tuple[Any, Any]:
    """Fresh ``(image, label)``: labels as int64, images copied (transforms may write them)."""
    image: dict[Any, np.ndarray] = {}
    label: dict[Any, np.ndarray] = {}
    for part, key, array in stored:
        if part == "label":
            label[key] = array.astype(np.int64)
        else:
            image[key] = array.copy()
    return image.get(None, image), label.get(None, label)


def _flatten(image: Any, label: Any) -> _Stored:
    """The arrays of a sample (an array or ``{key: array}`` each), labels made compact."""
    stored: _Stored = []
    for part, value in (("image", image), ("label", label)):
        for key, array in keyed(value).items():
            array = np.asarray(array)
            if part == "label":  # uint8 where the values fit
                fits = array.size == 0 or (array.min() >= 0 and array.max() <= 255)
                array = array.astype(np.uint8 if fits else np.int32)
            stored.append((part, key, array))
    return stored


# -- deciding and installing -------------------------------------------------------------------


@dataclass
class CachePlan:
    """What :func:`cache_decoded` decided and why (the start-up line)."""

    cached: bool
    message: str


def _estimated_bytes(dataset: Any) -> int:
    """The decoded size of ``dataset``: sample 0's bytes per pixel times every image's pixels
    (by the headers), or its bytes times the samples without files."""
    count = len(dataset)
    if count == 0:
        return 0
    try:
        image, label = dataset.load(0)
    except (ValueError, OSError):
        return 0
    first = sum(a.nbytes for *_, a in _flatten(image, label))
    image_path = getattr(dataset, "image_path", None)
    if not callable(image_path):
        return first * count
    try:
        sizes = [upright_size(Path(image_path(i))) for i in range(count)]
    except (ValueError, OSError):
        return first * count  # a bad header: that sample's own error comes later
    (w, h), pixels = sizes[0], sum(pw * ph for pw, ph in sizes)
    return int(first / max(1, w * h) * pixels)


def cache_decoded(setting: str, datasets: Sequence[Any], *, processes: int = 1,
                  threads: int = 1, available: int | None = None,
                  eager: bool = True) -> CachePlan:
    """Have each dataset's ``load`` (None entries skipped) decode each sample once and keep it,
    per ``setting`` (``auto``, ``ram`` or ``none``): all now with ``eager`` (before loader
    workers start, to share them), else each when first used. ``processes``: training
    processes here, each holding its own copy. Returns the decision, said in one line."""
    sets = [d for d in datasets if d is not None]
    if setting == "none" or not sets:
        return CachePlan(False, "data cache: off (data.cache=none): samples are decoded at "
                                "every use")
    if setting not in CACHE_SETTINGS:
        raise ValueError(f"data.cache: {setting!r} is not one of {', '.join(CACHE_SETTINGS)}")
    if setting == "auto":
        needed = sum(_estimated_bytes(d) for d in sets) * max(1, processes)
        free = available_memory() if available is None else available
        if not free or needed >= free / 4:
            return CachePlan(False, f"data cache: off: the decoded samples need about "
                                    f"{_size(needed)}, not under a quarter of the "
                                    f"{_size(free)} available (data.cache=ram keeps them "
                                    f"anyway)")
        why = (f"auto: under a quarter of the {_size(free)} available"
               + (f", for {processes} processes" if processes > 1 else ""))
    else:
        why = "data.cache=ram"
    start = time.perf_counter()
    total, counts = 0, []
    for dataset in sets:
        store = DecodedSamples(dataset.load, len(dataset), eager=eager, threads=threads)
        dataset.load = store  # the instance's own load, used by __getitem__ from now on
        total += store.nbytes
        counts.append(str(len(dataset)))
    if not eager:
        return CachePlan(True, f"data cache: the {' + '.join(counts)} samples are kept in "
                               f"memory as first decoded ({why}); later epochs pay only "
                               f"augmentation")
    return CachePlan(True, f"data cache: {' + '.join(counts)} samples decoded into memory "
                           f"({_size(total)}; {why}) in {time.perf_counter() - start:.1f} s; "
                           f"each step pays only augmentation")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1024
