"""Segmentation metrics come from one confusion matrix over a whole dataset.
Rows are ground truth, columns predictions; the FCN reference's semantics hold:

- pixel accuracy ``Σ diag / Σ all``;
- mean accuracy: the mean of ``diag / rowsum``, a class without ground-truth pixels (NaN) left
  out;
- mean IU: the mean of ``diag / (rowsum + colsum - diag)``, a class neither in the ground truth
  nor predicted (NaN) left out; one predicted but absent from the ground truth counts as 0;
- frequency-weighted IU: ``Σ (rowsum / Σ all) · IU`` over the classes with ``rowsum > 0``.

Scores come from the matrix summed over every image and process, never averaged per image.
Calibration (confidence against how often the model is right) is counted the same way:
:func:`expected_calibration_error`, and :class:`CalibrationBins`, which also keeps a confusion
matrix per confidence level for the mean IU of the most confident pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fcnseg.utils.validate import fields_of

#: The four summary metrics of the FCN paper, in its order.
METRIC_NAMES = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def other_heads_text(metrics: Any) -> str:
    """The headline scores of every head after the first, in percent:
    ``"geometric pixel acc 94.30, mean IU 80.12"``, heads joined by ``"; "`` (``""`` for one
    head). ``metrics`` holds them under ``heads`` (checkpoints, report.json), or flat as
    ``<head>/<metric>`` (metrics.jsonl records)."""
    metrics = fields_of(metrics)
    heads = fields_of(metrics.get("heads"))
    if not heads:
        flat: dict[str, dict[str, Any]] = {}
        for key, value in metrics.items():
            if isinstance(key, str) and "/" in key:
                head, name = key.split("/", 1)
                flat.setdefault(head, {})[name] = value
        heads = flat
    parts = []
    for head, scores in list(heads.items())[1:]:
        scores = fields_of(scores)
        shown = [f"{label} {100 * scores[key]:.2f}" for key, label in
                 (("pixel_acc", "pixel acc"), ("mean_iu", "mean IU"))
                 if isinstance(scores.get(key), (int, float)) and not math.isnan(scores[key])]
        if shown:
            parts.append(f"{head} " + ", ".join(shown))
    return "; ".join(parts)


def _check_shapes(label_shape: tuple[int, ...], pred_shape: tuple[int, ...]) -> None:
    if tuple(label_shape) != tuple(pred_shape):
        raise ValueError(f"label and prediction shapes differ: {tuple(label_shape)} vs "
                         f"{tuple(pred_shape)}")


def _check_num_classes(num_classes: int) -> None:
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")


def _check_integral(what: str, values: np.ndarray | torch.Tensor) -> None:
    """Refuse class indices of a non-integer dtype (float label maps would be truncated)."""
    exact = values.dtype.kind in "iub" if isinstance(values, np.ndarray) else \
        not (values.is_floating_point() or values.is_complex())
    if not exact:
        dtype = str(values.dtype).removeprefix("torch.")
        raise ValueError(f"{what}: expected integer class indices, got {dtype} values (a label "
                         f"map resized other than by nearest neighbour?)")


def _out_of_range_error(what: str, values: np.ndarray | torch.Tensor, num_classes: int,
                        ignore_index: int | None) -> ValueError:
    """The error naming the distinct ``values`` (numpy or torch) outside ``[0, num_classes)``."""
    bad = values[(values < 0) | (values >= num_classes)]
    bad = np.unique(bad) if isinstance(bad, np.ndarray) else torch.unique(bad).cpu().numpy()
    shown = ", ".join(str(int(v)) for v in bad[:10])
    shown += f", ... ({len(bad)} distinct)" if len(bad) > 10 else ""
    if what == "label":
        return ValueError(f"label values outside [0, {num_classes}) that are not the ignore "
                          f"index ({ignore_index}): {shown}")
    return ValueError(f"predicted values outside [0, {num_classes}): {shown}")


def _counts(label: Any, pred: Any, n: int, ignore_index: int | None) -> Any:
    """The n×n counts of ``label``/``pred``: numpy arrays (a numpy result), or torch tensors on
    an accelerator (a tensor there)."""
    _check_integral("label", label)
    _check_integral("prediction", pred)
    if isinstance(label, np.ndarray):
        label, pred = (a.reshape(-1).astype(np.int64, copy=False) for a in (label, pred))
        where, bincount = np.where, np.bincount
    else:
        label, pred = label.reshape(-1).long(), pred.reshape(-1).long()
        where, bincount = torch.where, torch.bincount
    # Ignored pixels get label 0 for the range check and the extra bin n*n for counting, which
    # is dropped: cheaper than compacting the arrays with a boolean mask.
    valid = None if ignore_index is None else label != ignore_index
    checked = label if valid is None else where(valid, label, 0)
    if len(label):
        if isinstance(label, torch.Tensor):
            # One device sync for all four extremes: a label >= n would otherwise land
            # silently in another class's cell (or trip a device-side assert later).
            extremes = torch.stack([*torch.aminmax(checked), *torch.aminmax(pred)]).tolist()
        else:
            extremes = [checked.min(), checked.max(), pred.min(), pred.max()]
        low, high, pred_low, pred_high = extremes
        if low < 0 or high >= n:
            raise _out_of_range_error("label", checked, n, ignore_index)
        if pred_low < 0 or pred_high >= n:
            raise _out_of_range_error("pred", pred, n, ignore_index)
    index = checked * n + pred
    if valid is not None:
        index = where(valid, index, n * n)
    return bincount(index, minlength=n * n + 1)[: n * n].reshape(n, n)


def confusion_matrix_torch(label: torch.Tensor, pred: torch.Tensor, num_classes: int,
                           ignore_index: int | None = 255) -> torch.Tensor:
    """Confusion matrix of one batch (class indices of any one shape) as a ``num_classes ×
    num_classes`` int64 tensor on the inputs' device; pixels labelled ``ignore_index`` count
    nowhere (``None``: every pixel counts).

    Raises:
        ValueError: shapes differ, values are not integers (float label maps are refused, not
            truncated), or a label (but ``ignore_index``) or prediction lies outside
            ``[0, num_classes)``; the message lists the offending values.
    """
    _check_num_classes(num_classes)
    _check_shapes(tuple(label.shape), tuple(pred.shape))
    if label.device.type == "cpu" and pred.device.type == "cpu":
        # numpy's bincount and elementwise ops are several times faster than torch's on CPU;
        # .numpy() shares memory, so this costs no copy.
        counts = _counts(label.detach().numpy(), pred.detach().numpy(), num_classes,
                         ignore_index)
        return torch.from_numpy(counts)
    return _counts(label, pred, num_classes, ignore_index)


def confusion_matrix(label: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor,
                     num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """Confusion matrix of label/prediction arrays or tensors of any shape, as an int64 numpy
    array (tensors on an accelerator are counted there); pixels labelled ``ignore_index`` are
    left out. Raises as :func:`confusion_matrix_torch`."""
    if isinstance(label, torch.Tensor) or isinstance(pred, torch.Tensor):
        label_t = torch.as_tensor(label)
        pred_t = torch.as_tensor(pred, device=label_t.device)
        return confusion_matrix_torch(label_t, pred_t, num_classes, ignore_index).cpu().numpy()
    _check_num_classes(num_classes)
    label, pred = np.asarray(label), np.asarray(pred)
    _check_shapes(label.shape, pred.shape)
    return _counts(label, pred, num_classes, ignore_index)


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN (without numpy's warning) when there are none."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def scores(confusion: np.ndarray | torch.Tensor | list[list[int]],
           exclude: Sequence[int] = ()) -> dict[str, Any]:
    """The FCN paper's metrics from a confusion matrix (rows = ground truth): the floats
    ``pixel_acc``, ``mean_acc``, ``mean_iu`` and ``fw_iu`` (NaN for an empty matrix) and the
    per-class lists ``iu`` and ``acc`` (NaN where undefined). Classes in ``exclude`` count in
    no mean (their pixels still count in pixel accuracy). ValueError for a matrix not square,
    with negative entries, or an excluded class not one of its classes."""
    if isinstance(confusion, torch.Tensor):
        confusion = confusion.detach().cpu().numpy()
    hist = np.asarray(confusion, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1] or hist.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square and non-empty, got shape {hist.shape}")
    if (hist < 0).any():
        raise ValueError("confusion matrix has negative entries")
    n = hist.shape[0]
    bad = [c for c in exclude if not 0 <= c < n]
    if bad:
        raise ValueError(f"excluded classes {bad} are outside [0, {n})")
    keep = np.ones(n, dtype=bool)
    keep[list(exclude)] = False
    total = hist.sum()
    diag = np.diag(hist)
    gt_pixels = hist.sum(axis=1)
    pred_pixels = hist.sum(axis=0)
    # 0/0 gives NaN exactly where a score is undefined: acc for rowsum 0, IU for rowsum and
    # colsum both 0. A class predicted but absent from the ground truth gets 0/colsum = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = diag / gt_pixels
        iu = diag / (gt_pixels + pred_pixels - diag)
    counted = keep & (gt_pixels > 0)
    if total > 0:
        pixel_acc = float(diag.sum() / total)
        fw_iu = float((gt_pixels[counted] / total * iu[counted]).sum())
    else:
        pixel_acc = fw_iu = math.nan
    return {"pixel_acc": pixel_acc, "mean_acc": _nanmean(acc[keep]), "mean_iu": _nanmean(iu[keep]),
            "fw_iu": fw_iu, "iu": [float(v) for v in iu], "acc": [float(v) for v in acc]}


def _subset_scores(subset: np.ndarray, whole: np.ndarray,
                   exclude: Sequence[int]) -> dict[str, Any]:
    """:func:`scores` of a subset of the pixels, a class left out of the means where the subset
    lacks it on a side (truth, predictions) ``whole`` has it; ``classes``: how many the mean IU
    averages."""
    absent = ((subset.sum(axis=1) == 0) & (whole.sum(axis=1) > 0)) | \
        ((subset.sum(axis=0) == 0) & (whole.sum(axis=0) > 0))
    left_out = sorted({int(c) for c in exclude} | {int(c) for c in np.flatnonzero(absent)})
    kept = scores(subset, left_out)
    kept["classes"] = sum(not math.isnan(iu) for c, iu in enumerate(kept["iu"])
                          if c not in left_out)
    return kept


def _sum_over_processes(tensors: list[torch.Tensor], group: Any) -> None:
    """Sum each tensor, in place, over the processes of ``torch.distributed`` (if initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for tensor in tensors:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM, group=group)


