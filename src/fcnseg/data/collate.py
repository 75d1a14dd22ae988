"""Batching samples of different sizes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["collate_segmentation"]


def _tensor(x: Any) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))


def _as_dict(x: Any) -> tuple[dict[str | None, torch.Tensor], bool]:
    if isinstance(x, Mapping):
        return {k: _tensor(v) for k, v in x.items()}, True
    return {None: _tensor(x)}, False


def collate_segmentation(
    batch: Sequence[tuple[Any, Any]], ignore_index: int = 255
) -> tuple[Any, Any]:
    """Stack (image, label) pairs of possibly different sizes into one batch.

    Images (3×H×W tensors) are padded bottom/right with 0 and labels (H×W) with ``ignore_index``
    to the largest height and width in the batch, giving (N×3×H×W float32, N×H×W int64). Use
    ``functools.partial(collate_segmentation, ignore_index=...)`` as a DataLoader ``collate_fn``
    for another ignore value.

    Dicts are batched key by key: inputs ``{modality: C×H×W}`` become ``{modality: N×C×H×W}``
    and labels ``{head: H×W}`` become ``{head: N×H×W}``. Every sample must have the same keys,
    and all of one sample's inputs and label maps the same H×W.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    samples = [(_as_dict(im), _as_dict(lb)) for im, lb in batch]
    (first_images, images_are_dict), (first_labels, labels_are_dict) = samples[0]
    for i, ((images, im_dict), (labels, lb_dict)) in enumerate(samples):
        if (im_dict, lb_dict) != (images_are_dict, labels_are_dict) or \
                list(images) != list(first_images) or list(labels) != list(first_labels):
            raise ValueError(
                f"sample {i}: its inputs {list(images)} and labels {list(labels)} differ from "
                f"sample 0's ({list(first_images)}, {list(first_labels)})"
            )
        size = next(iter(labels.values())).shape
        for key, im in images.items():
            if im.dim() != 3 or im.shape[-2:] != size:
                raise ValueError(
                    f"sample {i}: expected a C×H×W {_what('image', key)} of its label's size "
                    f"{tuple(size)}, got {tuple(im.shape)} (apply Normalize before batching)"
                )
        for key, lb in labels.items():
            if lb.dim() != 2 or lb.shape != size:
                raise ValueError(
                    f"sample {i}: expected an H×W {_what('label', key)} of size {tuple(size)}, "
                    f"got {tuple(lb.shape)}"
                )
    h = max(next(iter(lbs.values())).shape[0] for _, (lbs, _) in samples)
    w = max(next(iter(lbs.values())).shape[1] for _, (lbs, _) in samples)
    n = len(batch)
    out_images = {key: torch.zeros((n, im.shape[0], h, w), dtype=torch.float32)
                  for key, im in first_images.items()}
    out_labels = {key: torch.full((n, h, w), ignore_index, dtype=torch.int64)
                  for key in first_labels}
    for i, ((images, _), (labels, _)) in enumerate(samples):
        for key, im in images.items():
            if im.shape[0] != out_images[key].shape[1]:
                raise ValueError(f"sample {i}: {_what('image', key)} has {im.shape[0]} channels, "
                                 f"sample 0's has {out_images[key].shape[1]}")
            out_images[key][i, :, : im.shape[-2], : im.shape[-1]] = im
        for key, lb in labels.items():
            out_labels[key][i, : lb.shape[0], : lb.shape[1]] = lb
    return (out_images if images_are_dict else out_images[None],
            out_labels if labels_are_dict else out_labels[None])


def _what(kind: str, key: str | None) -> str:
    return kind if key is None else f"{kind} {key!r}"
