"""Annotations of a labelling tool read directly as a dataset, without importing them first
(``data.train: {name: labelme, root: ...}``): each sample's shapes are drawn when it is read."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fcnseg.data.annotations.importer import (
    ImportOptions,
    band_raster,
    label_set_for,
    read_annotations,
    refused_labels,
    resolve_image,
    spelling_clash,
    split_of,
)
from fcnseg.data.annotations.shapes import RasterOptions, printable, rasterise
from fcnseg.data.base import SegmentationDataset, Transform
from fcnseg.data.errors import DataError
from fcnseg.data.images import ImageError, load_image
from fcnseg.data.io import read_image
from fcnseg.data.rasters import raster_info
from fcnseg.utils.typing import PathLike

#: Why a picture of bands no colour image holds is no sample of a dataset read directly.
_BANDS_PROBLEM = ("{bands} band(s) of {dtype}, but annotations read directly give RGB or "
                  "grey pictures: import them (fcnseg import {fmt} {src} --out DIR), which "
                  "copies the pictures as they are and declares their bands in "
                  "DIR/dataset.yaml, and train on DIR")


class AnnotationDataset(SegmentationDataset):
    """The images of a labelme folder, COCO file, CVAT export or Label Studio export, with
    label maps drawn from their shapes as ``fcnseg import`` draws them.

    Args:
        fmt: ``labelme``, ``coco``, ``cvat-mask``, ``cvat`` or ``labelstudio``.
        root: the annotations (as ``fcnseg import`` takes them).
        split: ``train`` or ``val`` (the images ``fcnseg import`` would list there, by a hash
            of the name), or None for all.
        labels: labelme's labels.txt; labels not in it make their samples bad.
        overlap, line_width: as :class:`RasterOptions`.
        images: where the pictures are when not where the format says.
        val_fraction: the share of images in ``val``.
        empty_as_background: the images a CVAT or COCO export lists without any shape are
            samples, all background (else left out as not yet annotated), as
            ``fcnseg import --empty-as-background``.
        crowd_as_ignore: COCO ``iscrowd`` regions are ignored (else their class), as
            ``fcnseg import --crowd-as-ignore``.
        rename: label names to the names they are read as, as ``fcnseg import --rename``;
            names that differ only in case or surrounding spaces are refused (ValueError).
    """

    def __init__(self, fmt: str, root: PathLike, split: str | None = None,
                 transform: Transform | None = None, *, labels: PathLike | None = None,
                 overlap: str = "top", line_width: float = 10.0,
                 images: PathLike | None = None, val_fraction: float = 0.2,
                 empty_as_background: bool = False, crowd_as_ignore: bool = False,
                 rename: Mapping[str, str] | None = None) -> None:
        super().__init__(transform)
        if split not in (None, "train", "val"):
            raise ValueError(f"split: expected train or val for {fmt} annotations, got {split!r}")
        self.format, self.root, self.split = fmt, Path(root), split
        self.options = ImportOptions(labels=Path(labels) if labels else None,
                                     raster=RasterOptions(overlap, line_width,
                                                          bool(crowd_as_ignore)),
                                     images=Path(images) if images else None,
                                     val_fraction=val_fraction,
                                     empty_as_background=bool(empty_as_background),
                                     rename=dict(rename or {}))
        found = read_annotations(fmt, self.root, self.options.images,
                                 empty_as_background=bool(empty_as_background))
        found = found.renamed(self.options.rename)[0]
        self.labels = label_set_for(found, self.options)
        clash = spelling_clash(found, self.options, self.labels, self.root)
        if clash:
            raise ValueError(clash)
        self.classes = tuple(self.labels.classes)
        self.ignore_index = self.labels.ignore_index
        self.items = [i for i in found.items
                      if split is None or split_of(i.name, val_fraction) == split]
        self.ids = [i.name for i in self.items]
        self.unannotated = found.unannotated

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.items[index]
        resolved = item.error or resolve_image(item)
        if isinstance(resolved, str):
            raise DataError(*resolved.split(": ", 1))
        picture, (height, width) = resolved
        if band_raster(picture):
            info = raster_info(picture)
            raise DataError(picture, _BANDS_PROBLEM.format(
                bands=info.bands, dtype=info.dtype, fmt=self.format.replace("_", "-"),
                src=printable(self.root)))
        if isinstance(picture, Path):
            image = read_image(picture)
        else:
            try:
                image = load_image(io.BytesIO(picture))
            except ImageError as e:
                raise DataError(printable(item.source),
                                f"unreadable embedded image: {e.problem}") from None
        label, problems = rasterise(item, self.labels, height, width, self.options.raster)
        if label is None:
            raise DataError(printable(item.source), "; ".join(
                p.split(": ", 1)[-1] for p in problems))
        return image, label.astype(np.int64)

    def refused_labels(self) -> tuple[dict[str, str], list[str]]:
        """With a labels file: each sample using a label it lacks (by name, its problem), and
        one line per such label with its count and closest class, as ``fcnseg import`` says."""
        return refused_labels(self.items, self.labels, self.options,
                              outcome="those images would not be imported")

    def __repr__(self) -> str:
        return (f"AnnotationDataset({self.format}, {self.root}, split={self.split!r}, "
                f"{len(self)} images)")