class ConfusionMatrix:
    """Accumulates one int64 confusion matrix on ``device`` (the predictions', so updates need
    no copies) over batches; :meth:`all_reduce` sums it over a ``torch.distributed`` group.

    Example::

        cm = ConfusionMatrix(21, device="cuda")
        for images, labels in loader:
            cm.update(labels.cuda(), model(images.cuda()).argmax(1))
        cm.all_reduce()
        print(cm.compute()["mean_iu"])
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255,
                 device: torch.device | str | None = None) -> None:
        _check_num_classes(num_classes)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64,
                                  device=device)

    def reset(self) -> None:
        """Zero the counts."""
        self.matrix.zero_()

    def update(self, label: np.ndarray | torch.Tensor, pred: np.ndarray | torch.Tensor) -> None:
        """Add one batch of labels and predicted class indices (any matching shapes)."""
        label_t = torch.as_tensor(label, device=self.matrix.device)
        pred_t = torch.as_tensor(pred, device=self.matrix.device)
        self.matrix += confusion_matrix_torch(label_t, pred_t, self.num_classes, self.ignore_index)

    def merge(self, other: ConfusionMatrix | np.ndarray | torch.Tensor) -> ConfusionMatrix:
        """Add another accumulator's (or a raw matrix's) counts to this one; returns self."""
        counts = other.matrix if isinstance(other, ConfusionMatrix) else other
        counts = torch.as_tensor(counts, dtype=torch.int64, device=self.matrix.device)
        if tuple(counts.shape) != tuple(self.matrix.shape):
            raise ValueError(f"cannot merge a {tuple(counts.shape)} confusion matrix into a "
                             f"{tuple(self.matrix.shape)} one")
        self.matrix += counts
        return self

    def all_reduce(self, group: Any = None) -> ConfusionMatrix:
        """Sum the counts over all processes when ``torch.distributed`` is initialised (no-op
        otherwise); every process then holds the dataset's matrix. Returns self."""
        _sum_over_processes([self.matrix], group)
        return self

    def numpy(self) -> np.ndarray:
        """The counts as an int64 numpy array."""
        return self.matrix.cpu().numpy()

    def compute(self) -> dict[str, Any]:
        """:func:`scores` of the accumulated matrix."""
        return scores(self.numpy())

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, "
                f"pixels={int(self.matrix.sum())})")


