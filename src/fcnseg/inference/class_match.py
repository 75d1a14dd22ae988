"""Dataset classes are matched to model classes (``evaluate``, ``calibrate``, ``quantize --val``).
Labelling tools number the same classes in other orders (CVAT keeps its list's, Label Studio
sorts), so the same names in another order are matched by name (said in one line), and other
names are refused in one line naming both lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fcnseg.utils.keyed import keyed


@dataclass(frozen=True)
class ClassMatch:
    """How a dataset's label values become the model's class indices: ``lookup[v]``, the model's
    index of the dataset's class ``v`` (None: the same already); ``note``, one line saying the
    classes were matched by name, or None."""

    lookup: tuple[int, ...] | None = None
    note: str | None = None

    def relabel(self, label: Any) -> Any:
        """``label`` (an array or tensor of dataset values) in the model's indices; values that
        are no class (the ignore value, or bad ones left for the scoring to report) are kept."""
        if self.lookup is None or None not in keyed(label):  # a {head: label} dict is the heads'
            return label
        if isinstance(label, torch.Tensor):
            table = torch.tensor(self.lookup, dtype=label.dtype, device=label.device)
            inside = (label >= 0) & (label < len(self.lookup))
            return torch.where(inside, table[label.clamp(0, len(self.lookup) - 1).long()], label)
        array = np.asarray(label)
        table_np = np.asarray(self.lookup, dtype=array.dtype)
        inside = (array >= 0) & (array < len(self.lookup))
        return np.where(inside, table_np[np.clip(array, 0, len(self.lookup) - 1)], array)

    def exclusions(self, classes: Any) -> Any:
        """Dataset class indices (e.g. those a dataset leaves out of its mean) as the model's
        (a ``{head: classes}`` dict is the heads', kept as it is)."""
        if self.lookup is None or None not in keyed(classes):
            return classes
        return tuple(self.lookup[c] if 0 <= c < len(self.lookup) else c for c in classes)


def match_classes(data_classes: Sequence[str], model_classes: Sequence[str], *,
                  dataset: str, model: str) -> ClassMatch:
    """The :class:`ClassMatch` of a dataset's class names with a model's (none: taken as it is);
    names that are not the model's are one line naming both lists."""
    data, names = [str(c) for c in data_classes], [str(c) for c in model_classes]
    if not data or data == names:
        return ClassMatch()
    if len(set(data)) != len(data) or set(data) != set(names) or len(data) != len(names):
        raise ValueError(
            f"dataset {dataset} has {len(data)} classes [{_first_few(data)}] but {model} "
            f"predicts {len(names)} [{_first_few(names)}]: not the same classes, so scores "
            f"would mean nothing; use a dataset labelled with the model's classes")
    lookup = tuple(names.index(c) for c in data)
    return ClassMatch(lookup, f"dataset {dataset} lists the model's classes in another order: "
                              f"its labels are matched to them by name")


def _first_few(names: Sequence[str], shown: int = 6) -> str:
    """A list of names for a one-line message: all of a short one, the first of a long one."""
    if len(names) <= shown + 2:
        return ", ".join(names)
    return f"{', '.join(names[:shown])}, ... {len(names) - shown} more"


class RelabeledDataset(Dataset):
    """A dataset of ``(image, label)`` samples with the labels in the model's indices
    (:meth:`ClassMatch.relabel`)."""

    def __init__(self, dataset: Any, match: ClassMatch) -> None:
        self.dataset = dataset
        self.match = match

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        image, label = self.dataset[index]
        return image, self.match.relabel(label)
