"""A labelling tool's annotations can be read directly as a dataset, without importing them.
Set ``data.train: {name: labelme, root: ...}``; each sample's shapes are drawn when it is read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np

from fcnseg.data import io
from fcnseg.data.annotations.importer import (
    ImportOptions,
    background_aliases,
    band_raster,
    label_set_for,
    read_annotations,
    refuse_spelling_clash,
    refused_labels,
    resolve_image,
    unlisted_labels,
)
from fcnseg.data.annotations.shapes import AnnotatedImage, RasterOptions, printable, rasterise
from fcnseg.data.annotations.val_split import split_names
from fcnseg.data.band_images import BandImages
from fcnseg.data.base import SegmentationDataset, Transform
from fcnseg.data.errors import DataError
from fcnseg.data.folder import check_folder_fields
from fcnseg.data.images import ImageError, load_image
from fcnseg.data.io import read_image
from fcnseg.data.rasters import nodata_mask, open_raster, raster_info
from fcnseg.utils.typing import PathLike

#: Why a picture of bands no colour image holds is no sample of a dataset read directly.
_BANDS_PROBLEM = ("{bands} band(s) of {dtype}, which no RGB or grey picture holds: declare "
                  "them to read them as they are (bands: [{names}] in the dataset's spec, "
                  "beside root), or import them (fcnseg import {fmt} {src} --out DIR), which "
                  "declares them in DIR/dataset.yaml")


class AnnotationDataset(BandImages, SegmentationDataset):
    """The images of a labelme folder, COCO file, CVAT or Label Studio export (``fmt``: one of
    :data:`~fcnseg.data.annotations.importer.FORMATS`), their label maps drawn as ``fcnseg
    import`` draws them; ``split`` the images it would list in train or val (None: all).
    ``labels`` (labels.txt: labels not in it make their samples bad), ``overlap``,
    ``line_width``, ``crowd_as_ignore``, ``images``, ``val_fraction``, ``empty_as_background``
    and ``rename`` as ``fcnseg import`` takes them; ``bands``, ``rgb``, ``nodata`` as a folder
    dataset's ``dataset.yaml`` (without ``bands``, a band raster is refused in one line)."""

    def __init__(self, fmt: str, root: PathLike, split: str | None = None,
                 transform: Transform | None = None, *, labels: PathLike | None = None,
                 overlap: str = "top", line_width: float = 10.0,
                 images: PathLike | None = None, val_fraction: float = 0.2,
                 empty_as_background: bool = False, crowd_as_ignore: bool = False,
                 rename: Mapping[str, str] | None = None, bands: Sequence[str] | None = None,
                 rgb: Sequence[str] | None = None, nodata: float | None = None) -> None:
        super().__init__(transform)
        where = f"{fmt} dataset {printable(root)}"
        declared = check_folder_fields({"bands": bands, "rgb": rgb, "nodata": nodata}, where)
        self.set_bands(declared.get("bands"), declared.get("rgb"), declared.get("nodata"), where)
        if split not in (None, "train", "val"):
            raise ValueError(f"split: expected train or val for {fmt} annotations, got {split!r}")
        self.format, self.root, self.split = fmt, Path(root), split
        raster = RasterOptions(overlap, line_width, bool(crowd_as_ignore))
        self.options = ImportOptions(labels=Path(labels) if labels else None, raster=raster,
                                     images=Path(images) if images else None,
                                     val_fraction=val_fraction,
                                     empty_as_background=bool(empty_as_background),
                                     rename=dict(rename or {}))
        found = read_annotations(fmt, self.root, self.options.images, outcome="read",
                                 empty_as_background=bool(empty_as_background))
        found = found.renamed(self.options.rename)[0]
        self.labels = label_set_for(found, self.options)
        refuse_spelling_clash(found, self.options, self.labels, self.root)
        self.classes = tuple(self.labels.classes)
        self.coco_categories = {n: c for n, c in found.coco_categories.items() if n in self.classes}
        # What fcnseg import warns of, said of reading them (check-data says it too).
        self.warnings = [*found.problems,
                         *unlisted_labels(found, self.labels, self.options, {}, "read"),
                         *background_aliases(found, self.labels, self.root, outcome="read")]
        self.ignore_index = self.labels.ignore_index
        # as fcnseg import splits them: a video's frames all on one side
        splits = split_names((i.name for i in found.items), val_fraction).of
        self.items = [i for i in found.items if split is None or splits[i.name] == split]
        self.ids = [i.name for i in self.items]
        self.unannotated = found.unannotated

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.items[index]
        resolved = item.error or resolve_image(item)
        if isinstance(resolved, str):
            raise DataError(*resolved.split(": ", 1))
        picture, (height, width) = resolved
        image = self._read_picture(item, picture)
        label, problems = rasterise(item, self.labels, height, width, self.options.raster)
        if label is None:
            raise DataError(printable(item.source), "; ".join(
                p.split(": ", 1)[-1] for p in problems))
        missing = None if self.bands is None else nodata_mask(image, self.nodata)
        if missing is not None:
            label = np.where(missing, self.ignore_index, label)
        return image, label.astype(np.int64)

    def _read_picture(self, item: AnnotatedImage, picture: bytes | Path) -> np.ndarray:
        """The picture as RGB, or as its declared bands (H×W×N, as stored)."""
        if self.bands is not None:
            if not isinstance(picture, Path):
                raise DataError(printable(item.source), "an image embedded in the annotations "
                                "has no bands to read: declare no 'bands' for it")
            try:
                with open_raster(picture, bands=self.bands, max_pixels=io.MAX_PIXELS) as r:
                    return r.read_all()
            except ImageError as e:
                raise DataError(picture, e.problem) from None
        if band_raster(picture):
            info = raster_info(picture)
            names = list(info.band_names) if info.band_names and all(info.band_names) else \
                [f"band{k + 1}" for k in range(info.bands)]
            raise DataError(picture, _BANDS_PROBLEM.format(
                bands=info.bands, dtype=info.dtype, names=", ".join(names),
                fmt=self.format.replace("_", "-"), src=printable(self.root)))
        if isinstance(picture, Path):
            return read_image(picture)
        try:
            return load_image(BytesIO(picture))
        except ImageError as e:
            raise DataError(printable(item.source),
                            f"unreadable embedded image: {e.problem}") from None

    def image_path(self, index: int) -> Path:
        """The picture file of sample ``index`` (its annotation file when it is embedded)."""
        item = self.items[index]
        return item.image_path if item.image_path is not None else item.source

    def bands_declaration(self, names: Sequence[str]) -> tuple[str, str]:
        """Where this dataset declares ``names`` as its bands, for messages: its spec's
        ``bands`` field (it has no ``dataset.yaml``), as the commands spell it."""
        listed = f"[{', '.join(names)}]"
        return "the dataset's spec (beside its root)", (
            f"`bands: {listed}` (fcnseg check-data or evaluate: --data 'bands={listed}'; "
            f"fcnseg train: --set data.train.bands={listed} data.val.bands={listed})")

    @property
    def split_rule(self) -> str:
        """How the annotations' images are split, for messages about a split."""
        return (f"{self.format} annotations read directly put about "
                f"{self.options.val_fraction:.0%} of their images, chosen by a hash of each "
                f"name (of the video, for the frames of several videos), in 'val' and the "
                f"others in 'train' (val_fraction sets the share: "
                f"--data val_fraction=0.5)")

    def refused_labels(self) -> tuple[dict[str, str], list[str]]:
        """With a labels file: each sample using a label it lacks (by name, its problem), and
        one line per such label, as ``fcnseg import`` says (:func:`refused_labels`)."""
        return refused_labels(self.items, self.labels, self.options,
                              outcome="those images would not be imported")

    def __repr__(self) -> str:
        return (f"AnnotationDataset({self.format}, {self.root}, split={self.split!r}, "
                f"{len(self)} images)")
