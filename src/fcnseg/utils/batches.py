"""A batch is a tensor, or ``{modality: N×c×H×W}`` inputs and ``{head: N×H×W}`` labels.
Both are read through :mod:`fcnseg.utils.keyed`."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import torch

from fcnseg.utils.keyed import keyed, unkeyed


def to_device(x: Any, device: torch.device | str, *, channels_last: bool = False) -> Any:
    """A tensor, or each tensor of a dict (inputs per modality, labels per head), on ``device``
    (asynchronously where the source is pinned); 4-d tensors channels-last when asked."""
    moved = {}
    for name, t in keyed(x).items():
        t = t.to(device, non_blocking=True)
        if channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        moved[name] = t
    return unkeyed(moved)


def same_size_batches(sizes: Sequence[Hashable], batch_size: int,
                      indices: Iterable[int] | None = None) -> list[list[int]]:
    """Batches of at most ``batch_size`` of ``indices`` (default: all of ``sizes``), each of
    items of one size (``sizes[i]``), sizes in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for i in range(len(sizes)) if indices is None else indices:
        groups.setdefault(sizes[i], []).append(i)
    step = max(1, batch_size)
    return [g[k:k + step] for g in groups.values() for k in range(0, len(g), step)]
