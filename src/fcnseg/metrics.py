"""Segmentation metrics from one confusion matrix over a whole dataset.

The FCN paper's four numbers, with the reference implementation's semantics (rows of the
confusion matrix are ground truth, columns predictions):

- pixel accuracy ``Σ diag / Σ all``;
- mean accuracy: the mean over classes of ``diag / rowsum``; a class with no ground-truth pixels
  has an undefined (NaN) accuracy and is left out of the mean;
- mean IU: the mean over classes of ``diag / (rowsum + colsum - diag)``; a class that is neither
  in the ground truth nor ever predicted has a NaN IU and is left out, but one that is absent
  from the ground truth and yet predicted has IU 0 and counts;
- frequency-weighted IU: ``Σ (rowsum / Σ all) · IU`` over the classes with ``rowsum > 0``.

Scores are computed from the matrix summed over every image (and every process), never averaged
per image. :class:`ConfusionMatrix` accumulates on the device of the predictions, so the
evaluation loop does not copy labels back to the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["METRIC_NAMES", "ConfusionMatrix", "confusion_matrix", "confusion_matrix_torch",
           "scores"]

#: The four summary metrics of the FCN paper, in its order.
METRIC_NAMES = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def _describe_bad_values(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({len(values)} distinct)" if len(values) > limit else "")


def _check_shapes(label_shape: tuple[int, ...], pred_shape: tuple[int, ...]) -> None:
    if tuple(label_shape) != tuple(pred_shape):
        raise ValueError(
            f"label and prediction shapes differ: {tuple(label_shape)} vs {tuple(pred_shape)}"
        )


def _check_num_classes(num_classes: int) -> None:
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")


def _out_of_range_error(what: str, values: np.ndarray, num_classes: int,
                        ignore_index: int | None) -> ValueError:
    if what == "label":
        return ValueError(
            f"label values outside [0, {num_classes}) that are not the ignore index "
            f"({ignore_index}): {_describe_bad_values(values)}"
        )
    return ValueError(f"predicted values outside [0, {num_classes}): "
                      f"{_describe_bad_values(values)}")


def _counts_numpy(label: np.ndarray, pred: np.ndarray, num_classes: int,
                  ignore_index: int | None) -> np.ndarray:
    label = label.reshape(-1).astype(np.int64, copy=False)
    pred = pred.reshape(-1).astype(np.int64, copy=False)
    n = num_classes
    if label.size == 0:
        return np.zeros((n, n), dtype=np.int64)
    # Ignored pixels get label 0 for the range check and the extra bin n*n for counting, which
    # is dropped: cheaper than compacting the arrays with a boolean mask.
    valid = label != ignore_index if ignore_index is not None else np.ones(label.shape, bool)
    checked = np.where(valid, label, 0)
    if checked.min() < 0 or checked.max() >= n:
        bad = checked[(checked < 0) | (checked >= n)]
        raise _out_of_range_error("label", np.unique(bad), n, ignore_index)
    if pred.min() < 0 or pred.max() >= n:
        raise _out_of_range_error("pred", np.unique(pred[(pred < 0) | (pred >= n)]), n,
                                  ignore_index)
    index = np.where(valid, checked * n + pred, n * n)
    counts = np.bincount(index, minlength=n * n + 1)[: n * n]
    return counts.reshape(n, n).astype(np.int64, copy=False)


def _counts_torch(label: torch.Tensor, pred: torch.Tensor, num_classes: int,
                  ignore_index: int | None) -> torch.Tensor:
    """The counting of :func:`_counts_numpy` in torch ops, for tensors on an accelerator."""
    n = num_classes
    label = label.reshape(-1).long()
    pred = pred.reshape(-1).long()
    if label.numel() == 0:
        return torch.zeros((n, n), dtype=torch.int64, device=label.device)
    if ignore_index is None:
        valid = torch.ones_like(label, dtype=torch.bool)
    else:
        valid = label != ignore_index
    checked = torch.where(valid, label, 0)
    # One device sync for all four extremes: a label >= num_classes would otherwise land
    # silently in another class's cell (or trip a device-side assert later).
    low, high = torch.aminmax(checked)
    pred_low, pred_high = torch.aminmax(pred)
    low, high, pred_low, pred_high = torch.stack([low, high, pred_low, pred_high]).tolist()
    if low < 0 or high >= n:
        bad = checked[(checked < 0) | (checked >= n)]
        raise _out_of_range_error("label", torch.unique(bad).cpu().numpy(), n, ignore_index)
    if pred_low < 0 or pred_high >= n:
        bad = pred[(pred < 0) | (pred >= n)]
        raise _out_of_range_error("pred", torch.unique(bad).cpu().numpy(), n, ignore_index)
    index = torch.where(valid, checked * n + pred, n * n)
    return torch.bincount(index, minlength=n * n + 1)[: n * n].reshape(n, n)


def confusion_matrix_torch(
    label: torch.Tensor, pred: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """Confusion matrix of one batch as an int64 tensor on the inputs' device.

    Args:
        label: ground-truth class indices, any shape; pixels equal to ``ignore_index`` are
            left out.
        pred: predicted class indices, same shape as ``label``.
        num_classes: size of the square matrix.
        ignore_index: label value that counts nowhere (``None``: every pixel counts).

    Returns:
        ``num_classes × num_classes`` int64 tensor, rows = ground truth, columns = prediction.

    Raises:
        ValueError: shapes differ, or a label (other than ``ignore_index``) or a prediction lies
            outside ``[0, num_classes)``; the message lists the offending values.
    """
    _check_num_classes(num_classes)
    _check_shapes(tuple(label.shape), tuple(pred.shape))
    if label.device.type == "cpu" and pred.device.type == "cpu":
        # numpy's bincount and elementwise ops are several times faster than torch's on CPU;
        # .numpy() shares memory, so this costs no copy.
        counts = _counts_numpy(label.detach().numpy(), pred.detach().numpy(), num_classes,
                               ignore_index)
        return torch.from_numpy(counts)
    return _counts_torch(label, pred, num_classes, ignore_index)


def confusion_matrix(
    label: np.ndarray | torch.Tensor,
    pred: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """Confusion matrix of label/prediction arrays of any shape, as an int64 numpy array.

    Accepts numpy arrays or torch tensors (tensors on an accelerator are counted there, then
    copied). Rows are ground truth, columns predictions; pixels whose label equals
    ``ignore_index`` are left out. Sum the matrices of several images (or use
    :class:`ConfusionMatrix`) to score a dataset.

    Raises:
        ValueError: shapes differ, or a label (other than ``ignore_index``) or a prediction lies
            outside ``[0, num_classes)``; the message lists the offending values.
    """
    if isinstance(label, torch.Tensor) or isinstance(pred, torch.Tensor):
        label_t = torch.as_tensor(label)
        pred_t = torch.as_tensor(pred, device=label_t.device)
        return confusion_matrix_torch(label_t, pred_t, num_classes, ignore_index).cpu().numpy()
    _check_num_classes(num_classes)
    label = np.asarray(label)
    pred = np.asarray(pred)
    _check_shapes(label.shape, pred.shape)
    return _counts_numpy(label, pred, num_classes, ignore_index)


def _nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN (without numpy's warning) when there are none."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def scores(confusion: np.ndarray | torch.Tensor | list[list[int]]) -> dict[str, Any]:
    """The FCN paper's metrics from a confusion matrix (rows = ground truth).

    Returns:
        A dict with the floats ``pixel_acc``, ``mean_acc``, ``mean_iu`` and ``fw_iu``, and the
        per-class lists ``iu`` and ``acc`` (NaN where undefined: accuracy for a class absent
        from the ground truth; IU for a class absent from both ground truth and predictions).
        Every value is NaN for an empty matrix.

    Raises:
        ValueError: the matrix is not square or has negative entries.
    """
    if isinstance(confusion, torch.Tensor):
        confusion = confusion.detach().cpu().numpy()
    hist = np.asarray(confusion, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1] or hist.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square and non-empty, got shape {hist.shape}")
    if (hist < 0).any():
        raise ValueError("confusion matrix has negative entries")
    total = hist.sum()
    diag = np.diag(hist)
    gt_pixels = hist.sum(axis=1)
    pred_pixels = hist.sum(axis=0)
    # 0/0 gives NaN exactly where a score is undefined: acc for rowsum 0, IU for rowsum and
    # colsum both 0. A class predicted but absent from the ground truth gets 0/colsum = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = diag / gt_pixels
        iu = diag / (gt_pixels + pred_pixels - diag)
    present = gt_pixels > 0
    if total > 0:
        pixel_acc = float(diag.sum() / total)
        fw_iu = float((gt_pixels[present] / total * iu[present]).sum())
    else:
        pixel_acc = fw_iu = math.nan
    return {
        "pixel_acc": pixel_acc,
        "mean_acc": _nanmean(acc),
        "mean_iu": _nanmean(iu),
        "fw_iu": fw_iu,
        "iu": [float(v) for v in iu],
        "acc": [float(v) for v in acc],
    }


class ConfusionMatrix:
    """Accumulates one confusion matrix over batches, processes and datasets.

    The matrix lives on ``device`` (the device of the predictions) as int64, so updates need no
    copies; :meth:`all_reduce` sums it over a ``torch.distributed`` process group.

    Example::

        cm = ConfusionMatrix(21, device="cuda")
        for images, labels in loader:
            cm.update(labels.cuda(), model(images.cuda()).argmax(1))
        cm.all_reduce()
        print(cm.compute()["mean_iu"])
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        device: torch.device | str | None = None,
    ) -> None:
        _check_num_classes(num_classes)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(
            (self.num_classes, self.num_classes), dtype=torch.int64, device=device
        )

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
            raise ValueError(
                f"cannot merge a {tuple(counts.shape)} confusion matrix into a "
                f"{tuple(self.matrix.shape)} one"
            )
        self.matrix += counts
        return self

    def all_reduce(self, group: Any = None) -> ConfusionMatrix:
        """Sum the counts over all processes when ``torch.distributed`` is initialised (no-op
        otherwise); every process then holds the dataset's matrix. Returns self."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix, op=torch.distributed.ReduceOp.SUM,
                                         group=group)
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
