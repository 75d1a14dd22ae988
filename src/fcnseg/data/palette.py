"""PASCAL VOC class names and the VOC colour palette."""

from __future__ import annotations

import numpy as np

__all__ = ["VOC_CLASSES", "VOC_IGNORE_INDEX", "colorize", "palette_for", "voc_palette"]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

#: Label value of void pixels (object borders, unlabelled regions): ignored by loss and metrics.
VOC_IGNORE_INDEX = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC palette as an n×3 uint8 array.

    Class c gets its colour by bit interleaving: for j in 0..7, bits 0, 1, 2 of ``c >> 3j`` go to
    bit ``7 - j`` of red, green and blue. Entry 255 (void) is (224, 224, 192).
    """
    pal = np.zeros((n, 3), dtype=np.uint8)
    for c in range(n):
        r = g = b = 0
        v = c
        for j in range(8):
            r |= ((v >> 0) & 1) << (7 - j)
            g |= ((v >> 1) & 1) << (7 - j)
            b |= ((v >> 2) & 1) << (7 - j)
            v >>= 3
        pal[c] = (r, g, b)
    return pal


def palette_for(num_classes: int, ignore_index: int | None = VOC_IGNORE_INDEX) -> np.ndarray:
    """A 256×3 palette: VOC colours for the classes, and the VOC void colour at ``ignore_index``."""
    pal = voc_palette(256)
    if ignore_index is not None and 0 <= ignore_index < 256 and ignore_index >= num_classes:
        pal[ignore_index] = (224, 224, 192)
    return pal


def colorize(label: np.ndarray, palette: np.ndarray | list) -> np.ndarray:
    """Map an H×W label array to an H×W×3 uint8 colour image through ``palette``."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    p = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
    pal[: len(p)] = p
    label = np.asarray(label)
    if label.dtype != np.uint8:
        label = label.astype(np.int64).clip(0, 255)
    # np.take gathers rows several times faster than indexing pal[label] does.
    return np.take(pal, label, axis=0)
