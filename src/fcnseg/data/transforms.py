"""Joint image/mask transforms: each is a callable ``(image, label) -> (image, label)``.

Images are H×W×3 uint8 arrays and labels H×W integer arrays until :class:`ToTensor` (3×H×W
raw pixels, int64 H×W): the model normalises. Masks are resampled by nearest neighbour only
(no invented class). Several inputs (``{modality: array}``) or label maps (``{head: array}``)
travel as dicts, changed alike by one draw; colour jitter touches the colour input only.
Draws come from torch's RNG (or a ``generator``), so ``torch.manual_seed`` reproduces them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from fcnseg.data.modalities import COLOR, pad_values
from fcnseg.utils.keyed import first_of, keyed, unkeyed


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high_exclusive: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high_exclusive, (), generator=generator))


#: A sample's inputs by modality, or its label maps by head (a plain array under None).
Arrays = dict[Any, Any]


def _each(arrays: Arrays, fn: Callable[[Any], Any]) -> Arrays:
    return {k: fn(v) for k, v in arrays.items()}


def _size_of(labels: Arrays) -> tuple[int, int]:
    h, w = np.shape(first_of(labels))[:2]
    return int(h), int(w)


def _pad(array: np.ndarray, height: int, width: int, value: Any) -> np.ndarray:
    """``array`` padded bottom and right to height×width with ``value``."""
    out = np.empty((height, width, *array.shape[2:]), dtype=array.dtype)
    out[...] = value
    out[: array.shape[0], : array.shape[1]] = array
    return out


class JointTransform:
    """The base of the transforms: :meth:`apply` changes a sample's inputs and label maps
    together as dicts (a plain array as ``{None: array}``)."""

    def __call__(self, image: Any, label: Any) -> tuple[Any, Any]:
        images, labels = self.apply(keyed(image), keyed(label))
        return unkeyed(images), unkeyed(labels)

    def apply(self, images: Arrays, labels: Arrays) -> tuple[Arrays, Arrays]:
        raise NotImplementedError


def resize_input(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of one input: H×W×3 uint8 through PIL's RGB path (a read-only view),
    anything else channel by channel in float32."""
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    planes = image[..., None] if image.ndim == 2 else image
    out = np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32),
                                   mode="F").resize((width, height), Image.BILINEAR))
        for c in range(planes.shape[2])
    ], axis=-1)
    return out[..., 0] if image.ndim == 2 else out


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map, sampling at pixel centres (as PIL does)."""
    h, w = label.shape
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.int64), w - 1)
    return label[rows[:, None], cols[None, :]]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, label: Any) -> tuple[Any, Any]:
        for t in self.transforms:
            image, label = t(image, label)
        return image, label

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class RandomScale(JointTransform):
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]`` (the image
    bilinearly, the label by nearest neighbour)."""

    def __init__(self, min_scale: float, max_scale: float,
                 generator: torch.Generator | None = None) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.generator = generator

    def apply(self, images: Arrays, labels: Arrays) -> tuple[Arrays, Arrays]:
        scale = _uniform(self.min_scale, self.max_scale, self.generator)
        h, w = _size_of(labels)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if (nh, nw) == (h, w):
            return images, labels
        return (_each(images, lambda im: resize_input(im, nh, nw)),
                _each(labels, lambda lb: resize_label(lb, nh, nw)))

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop(JointTransform):
    """Crop a random ``size`` window, padding a smaller sample bottom/right first: images with
    ``fill`` (a grey level or RGB triple; by modality for dicts, else 0; ``"color"``'s for a
    plain image), labels with ``ignore_index``."""

    def __init__(self, size: int | tuple[int, int], ignore_index: int = 255,
                 fill: float | Sequence[float] | Mapping[str, float | Sequence[float]] = 0,
                 generator: torch.Generator | None = None) -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(map(int, size))
        if min(self.size) < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        self.ignore_index = int(ignore_index)
        self.fill = fill
        self._fills = keyed(fill)  # one fill is the colour input's
        self.generator = generator

    def _fill_for(self, key: str | None, dtype: np.dtype) -> np.ndarray:
        plain = self._fills.get(None, 0) if key in (None, COLOR) else 0
        value = np.asarray(self._fills.get(COLOR if key is None else key, plain), np.float64)
        return (value.round() if np.issubdtype(dtype, np.integer) else value).astype(dtype)

    def apply(self, images: Arrays, labels: Arrays) -> tuple[Arrays, Arrays]:
        ch, cw = self.size
        h, w = _size_of(labels)
        if h < ch or w < cw:
            h, w = max(ch, h), max(cw, w)
            images = {k: _pad(im, h, w, self._fill_for(k, im.dtype)) for k, im in images.items()}
            labels = _each(labels, lambda lb: _pad(lb, h, w, self.ignore_index))
        top = _randint(h - ch + 1, self.generator)
        left = _randint(w - cw + 1, self.generator)

        def crop(a: np.ndarray) -> np.ndarray:
            return a[top : top + ch, left : left + cw]

        return _each(images, crop), _each(labels, crop)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, ignore_index={self.ignore_index})"


