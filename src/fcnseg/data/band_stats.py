"""Per-band statistics of a multi-band dataset's images (``fcnseg check-data``).

For each declared band: mean and standard deviation (exact over every pixel with data, values
as stored, summed about the first image's mean), and the 2nd and 98th percentiles, exact from a
histogram for uint8/uint16 images, else from a seeded sample of :data:`SAMPLE_PIXELS` pixels.
Pixels without data are left out and counted; constant bands and mixed sample types are
reported; the sample types are recorded with the model. The statistics are cached in a JSON
file named by a fingerprint of the images and the band declaration.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.images import ImageError
from fcnseg.data.rasters import nodata_mask, open_raster
from fcnseg.utils.download import cache_dir as fcnseg_cache_dir
from fcnseg.utils.files import atomic_write_bytes, files_fingerprint

#: Pixels sampled over the whole dataset for the percentiles of float images.
SAMPLE_PIXELS = 2_000_000
_CACHE_VERSION = 4


@dataclass
class BandStats:
    """Statistics of each band (lists in band order) and the images that could not count."""

    bands: list[str]
    mean: list[float]
    std: list[float]
    p2: list[float]
    p98: list[float]
    pixels: int = 0
    nodata_pixels: int = 0
    nan_pixels: list[int] = field(default_factory=list)
    images: int = 0
    #: ``[(image path, problem)]``: unreadable images, or a band count other than declared.
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: ``{sample type: [images, first image path]}`` of the readable images (``"uint16"``).
    sample_types: dict[str, list[Any]] = field(default_factory=dict)
    #: Each band's smallest and largest value with data (empty in older caches).
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    @property
    def constant_bands(self) -> list[str]:
        """Bands with no variance (every pixel with data has the same value)."""
        return [b for b, s in zip(self.bands, self.std, strict=True) if not s > 0]


class _Accumulator:
    def __init__(self, bands: int, images: int) -> None:
        self.n = 0
        self.shift: np.ndarray | None = None  # sums are taken about it (first image's mean)
        self.sum = np.zeros(bands, np.float64)
        self.sq = np.zeros(bands, np.float64)
        self.hist = np.zeros((bands, 65536), np.int64)  # exact, while every image is integer
        self.all_integer = True
        self.samples: list[np.ndarray] = []
        self.per_image = max(256, SAMPLE_PIXELS // max(1, images))
        self.nan = np.zeros(bands, np.int64)
        self.nodata = 0
        self.low = np.full(bands, np.nan)  # fmin/fmax: NaN pixels never count
        self.high = np.full(bands, np.nan)

    def add(self, image: np.ndarray, nodata: float | None, seed: int) -> None:
        pixels = image.reshape(-1, image.shape[-1])
        missing = nodata_mask(image, nodata)
        if image.dtype.kind == "f":
            self.nan += np.isnan(pixels).sum(axis=0)
        if missing is not None:
            self.nodata += int(missing.sum())
            pixels = pixels[~missing.ravel()]
        if len(pixels):
            self.low = np.fmin(self.low, np.fmin.reduce(pixels, axis=0))
            self.high = np.fmax(self.high, np.fmax.reduce(pixels, axis=0))
        values = pixels.astype(np.float64)
        if self.shift is None and len(values):
            self.shift = values.mean(axis=0)
        if self.shift is not None:
            values -= self.shift
        self.n += len(values)
        self.sum += values.sum(axis=0)
        self.sq += np.square(values).sum(axis=0)
        if image.dtype in (np.uint8, np.uint16):
            for b in range(pixels.shape[1]):
                self.hist[b] += np.bincount(pixels[:, b], minlength=65536)
        else:
            self.all_integer = False
        rng = np.random.default_rng(seed)
        take = min(len(pixels), self.per_image)
        # float32 holds 8- and 16-bit and float32 values exactly; wider types need float64
        exact = np.float32 if pixels.dtype.itemsize <= 2 or pixels.dtype == np.float32 \
            else np.float64
        self.samples.append(pixels[rng.choice(len(pixels), take, replace=False)].astype(exact))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Each band's mean and standard deviation over the pixels added."""
        n = max(self.n, 1)
        offset = self.sum / n
        std = np.sqrt(np.maximum(self.sq / n - offset**2, 0.0))
        mean = offset + (self.shift if self.shift is not None else 0.0)
        # A constant band's variance is 0 but for rounding (a few epsilons of the mean).
        std[std < 1e-12 * np.maximum(1.0, np.abs(mean))] = 0.0
        return mean, std

    def percentiles(self, q: float) -> np.ndarray:
        bands = len(self.sum)
        if self.n == 0:
            return np.full(bands, np.nan)
        if self.all_integer:
            cdf = np.cumsum(self.hist, axis=1)
            return np.array([float(np.searchsorted(cdf[b], q / 100 * cdf[b, -1]))
                             for b in range(bands)])
        return np.nanpercentile(np.concatenate(self.samples), q, axis=0).astype(np.float64)

    def stats(self, bands: list[str], images: int) -> BandStats:
        """The statistics of the pixels added, without problems or sample types."""
        mean, std = self.mean_std()
        return BandStats(bands=bands, mean=mean.tolist(), std=std.tolist(),
                         p2=self.percentiles(2).tolist(), p98=self.percentiles(98).tolist(),
                         pixels=self.n, nodata_pixels=self.nodata,
                         nan_pixels=self.nan.tolist(), images=images,
                         low=self.low.astype(np.float64).tolist(),
                         high=self.high.astype(np.float64).tolist())


