"""The common dataset interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from fcnseg.conventions import InputConvention
from fcnseg.data.errors import DataError
from fcnseg.data.images import file_orientation
from fcnseg.data.io import MASK_ADVICE, MaskAdvice, read_image, read_label
from fcnseg.data.modalities import pad_values
from fcnseg.data.palette import dataset_palette, palette_for

#: A joint transform: ``(image, label) -> (image, label)``.
Transform = Callable[[Any, Any], tuple[Any, Any]]


class SegmentationDataset(Dataset):
    """Base class: ``dataset[i]`` is ``(image, label)`` or ``transform(image, label)``.

    Untransformed, an H×W×3 uint8 RGB array and an H×W int64 array of class indices
    (``ignore_index``: in neither loss nor metrics). Subclasses set ``classes``, ``palette``,
    ``ignore_index`` (``ids``, file stems, for :meth:`name`) and implement :meth:`load` and
    ``__len__``. Several inputs are a dict keyed by modality, several label maps one keyed by
    head (their classes in ``heads``).
    """

    classes: tuple[str, ...] = ()
    #: The class declared to be background (dataset.yaml ``background:``); None: by its name.
    background_class: str | None = None
    ignore_index: int = 255
    ids: Sequence[str] = ()
    #: Label maps of a multi-head dataset: ``{head: class names}``; None for one label map.
    heads: Mapping[str, tuple[str, ...]] | None = None
    #: Classes that evaluation leaves out of the class means (mean accuracy, mean IU, fw IU):
    #: class indices for one label map, ``{head: indices}`` for several.
    eval_exclude_classes: tuple[int, ...] | Mapping[str, tuple[int, ...]] = ()
    #: Image ids the dataset leaves out of every split (e.g. images without annotations).
    excluded_ids: tuple[str, ...] = ()
    #: The reference's colour normalisation for this dataset, where it has its own.
    input_convention: InputConvention | None = None
    #: Why this split's labels cannot be scored (a benchmark's withheld test labels), one line;
    #: None when they can.
    labels_withheld: str | None = None

    @property
    def pad_values(self) -> dict[str, float | tuple[float, ...]]:
        """Raw values crops and batches pad each input with, by modality
        (:func:`fcnseg.data.modalities.pad_values`)."""
        return pad_values(self.input_convention)

    def __init__(self, transform: Transform | None = None) -> None:
        self.transform = transform
        self._palette: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """How many classes the labels index (the ignore value excluded)."""
        return len(self.classes)

    @property
    def palette(self) -> np.ndarray:
        """A 256×3 uint8 palette, the VOC void colour at the ignore value; unless set, that of
        :func:`~fcnseg.data.palette.dataset_palette`."""
        if self._palette is None:
            return dataset_palette(self.classes, self.ignore_index, self.background_class)
        return self._palette

    @palette.setter
    def palette(self, value: np.ndarray) -> None:
        # Entries not given keep their defaults (the void colour at the ignore value included).
        pal = palette_for(self.num_classes, self.ignore_index)
        v = np.asarray(value, dtype=np.uint8).reshape(-1, 3)[:256]
        pal[: len(v)] = v
        self._palette = pal

    def name(self, index: int) -> str:
        """A readable name for sample ``index``: its file stem where there is one."""
        return str(self.ids[index]) if self.ids else f"{index:06d}"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` as (H×W×3 uint8 RGB image, H×W int64 label), untransformed: what
        the data cache keeps."""
        raise NotImplementedError

    def fill_missing(self, image: Any) -> Any:
        """``image`` as :meth:`load` read it, made what the model takes (pixels without data
        filled here, after the cache, which so keeps the file's bit depth)."""
        return image

    def sample(self, index: int) -> tuple[Any, Any]:
        """Sample ``index`` untransformed: :meth:`load`, then :meth:`fill_missing`."""
        image, label = self.load(index)
        return self.fill_missing(image), label

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image, label = self.sample(index % len(self))
        if self.transform is not None:
            return self.transform(image, label)
        return image, label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {self.num_classes} classes)"