class RandomHorizontalFlip(JointTransform):
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.p = float(p)
        self.generator = generator

    def apply(self, images: Arrays, labels: Arrays) -> tuple[Arrays, Arrays]:
        if float(torch.rand((), generator=self.generator)) < self.p:
            return _each(images, lambda a: a[:, ::-1]), _each(labels, lambda a: a[:, ::-1])
        return images, labels

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter(JointTransform):
    """Random brightness, contrast and saturation changes on the colour input only (HHA and
    depth are measurements); each factor is drawn from ``[1 - x, 1 + x]``, 0 leaves it."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        for name, v in (("brightness", brightness), ("contrast", contrast),
                        ("saturation", saturation)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.generator = generator

    def apply(self, images: Arrays, labels: Arrays) -> tuple[Arrays, Arrays]:
        # A plain image (key None) is the colour input.
        return {k: self._jitter(v) if k in (None, COLOR) else v
                for k, v in images.items()}, labels

    def _jitter(self, image: np.ndarray) -> np.ndarray:
        x = image.astype(np.float32)
        if self.brightness:
            x *= _uniform(1 - self.brightness, 1 + self.brightness, self.generator)
        if self.contrast:
            f = _uniform(1 - self.contrast, 1 + self.contrast, self.generator)
            x = (x - x.mean()) * f + x.mean()
        if self.saturation:
            f = _uniform(1 - self.saturation, 1 + self.saturation, self.generator)
            grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            x = (x - grey[..., None]) * f + grey[..., None]
        return np.clip(x, 0, 255).round().astype(np.uint8)

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation})")


class ToTensor(JointTransform):
    """Tensors of the same values: an H×W×C image → C×H×W (uint8 stays), an H×W input → 1×H×W,
    a label → int64 H×W; dicts of them too. Images are views, copied only where read-only."""

    @staticmethod
    def _input(image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.require(image, requirements=("C", "W")))
        return t[None] if t.dim() == 2 else t.permute(2, 0, 1)

    def apply(self, images: Arrays, labels: Arrays) -> tuple[Arrays, Arrays]:
        labels = _each(labels, lambda lb: torch.from_numpy(
            np.require(lb, np.int64, requirements=("C", "W"))))
        return _each(images, self._input), labels

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def build_train_transform(*, crop_size: int | tuple[int, int] | None = None,
                          scale_range: tuple[float, float] | None = None, flip: bool = True,
                          jitter: bool | float = False, ignore_index: int = 255,
                          fill: Mapping[str, float | Sequence[float]] | None = None) -> Compose:
    """The training pipeline: [scale] → [crop] → [flip] → [jitter] → to tensors.

    Crops pad inputs with ``fill`` (by modality; pass the dataset's ``pad_values``; default
    :func:`fcnseg.data.modalities.pad_values`), labels with ``ignore_index``. ``jitter=True``
    is 0.3 for each property; a float sets all.
    """
    steps: list[Any] = []
    if scale_range is not None:
        steps.append(RandomScale(*scale_range))
    if crop_size is not None:
        fill = dict(pad_values() if fill is None else fill)
        steps.append(RandomCrop(crop_size, ignore_index=ignore_index, fill=fill))
    if flip:
        steps.append(RandomHorizontalFlip())
    if jitter:
        j = 0.3 if jitter is True else float(jitter)
        steps.append(ColorJitter(j, j, j))
    steps.append(ToTensor())
    return Compose(steps)


def build_eval_transform() -> Compose:
    """The evaluation pipeline: tensors of the full images' raw pixels (no augmentation)."""
    return Compose([ToTensor()])
