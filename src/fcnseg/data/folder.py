"""Users' own data: an ``images/`` and a ``masks/`` folder matched by file stem.

Layout::

    root/
      dataset.yaml        # class names and how to read the masks (below)
      images/ a.jpg b.png ...
      masks/  a.png b.png ...   # index PNGs, palette PNGs or colour-coded RGB
      train.txt val.txt   # optional split lists (one stem a line); also splits/<split>.txt

``dataset.yaml``::

    classes: [background, road, car]   # required: class k is the k-th name
    ignore_index: 255                  # mask value that is ignored (default 255)
    remap: {255: 1}                    # optional raw value → class (e.g. 0/255 binary masks)
    colors: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]   # optional: masks are RGB, class k's colour
    ignore_color: [255, 255, 255]      # optional: RGB colour of ignored pixels
    palette: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]  # optional display colours
    splits: {train: lists/train.txt}   # optional split list paths, relative to root
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fcnseg.data.base import FileSegmentationDataset, Transform
from fcnseg.data.io import read_label
from fcnseg.data.palette import palette_for
from fcnseg.data.voc import read_split_list

__all__ = ["IMAGE_EXTENSIONS", "MASK_EXTENSIONS", "FolderSegmentation", "load_folder_config"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif")
_CONFIG_KEYS = {"classes", "ignore_index", "remap", "colors", "ignore_color", "palette", "splits"}


def load_folder_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a ``dataset.yaml``; errors name the file and the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown field {unknown[0]!r}; allowed: {sorted(_CONFIG_KEYS)}")
    return data


def _colour_table(value: Any, field: str, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.all((arr >= 0) & (arr <= 255)):
        raise ValueError(f"{where}: {field} must be a list of [r, g, b] triples in 0-255")
    return arr.astype(np.uint8)


class FolderSegmentation(FileSegmentationDataset):
    """Images and masks from ``root/images`` and ``root/masks``, matched by file stem.

    Settings come from ``root/dataset.yaml`` (or ``config``); keyword arguments override them.

    Args:
        root: the dataset folder.
        split: name of a split list (``root/<split>.txt``, ``root/splits/<split>.txt`` or
            ``splits:`` in the YAML); None uses every image in ``images/``.
        transform: optional joint transform.
        config: path of the YAML file (default ``root/dataset.yaml``; optional if ``classes``
            is given).
        classes, ignore_index, remap, colors, ignore_color, palette: as in ``dataset.yaml``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None = None,
        transform: Transform | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
        classes: Sequence[str] | None = None,
        ignore_index: int | None = None,
        remap: Mapping[int, int] | None = None,
        colors: Sequence[Sequence[int]] | None = None,
        ignore_color: Sequence[int] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__(transform)
        self.root = Path(root).expanduser()
        self.image_dir, self.mask_dir = self.root / "images", self.root / "masks"
        for d in (self.image_dir, self.mask_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"{d} not found: a folder dataset needs images/ and masks/")
        cfg_path = Path(config) if config is not None else self.root / "dataset.yaml"
        cfg = load_folder_config(cfg_path) if cfg_path.is_file() else {}
        if config is not None and not cfg_path.is_file():
            raise FileNotFoundError(f"dataset config {cfg_path} not found")
        where = str(cfg_path)
        overrides = {"classes": classes, "ignore_index": ignore_index, "remap": remap,
                     "colors": colors, "ignore_color": ignore_color, "palette": palette}
        cfg.update({k: v for k, v in overrides.items() if v is not None})

        names = cfg.get("classes")
        if not names or not isinstance(names, (list, tuple)):
            raise ValueError(
                f"{where}: 'classes' is required: a list of class names (class k = k-th name)"
            )
        self.classes = tuple(str(n) for n in names)
        self.ignore_index = int(cfg.get("ignore_index", 255))
        raw_remap = cfg.get("remap") or {}
        if not isinstance(raw_remap, Mapping):
            raise ValueError(
                f"{where}: 'remap' must map raw mask values to classes, e.g. {{255: 1}}"
            )
        self.remap = {int(k): int(v) for k, v in raw_remap.items()}
        self.colors = None
        if cfg.get("colors") is not None:
            self.colors = _colour_table(cfg["colors"], "colors", where)
            if len(self.colors) != self.num_classes:
                raise ValueError(
                    f"{where}: 'colors' has {len(self.colors)} entries for "
                    f"{self.num_classes} classes"
                )
        self.ignore_color = None
        if cfg.get("ignore_color") is not None:
            triple = _colour_table([cfg["ignore_color"]], "ignore_color", where)[0]
            self.ignore_color = (int(triple[0]), int(triple[1]), int(triple[2]))
        display = cfg.get("palette", self.colors)
        if display is not None:
            self.palette = _colour_table(display, "palette", where)
        else:
            self.palette = palette_for(self.num_classes, self.ignore_index)

        self._images = self._index(self.image_dir, IMAGE_EXTENSIONS)
        self._masks = self._index(self.mask_dir, MASK_EXTENSIONS)
        self.split = split
        if split is None:
            self.ids = sorted(self._images)
        else:
            self.ids = read_split_list(self._split_path(split, cfg.get("splits") or {}, where))

    @staticmethod
    def _index(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() not in extensions or p.name.startswith("."):
                continue
            if p.stem in found:
                raise ValueError(f"{folder}: two files with stem {p.stem!r}: "
                                 f"{found[p.stem].name} and {p.name}")
            found[p.stem] = p
        return found

    def _split_path(self, split: str, splits: Mapping[str, str], where: str) -> Path:
        if split in splits:
            return self.root / splits[split]
        for p in (self.root / f"{split}.txt", self.root / "splits" / f"{split}.txt"):
            if p.is_file():
                return p
        raise ValueError(
            f"split: no list for split {split!r}: looked for {self.root / f'{split}.txt'}, "
            f"{self.root / 'splits' / f'{split}.txt'} and 'splits' in {where}"
        )

    def image_path(self, index: int) -> Path:
        stem = self.ids[index]
        return self._images.get(stem, self.image_dir / f"{stem}.jpg")

    def label_path(self, index: int) -> Path:
        stem = self.ids[index]
        return self._masks.get(stem, self.mask_dir / f"{stem}.png")

    def read_label(self, index: int) -> np.ndarray:
        return read_label(
            self.label_path(index), num_classes=self.num_classes, ignore_index=self.ignore_index,
            remap=self.remap, colors=self.colors, color_ignore=self.ignore_color,
        )

    def unmatched_masks(self) -> list[Path]:
        """Masks whose stem has no image (reported by ``fcnseg check-data``)."""
        return [p for stem, p in sorted(self._masks.items()) if stem not in self._images]

    def __repr__(self) -> str:
        return f"FolderSegmentation({self.root}, split={self.split!r}, {len(self)} images)"
