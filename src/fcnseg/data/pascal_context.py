"""PASCAL-Context (Mottaghi et al. 2014): full-scene labels of VOC2010, as the 59-class task.

On disk (the dataset's own layout, as the FCN reference reads it)::

    ROOT/VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    ROOT/VOCdevkit/VOC2010/ImageSets/Main/{train,val}.txt      (4,998 / 5,105 ids)
    ROOT/pascal-context/trainval/<id>.mat                      (field LabelMap: full-scene ids)
    ROOT/pascal-context/labels.txt                             ("<id>: <name>", 459 labels)
    ROOT/pascal-context/59_labels.txt                          ("<k>: <name>", the 59 task classes)

Each full-scene label is mapped to its task class by name (diningtable/table,
bedcloth/bedclothes and clothes/cloth matched as the reference does); every other label becomes
class 0 (background). There is no void.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from fcnseg.conventions import PASCAL_CONTEXT_BGR
from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.errors import DataError
from fcnseg.data.io import read_mat_label
from fcnseg.data.layout import find_dataset_dir, read_split, read_utf8
from fcnseg.utils.typing import PathLike

#: The 60 outputs of the 59-class task: 0 is background (every label outside the 59).
PASCAL_CONTEXT_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor", "bag", "bed", "bench", "book", "building", "cabinet", "ceiling",
    "clothes", "computer", "cup", "door", "fence", "floor", "flower", "food", "grass", "ground",
    "keyboard", "light", "mountain", "mouse", "curtain", "platform", "sign", "plate", "road",
    "rock", "shelves", "sidewalk", "sky", "snow", "bedcloth", "track", "tree", "truck", "wall",
    "water", "window", "wood",
)


# Task class names spelled differently in the full label list.
_FULL_NAME = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}


def read_label_names(path: PathLike) -> dict[int, str]:
    """A PASCAL-Context label file (``<id>: <name>`` lines) as ``{id: name}``, names without
    spaces as the reference compares them; a ValueError names a malformed line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PASCAL-Context label file {path} not found")
    names: dict[int, str] = {}
    for n, line in enumerate(read_utf8(path, "label file").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, name = line.partition(":")
        ident = None
        with contextlib.suppress(ValueError):
            ident = int(key) if sep else None
        if ident is None:
            raise ValueError(f"{path}: line {n}: expected '<id>: <name>', got {line.strip()!r}")
        names[ident] = name.replace(" ", "").strip()
    return names


def find_voc2010_dir(root: PathLike) -> Path:
    """Locate ``VOC2010`` (JPEGImages and ImageSets/Main) given it, VOCdevkit or their parent."""
    return find_dataset_dir(
        root, [".", "VOC2010", "VOCdevkit/VOC2010"],
        lambda c: (c / "JPEGImages").is_dir() and (c / "ImageSets" / "Main").is_dir(),
        what="VOC2010 images", looked_for="JPEGImages and ImageSets/Main",
        advice=" (fcnseg.data.download_pascal_context fetches it)")


def find_context_dir(root: PathLike) -> Path:
    """Locate the PASCAL-Context annotations (trainval/, labels.txt, 59_labels.txt)."""
    return find_dataset_dir(
        root, [".", "pascal-context", "PASCAL-Context"], _is_context_dir,
        what="PASCAL-Context annotations", looked_for="trainval/ and labels.txt",
        advice=" (fcnseg.data.download_pascal_context fetches them)")


def _is_context_dir(folder: Path) -> bool:
    if not ((folder / "trainval").is_dir() and (folder / "labels.txt").is_file()):
        return False
    if not (folder / "59_labels.txt").is_file():
        raise FileNotFoundError(f"{folder / '59_labels.txt'} is missing: the 59-class task "
                                f"needs the dataset's 59_labels.txt beside labels.txt")
    return True


def _task_table(context_dir: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """The task's class names (background first) and the lookup table full id → task class."""
    full = read_label_names(context_dir / "labels.txt")
    task = read_label_names(context_dir / "59_labels.txt")
    by_name = {name: ident for ident, name in full.items()}
    table = np.zeros(max(full, default=0) + 1, dtype=np.int64)
    names = ["background"]
    for k, (_, name) in enumerate(sorted(task.items()), start=1):
        full_name = _FULL_NAME.get(name, name)
        if full_name not in by_name:
            raise ValueError(f"{context_dir / '59_labels.txt'}: class {name!r} is not in "
                             f"{context_dir / 'labels.txt'}")
        table[by_name[full_name]] = k
        names.append(name)
    return tuple(names), table


class PascalContext(FileSegmentationDataset):
    """PASCAL-Context, 59-class task: 60 outputs, 0 = background, no void, from ``root`` (the
    folder holding ``VOCdevkit`` and ``pascal-context``, or ``context_dir`` for the latter);
    ``split`` a list in VOC2010's ``ImageSets/Main`` ("train" or "val")."""

    classes = PASCAL_CONTEXT_CLASSES
    input_convention = PASCAL_CONTEXT_BGR
    label_suffix = ".mat"

    def __init__(self, root: PathLike, split: str = "train",
                 transform: Transform | None = None, *,
                 context_dir: PathLike | None = None) -> None:
        super().__init__(transform)
        self.split = split
        self.dir = self.voc_dir = find_voc2010_dir(root)
        self.context_dir = find_context_dir(context_dir if context_dir is not None else root)
        self.classes, self._table = _task_table(self.context_dir)
        self.ids = read_split(self.voc_dir / "ImageSets" / "Main" / f"{split}.txt", split,
                              dataset="VOC2010", kind="list",
                              hint="PASCAL-Context uses train and val")
        self.image_dir = self.voc_dir / "JPEGImages"
        self.label_dir = self.context_dir / "trainval"

    def read_label(self, index: int) -> np.ndarray:
        path = self.label_path(index)
        full = read_mat_label(path, "LabelMap")
        if full.size and full.min() < 0:
            raise DataError(path, f"negative label ids in LabelMap: {int(full.min())}")
        # Ids past the end of labels.txt are no task class: background, as the reference does.
        return np.where(full < len(self._table),
                        self._table[np.minimum(full, len(self._table) - 1)], 0)
