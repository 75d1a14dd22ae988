"""Users' own data: an ``images/`` and a ``masks/`` folder matched by file stem.

Layout::

    root/
      dataset.yaml        # class names and how to read the masks (below)
      images/ a.jpg b.png ...
      masks/  a.png b.png ...   # index PNGs, palette PNGs or colour-coded RGB
      train.txt val.txt   # optional split lists (one stem a line); also splits/<split>.txt

``dataset.yaml`` (docs/data.md) requires ``classes: [background, road, car]`` (class k is the
k-th name); optional fields say how to read the masks (``ignore_index``, ``remap``, ``colors``,
``ignore_color``), show them (``palette``, ``background``), find the files (``splits``,
``images``, ``masks``, ``image_suffix``, ``mask_suffix``) and read multi-band images as H×W×N
rasters (``bands``, ``rgb``, ``nodata``: pixels whose every band is ``nodata`` are labelled
``ignore_index`` and take each band's mean).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from fcnseg.data import io
from fcnseg.data.band_images import BandImages
from fcnseg.data.base import FileSegmentationDataset, Transform, check_same_size
from fcnseg.data.errors import DataError
from fcnseg.data.images import IMAGE_FORMATS, ImageError
from fcnseg.data.io import MaskAdvice, read_label, read_label_and_values
from fcnseg.data.layout import read_split_list, read_utf8, say_once
from fcnseg.data.palette import distinct_palette
from fcnseg.data.rasters import grid_problem, nodata_mask, open_raster, raster_info
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import expect_mapping, fields_of
from fcnseg.utils.yaml_errors import yaml_problem

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".avif", ".gif")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif")
RASTER_EXTENSIONS = (*IMAGE_EXTENSIONS, ".jp2")
#: The ``remap`` key that says what every mask value the table does not list becomes.
OTHER_VALUES = "other"
#: The ``remap`` value that means the dataset's ``ignore_index``.
IGNORE_VALUE = "ignore"


def load_folder_config(path: PathLike) -> dict[str, Any]:
    """Read and check a ``dataset.yaml``; errors name the file, the field and what is expected.

    Returns the fields given (``null`` ones left out), checked: ``classes`` a tuple of str,
    ``ignore_index`` an int, ``remap`` a dict of int (or ``"other"``) to int (or ``"ignore"``),
    ``colors`` and ``palette`` K×3 uint8 arrays, ``ignore_color`` an (r, g, b) tuple and
    ``splits`` a dict of split name to list path (relative to the dataset folder).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(read_utf8(path, "dataset config")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {yaml_problem(e)}") from None
    except RecursionError:  # lists or mappings nested thousands deep
        raise ValueError(f"{path}: not valid YAML: nested too deeply") from None
    expect_mapping(data, str(path), "a mapping of fields")
    unknown = sorted(set(data) - set(_FIELDS), key=str)
    if unknown:
        raise ValueError(f"{path}: unknown field {unknown[0]!r}; allowed: {sorted(_FIELDS)}")
    return check_folder_fields(data, str(path))


def check_folder_fields(fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check and convert the given ``dataset.yaml`` fields (see :func:`load_folder_config`);
    ``where`` starts each error message (the YAML file, or the keyword arguments' owner)."""
    return {key: _FIELDS[key](_plain(value), f"{where}: {key}")
            for key, value in fields.items() if value is not None}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _class_names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{where}: expected a non-empty list of class names (class k = k-th "
                         f"name), e.g. [background, road, car]; got {value!r}")
    for k, name in enumerate(value):
        if isinstance(name, bool):
            raise ValueError(f"{where}[{k}]: expected a class name, got {name!r} (YAML reads "
                             f"yes/no/on/off as true/false: quote the name)")
        if not isinstance(name, str) and not _is_int(name):
            raise ValueError(f"{where}[{k}]: expected a class name (text), got {name!r}")
    return tuple(str(n) for n in value)


def _check(ok: Callable[[Any], bool], convert: Callable[[Any], Any],
           problem: str) -> Callable[[Any, str], Any]:
    """A field's check: ``convert(value)`` where ``ok(value)``, else ``<where>: <problem>``."""

    def check(value: Any, where: str) -> Any:
        if not ok(value):
            raise ValueError(f"{where}: {problem.format(repr(value))}")
        return convert(value)

    return check


def _mapping(value: Any, where: str, *, of: str, entries: str, example: str,
             key_ok: Callable[[Any], bool], value_ok: Callable[[Any], bool]) -> Mapping:
    """``value`` checked to be a mapping of ``of`` whose keys and values pass the checks."""
    expect_mapping(value, where, f"a mapping of {of} ({example})")
    for key, item in value.items():
        if not key_ok(key) or not value_ok(item):
            raise ValueError(f"{where}: expected {entries}, {example}; got {key!r}: {item!r}")
    return value


def _remap(value: Any, where: str) -> dict[int | str, int | str]:
    value = _mapping(value, where, of="raw mask values to class indices",
                     entries="integer raw mask values (or 'other': every value not listed) "
                             "mapped to integer class indices or 'ignore'",
                     example="e.g. {255: 1} for 0/255 binary masks, {7: 1, other: ignore}",
                     key_ok=lambda k: _is_int(k) or k == OTHER_VALUES,
                     value_ok=lambda v: _is_int(v) or v == IGNORE_VALUE)
    return {k if k == OTHER_VALUES else int(k): v if v == IGNORE_VALUE else int(v)
            for k, v in value.items()}


_colour = _check(lambda v: isinstance(v, list | tuple) and len(v) == 3
                 and all(_is_int(c) and 0 <= c <= 255 for c in v),
                 lambda v: tuple(int(c) for c in v),
                 "expected an [r, g, b] colour of integers in 0-255, got {}")


def _colour_table(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{where}: expected a list of [r, g, b] colours (integers in 0-255), "
                         f"one per class; got {value!r}")
    if len(value) > 256:
        raise ValueError(f"{where}: {len(value)} colours; at most 256 are used")
    return np.array([_colour(_plain(c), f"{where}[{k}]") for k, c in enumerate(value)], np.uint8)


def _ignore_index(value: Any, where: str) -> int:
    if not _is_int(value):
        raise ValueError(f"{where}: expected an integer mask value (e.g. 255), got {value!r}")
    if not 0 <= value <= 65535:
        raise ValueError(f"{where}: {value} is no mask value: masks hold 0-255 (8-bit) or "
                         f"0-65535 (16-bit)")
    return int(value)


def _split_lists(value: Any, where: str) -> dict[str, str]:
    return dict(_mapping(value, where,
                         of="split names to list files (relative to the dataset folder)",
                         entries="split names mapped to list file paths",
                         example="e.g. {train: lists/train.txt, val: lists/val.txt}",
                         key_ok=lambda k: isinstance(k, str),
                         value_ok=lambda v: isinstance(v, str)))


def _band_names(value: Any, where: str) -> tuple[str, ...]:
    if (not isinstance(value, list | tuple) or not value
            or not all(isinstance(b, str) and b for b in value)):
        raise ValueError(f"{where}: expected a non-empty list of band names, e.g. "
                         f"[red, green, blue, nir]; got {value!r}")
    if len({b.lower() for b in value}) != len(value):
        raise ValueError(f"{where}: a band is named twice in {value!r}")
    return tuple(value)


def _coco_categories(value: Any, where: str) -> dict[str, dict[str, Any]]:
    value = _mapping(value, where, of="class names to COCO categories",
                     entries="class names mapped to {id: integer, supercategory: text}",
                     example="e.g. {car: {id: 3, supercategory: vehicle}}",
                     key_ok=lambda k: isinstance(k, str),
                     value_ok=lambda v: _is_int(fields_of(v).get("id")))
    return {k: {"id": int(v["id"]), "supercategory": str(v.get("supercategory") or "")}
            for k, v in value.items()}


_sub_folder = _check(
    lambda v: isinstance(v, str) and bool(v.strip()) and not Path(v).is_absolute()
    and ".." not in Path(v).parts,
    str, "expected a sub-folder of the dataset folder, e.g. JPEGImages; got {}")
_suffix = _check(lambda v: isinstance(v, str) and v != "" and "/" not in v, str,
                 "expected the end of the file names after the id, e.g. .jpg or _mask.png; got {}")

_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "classes": _class_names,
    "ignore_index": _ignore_index,
    "remap": _remap,
    "colors": _colour_table,
    "ignore_color": _colour,
    "palette": _colour_table,
    "splits": _split_lists,
    "bands": _band_names,
    "rgb": _band_names,
    "nodata": _check(lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool), float,
                     "expected a number (the image value of pixels without data), got {}"),
    "images": _sub_folder,
    "masks": _sub_folder,
    "image_suffix": _suffix,
    "mask_suffix": _suffix,
    "background": _check(lambda v: isinstance(v, str) or _is_int(v), str,
                         "expected the name of the class that is background, got {}"),
    "coco_categories": _coco_categories,
    "val_fraction": _check(lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
                           and 0 <= v <= 1, float, "expected the share of the images "
                           "fcnseg import lists in val.txt, from 0 to 1, got {}"),
}


#: The splits whose lists a folder dataset finds in its root as ``<split>.txt``.
ROOT_SPLITS = ("train", "val", "test", "trainval")


def split_list_files(root: Path, split_lists: Mapping[str, str]) -> dict[str, Path]:
    """The split lists of the folder dataset at ``root`` by split: ``split_lists`` ('splits' in
    dataset.yaml), ``<split>.txt`` in the root for :data:`ROOT_SPLITS` (not other text files,
    such as unannotated.txt), and every list in ``splits/``."""
    found = {str(s): root / f for s, f in split_lists.items()}
    for split in ROOT_SPLITS:
        if (root / f"{split}.txt").is_file():
            found.setdefault(split, root / f"{split}.txt")
    for listed in sorted((root / "splits").glob("*.txt")):
        found.setdefault(listed.stem, listed)
    return found


class FolderSegmentation(BandImages, FileSegmentationDataset):
    """Images and masks from ``root/images`` and ``root/masks``, matched by file stem.

    Settings come from ``root/dataset.yaml`` (or ``config``, optional with ``classes``);
    keyword arguments (the fields of ``dataset.yaml``) override them. ``split``: a split list
    (``root/<split>.txt``, ``root/splits/<split>.txt`` or ``splits:``); None: every image.
    Without any split list, every image with a mask is used for any split (said once).
    """

    mask_advice = MaskAdvice(
        rgb="save masks as index or palette PNGs, or give a colour table ('colors' in "
            "dataset.yaml, or FolderSegmentation(colors=...))",
        values="fix the masks, or map the values with 'remap' in dataset.yaml or "
               "FolderSegmentation(remap=...) (e.g. {255: 1} for 0/255 binary masks)")

    def __init__(self, root: PathLike, split: str | None = None,
                 transform: Transform | None = None, *, config: PathLike | None = None,
                 classes: Sequence[str] | None = None, ignore_index: int | None = None,
                 remap: Mapping[int, int] | None = None,
                 colors: Sequence[Sequence[int]] | None = None,
                 ignore_color: Sequence[int] | None = None,
                 palette: Sequence[Sequence[int]] | None = None, images: str | None = None,
                 masks: str | None = None, image_suffix: str | None = None,
                 mask_suffix: str | None = None, background: str | None = None) -> None:
        super().__init__(transform)
        self.root = self.dir = Path(root).expanduser()
        overrides = {"classes": classes, "ignore_index": ignore_index, "remap": remap,
                     "colors": colors, "ignore_color": ignore_color, "palette": palette,
                     "images": images, "masks": masks, "image_suffix": image_suffix,
                     "mask_suffix": mask_suffix, "background": background}
        self.config_path = Path(config) if config is not None else self.root / "dataset.yaml"
        if config is not None and not self.config_path.is_file():
            raise FileNotFoundError(f"dataset config {self.config_path} not found")
        cfg = load_folder_config(self.config_path) if self.config_path.is_file() else {}
        cfg.update(check_folder_fields(overrides, f"{type(self).__name__} argument"))
        where = str(self.config_path)
        self.image_dir = self.root / cfg.get("images", "images")
        self.mask_dir = self.root / cfg.get("masks", "masks")
        for d, key in ((self.image_dir, "images"), (self.mask_dir, "masks")):
            if not d.is_dir():
                raise FileNotFoundError(f"{d} not found: a folder dataset needs an image and a "
                                        f"mask folder ({self.image_dir.name}/ and "
                                        f"{self.mask_dir.name}/; name others with '{key}:' in "
                                        f"dataset.yaml, e.g. images: JPEGImages, masks: "
                                        f"SegmentationClass)")
        self.image_suffix, self.mask_suffix = cfg.get("image_suffix"), cfg.get("mask_suffix")
        self._set_classes(cfg, where)
        self.set_bands(cfg.get("bands"), cfg.get("rgb"), cfg.get("nodata"), where)
        self.split = split
        #: The split list files 'splits' in dataset.yaml names.
        self.split_lists: Mapping[str, str] = cfg.get("splits", {})
        self.ids = self._split_ids(split, where)

    def _set_classes(self, cfg: Mapping[str, Any], where: str) -> None:
        if "classes" not in cfg:
            raise ValueError(f"{where}: 'classes' is required: a list of class names (class k = "
                             f"k-th name)")
        self.classes = cfg["classes"]
        if "background" in cfg:
            if cfg["background"] not in self.classes:
                raise ValueError(f"{where}: background: {cfg['background']!r} is none of the "
                                 f"classes {list(self.classes)}")
            self.background_class: str | None = cfg["background"]
        #: ``{class: {id, supercategory}}``: the COCO categories the classes were imported from.
        self.coco_categories: dict[str, dict[str, Any]] = cfg.get("coco_categories", {})
        self.ignore_index = cfg.get("ignore_index", 255)
        table = {k: self.ignore_index if v == IGNORE_VALUE else v
                 for k, v in cfg.get("remap", {}).items()}
        #: What mask values not in :attr:`remap` (but ``ignore_index``) become; None: kept.
        self.remap_other: int | None = table.pop(OTHER_VALUES, None)
        self.remap: dict[int, int] = table
        self.colors = cfg.get("colors")
        if self.colors is not None and len(self.colors) != self.num_classes:
            raise ValueError(f"{where}: 'colors' has {len(self.colors)} entries for "
                             f"{self.num_classes} classes")
        self.ignore_color = cfg.get("ignore_color")
        # No colours given: well-separated ones (VOC's early entries are dark and alike).
        display = cfg.get("palette", self.colors)
        self.palette = display if display is not None else distinct_palette(
            self.classes, self.ignore_index, self.background_class)

    def _split_ids(self, split: str | None, where: str) -> list[str]:
        """The ids of ``split``: its list's, or every image with a mask without split lists
        (said once); every image for no split. Indexes the image and mask folders."""
        # The list is read first, so that a name in it that is not UTF-8 is reported there.
        has_lists = bool(self.split_names()) or (self.root / "splits").is_dir()
        split_ids = (None if split is None or not has_lists
                     else read_split_list(self._split_path(split, where)))
        self._images = self._index(self.image_dir,
                                   IMAGE_EXTENSIONS if self.bands is None else RASTER_EXTENSIONS,
                                   self.image_suffix)
        self._masks = self._index(self.mask_dir, MASK_EXTENSIONS, self.mask_suffix)
        if not self.mask_suffix:  # after them, a JPEG no mask has the name of: to be refused
            for key, jpeg in self._index(self.mask_dir, (".jpg", ".jpeg")).items():
                self._masks.setdefault(key, jpeg)
        self._check_ignore_fits(where)
        if self._images and self._masks and not set(self._images) & set(self._masks):
            stem = min(self._images)  # masks named a_mask.png: the end after the image's name
            # the shortest: 1_mask.png, not 10_mask.png, for the image 1.png
            named = min((p.name for p in self._masks.values() if p.name.startswith(stem)),
                        key=len, default=None)
            say_once(f"{self.mask_dir}: no mask has the name of an image (such as {stem})" + (
                f"; masks such as {named} are found with mask_suffix: "
                f"{named[len(stem):]} in {where}" if named else ""))
        if split_ids is None and split is not None:
            split_ids = sorted(set(self._images) & set(self._masks))
            say_once(f"{self.root} has no split lists (train.txt, val.txt, splits/ or 'splits' "
                     f"in dataset.yaml): every one of its {len(split_ids)} images with a mask "
                     f"is used, for training and validation alike")
        return sorted(self._images) if split_ids is None else split_ids

    def _check_ignore_fits(self, where: str) -> None:
        """Refuse an ignore value above 255 for 8-bit masks (by the first mask's header) unless
        colours or ``remap`` produce it."""
        if (self.ignore_index <= 255 or self.colors is not None
                or self.ignore_index in (*self.remap.values(), self.remap_other)
                or not self._masks):
            return
        first = next(iter(self._masks.values()))
        try:
            with Image.open(first, formats=IMAGE_FORMATS) as img:  # the header only
                mode = img.mode
        except (OSError, ValueError):  # a bad mask is reported where it is read
            return
        if mode in ("P", "L", "1", "LA", "PA"):  # 8-bit values, alpha aside
            raise ValueError(f"{where}: ignore_index: {self.ignore_index} cannot occur in "
                             f"8-bit masks (values 0-255) such as {first}: set it to the value "
                             f"of the masks' void pixels (often 255)")

    def bands_declaration(self, names: Sequence[str]) -> tuple[str, str]:
        """Where this dataset declares ``names`` as its bands and the line that does."""
        return str(self.config_path), f"`bands: [{', '.join(names)}]`"

    def split_names(self) -> list[str]:
        """The splits that have a list (:func:`split_list_files`)."""
        return sorted(split_list_files(self.root, self.split_lists))

    @staticmethod
    def _index(folder: Path, extensions: Sequence[str],
               suffix: str | None = None) -> dict[str, Path]:
        """The files of ``folder`` by id: the name less ``suffix``, else the stem of each file
        with one of ``extensions``. Sub-folders are not read (said once)."""
        found: dict[str, Path] = {}
        subs: list[str] = []
        for p in sorted(folder.iterdir()):
            wanted = (p.name.endswith(suffix) and p.name != suffix if suffix is not None
                      else p.suffix.lower() in extensions)
            if p.name.startswith(".") or not wanted:
                subs += [f"{p.name}/"] if not p.name.startswith(".") and p.is_dir() else []
                continue
            try:
                p.name.encode("utf-8")
            except UnicodeEncodeError:  # the name's bytes were not UTF-8 (kept as surrogates)
                raise ValueError(f"{folder}: file name {os.fsencode(p.name)!r} is not UTF-8: "
                                 f"rename it") from None
            key = p.name[: -len(suffix)] if suffix is not None else p.stem
            if key in found:
                raise ValueError(f"{folder}: two files with stem {key!r}: "
                                 f"{found[key].name} and {p.name}")
            found[key] = p
        if subs:
            say_once(f"{folder}: its sub-folders are not read ({', '.join(subs)}): a folder "
                     f"dataset's files lie directly in {folder.name}/; move theirs there to use "
                     f"them (renaming apart files of one name)")
        return found

    def _split_path(self, split: str, where: str) -> Path:
        if split in self.split_lists:
            return self.root / self.split_lists[split]
        for p in (self.root / f"{split}.txt", self.root / "splits" / f"{split}.txt"):
            if p.is_file():
                return p
        raise ValueError(f"split: no list for split {split!r}: looked for "
                         f"{self.root / f'{split}.txt'}, {self.root / 'splits' / f'{split}.txt'} "
                         f"and 'splits' in {where}")

    def image_path(self, index: int) -> Path:
        stem = self.ids[index]
        return self._images.get(stem, self.image_dir / f"{stem}{self.image_suffix or '.jpg'}")

    def label_path(self, index: int) -> Path:
        stem = self.ids[index]
        return self._masks.get(stem, self.mask_dir / f"{stem}{self.mask_suffix or '.png'}")

    def read_label(self, index: int) -> np.ndarray:
        return self._label_and_values(index)[0]

    def _label_and_values(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return read_label_and_values(
            self.label_path(index), num_classes=self.num_classes, ignore_index=self.ignore_index,
            remap=self.remap, colors=self.colors, color_ignore=self.ignore_color,
            advice=self.mask_advice, remap_other=self.remap_other)

    def _warns_unlisted(self) -> bool:
        return bool(self.remap) and self.remap_other is None

    def unlisted_values(self, index: int) -> set[int]:
        """The values of mask ``index`` that pass through :attr:`remap` unlisted as class
        indices where that looks unmeant (:func:`fcnseg.data.io.passed_through`)."""
        if not self._warns_unlisted():
            return set()
        raw = read_label(self.label_path(index), ignore_index=self.ignore_index,
                         colors=self.colors, color_ignore=self.ignore_color,
                         advice=self.mask_advice)
        return io.passed_through(raw, self.remap, self.num_classes)

    def load_noting_unlisted(self, index: int) -> tuple[np.ndarray, np.ndarray, set[int]]:
        """:meth:`load` and :meth:`unlisted_values` of sample ``index``, its mask read once."""
        if not self._warns_unlisted():
            return (*self.load(index), set())
        unlisted: set[int] = set()

        def read(i: int) -> np.ndarray:
            label, raw = self._label_and_values(i)
            unlisted.update(io.passed_through(raw, self.remap, self.num_classes))
            return label

        return (*self.load_reading(index, read), unlisted)

    def remap_warning(self, values: Iterable[int]) -> str | None:
        """One line naming the mask ``values`` of :meth:`unlisted_values` and the fix (None:
        there are none)."""
        found = sorted(set(values))
        if not found:
            return None
        where = self.config_path if self.config_path.is_file() else self.root
        shown = ", ".join(f"{v} → {self.classes[v]}" for v in found)
        values, stay = (("values", "they stay class indices") if len(found) > 1
                        else ("value", "it stays a class index"))
        return (f"{where}: remap does not list mask {values} {', '.join(map(str, found))}, so "
                f"{stay} ({shown}): list {'each' if len(found) > 1 else 'it'} in remap, or say "
                f"what unlisted values become with 'other: ignore' (or 'other: <class index>')")

    def load_reading(self, index: int, read_label: Callable[[int], np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The image and label (``read_label(index)``) of sample ``index``; with ``bands``, an
        H×W×N image and its label on one pixel grid, pixels without data ``ignore_index``
        (:meth:`fill_missing` fills the image)."""
        if self.bands is None:
            return super().load_reading(index, read_label)
        image_path, label_path = self.image_path(index), self.label_path(index)
        if not image_path.is_file():
            raise DataError(image_path, "missing image (no such file)")
        try:
            with open_raster(image_path, bands=self.bands, max_pixels=io.MAX_PIXELS) as r:
                image, info = r.read_all(), r.info
            label = read_label(index)
            check_same_size(label_path, "label raster", label.shape, "image", image_path,
                            image.shape)
            georeferenced = info.transform is not None and \
                label_path.suffix.lower() in (".tif", ".tiff")
            problem = grid_problem(info, raster_info(label_path)) if georeferenced else None
        except ImageError as e:  # naming the image or the label raster
            raise DataError(e.source, e.problem) from None
        if problem is not None:
            raise DataError(label_path, problem)
        missing = nodata_mask(image, self.nodata)
        if missing is not None:
            label = np.where(missing, self.ignore_index, label)
        return image, label

    def unmatched_masks(self) -> list[Path]:
        """Masks whose stem has no image (reported by ``fcnseg check-data``)."""
        return [p for stem, p in sorted(self._masks.items()) if stem not in self._images]
