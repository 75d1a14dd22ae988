"""ADE20K SceneParsing (Zhou et al. 2017), the 150-class benchmark (ADEChallengeData2016).

On disk, as ADEChallengeData2016.zip unpacks::

    ROOT/images/{training,validation}/ADE_train_00000001.jpg
    ROOT/annotations/{training,validation}/ADE_train_00000001.png

The PNGs hold 1-150 for the classes and 0 for "other": class k is value k + 1, and 0 becomes
255, ignored. Splits are named ``train`` and ``val`` (``training`` and ``validation`` on disk).
Colours: the VOC palette.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.io import check_label_values, read_label
from fcnseg.data.layout import find_dataset_dir
from fcnseg.utils.typing import PathLike

__all__ = ["ADE20K", "ADE20K_CLASSES", "find_ade20k_dir"]

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

_FOLDERS = {"train": "training", "val": "validation"}


def find_ade20k_dir(root: PathLike) -> Path:
    """The ADEChallengeData2016 folder (images/, annotations/), given it or its parent."""
    return find_dataset_dir(
        root, [".", "ADEChallengeData2016"],
        lambda c: (c / "images").is_dir() and (c / "annotations").is_dir(),
        what="ADE20K SceneParsing data", looked_for="images/ and annotations/",
        advice=" (ADEChallengeData2016.zip from sceneparsing.csail.mit.edu unpacks there)")


class ADE20K(FileSegmentationDataset):
    """ADE20K SceneParsing, 150 classes (module docstring).

    Args:
        root: the ADEChallengeData2016 folder or its parent.
        split: ``train`` or ``val``.
        transform: optional joint transform.
    """

    classes = ADE20K_CLASSES
    ignore_index = 255

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Transform | None = None) -> None:
        super().__init__(transform)
        if split not in _FOLDERS:
            raise ValueError(f"split: expected train or val for ADE20K, got {split!r}")
        self.dir = find_ade20k_dir(root)
        self.split = split
        self.image_dir = self.dir / "images" / _FOLDERS[split]
        self.label_dir = self.dir / "annotations" / _FOLDERS[split]
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"split {split!r}: {self.image_dir} not found")
        self.ids = sorted(p.stem for p in self.image_dir.glob("*.jpg"))

    def read_label(self, index: int) -> np.ndarray:
        path = self.label_path(index)
        raw = read_label(path)
        check_label_values(path, raw, len(self.classes) + 1, ignore_index=0)
        return np.where(raw == 0, self.ignore_index, raw - 1)

    def __repr__(self) -> str:
        return f"ADE20K({self.dir}, split={self.split!r}, {len(self)} images)"
