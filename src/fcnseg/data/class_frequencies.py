"""Pixel counts per class over a training set, and the class-balancing weights made from them.

The counts come from one parallel pass of check-data's reader (:func:`scan_dataset`) over the
untransformed masks, ignore value excluded, cached for file datasets in a JSON file named by a
fingerprint of the masks (any change recounts; an untrustworthy cache is named in a warning).

Weights (``loss.class_weights``), with ``f_c`` the share of class c among labelled pixels:
``median_frequency`` is ``median(f) / f_c`` (the median over the classes that occur),
``inverse_frequency`` ``1 / (K · f_c)`` for K classes; each clipped at ``max_weight``. A class
that never occurs gets ``max_weight`` (or the largest weight) and a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.check import scan_dataset
from fcnseg.utils.download import cache_dir as fcnseg_cache_dir
from fcnseg.utils.files import atomic_write, files_fingerprint
from fcnseg.utils.validate import fields_of

WEIGHT_METHODS = ("median_frequency", "inverse_frequency")

log = logging.getLogger(__name__)


class ClassBalanceWarning(UserWarning):
    """A class never occurs in the training labels, so its weight is a stand-in."""


def dataset_fingerprint(dataset: Any) -> str | None:
    """A hex digest of the dataset's masks (paths, sizes, mtimes), classes and ignore value;
    None without mask files (generated data, not cached)."""
    if not hasattr(dataset, "label_path"):
        return None
    return files_fingerprint(
        [type(dataset).__name__, list(dataset.classes), int(dataset.ignore_index)],
        (dataset.label_path(i) for i in range(len(dataset))))


def class_pixel_counts(dataset: Any, *, cache_dir: str | os.PathLike[str] | None = None,
                       workers: int = 0) -> np.ndarray:
    """Labelled pixels per class over ``dataset`` (untransformed), read with ``workers``
    loader processes or from ``cache_dir`` (default ``$FCNSEG_HOME/class_frequencies``); a
    ValueError names the first sample that cannot be read."""
    fingerprint = dataset_fingerprint(dataset)
    cache_file = None
    if fingerprint is not None:
        folder = fcnseg_cache_dir() / "class_frequencies" if cache_dir is None else Path(cache_dir)
        cache_file = folder / f"{fingerprint[:32]}.json"
        cached = _read_cache(cache_file, fingerprint, dataset.num_classes)
        if isinstance(cached, np.ndarray):
            return cached
        if cached is not None:
            log.warning("%s: damaged class-frequency cache (%s); counting the class pixels "
                        "again", cache_file, cached)
    report = scan_dataset(dataset, workers=workers)
    if report.problems:
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise ValueError(f"loss.class_weights: cannot count class pixels: "
                         f"{report.problems[0]}{more}")
    counts = report.class_pixels.astype(np.int64)
    if cache_file is not None:
        # A read-only cache only costs a recount next time.
        with contextlib.suppress(OSError), atomic_write(cache_file, "w") as f:
            json.dump({"fingerprint": fingerprint, "counts": counts.tolist()}, f)
    return counts


def _read_cache(path: Path, fingerprint: str, num_classes: int) -> np.ndarray | str | None:
    """The counts cached at ``path``, what is wrong with that file, or None without one."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return "not valid JSON"
    data = fields_of(data)
    if not data:
        return "not a JSON object"
    if data.get("fingerprint") != fingerprint:
        return "written for other masks"
    counts = data.get("counts")
    if not (isinstance(counts, list) and len(counts) == num_classes
            and all(type(c) is int and 0 <= c < 2**62 for c in counts)):
        return f"'counts' is not a list of {num_classes} pixel counts"
    if sum(counts) == 0:  # nothing is lost by checking what would stop the run
        return "it counts no labelled pixel at all"
    return np.asarray(counts, dtype=np.int64)


def class_weights(counts: Sequence[int] | np.ndarray, method: str,
                  max_weight: float | None = None,
                  class_names: Sequence[str] | None = None) -> np.ndarray:
    """Class-balancing weights from pixel counts (see the module docstring for the formulas).

    Warns (:class:`ClassBalanceWarning`) for each class that never occurs."""
    counts = np.asarray(counts, dtype=np.float64)
    if method not in WEIGHT_METHODS:
        raise ValueError(f"loss.class_weights: {method!r} is not one of none, "
                         f"{', '.join(WEIGHT_METHODS)} or a list of weights")
    total = counts.sum()
    if total <= 0:
        raise ValueError("loss.class_weights: the training labels hold no labelled pixel")
    freq = counts / total
    present = counts > 0
    weights = np.zeros_like(freq)
    if method == "median_frequency":
        weights[present] = np.median(freq[present]) / freq[present]
    else:
        weights[present] = 1.0 / (len(counts) * freq[present])
    if max_weight is not None:
        weights = np.minimum(weights, float(max_weight))
    absent = np.flatnonzero(~present)
    if absent.size:
        stand_in = float(max_weight) if max_weight is not None else float(weights.max())
        weights[absent] = stand_in
        names = [class_names[c] if class_names else str(c) for c in absent]
        warnings.warn(f"loss.class_weights: class {', '.join(names)} never occurs in the "
                      f"training labels; weight {stand_in:.4g} given (set loss.max_weight to "
                      f"choose it)", ClassBalanceWarning, stacklevel=2)
    return weights


def format_class_table(class_names: Sequence[str], counts: Sequence[int] | np.ndarray | None,
                       weights: Sequence[float] | np.ndarray) -> str:
    """A per-class table: pixels, share of the labelled pixels, and loss weight."""
    width = max(5, *(len(n) for n in class_names))
    lines = [f"{'class':<{width}}  {'pixels':>12}  {'share':>7}  {'weight':>8}"]
    total = float(np.sum(counts)) if counts is not None else 0.0
    for c, name in enumerate(class_names):
        pixels = str(int(counts[c])) if counts is not None else "-"
        share = f"{100 * counts[c] / total:.2f}%" if total else "-"
        lines.append(f"{name:<{width}}  {pixels:>12}  {share:>7}  {float(weights[c]):>8.4g}")
    return "\n".join(lines)
