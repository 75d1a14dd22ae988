"""PASCAL VOC segmentation (2007, 2011, 2012 layouts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.io import benchmark_advice
from fcnseg.data.layout import find_dataset_dir, read_split, read_utf8, say_once
from fcnseg.data.palette import VOC_CLASSES, VOC_IGNORE_INDEX, distinct_palette
from fcnseg.utils.typing import PathLike


def find_voc_dir(root: PathLike, year: str) -> Path:
    """Locate ``VOC<year>`` given it, ``VOCdevkit`` or the folder holding ``VOCdevkit`` (or
    ``TrainVal/VOCdevkit``, where the VOC2011 archive extracts)."""
    root = Path(root).expanduser()
    places = [".", f"VOC{year}", f"VOCdevkit/VOC{year}", f"TrainVal/VOCdevkit/VOC{year}"]
    beside = root.parent / "TrainVal" / "VOCdevkit" / f"VOC{year}"
    found = find_dataset_dir(
        root, places, _looks_like_voc,
        what=f"VOC{year} segmentation data",
        looked_for="JPEGImages with ImageSets/Segmentation or SegmentationClass",
        advice=(f". It is in {beside}: pass {root.parent}." if _looks_like_voc(beside) else
                f". Pass the folder download_voc extracted into (its TrainVal/VOCdevkit/"
                f"VOC{year} or VOCdevkit/VOC{year}), VOCdevkit itself or VOC{year} "
                f"(fcnseg.data.download_voc fetches it)."),
    )
    if found == root and root.name.startswith("VOC") and root.name != f"VOC{year}":
        raise ValueError(f"{root} is a {root.name} folder, but year={year!r} was asked for")
    return found


def _looks_like_voc(folder: Path) -> bool:
    return (folder / "JPEGImages").is_dir() and ((folder / "ImageSets" / "Segmentation").is_dir()
                                                 or (folder / "SegmentationClass").is_dir())


class VOCSegmentation(FileSegmentationDataset):
    """PASCAL VOC semantic segmentation: 21 classes, 255 = void.

    Labels are the indices of ``SegmentationClass``'s palette PNGs. ``root``: the folder
    holding ``VOCdevkit``, ``VOCdevkit`` or ``VOC<year>``; ``split``: a list in
    ``ImageSets/Segmentation``, or ``ids`` (seg11valid). A folder without ``ImageSets``
    (labelme's VOC export) uses every image with a mask, saying so once, and the classes of
    its ``class_names.txt``.
    """

    classes = VOC_CLASSES
    mask_advice = benchmark_advice(
        "VOC's SegmentationClass masks are palette PNGs of class indices, 255 for void")
    ignore_index = VOC_IGNORE_INDEX

    def __init__(self, root: PathLike, year: str = "2012", split: str = "train",
                 transform: Transform | None = None, *,
                 ids: Sequence[str] | None = None) -> None:
        super().__init__(transform)
        self.year = str(year)
        self.split = split
        self.dir = find_voc_dir(root, self.year)
        self.image_dir = self.dir / "JPEGImages"
        self.label_dir = self.dir / "SegmentationClass"
        names = self.dir / "class_names.txt"
        if names.is_file():  # labelme's export: "__ignore__" (255 in the masks) is no class
            listed = [n.strip() for n in read_utf8(names, "class list").splitlines()]
            self.classes = tuple(n for n in listed if n and n != "__ignore__")
            self.palette = distinct_palette(self.classes, self.ignore_index)
        if ids is None:
            if (self.dir / "ImageSets" / "Segmentation").is_dir():
                ids = read_split(self.dir / "ImageSets" / "Segmentation" / f"{split}.txt",
                                 split, dataset=f"VOC{self.year}", kind="segmentation split")
            else:
                ids = self._every_annotated_image()
        self.ids = list(ids)

    def _every_annotated_image(self) -> list[str]:
        """The ids of every JPEGImages image with a SegmentationClass mask (no split lists)."""
        masks = {p.stem for p in self.label_dir.glob("*.png")} if self.label_dir.is_dir() else set()
        ids = sorted(p.stem for p in self.image_dir.glob("*.jpg") if p.stem in masks)
        if not ids:
            raise FileNotFoundError(f"{self.dir}: no JPEGImages/*.jpg with a mask in "
                                    f"SegmentationClass/*.png")
        say_once(f"{self.dir} has no split lists (ImageSets/Segmentation): every one of its "
                 f"{len(ids)} annotated images is used, for training and validation alike; "
                 f"add ImageSets/Segmentation/train.txt and val.txt to split them")
        return ids

