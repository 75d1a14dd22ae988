"""Batching samples of different sizes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["collate_segmentation"]


def collate_segmentation(
    batch: Sequence[tuple[Any, Any]], ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, label) pairs of possibly different sizes into one batch.

    Images (3×H×W tensors) are padded bottom/right with 0 and labels (H×W) with ``ignore_index``
    to the largest height and width in the batch, giving (N×3×H×W float32, N×H×W int64). Use
    ``functools.partial(collate_segmentation, ignore_index=...)`` as a DataLoader ``collate_fn``
    for another ignore value.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    images = [torch.as_tensor(np.asarray(im) if not torch.is_tensor(im) else im)
              for im, _ in batch]
    labels = [torch.as_tensor(np.asarray(lb) if not torch.is_tensor(lb) else lb)
              for _, lb in batch]
    for i, (im, lb) in enumerate(zip(images, labels, strict=True)):
        if im.dim() != 3 or lb.dim() != 2 or im.shape[-2:] != lb.shape:
            raise ValueError(
                f"sample {i}: expected a 3×H×W image and an H×W label of the same size, got "
                f"{tuple(im.shape)} and {tuple(lb.shape)} (apply Normalize before batching)"
            )
    h = max(im.shape[-2] for im in images)
    w = max(im.shape[-1] for im in images)
    c = images[0].shape[0]
    out_images = torch.zeros((len(batch), c, h, w), dtype=torch.float32)
    out_labels = torch.full((len(batch), h, w), ignore_index, dtype=torch.int64)
    for i, (im, lb) in enumerate(zip(images, labels, strict=True)):
        out_images[i, :, : im.shape[-2], : im.shape[-1]] = im
        out_labels[i, : lb.shape[0], : lb.shape[1]] = lb
    return out_images, out_labels