# -- calibration -------------------------------------------------------------------------------

#: Equal-width confidence bins of the expected calibration error (Guo et al., 2017).
DEFAULT_ECE_BINS = 15
#: Fractions of the most confident pixels whose mean IU is reported by default.
DEFAULT_COVERAGES = (0.5, 0.8, 0.9)
#: Confidence levels for the coverage scores: below confidence 0.5, four per halving of the
#: confidence (down to 2**-9); above, four per halving of the doubt ``1 - confidence``, summed
#: from the other classes' probabilities (``1 - confidence`` itself is 0 below 6e-8, where
#: most of a trained model's pixels are), so those pixels still spread over many levels.
_LEVELS_PER_OCTAVE = 4
_LOW_OCTAVES = 8  # confidence 2**-9 to 2**-1
_LOW_LEVELS = _LOW_OCTAVES * _LEVELS_PER_OCTAVE
_MAX_LEVELS = _LOW_LEVELS + 396  # doubt down to 2**-100
_MAX_LEVEL_CELLS = 1 << 22  # levels × classes² counters at most (32 MiB of int64)


def _ece_bin(confidence: torch.Tensor | np.ndarray, num_bins: int) -> Any:
    """Bin ``b`` holds confidences in ``[b/num_bins, (b+1)/num_bins)``; 1.0 is in the last."""
    if isinstance(confidence, torch.Tensor):
        return (confidence.double() * num_bins).long().clamp_(0, num_bins - 1)
    return np.clip((confidence * num_bins).astype(np.int64), 0, num_bins - 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               num_bins: int = DEFAULT_ECE_BINS) -> float:
    """The expected calibration error ``Σ_b (n_b / N) · |accuracy_b − mean confidence_b|``
    over ``num_bins`` equal-width bins, in [0, 1] (NaN without pixels), of each pixel's
    ``confidence`` (the probability of its prediction) and whether it was ``correct``."""
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hit = np.asarray(correct, dtype=np.float64).reshape(-1)
    _check_shapes(conf.shape, hit.shape)
    if conf.size == 0:
        return math.nan
    index = _ece_bin(conf, num_bins)
    count = np.bincount(index, minlength=num_bins)
    gap = np.abs(np.bincount(index, hit, minlength=num_bins)
                 - np.bincount(index, conf, minlength=num_bins))
    return float(gap.sum() / count.sum())


