"""Cityscapes (Cordts et al. 2016), fine annotations: the 19 evaluation classes.

On disk, as the official archives unpack (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip)::

    ROOT/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

:class:`Cityscapes` says how the masks are read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.errors import DataError
from fcnseg.data.io import MaskAdvice, benchmark_advice, check_label_values, read_label
from fcnseg.data.layout import find_dataset_dir
from fcnseg.utils.typing import PathLike

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
#: The label id of each train id.
CITYSCAPES_LABEL_IDS: tuple[int, ...] = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                                         27, 28, 31, 32, 33)
CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32)], np.uint8)

#: The label id cityscapesScripts gives the license plate, -1, as an 8-bit mask holds it.
_LICENSE_PLATE = 255
_MASK_ADVICE: MaskAdvice = benchmark_advice(
    "Cityscapes *_gtFine_labelIds.png masks hold one channel of label ids 0-33 (255 read as the "
    "license plate's -1), not the colours of *_gtFine_color.png")

_TRAIN_ID_ADVICE: MaskAdvice = benchmark_advice(
    "Cityscapes *_gtFine_labelTrainIds.png masks hold one channel of train ids 0-18 and 255 "
    "(void); read *_gtFine_labelIds.png files with labels: label_ids")

_TRAIN_ID = np.full(256, 255, np.int64)
_TRAIN_ID[list(CITYSCAPES_LABEL_IDS)] = np.arange(len(CITYSCAPES_LABEL_IDS))

#: The mask files each value of the ``labels`` option reads.
CITYSCAPES_LABELS: dict[str, str] = {"label_ids": "_gtFine_labelIds.png",
                                     "train_ids": "_gtFine_labelTrainIds.png"}


def checked_labels(value: object, field: str = "labels") -> str:
    """``value`` if it names a kind of Cityscapes mask (:data:`CITYSCAPES_LABELS`), else a
    ValueError naming ``field``."""
    if value not in CITYSCAPES_LABELS:
        raise ValueError(f"{field}: expected label_ids (the *_gtFine_labelIds.png files) or "
                         f"train_ids (the *_gtFine_labelTrainIds.png files), got {value!r}")
    return str(value)


#: The label ids a labelIds mask gives what the annotation leaves out (unlabeled, rectification
#: border, out of roi): road, building and wall as train ids, a street scene's largest classes.
#: With the ego vehicle (1), the label ids up to 3.
_LEFT_OUT_IDS = (0, 2, 3)


def train_id_evidence(raw: np.ndarray) -> str | None:
    """Why a labelIds mask's values look like train ids (None when they do not): no value
    above 18, some class, and with 255 mostly void as label ids (a street scene has sky,
    vegetation or cars), else (a crop above the ego vehicle) over a third of label ids 0, 2,
    3 (road, building, wall as train ids; never that much left out by the annotation)."""
    if raw.size == 0:
        return None
    high = int(raw.max())
    if len(CITYSCAPES_CLASSES) <= high < 255:  # a value above 18: one pass, not a count
        return None
    if high < 255:  # two passes (0-3, less the ego vehicle's 1) before any count
        left_out = int(np.count_nonzero(raw <= max(_LEFT_OUT_IDS)) - np.count_nonzero(raw == 1))
        if 3 * left_out <= raw.size:
            return None
    counts = np.bincount(raw.ravel(), minlength=256)
    labelled = int(counts[:255].sum())
    classes = int(counts[list(CITYSCAPES_LABEL_IDS)].sum())
    if classes == 0 or counts[len(CITYSCAPES_CLASSES):255].any():
        return None
    if high < 255:
        return (f"only values 0-18, {left_out / labelled:.0%} of its pixels unlabeled, "
                f"rectification border or out of roi as label ids: road, building and wall "
                f"as train ids")
    void = labelled - classes
    return (f"only values 0-18 and 255, {void / labelled:.0%} of its labelled pixels void as "
            f"label ids") if 2 * void > labelled else None


def find_cityscapes_dir(root: PathLike) -> Path:
    """The folder holding leftImg8bit/ and gtFine/, given it or its parent."""
    return find_dataset_dir(
        root, [".", "cityscapes", "Cityscapes"],
        lambda c: (c / "leftImg8bit").is_dir() and (c / "gtFine").is_dir(),
        what="Cityscapes data", looked_for="leftImg8bit/ and gtFine/",
        advice=" (download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
               "cityscapes-dataset.com, after registering, and unpack both there)")


class Cityscapes(FileSegmentationDataset):
    """Cityscapes fine annotations: images with their 19 evaluation classes.

    Reads ``ROOT/leftImg8bit/SPLIT/<city>/*_leftImg8bit.png`` and maps the label ids of
    ``ROOT/gtFine/SPLIT/<city>/*_gtFine_labelIds.png`` to train ids, ``label id → train id``:

        7 → 0 road, 8 → 1 sidewalk, 11 → 2 building, 12 → 3 wall, 13 → 4 fence, 17 → 5 pole,
        19 → 6 traffic light, 20 → 7 traffic sign, 21 → 8 vegetation, 22 → 9 terrain,
        23 → 10 sky, 24 → 11 person, 25 → 12 rider, 26 → 13 car, 27 → 14 truck, 28 → 15 bus,
        31 → 16 train, 32 → 17 motorcycle, 33 → 18 bicycle.

    Every other label id (void, classes not evaluated, 255 the license plate's -1) becomes
    255, ignored. Values 34-254, or values that look like train ids (:func:`train_id_evidence`:
    every class would train shifted), are a :class:`~fcnseg.data.errors.DataError` naming the
    file. ``labels="train_ids"`` reads ``*_gtFine_labelTrainIds.png``
    (createTrainIdLabelImgs.py's): 0-18, 255 ignored. ``root``: the folder holding
    ``leftImg8bit/`` and ``gtFine/`` (or its parent); ``split``: ``train``, ``val`` or
    ``test`` (test labels are all void).
    """

    classes = CITYSCAPES_CLASSES
    image_suffix = "_leftImg8bit.png"

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Transform | None = None, labels: str = "label_ids") -> None:
        super().__init__(transform)
        self.labels = checked_labels(labels)
        self.label_suffix = CITYSCAPES_LABELS[self.labels]
        self.mask_advice = _TRAIN_ID_ADVICE if self.labels == "train_ids" else _MASK_ADVICE
        self.dir = find_cityscapes_dir(root)
        self.split = split
        self.image_dir = self.dir / "leftImg8bit"
        self.label_dir = self.dir / "gtFine"
        # ids are split/city/stem, so that ids of several splits can be mixed (check-data).
        self.ids = self.ids_of_images(self.image_dir / split, "*/*")
        self.palette = CITYSCAPES_PALETTE

    @property  # type: ignore[override]
    def labels_withheld(self) -> str | None:
        """The test split's labels are withheld (all void), unless its first mask holds a class
        (a folder in the Cityscapes layout with labelled test images of its own)."""
        if self.split != "test" or (len(self) and self._labelled(0)):
            return None
        return ("Cityscapes test labels are withheld (all void): nothing to score; score the "
                "val split, or predict it with `fcnseg predict --label-ids cityscapes` and "
                "submit its label_ids/ folder to the benchmark server at cityscapes-dataset.com")

    def _labelled(self, index: int) -> bool:
        """Whether mask ``index`` holds a class (True where unreadable: scoring names why)."""
        if not self.label_path(index).is_file():
            return False
        try:
            return bool((self.read_label(index) != 255).any())
        except DataError:
            return True

    def name(self, index: int) -> str:
        return Path(self.ids[index]).name

    def unmatched_masks(self) -> list[Path]:
        """Masks of the splits read without their image (reported by ``fcnseg check-data``)."""
        ids, cut = set(self.ids), len(self.label_suffix)
        splits = {self.split, *(i.split("/", 1)[0] for i in ids)}
        masks = (p for s in splits for p in (self.label_dir / s).glob(f"*/*{self.label_suffix}"))
        return sorted(p for p in masks
                      if p.relative_to(self.label_dir).as_posix()[:-cut] not in ids)

    def read_label(self, index: int) -> np.ndarray:
        path = self.label_path(index)
        raw = read_label(path, advice=self.mask_advice)
        if self.labels == "train_ids":
            check_label_values(path, raw, len(CITYSCAPES_CLASSES), 255,
                               advice=self.mask_advice.values)
            return raw
        check_label_values(path, raw, max(CITYSCAPES_LABEL_IDS) + 1, _LICENSE_PLATE,
                           advice=self.mask_advice.values)
        evidence = train_id_evidence(raw)
        if evidence is not None:
            raise DataError(path, f"looks like train ids saved under the labelIds name "
                                  f"({evidence}): save train-id masks as "
                                  f"*_gtFine_labelTrainIds.png and read them with `labels: "
                                  f"train_ids` in the recipe's data section (fcnseg check-data "
                                  f"--labels train_ids)", hint=None)
        return _TRAIN_ID[raw]
