"""Batching samples of different sizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from fcnseg.data.modalities import COLOR, pad_values
from fcnseg.utils.keyed import first_of, keyed, unkeyed


def _as_dict(x: Any) -> dict[str | None, torch.Tensor]:
    return {k: v if torch.is_tensor(v) else torch.as_tensor(np.asarray(v))
            for k, v in keyed(x).items()}


def collate_segmentation(batch: Sequence[tuple[Any, Any]], ignore_index: int = 255,
                         fill: Mapping[str, float | Sequence[float]] | None = None, *,
                         channels_last: bool = False) -> tuple[Any, Any]:
    """Stack (image, label) pairs of possibly different sizes into one batch.

    Images (3×H×W raw pixels) are padded bottom/right with ``fill`` (by modality; pass the
    dataset's ``pad_values``) and labels (H×W) with ``ignore_index`` to the batch's largest
    size: (N×3×H×W float32, N×H×W int64). ``channels_last=True`` lays images out channels-last
    (one copy of each sample, not two). Dicts are batched key by key: every sample with the
    same keys, and one H×W for a sample's inputs and label maps. A ``collate_fn`` by
    ``functools.partial``.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    samples = [(_as_dict(im), _as_dict(lb)) for im, lb in batch]
    first_images, first_labels = samples[0]
    _check_samples(samples)
    sizes = [first_of(labels).shape for _, labels in samples]
    h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
    n = len(batch)
    fills = dict(pad_values() if fill is None else fill)
    # Samples of the batch's full size are written over every value: no fill to write first.
    padded = any(s != (h, w) for s in sizes)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out_images = {key: _batch((n, im.shape[0], h, w), fills.get(key or COLOR, 0.0) if padded
                              else None, layout)
                  for key, im in first_images.items()}
    out_labels = {key: torch.full((n, h, w), ignore_index, dtype=torch.int64) if padded
                  else torch.empty((n, h, w), dtype=torch.int64)
                  for key in first_labels}
    for i, (images, labels) in enumerate(samples):
        for key, im in images.items():
            if im.shape[0] != out_images[key].shape[1]:
                raise ValueError(f"sample {i}: {_what('image', key)} has {im.shape[0]} channels, "
                                 f"sample 0's has {out_images[key].shape[1]}")
            out_images[key][i, :, : im.shape[-2], : im.shape[-1]] = im
        for key, lb in labels.items():
            out_labels[key][i, : lb.shape[0], : lb.shape[1]] = lb
    return unkeyed(out_images), unkeyed(out_labels)


def _check_samples(samples: Sequence[tuple[dict, dict]]) -> None:
    """A ValueError naming the first sample without sample 0's keys, or with inputs and labels
    other than C×H×W and H×W of one size."""
    first_images, first_labels = samples[0]
    for i, (images, labels) in enumerate(samples):
        if list(images) != list(first_images) or list(labels) != list(first_labels):
            raise ValueError(f"sample {i}: its inputs {list(images)} and labels {list(labels)} "
                             f"differ from sample 0's ({list(first_images)}, {list(first_labels)})")
        size = first_of(labels).shape
        for key, im in images.items():
            if im.dim() != 3 or im.shape[-2:] != size:
                raise ValueError(f"sample {i}: expected a C×H×W {_what('image', key)} of its "
                                 f"label's size {tuple(size)}, got {tuple(im.shape)} (apply "
                                 f"ToTensor before batching)")
        for key, lb in labels.items():
            if lb.dim() != 2 or lb.shape != size:
                raise ValueError(f"sample {i}: expected an H×W {_what('label', key)} of size "
                                 f"{tuple(size)}, got {tuple(lb.shape)}")


def _batch(shape: tuple[int, int, int, int], value: float | Sequence[float] | None,
           layout: torch.memory_format) -> torch.Tensor:
    """An N×C×H×W float32 batch in ``layout`` filled with ``value`` (one, or one per channel;
    None: unfilled)."""
    out = torch.empty(shape, dtype=torch.float32, memory_format=layout)
    if value is not None:
        v = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
        if v.numel() != shape[1]:
            v = v[:1]
        out.copy_(v.view(1, -1, 1, 1).expand(shape))
    return out


def _what(kind: str, key: str | None) -> str:
    return kind if key is None else f"{kind} {key!r}"
