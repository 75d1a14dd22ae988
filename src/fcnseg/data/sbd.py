"""The Semantic Boundaries Dataset (SBD, Hariharan et al. 2011): VOC classes on 11,355 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.errors import DataError
from fcnseg.data.io import check_label_values, check_mat_pixels, load_mat
from fcnseg.data.layout import find_dataset_dir, read_split
from fcnseg.data.palette import VOC_CLASSES, VOC_IGNORE_INDEX
from fcnseg.utils.typing import PathLike


def find_sbd_dir(root: PathLike) -> Path:
    """Locate ``benchmark_RELEASE/dataset`` given it, ``benchmark_RELEASE`` or their parent."""
    return find_dataset_dir(
        root, [".", "dataset", "benchmark_RELEASE/dataset"],
        lambda c: (c / "cls").is_dir() and (c / "img").is_dir(),
        what="SBD data", looked_for="cls/ and img/",
        advice=" (fcnseg.data.download_sbd fetches it)")


def read_sbd_mat(path: PathLike) -> np.ndarray:
    """Read ``GTcls.Segmentation`` from an SBD ``cls/*.mat`` file as an H×W int64 array."""
    path = Path(path)
    mat = load_mat(path, squeeze_me=True, struct_as_record=False)
    seg = getattr(mat.get("GTcls"), "Segmentation", None)
    if seg is None:
        raise DataError(path, "no GTcls.Segmentation in this .mat file")
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise DataError(path, f"GTcls.Segmentation has shape {seg.shape}: expected H×W")
    check_mat_pixels(path, "GTcls.Segmentation", seg)
    return seg.astype(np.int64)


class SBDSegmentation(FileSegmentationDataset):
    """SBD segmentation masks (``cls/*.mat``) over its JPEG images, with VOC's 21 classes, from
    ``root`` (``benchmark_RELEASE/dataset``, ``benchmark_RELEASE`` or the folder holding it);
    ``split`` "train" (8,498 images) or "val" (2,857)."""

    classes = VOC_CLASSES
    ignore_index = VOC_IGNORE_INDEX
    label_suffix = ".mat"

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Transform | None = None) -> None:
        super().__init__(transform)
        self.dir = find_sbd_dir(root)
        self.split = split
        self.ids = read_split(self.dir / f"{split}.txt", split, dataset="SBD")
        self.image_dir = self.dir / "img"
        self.label_dir = self.dir / "cls"

    def read_label(self, index: int) -> np.ndarray:
        path = self.label_path(index)
        label = read_sbd_mat(path)
        check_label_values(path, label, self.num_classes, self.ignore_index)
        return label
