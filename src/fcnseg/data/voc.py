"""PASCAL VOC segmentation (2007, 2011, 2012 layouts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.palette import VOC_CLASSES, VOC_IGNORE_INDEX
from fcnseg.utils.typing import PathLike

__all__ = ["VOCSegmentation", "find_voc_dir", "read_split_list", "read_utf8"]


def read_utf8(path: Path, what: str) -> str:
    """The text of ``path``; a byte that is not UTF-8 is a ValueError naming the file and line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}: line {line}: byte 0x{raw[e.start]:02x} is not UTF-8: the {what} must be "
            f"UTF-8 text, file names included (save it as UTF-8, and rename files whose names "
            f"are not UTF-8)"
        ) from None


def read_split_list(path: PathLike) -> list[str]:
    """Read a split list: one image id per line (first column); blank lines are skipped.

    The list must be UTF-8 text (file names included); anything else is a ValueError naming
    the list and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list {path} not found")
    ids = []
    for line in read_utf8(path, "split list").splitlines():
        parts = line.split()
        if parts:
            ids.append(parts[0])
    return ids


def find_voc_dir(root: PathLike, year: str) -> Path:
    """Locate ``VOC<year>`` given it, ``VOCdevkit`` or the folder holding ``VOCdevkit``.

    The VOC2011 archive extracts to ``TrainVal/VOCdevkit/VOC2011``; that is found too.
    """
    root = Path(root).expanduser()
    candidates = [
        root,
        root / f"VOC{year}",
        root / "VOCdevkit" / f"VOC{year}",
        root / "TrainVal" / "VOCdevkit" / f"VOC{year}",
    ]
    for c in candidates:
        if (c / "ImageSets" / "Segmentation").is_dir() and (c / "JPEGImages").is_dir():
            if c == root and root.name.startswith("VOC") and root.name != f"VOC{year}":
                raise ValueError(f"{root} is a {root.name} folder, but year={year!r} was asked for")
            return c
    raise FileNotFoundError(
        f"no VOC{year} segmentation data under {root}: looked for ImageSets/Segmentation and "
        f"JPEGImages in " + ", ".join(str(c) for c in candidates)
        + ". Pass the folder holding VOCdevkit, VOCdevkit itself or VOC" + year
        + " (fcnseg.data.download_voc fetches it)."
    )


class VOCSegmentation(FileSegmentationDataset):
    """PASCAL VOC semantic segmentation: 21 classes, 255 = void.

    Args:
        root: the folder holding ``VOCdevkit``, ``VOCdevkit`` itself, or ``VOC<year>``.
        year: "2012", "2011" or "2007" (any year with the same layout works).
        split: a list in ``ImageSets/Segmentation`` ("train", "val", "trainval").
        transform: optional joint transform.
        ids: use these image ids instead of a split list (e.g. seg11valid).

    Labels are the indices of the palette PNGs in ``SegmentationClass``, never RGB colours.
    """

    classes = VOC_CLASSES
    ignore_index = VOC_IGNORE_INDEX

    def __init__(
        self,
        root: PathLike,
        year: str = "2012",
        split: str = "train",
        transform: Transform | None = None,
        *,
        ids: Sequence[str] | None = None,
    ) -> None:
        super().__init__(transform)
        self.year = str(year)
        self.split = split
        self.dir = find_voc_dir(root, self.year)
        if ids is None:
            lists = self.dir / "ImageSets" / "Segmentation"
            path = lists / f"{split}.txt"
            if not path.is_file():
                have = sorted(p.stem for p in lists.glob("*.txt"))
                raise ValueError(
                    f"split: VOC{self.year} has no segmentation split {split!r} ({path} missing);"
                    f" available: {', '.join(have) or 'none'}"
                )
            ids = read_split_list(path)
        self.ids = list(ids)

    def image_path(self, index: int) -> Path:
        return self.dir / "JPEGImages" / f"{self.ids[index]}.jpg"

    def label_path(self, index: int) -> Path:
        return self.dir / "SegmentationClass" / f"{self.ids[index]}.png"

    def __repr__(self) -> str:
        return f"VOCSegmentation({self.dir}, split={self.split!r}, {len(self)} images)"