class CalibrationBins:
    """Accumulates calibration statistics of a dataset's pixels (ignored ones left out) on
    ``device``: per equal-width confidence bin the pixel count, summed confidence and correct
    predictions; and a confusion matrix per confidence level, so that :meth:`compute` can
    score the most confident pixels. :meth:`all_reduce` sums them over processes."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255, *,
                 num_bins: int = DEFAULT_ECE_BINS,
                 device: torch.device | str | None = None) -> None:
        _check_num_classes(num_classes)
        if num_bins < 1:
            raise ValueError(f"num_bins must be at least 1, got {num_bins}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.num_bins = int(num_bins)
        self.num_levels = int(max(1, min(_MAX_LEVELS, _MAX_LEVEL_CELLS // self.num_classes ** 2)))
        self.count = torch.zeros(self.num_bins, dtype=torch.int64, device=device)
        self.correct = torch.zeros(self.num_bins, dtype=torch.int64, device=device)
        self.confidence = torch.zeros(self.num_bins, dtype=torch.float64, device=device)
        self.level_confusion = torch.zeros((self.num_levels, self.num_classes, self.num_classes),
                                           dtype=torch.int64, device=device)

    def _level(self, confidence: torch.Tensor, doubt: torch.Tensor) -> torch.Tensor:
        """Confidence level of each pixel, higher more confident (see ``_LEVELS_PER_OCTAVE``)."""
        low = torch.floor((torch.log2(confidence.double().clamp(min=2.0 ** -1000))
                           + _LOW_OCTAVES + 1) * _LEVELS_PER_OCTAVE).clamp_(0, _LOW_LEVELS - 1)
        high = _LOW_LEVELS + torch.floor(
            (-torch.log2(doubt.double().clamp(min=2.0 ** -1000)) - 1) * _LEVELS_PER_OCTAVE)
        level = torch.where(doubt.double() > 0.5, low, high.clamp_(min=_LOW_LEVELS))
        return level.long().clamp_(0, self.num_levels - 1)

    def level_max_doubt(self, level: int) -> float:
        """The largest ``1 - confidence`` of a pixel in ``level`` (1 for the lowest)."""
        if level <= 0:
            return 1.0
        if level < _LOW_LEVELS:
            return 1.0 - 2.0 ** (level / _LEVELS_PER_OCTAVE - _LOW_OCTAVES - 1)
        return 2.0 ** (-(level - _LOW_LEVELS) / _LEVELS_PER_OCTAVE - 1)

    def update(self, label: torch.Tensor | np.ndarray, probs: torch.Tensor | np.ndarray) -> None:
        """Add a batch: ``label`` N×H×W (or any shape S) and class probabilities N×C×H×W
        (C inserted after the first axis of S)."""
        device = self.count.device
        probs_t = torch.as_tensor(probs, device=device)
        label_t = torch.as_tensor(label, device=device)
        _check_integral("label", label_t)
        label_t = label_t.long()
        if probs_t.dim() != label_t.dim() + 1 or probs_t.shape[1] != self.num_classes or \
                probs_t.shape[:1] + probs_t.shape[2:] != label_t.shape:
            raise ValueError(f"probabilities {tuple(probs_t.shape)} do not fit labels "
                             f"{tuple(label_t.shape)} with {self.num_classes} classes")
        confidence, pred = probs_t.max(dim=1)
        # 1 - confidence, summed from the other classes so that it stays exact when tiny.
        doubt = probs_t.scatter(1, pred.unsqueeze(1), 0.0).sum(dim=1)
        valid = label_t != self.ignore_index if self.ignore_index is not None else \
            torch.ones_like(label_t, dtype=torch.bool)
        label_t, pred, confidence, doubt = (label_t[valid], pred[valid], confidence[valid],
                                            doubt[valid])
        if label_t.numel() == 0:
            return
        low, high = torch.aminmax(label_t)
        if int(low) < 0 or int(high) >= self.num_classes:
            raise _out_of_range_error("label", label_t, self.num_classes, self.ignore_index)
        index = _ece_bin(confidence, self.num_bins)
        self.count += torch.bincount(index, minlength=self.num_bins)
        self.correct += torch.bincount(index[pred == label_t], minlength=self.num_bins)
        self.confidence += torch.bincount(index, weights=confidence.double(),
                                          minlength=self.num_bins)
        n = self.num_classes
        cell = (self._level(confidence, doubt) * n + label_t) * n + pred
        self.level_confusion += torch.bincount(
            cell, minlength=self.num_levels * n * n).reshape(self.num_levels, n, n)

    def merge(self, other: CalibrationBins) -> CalibrationBins:
        """Add another accumulator's counts (same classes and bins); returns self."""
        if (other.num_classes, other.num_bins, other.num_levels) != \
                (self.num_classes, self.num_bins, self.num_levels):
            raise ValueError("cannot merge calibration counts of different shapes")
        for name in ("count", "correct", "confidence", "level_confusion"):
            getattr(self, name).add_(getattr(other, name).to(self.count.device))
        return self

    def all_reduce(self, group: Any = None) -> CalibrationBins:
        """Sum the counters over all processes when ``torch.distributed`` is initialised."""
        _sum_over_processes([self.count, self.correct, self.confidence, self.level_confusion],
                            group)
        return self

    def compute(self, coverages: Sequence[float] = DEFAULT_COVERAGES, *,
                exclude: Sequence[int] = ()) -> dict[str, Any]:
        """The calibration summary: ``pixels``; ``ece`` (NaN without pixels); ``accuracy`` and
        ``mean_confidence``; ``bins``, one ``{lower, upper, count, confidence, accuracy}`` per
        bin (NaN when empty); ``confidence_levels``, how many levels hold pixels;
        ``mean_iu_classes``, how many classes the mean IU of all pixels averages; and
        ``coverage``: per fraction F, the scores of the most confident pixels, taken level by
        level until at least F of all are in: ``{fraction, pixels_fraction, max_doubt (largest
        1 − confidence taken), min_confidence, mean_iu, pixel_acc, mean_iu_classes}``.

        A fraction's ``mean_iu`` averages the classes its pixels hold on every side (truth,
        predictions) where all pixels hold them: a class the model is sure of nowhere would
        count IU 0 for a few pixels among millions (they still count as errors, in
        ``pixel_acc`` and the other class's IU). Fraction 1 equals the headline mean IU;
        ``exclude``: classes left out of every mean, as the headline's.
        """
        count = self.count.cpu().numpy().astype(np.float64)
        correct = self.correct.cpu().numpy().astype(np.float64)
        conf = self.confidence.cpu().numpy()
        total = count.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            acc_b, conf_b = correct / count, conf / count
        ece = float(np.abs(correct - conf).sum() / total) if total else math.nan
        bins = [{"lower": b / self.num_bins, "upper": (b + 1) / self.num_bins,
                 "count": int(count[b]), "confidence": float(conf_b[b]),
                 "accuracy": float(acc_b[b])} for b in range(self.num_bins)]
        levels = self.level_confusion.cpu().numpy()
        coverage = [self._coverage(float(f), levels, exclude) for f in coverages]
        return {"pixels": int(total), "ece": ece, "num_bins": self.num_bins,
                "accuracy": float(correct.sum() / total) if total else math.nan,
                "mean_confidence": float(conf.sum() / total) if total else math.nan,
                "bins": bins, "coverage": coverage,
                "confidence_levels": int(np.count_nonzero(levels.sum(axis=(1, 2)))),
                "mean_iu_classes": _subset_scores(levels.sum(axis=0), levels.sum(axis=0),
                                                  exclude)["classes"] if total else 0}

    def _coverage(self, fraction: float, levels: np.ndarray,
                  exclude: Sequence[int]) -> dict[str, Any]:
        """One ``coverage`` entry of :meth:`compute` (``levels``: a confusion matrix a level)."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"coverage fractions must be in (0, 1], got {fraction}")
        per_level = levels.sum(axis=(1, 2))
        total = per_level.sum()
        if not total:
            return {"fraction": fraction, **dict.fromkeys(
                ("pixels_fraction", "max_doubt", "min_confidence", "mean_iu", "pixel_acc"),
                math.nan), "mean_iu_classes": 0}
        taken = np.cumsum(per_level[::-1])  # most confident level first
        need = max(1, math.ceil(fraction * total - 1e-6))
        k = min(int(np.searchsorted(taken, need)), self.num_levels - 1)
        lowest = self.num_levels - 1 - k
        kept = _subset_scores(levels[lowest:].sum(axis=0), levels.sum(axis=0), exclude)
        return {"fraction": fraction, "pixels_fraction": float(taken[k] / total),
                "max_doubt": self.level_max_doubt(lowest),
                "min_confidence": 1.0 - self.level_max_doubt(lowest),
                "mean_iu": kept["mean_iu"], "pixel_acc": kept["pixel_acc"],
                "mean_iu_classes": kept["classes"]}

    def __repr__(self) -> str:
        return (f"CalibrationBins(num_classes={self.num_classes}, num_bins={self.num_bins}, "
                f"pixels={int(self.count.sum())})")
