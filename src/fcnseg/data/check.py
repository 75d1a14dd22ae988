"""Scan a whole dataset for bad samples and count pixels per class (``fcnseg check-data``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fcnseg.data.base import SegmentationDataset
from fcnseg.data.errors import DataError
from fcnseg.utils.keyed import keyed


@dataclass
class Problem:
    """One bad sample: its index and name in the dataset, the file and what is wrong."""

    index: int
    name: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class HeadCounts:
    """Pixel counts of one label map of a multi-head dataset (e.g. SIFT Flow's geometric)."""

    classes: tuple[str, ...]
    class_pixels: np.ndarray
    ignore_pixels: int = 0


@dataclass
class ScanReport:
    """Pixel counts per class (and of the ignore value) and the problems found; for several
    label maps, ``heads`` holds each one's counts, and the others are those of the head that
    ``dataset.classes`` names."""

    classes: tuple[str, ...]
    ignore_index: int
    images: int = 0
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ignore_pixels: int = 0
    problems: list[Problem] = field(default_factory=list)
    heads: dict[str, HeadCounts] = field(default_factory=dict)
    #: Mask values a folder dataset's remap table does not list that stayed class indices
    #: (:meth:`fcnseg.data.folder.FolderSegmentation.unlisted_values`).
    unlisted_values: set[int] = field(default_factory=set)
    #: The samples whose every pixel is ignored, by name: left out of the pixel counts.
    void: list[str] = field(default_factory=list)
    #: Each sample's :func:`difference_hash` by name, when the scan was asked for them.
    hashes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def difference_hash(image: np.ndarray) -> np.ndarray:
    """Which of the 16×17 box-filtered grey values of ``image`` (H×W or H×W×C) are brighter
    than their left-hand neighbour: 256 bits (32 bytes) that a copy, a re-saved or slightly
    shifted picture keeps but for a few."""
    step = max(1, min(image.shape[:2]) // 64)  # a grid of 64 pixels is enough for 16×17
    pixels = image[::step, ::step]
    pixels = pixels.reshape(*pixels.shape[:2], -1).astype(np.float32)
    grey = pixels @ np.ones(pixels.shape[-1], np.float32)  # faster than .sum(-1)
    thumb = np.asarray(Image.fromarray(grey).resize((17, 16), Image.Resampling.BOX))
    return np.packbits(thumb[:, 1:] > thumb[:, :-1])


#: The most bits (of 256) in which the :func:`difference_hash` of two pictures differ for them to
#: be near duplicates: a re-saved JPEG differs in a few, a picture shifted by 1% in some 20, two
#: unrelated ones in about 128.
NEAR_DUPLICATE_BITS = 32
#: Within this many bits, the same picture: a copy, re-saved (JPEG quality 30: some 7) or resized.
SAME_PICTURE_BITS = 10


def near_duplicates(train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray],
                    max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[str, str, int]]:
    """(name in ``val``, the name of another picture in ``train`` with the closest hash (the
    first such), the bits in which they differ) for each picture of ``val`` within
    ``max_bits`` of one in ``train`` (name: :func:`difference_hash`)."""
    names = list(train)
    if not names or not val:
        return []
    hashes, queries = (np.stack(list(h.values())) for h in (train, val))
    index = {name: k for k, name in enumerate(names)}
    same = np.array([index.get(name, -1) for name in val])  # the same name: not a second picture
    best = np.full(len(queries), np.iinfo(np.int64).max)  # bits × len(names) + train index
    words = [np.pad(h, ((0, 0), (0, h.shape[1] % 2))).view(np.uint16) for h in (hashes, queries)]
    for rows, cols in _candidate_pairs(hashes, queries, max_bits):
        bits = _POPCOUNT[words[0][cols] ^ words[1][rows]].sum(1, dtype=np.int64)  # any NumPy
        kept = (bits <= max_bits) & (cols != same[rows])
        np.minimum.at(best, rows[kept], bits[kept] * len(names) + cols[kept])
    return [(name, names[key % len(names)], key // len(names))
            for name, key in zip(val, best.tolist(), strict=True) if key // len(names) <= max_bits]


#: The set bits of each 16-bit number.
_POPCOUNT = np.unpackbits(np.arange(1 << 16, dtype=">u2").view(np.uint8)).reshape(-1, 16).sum(
    1, dtype=np.uint8)


def _candidate_pairs(hashes: np.ndarray, queries: np.ndarray, max_bits: int,
                     budget: int = 1 << 18) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(query rows, hash rows) by about ``budget`` pairs, holding every pair within ``max_bits``.
    Cut into more than ``max_bits / 2`` bands, two such hashes differ in at most one bit of
    some band: each query is paired with the hashes that have one of its bands with at most
    one bit flipped (found in the hashes' bands sorted), or with every hash, if fewer."""
    bits = [np.unpackbits(h, axis=1) for h in (hashes, queries)]
    width = bits[0].shape[1]  # keys of 24 bits at most:
    edges = np.linspace(0, width, max(max_bits // 2 + 1, -(-width // 24)) + 1).astype(int)
    n, bands, orders = len(hashes), [], []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        weights = 1 << np.arange(stop - start)
        key = bits[0][:, start:stop] @ weights
        orders.append(np.argsort(key, kind="stable"))
        bands.append((key[orders[-1]], bits[1][:, start:stop] @ weights, np.append(0, weights)))
    order = np.concatenate(orders)  # band j's hashes sorted by key, at j × n
    for first in range(0, len(queries), 1024):  # bounded memory: 1024 queries at a time
        probes = [(key, q[first:first + 1024, None] ^ flips) for key, q, flips in bands]
        lo, hi = (np.hstack([np.searchsorted(key, p, side) + j * n
                             for j, (key, p) in enumerate(probes)]) for side in ("left", "right"))
        count = (hi - lo).sum(1)
        cost = np.cumsum(np.minimum(count, n))
        for rows in np.split(np.arange(len(lo)), np.searchsorted(cost, range(budget, cost[-1],
                                                                              budget))):
            few, every = rows[count[rows] < n], rows[count[rows] >= n]
            ranges = (hi[few] - lo[few]).ravel()
            pos = np.repeat(lo[few].ravel() - np.cumsum(ranges) + ranges, ranges)
            yield (np.concatenate([np.repeat(few, count[few]), np.repeat(every, n)]) + first,
                   np.concatenate([order[pos + np.arange(len(pos))],
                                   np.tile(np.arange(n), len(every))]))


class _Scan(Dataset):
    """Loads each sample and returns its problem or its name, by head its pixel counts per
    class and of the ignore value, the unlisted mask values and, when ``hashes``, its image's
    :func:`difference_hash` (in loader workers)."""

    def __init__(self, dataset: SegmentationDataset, indices: list[int], hashes: bool) -> None:
        self.dataset, self.indices, self.hashes = dataset, indices, hashes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Problem | tuple[str, dict[str | None, tuple[np.ndarray, int]],
                                                      set[int], np.ndarray | None]:
        i = self.indices[k]
        ds = self.dataset
        # FolderSegmentation notes the mask values its remap passes through, reading masks once.
        load = getattr(ds, "load_noting_unlisted", None)
        try:
            image, label, unlisted = (*ds.load(i), set()) if load is None else load(i)
        except DataError as e:
            return Problem(i, ds.name(i), e.path, e.problem)
        except Exception as e:  # any other failure to read is still a problem with this sample
            return Problem(i, ds.name(i), _sample_files(ds, i), f"{type(e).__name__}: {e}")
        classes = _head_classes(ds)
        counts = {}
        for head, lb in keyed(label).items():
            n = len(classes.get(head, ds.classes))
            valid = lb != ds.ignore_index
            counts[head] = np.bincount(lb[valid].ravel(), minlength=n)[:n], int((~valid).sum())
        hashed = self.hashes and isinstance(image, np.ndarray) and image.ndim in (2, 3)
        return ds.name(i), counts, unlisted, difference_hash(image) if hashed else None


def _head_classes(ds: SegmentationDataset) -> Mapping[str | None, tuple[str, ...]]:
    heads = getattr(ds, "heads", None)
    return dict(heads) if heads else {None: tuple(ds.classes)}


def _sample_files(ds: SegmentationDataset, index: int) -> str:
    """The files of sample ``index`` (image and mask) where the dataset has them, else its name."""
    try:
        return f"{ds.image_path(index)} (mask {ds.label_path(index)})"  # type: ignore[attr-defined]
    except Exception:  # not a file dataset, or the paths themselves cannot be made
        return ds.name(index)


def _as_is(item: Any) -> Any:
    return item  # a named function, not a lambda: workers started by "spawn" must pickle it


def scan_dataset(dataset: SegmentationDataset, indices: list[int] | None = None,
                 workers: int = 0, progress: bool = False, hashes: bool = False) -> ScanReport:
    """Read every sample (or ``indices``) untransformed, collecting pixel counts (less those of
    the samples whose every pixel is ignored, named in ``void``) and problems; with
    ``hashes``, each image's :func:`difference_hash`."""
    indices = list(range(len(dataset))) if indices is None else list(indices)
    report = ScanReport(tuple(dataset.classes), dataset.ignore_index,
                        class_pixels=np.zeros(dataset.num_classes, np.int64))
    heads = {head: HeadCounts(tuple(names), np.zeros(len(names), np.int64))
             for head, names in _head_classes(dataset).items()}
    scan = _Scan(dataset, indices, hashes)
    items: Iterable[Any] = (scan[k] for k in range(len(scan)))
    if workers > 0:
        items = DataLoader(scan, batch_size=None, num_workers=workers, collate_fn=_as_is,
                           generator=torch.Generator().manual_seed(0))
    if progress:
        items = tqdm(items, total=len(indices), desc="checking", leave=False, disable=None)
    for item in items:
        report.images += 1
        if isinstance(item, Problem):
            report.problems.append(item)
            continue
        name, item, unlisted, hashed = item
        report.unlisted_values |= unlisted
        if hashed is not None:
            report.hashes[name] = hashed
        if not any(counts.any() for counts, _ in item.values()):
            report.void.append(name)
            continue
        for head, (counts, ignored) in item.items():
            if head not in heads:
                raise ValueError(f"dataset returned a label map {head!r} that its heads "
                                 f"({', '.join(map(str, heads))}) do not name")
            heads[head].class_pixels += counts
            heads[head].ignore_pixels += ignored
    main = heads.get(None) or next(
        (h for h in heads.values() if h.classes == report.classes), next(iter(heads.values())))
    report.class_pixels, report.ignore_pixels = main.class_pixels, main.ignore_pixels
    if None not in heads:
        report.heads = heads  # type: ignore[assignment]
    report.problems.sort(key=lambda p: p.index)
    return report