def band_statistics(dataset: Any, *, cache_dir: str | os.PathLike[str] | None = None,
                    use_cache: bool = True) -> BandStats:
    """Per-band statistics over a folder dataset that declares ``bands`` (module doc), from
    the cache (default ``$FCNSEG_HOME/band_stats``) when the images are unchanged."""
    bands = list(dataset.bands)
    folder = Path(cache_dir) if cache_dir is not None else fcnseg_cache_dir() / "band_stats"
    fingerprint = files_fingerprint([_CACHE_VERSION, bands, dataset.nodata],
                                    (dataset.image_path(i) for i in range(len(dataset))))
    cached = folder / f"{fingerprint}.json"
    if use_cache:  # a cache absent or damaged is computed again
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            data = json.loads(cached.read_text(encoding="utf-8"))
            data["problems"] = [tuple(p) for p in data["problems"]]
            return BandStats(**data)
    acc = _Accumulator(len(bands), len(dataset))
    problems: list[tuple[str, str]] = []
    sample_types: dict[str, list[Any]] = {}
    for i in range(len(dataset)):
        path = Path(dataset.image_path(i))
        try:
            with open_raster(path, bands=bands, exact=True) as r:
                image, info_dtype = r.read_all(), r.info.dtype
        except ImageError as e:
            problems.append((str(path), e.problem))
            continue
        acc.add(image, dataset.nodata, seed=i)
        found = sample_types.setdefault(str(info_dtype), [0, str(path)])
        found[0] += 1
    stats = replace(acc.stats(bands, len(dataset)), problems=problems,
                    sample_types=sample_types)
    if use_cache:
        atomic_write_bytes(cached, json.dumps(asdict(stats)).encode("utf-8"))
    return stats


def image_statistics(pieces: Iterable[np.ndarray], bands: list[str], count: int,
                     nodata: float | None = None) -> BandStats:
    """The statistics of one image read in ``count`` pieces (H×W×N strips of rows), as
    :func:`band_statistics` takes them over a dataset (``fcnseg info``)."""
    acc = _Accumulator(len(bands), count)
    for k, piece in enumerate(pieces):
        acc.add(piece, nodata, seed=k)
    return acc.stats(bands, images=1)


def format_band_table(stats: BandStats) -> list[str]:
    """The statistics as printed by ``fcnseg check-data``: one line per band, then warnings."""
    named = {"min": stats.low, "max": stats.high, "mean": stats.mean, "std": stats.std,
             "p2": stats.p2, "p98": stats.p98}
    if len(stats.low) != len(stats.bands):  # cached by a version without min and max
        del named["min"], named["max"]
    columns = tuple(named.values())
    lines = [f"{'band':<12}" + "".join(f" {h:>12}" for h in named)]
    for k, b in enumerate(stats.bands):
        lines.append(f"{b:<12}" + "".join(f" {column[k]:>12.6g}" for column in columns))
    for b in stats.constant_bands:
        lines.append(f"warning: band {b!r} has no variance (every pixel is "
                     f"{stats.mean[stats.bands.index(b)]:.6g}): it carries nothing to learn")
    if stats.nodata_pixels:
        lines.append(f"note: {stats.nodata_pixels} pixel(s) without data (nodata) left out "
                     f"of the statistics and ignored in training")
    for b, n in zip(stats.bands, stats.nan_pixels, strict=True):
        if n:
            lines.append(f"warning: band {b!r} has {n} NaN pixel(s)")
    if (mixed := mixed_sample_types(stats)) is not None:
        lines.append(f"warning: {mixed}")
    return lines


def mixed_sample_types(stats: BandStats) -> str | None:
    """One line naming an image of each sample type when there are several (8-bit beside
    16-bit): one mean and std per band cannot standardise them alike."""
    if len(stats.sample_types) < 2:
        return None
    kinds = sorted(stats.sample_types.items(), key=lambda kv: -kv[1][0])
    each = ", ".join(f"{n} of {t} (e.g. {path})" for t, (n, path) in kinds)
    return (f"the images mix sample types: {each}; their values lie on other scales, which "
            f"the band statistics standardise differently: convert them to one type on one "
            f"scale")

