"""PASCAL VOC class names and the VOC colour palette."""

from __future__ import annotations

import colorsys
import itertools
from collections.abc import Iterator, Sequence

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor")

#: Label value of void pixels (object borders, unlabelled regions): ignored by loss and metrics.
VOC_IGNORE_INDEX = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC palette as an n×3 uint8 array: for j in 0..7, bits 0, 1, 2 of ``c >> 3j`` go
    to bit ``7 - j`` of class c's red, green and blue. Entry 255 (void) is (224, 224, 192)."""
    c = np.arange(n)
    pal = np.zeros((n, 3), dtype=np.int64)
    for j in range(8):
        for channel in range(3):
            pal[:, channel] |= ((c >> (3 * j + channel)) & 1) << (7 - j)
    return pal.astype(np.uint8)


def palette_for(num_classes: int, ignore_index: int | None = VOC_IGNORE_INDEX) -> np.ndarray:
    """A 256×3 palette: VOC colours for the classes, and the VOC void colour at ``ignore_index``."""
    pal = voc_palette(256)
    if ignore_index is not None and 0 <= ignore_index < 256 and ignore_index >= num_classes:
        pal[ignore_index] = (224, 224, 192)
    return pal


#: Class names (compared case-insensitively, surrounding underscores ignored) that mean
#: "nothing here": black in a distinct palette, left as the photo in overlays.
BACKGROUND_NAMES = frozenset({"background", "void", "bg", "unlabeled", "unlabelled", "none"})

#: Twenty colours chosen to stay apart from each other, also blended over a photo (Sasha
#: Trubetskoy's list of distinct colours), in the order classes take them.
DISTINCT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)


def background_indices(class_names: Sequence[str], declared: str | None = None) -> list[int]:
    """The background classes: the one ``declared`` (dataset.yaml ``background:``), else those
    named so (:data:`BACKGROUND_NAMES`); never by position (class 0 may be the sky)."""
    names = [str(n) for n in class_names]
    if declared is not None and str(declared) in names:
        return [names.index(str(declared))]
    return [i for i, n in enumerate(names) if n.strip().strip("_").lower() in BACKGROUND_NAMES]


def distinct_palette(class_names: Sequence[str], ignore_index: int | None = VOC_IGNORE_INDEX,
                     background: str | None = None) -> np.ndarray:
    """A 256×3 palette for classes without colours: background black, the others
    :data:`DISTINCT_COLOURS` in turn (then hues a golden angle apart), VOC void at
    ``ignore_index``."""
    pal = palette_for(len(class_names), ignore_index)
    back = set(background_indices(class_names, background))
    colours = _distinct_colours()
    for k in range(min(len(class_names), 256)):
        pal[k] = (0, 0, 0) if k in back else next(colours)
    return pal


def dataset_palette(class_names: Sequence[str], ignore_index: int | None = VOC_IGNORE_INDEX,
                    background: str | None = None) -> np.ndarray:
    """The 256×3 palette of a dataset's classes (trained or converted model alike): VOC's for
    the VOC classes, else :func:`distinct_palette`."""
    if tuple(class_names) == VOC_CLASSES:
        return palette_for(len(class_names), ignore_index)
    return distinct_palette(class_names, ignore_index, background)


def _distinct_colours() -> Iterator[tuple[int, ...]]:
    yield from DISTINCT_COLOURS
    for k in itertools.count():  # then hues a golden angle apart, two saturations and values
        rgb = colorsys.hsv_to_rgb((0.07 + 0.618034 * k) % 1.0, 0.95 if k % 2 else 0.6,
                                  0.75 if (k // 2) % 2 else 0.95)
        yield tuple(round(255 * c) for c in rgb)


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
