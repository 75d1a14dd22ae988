"""Joint image/mask transforms: each is a callable ``(image, label) -> (image, label)``.

Images are H×W×3 uint8 RGB arrays and labels H×W integer arrays until the final
:class:`Normalize`, which turns them into a float32 3×H×W tensor in the model's input convention
and an int64 H×W tensor. Masks are only ever resampled by nearest neighbour, so no transform
invents a class value. Random draws come from torch's RNG (or an explicit ``generator``), so
``torch.manual_seed`` and the DataLoader's per-worker seeding make augmentation reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from fcnseg.conventions import InputConvention, get_convention

__all__ = [
    "ColorJitter",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "ToTensor",
    "build_eval_transform",
    "build_train_transform",
    "resize_label",
]


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high_exclusive: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high_exclusive, (), generator=generator))


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


class RandomScale:
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]``.

    The image is resampled bilinearly, the label by nearest neighbour.
    """

    def __init__(
        self, min_scale: float, max_scale: float, generator: torch.Generator | None = None
    ) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.generator = generator

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = _uniform(self.min_scale, self.max_scale, self.generator)
        h, w = label.shape
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        if (nh, nw) == (h, w):
            return image, label
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
        return image, resize_label(label, nh, nw)

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop:
    """Crop a random ``size`` window; pad first (bottom/right) when the sample is smaller.

    Padding fills the image with ``fill`` (a grey level or an RGB triple, e.g. the dataset mean)
    and the label with ``ignore_index``, so padded pixels count in neither loss nor metrics.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        ignore_index: int = 255,
        fill: float | Sequence[float] = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(map(int, size))
        if min(self.size) < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        self.ignore_index = int(ignore_index)
        self.fill = fill
        self.generator = generator

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ch, cw = self.size
        h, w = label.shape
        if h < ch or w < cw:
            ph, pw = max(ch, h), max(cw, w)
            padded = np.empty((ph, pw, image.shape[2]), dtype=image.dtype)
            padded[...] = np.asarray(self.fill, dtype=np.float64).round().astype(image.dtype)
            padded[:h, :w] = image
            plabel = np.full((ph, pw), self.ignore_index, dtype=label.dtype)
            plabel[:h, :w] = label
            image, label, h, w = padded, plabel, ph, pw
        top = _randint(h - ch + 1, self.generator)
        left = _randint(w - cw + 1, self.generator)
        return image[top : top + ch, left : left + cw], label[top : top + ch, left : left + cw]

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, ignore_index={self.ignore_index})"


class RandomHorizontalFlip:
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.p = float(p)
        self.generator = generator

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if float(torch.rand((), generator=self.generator)) < self.p:
            return image[:, ::-1], label[:, ::-1]
        return image, label

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """Random brightness, contrast and saturation changes on the image only.

    Each factor is drawn from ``[1 - x, 1 + x]``; 0 leaves that property alone.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        for name, v in (("brightness", brightness), ("contrast", contrast),
                        ("saturation", saturation)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.generator = generator

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        return np.clip(x, 0, 255).round().astype(np.uint8), label

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation})")


class Normalize:
    """Convert to tensors: image → float32 3×H×W in the model's input convention, label → int64.

    ``convention`` is an :class:`~fcnseg.conventions.InputConvention` or its name
    (``"caffe_bgr"``, ``"torchvision_rgb"``); take it from ``model.input_convention``.
    """

    def __init__(self, convention: InputConvention | str | dict) -> None:
        self.convention = get_convention(convention)

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.convention.normalize_numpy(image))
        y = torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))
        return x, y

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.convention.name!r})"


class ToTensor(Normalize):
    """Alias of :class:`Normalize`: tensors in the model's input convention."""


def mean_rgb(convention: InputConvention | str | dict) -> tuple[float, float, float]:
    """The convention's mean pixel as RGB 0-255 values (what normalises to zero)."""
    c = get_convention(convention)
    mean = [m / c.scale for m in c.mean]
    if c.channel_order == "BGR":
        mean = mean[::-1]
    return (mean[0], mean[1], mean[2])


def build_train_transform(
    convention: InputConvention | str | dict,
    *,
    crop_size: int | tuple[int, int] | None = None,
    scale_range: tuple[float, float] | None = None,
    flip: bool = True,
    jitter: bool | float = False,
    ignore_index: int = 255,
) -> Compose:
    """The training pipeline: [scale] → [crop] → [flip] → [jitter] → normalise.

    Crops pad the image with the convention's mean pixel (zero after normalisation) and the label
    with ``ignore_index``. ``jitter=True`` means brightness, contrast and saturation 0.3; a float
    sets all three.
    """
    steps: list[Any] = []
    if scale_range is not None:
        steps.append(RandomScale(*scale_range))
    if crop_size is not None:
        steps.append(RandomCrop(crop_size, ignore_index=ignore_index, fill=mean_rgb(convention)))
    if flip:
        steps.append(RandomHorizontalFlip())
    if jitter:
        j = 0.3 if jitter is True else float(jitter)
        steps.append(ColorJitter(j, j, j))
    steps.append(Normalize(convention))
    return Compose(steps)


def build_eval_transform(convention: InputConvention | str | dict) -> Compose:
    """The evaluation pipeline: normalisation only (full images, no augmentation)."""
    return Compose([Normalize(convention)])