def refuse_withheld_labels(dataset: Any, where: str) -> None:
    """A ValueError (``"<where>: <why>"``) when ``dataset``'s split has labels withheld
    (:attr:`SegmentationDataset.labels_withheld`)."""
    why = getattr(dataset, "labels_withheld", None)
    if why:
        raise ValueError(f"{where}: {why}")


def refuse_empty_split(dataset: Any, where: str) -> None:
    """A ValueError when ``dataset``'s split holds no image: its name, ``where``, and how to
    choose another (with the dataset's ``split_rule``, where it has one)."""
    if len(dataset) > 0:
        return
    split = getattr(dataset, "split", None)
    if split is None:
        raise ValueError(f"{where} holds no image")
    rule = getattr(dataset, "split_rule", None)
    raise ValueError(f"split {split!r} of {where} holds no image: choose another split "
                     f"(--split NAME; in a spec or recipe, its split field)"
                     + (f"; {rule}" if rule else ""))


class FileSegmentationDataset(SegmentationDataset):
    """A dataset of image and mask files, ``image_dir / f"{ids[i]}{image_suffix}"`` and
    ``label_dir / f"{ids[i]}{label_suffix}"`` (or :meth:`image_path`, :meth:`label_path`).
    :meth:`load` reads both and checks the label values and sizes (a :class:`DataError`).
    """

    #: The dataset's folder and split, as ``repr`` shows them (set by the subclass).
    dir: Path
    split: str
    image_dir: Path
    label_dir: Path
    image_suffix: str = ".jpg"
    label_suffix: str = ".png"
    #: What a bad mask's message advises (a benchmark's own files, a folder's dataset.yaml).
    mask_advice: MaskAdvice = MASK_ADVICE

    def image_path(self, index: int) -> Path:
        return self.image_dir / f"{self.ids[index]}{self.image_suffix}"

    def label_path(self, index: int) -> Path:
        return self.label_dir / f"{self.ids[index]}{self.label_suffix}"

    def ids_of_images(self, folder: Path, pattern: str = "*") -> list[str]:
        """The ids of a split that is a folder of images (Cityscapes, ADE20K): the sorted paths
        under ``image_dir`` of ``folder/<pattern><image_suffix>`` without the suffix."""
        if not folder.is_dir():
            raise FileNotFoundError(f"split {self.split!r}: {folder} not found")
        cut = len(self.image_suffix)
        return sorted(p.relative_to(self.image_dir).as_posix()[:-cut]
                      for p in folder.glob(f"{pattern}{self.image_suffix}"))

    def read_label(self, index: int) -> np.ndarray:
        """The validated H×W int64 label of sample ``index``."""
        return read_label(self.label_path(index), num_classes=self.num_classes,
                          ignore_index=self.ignore_index, advice=self.mask_advice)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dir}, split={self.split!r}, {len(self)} images)"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.load_reading(index, self.read_label)

    def load_reading(self, index: int, read_label: Callable[[int], np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`load`, its label read by ``read_label(index)`` (after the image)."""
        image_path = self.image_path(index)
        image = read_image(image_path)
        label = read_label(index)
        if image.shape[:2] != label.shape:
            (ih, iw), orientation = image.shape[:2], file_orientation(image_path)
            # Only orientations 5-8 swap width and height.
            why = "" if orientation < 5 else (
                f" upright: its EXIF orientation tag ({orientation}) turns the stored {ih}×{iw} "
                f"pixels by 90°. Images are read upright, as viewers show them: draw the mask on "
                f"the upright image, or remove the tag from the image")
            if not why and label.shape == (iw, ih):
                why = (": width and height swapped, as an H×W array saved transposed: transpose "
                       "the mask back")
            check_same_size(self.label_path(index), "mask", label.shape, "image", image_path,
                            image.shape, why)
        return image, label


def check_same_size(path: Path, what: str, shape: tuple[int, ...], other_kind: str,
                    other_path: Path, other_shape: tuple[int, ...], why: str = "") -> None:
    """A :class:`DataError` at ``path`` when its H×W ``shape`` is not ``other_shape``."""
    (h, w), (oh, ow) = shape[:2], other_shape[:2]
    if (h, w) != (oh, ow):
        raise DataError(path, f"{what} is {w}×{h} but its {other_kind} {other_path.name} is "
                              f"{ow}×{oh} (W×H){why}")
