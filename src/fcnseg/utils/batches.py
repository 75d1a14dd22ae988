"""Batches as the package passes them: a tensor at the public edges, a dict inside.

A batch of inputs is ``{modality: N×c×H×W}`` and a model's output ``{head: N×C×H×W}``; a model
with one input and one head also takes and returns a plain tensor. :func:`keyed` reads either as
a dict, :func:`to_device` moves either, :func:`same_size_batches` groups inputs of one size.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import torch

__all__ = ["first", "keyed", "same_size_batches", "to_device", "unkeyed"]


def keyed(x: Any, key: str = "out") -> dict[str, Any]:
    """``x`` as a dict: a dict as it is, anything else as ``{key: x}``."""
    return x if isinstance(x, dict) else {key: x}


def unkeyed(x: dict[str, Any], key: str = "out") -> Any:
    """The inverse of :func:`keyed`: ``{key: v}`` alone gives ``v``, any other dict itself."""
    return x[key] if len(x) == 1 and key in x else x


def first(x: Any) -> torch.Tensor:
    """The tensor of a batch, or the first one of a dict (they share N, H and W)."""
    return next(iter(keyed(x).values()))


def to_device(x: Any, device: torch.device | str, *, channels_last: bool = False) -> Any:
    """A tensor, or each tensor of a dict (inputs per modality, labels per head), on ``device``
    (asynchronously where the source is pinned); 4-d tensors channels-last when asked."""
    if isinstance(x, dict):
        return {k: to_device(v, device, channels_last=channels_last) for k, v in x.items()}
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def same_size_batches(sizes: Sequence[Hashable], batch_size: int,
                      indices: Iterable[int] | None = None) -> list[list[int]]:
    """Batches of at most ``batch_size`` of ``indices`` (default: all of ``sizes``), each of
    items of one size (``sizes[i]``), sizes in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for i in range(len(sizes)) if indices is None else indices:
        groups.setdefault(sizes[i], []).append(i)
    step = max(1, batch_size)
    return [g[k:k + step] for g in groups.values() for k in range(0, len(g), step)]
