"""SIFT Flow (Liu et al. 2009; labels of Tighe & Lazebnik 2010) has 256×256 outdoor scenes.
Each has two label maps, semantic (33 classes) and geometric (sky, horizontal, vertical).

On disk (the dataset's archive plus the FCN reference's split lists)::

    ROOT/{trainval,test}.txt                                   ids (2,488 / 200)
    ROOT/Images/spatial_envelope_256x256_static_8outdoorcategories/<id>.jpg
    ROOT/SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat   field S
    ROOT/GeoLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat        field S

Semantic ``S`` holds 0 (void) and 1-33, geometric ``S`` -1 (void) and 1-3: both shifted down
by one, void becoming 255. The two images without annotations are left out of every split;
cow, desert and moon, absent from the test set, are left out of the semantic class means, as
the reference evaluates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnseg.conventions import SIFTFLOW_BGR
from fcnseg.data.base import FileSegmentationDataset, Transform, check_same_size
from fcnseg.data.io import read_image, read_mat_label, void_first
from fcnseg.data.layout import find_dataset_dir, read_split
from fcnseg.utils.typing import PathLike

SIFTFLOW_SEMANTIC_CLASSES: tuple[str, ...] = (
    "awning", "balcony", "bird", "boat", "bridge", "building", "bus", "car", "cow", "crosswalk",
    "desert", "door", "fence", "field", "grass", "moon", "mountain", "person", "plant", "pole",
    "river", "road", "rock", "sand", "sea", "sidewalk", "sign", "sky", "staircase",
    "streetlight", "sun", "tree", "window",
)
SIFTFLOW_GEOMETRIC_CLASSES: tuple[str, ...] = ("sky", "horizontal", "vertical")

#: Semantic classes absent from the test set, left out of the semantic class means.
SIFTFLOW_EXCLUDED_CLASSES: tuple[int, ...] = tuple(
    SIFTFLOW_SEMANTIC_CLASSES.index(c) for c in ("cow", "desert", "moon"))

#: The two images without annotations, left out of every split.
SIFTFLOW_EXCLUDED_IDS: tuple[str, ...] = ("highway_bost181", "street_urb506")

_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"
_FOLDERS = {"image": "Images", "semantic": "SemanticLabels", "geometric": "GeoLabels"}

#: The names the SIFT Flow folder goes by: the archive's and the FCN reference release's.
SIFTFLOW_FOLDER_NAMES: tuple[str, ...] = ("SiftFlowDataset", "sift-flow")


def find_siftflow_dir(root: PathLike) -> Path:
    """Locate the SIFT Flow folder (Images/, SemanticLabels/, GeoLabels/) given it, its parent,
    or its name beside the other (:data:`SIFTFLOW_FOLDER_NAMES`)."""
    root = Path(root).expanduser()
    base, places = root, [".", *SIFTFLOW_FOLDER_NAMES]
    if root.name in SIFTFLOW_FOLDER_NAMES and not root.exists():
        base = root.parent
        places = [root.name, *(n for n in SIFTFLOW_FOLDER_NAMES if n != root.name)]
    return find_dataset_dir(
        base, places, lambda c: all((c / d / _SUBDIR).is_dir() for d in _FOLDERS.values()),
        what="SIFT Flow data",
        looked_for=f"Images/, SemanticLabels/ and GeoLabels/ (each with {_SUBDIR}/)",
        advice=" (fcnseg.data.download_siftflow fetches it)")


class SIFTFlow(FileSegmentationDataset):
    """SIFT Flow with its two label maps: ``(image, {"semantic": ..., "geometric": ...})``;
    ``classes`` are the semantic classes, ``heads`` names both heads' classes. ``root``: the
    SIFT Flow folder or the one holding it; ``split``: "trainval" or "test" (the FCN
    reference's ``ROOT/<split>.txt`` lists).
    """

    classes = SIFTFLOW_SEMANTIC_CLASSES
    heads = {"semantic": SIFTFLOW_SEMANTIC_CLASSES, "geometric": SIFTFLOW_GEOMETRIC_CLASSES}
    eval_exclude_classes = {"semantic": SIFTFLOW_EXCLUDED_CLASSES}
    excluded_ids = SIFTFLOW_EXCLUDED_IDS
    input_convention = SIFTFLOW_BGR

    def __init__(self, root: PathLike, split: str = "trainval",
                 transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.split = split
        self.dir = find_siftflow_dir(root)
        ids = read_split(self.dir / f"{split}.txt", split, dataset="SIFT Flow", kind="list",
                         hint="the FCN reference's trainval.txt and test.txt (data/sift-flow/ "
                              "in its release) go beside Images/")
        self.ids = [i for i in ids if i not in self.excluded_ids]
        self.image_dir = self.dir / _FOLDERS["image"] / _SUBDIR

    def label_path(self, index: int, head: str = "semantic") -> Path:
        return self.dir / _FOLDERS[head] / _SUBDIR / f"{self.ids[index]}.mat"

    def read_label(self, index: int) -> dict[str, np.ndarray]:  # type: ignore[override]
        labels = {}
        for head, classes in self.heads.items():
            path = self.label_path(index, head)
            stored = read_mat_label(path, "S")
            if head == "geometric":
                stored = np.where(stored == -1, 0, stored)  # -1 is void here
            labels[head] = void_first(path, stored, len(classes), self.ignore_index)
        return labels

    def load(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:  # type: ignore[override]
        image = read_image(self.image_path(index))
        labels = self.read_label(index)
        for head, label in labels.items():
            check_same_size(self.label_path(index, head), f"{head} label", label.shape, "image",
                            self.image_path(index), image.shape)
        return image, labels
