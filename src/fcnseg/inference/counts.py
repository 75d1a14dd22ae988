"""``fcnseg predict --counts``: the pixels of each class in each image, one CSV row an image."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fcnseg.data.rasters import open_raster
from fcnseg.inference.segmenter import Prediction
from fcnseg.utils.files import atomic_write_bytes

#: The column of the pixels in no class (255: without data, or left out by an ignore mask).
NO_DATA = "(no data)"


class ClassCounts:
    """The rows of a counts CSV (``path``, each class's pixels by name, :data:`NO_DATA`) by input
    path: those the file holds (a stopped run's), replaced by this run's (:meth:`add`, safe in
    writer threads), written whole in input order (:meth:`write`): no row ever twice."""

    def __init__(self, path: Path, class_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.header = ["path", *class_names, NO_DATA]
        if self.path.is_dir():  # refused now, not once every image is segmented
            raise ValueError(f"--counts {self.path}: a folder; name a CSV file")
        rows: list[list[str]] = []
        if self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        if rows and rows[0] != self.header:
            raise ValueError(f"--counts {self.path}: its columns ({', '.join(rows[0][1:])}) "
                             f"are not this model's classes; name another file")
        self.rows = {row[0]: row for row in rows[1:] if row}  # blank lines: none

    def add(self, path: Path, name: str, pred: Prediction) -> None:
        """The row of ``path``, whose prediction is ``pred``."""
        counts = pred.class_pixel_counts()
        self.rows[str(path)] = [str(path), *map(str, counts.values()),
                                str(pred.label.size - sum(counts.values()))]

    def add_raster(self, path: Path, label: Path) -> None:
        """The row of ``path``, segmented by tiles into the label raster ``label`` (read by
        windows of its blocks: never whole); its pixels of no class (255) are no data."""
        classes = len(self.header) - 2
        pixels = label_raster_counts(label)
        self.rows[str(path)] = [str(path), *map(str, pixels[:classes]),
                                str(pixels[classes:].sum())]

    def write(self, inputs: Sequence[Path]) -> None:
        """The file, atomically: rows of earlier inputs not among ``inputs``, then those of
        ``inputs`` in order (one that failed or was not reached has none)."""
        given = {str(path): None for path in inputs}
        order = [p for p in self.rows if p not in given] + list(given)
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerows([self.header, *(self.rows[p] for p in order if p in self.rows)])
        atomic_write_bytes(self.path, text.getvalue().encode("utf-8"))


#: Pixels of a label raster counted at a time, about (windows of whole blocks).
_WINDOW_PIXELS = 1 << 22


def label_raster_counts(path: Path) -> np.ndarray:
    """The pixels of each value 0-255 in the label raster ``path``, read a window of whole
    blocks at a time (a row of them, or part of one: np.bincount takes 8 bytes a pixel)."""
    counts = np.zeros(256, np.int64)
    with open_raster(path) as reader:
        height, width = reader.info.height, reader.info.width
        rows, cols = reader.block_shape() or (1, width)
        step = max(1, _WINDOW_PIXELS // (rows * cols)) * cols
        for row, col in itertools.product(range(0, height, rows), range(0, width, step)):
            window = reader.read(row, col, min(rows, height - row), min(step, width - col))
            counts += np.bincount(window.reshape(-1), minlength=256)
    return counts
