"""NYUDv2 (Silberman et al. 2012) with the 40-class task of Gupta et al. (CVPR 2013): RGB-D.

On disk (the layout of the FCN reference's ``nyud`` folder)::

    ROOT/{train,val,test}.txt                 ids, one per line (795 train, 654 test)
    ROOT/data/images/img_<id>.png             colour
    ROOT/data/hha/img_<id>.png                HHA: 3 channels (disparity, height, angle)
    ROOT/data/depth/img_<id>.png              depth, 16-bit, millimetres (0 unknown)
    ROOT/segmentation/img_<id>.mat            field ``segmentation``: 0 void, 1-40 classes

``dataset[i]`` is ``(inputs, label)``: a dict keyed by modality, in the order asked for
(``{"color": H×W×3 uint8 RGB, "hha": H×W×3 uint8, "depth": H×W float32 raw depth}``), and
classes 0-39 with 255 for void (the stored values minus 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.conventions import NYUD_BGR
from fcnseg.data.base import FileSegmentationDataset, Transform, check_same_size
from fcnseg.data.errors import DataError
from fcnseg.data.io import read_image, read_mat_label, read_raw, void_first
from fcnseg.data.layout import find_dataset_dir, read_split
from fcnseg.data.modalities import modality_problem
from fcnseg.utils.typing import PathLike

#: The 40 classes of Gupta et al., in model output order.
NYUD_CLASSES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop",
)

#: The input modalities and the folder under ``data/`` that holds each.
NYUD_MODALITIES: dict[str, str] = {"color": "images", "hha": "hha", "depth": "depth"}


def find_nyud_dir(root: PathLike) -> Path:
    """Locate the NYUDv2 folder (``data/`` and ``segmentation/``) given it or its parent."""
    return find_dataset_dir(
        root, [".", "nyud"], lambda c: (c / "data").is_dir() and (c / "segmentation").is_dir(),
        what="NYUDv2 data", looked_for="data/ and segmentation/",
        advice=" (fcnseg.data.download_nyud fetches it)")


class NYUDv2(FileSegmentationDataset):
    """NYUDv2, 40 classes, 255 = void, from ``root`` (the NYUDv2 folder or the one holding
    ``nyud``); ``split`` "train", "val" or "test"; ``modalities`` the inputs of each sample, in
    this order: any of "color", "hha", "depth" (``transform`` receives their dict)."""

    classes = NYUD_CLASSES
    ignore_index = 255
    input_convention = NYUD_BGR

    def __init__(self, root: PathLike, split: str = "train",
                 modalities: Sequence[str] = ("color",),
                 transform: Transform | None = None) -> None:
        super().__init__(transform)
        modalities = (modalities,) if isinstance(modalities, str) else tuple(modalities)
        unknown = [m for m in modalities if m not in NYUD_MODALITIES]
        if not modalities or unknown or len(set(modalities)) != len(modalities):
            raise ValueError(f"modalities: expected distinct names among "
                             f"{', '.join(NYUD_MODALITIES)}, got {list(modalities)}")
        self.modalities = modalities
        self.split = split
        self.dir = find_nyud_dir(root)
        self.ids = read_split(self.dir / f"{split}.txt", split, dataset="NYUDv2")

    def input_path(self, index: int, modality: str) -> Path:
        """The file of one input of sample ``index``."""
        return self.dir / "data" / NYUD_MODALITIES[modality] / f"img_{self.ids[index]}.png"

    def image_path(self, index: int) -> Path:
        return self.input_path(index, self.modalities[0])

    def label_path(self, index: int) -> Path:
        return self.dir / "segmentation" / f"img_{self.ids[index]}.mat"

    def read_input(self, index: int, modality: str) -> np.ndarray:
        """One input, untransformed: H×W×3 uint8 (color, hha) or H×W float32 depth (HHA and
        depth as stored, checked by :func:`~fcnseg.data.modalities.modality_problem`)."""
        path = self.input_path(index, modality)
        if modality == "color":
            return read_image(path)
        values = read_raw(path, f"{modality} image")
        problem = modality_problem(modality, values)
        if problem:
            raise DataError(path, problem)
        if modality == "depth":
            return values.astype(np.float32)
        return values if values.flags.writeable else values.copy()  # transforms write in place

    def read_label(self, index: int) -> np.ndarray:
        path = self.label_path(index)
        return void_first(path, read_mat_label(path, "segmentation"), len(self.classes),
                          self.ignore_index)

    def load(self, index: int) -> tuple[dict[str, Any], np.ndarray]:  # type: ignore[override]
        label = self.read_label(index)
        inputs = {m: self.read_input(index, m) for m in self.modalities}
        for m, x in inputs.items():
            check_same_size(self.input_path(index, m), f"{m} input", x.shape, "label",
                            self.label_path(index), label.shape)
        return inputs, label

    def __repr__(self) -> str:
        return (f"NYUDv2({self.dir}, split={self.split!r}, modalities={list(self.modalities)}, "
                f"{len(self)} images)")
