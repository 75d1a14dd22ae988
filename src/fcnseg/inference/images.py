"""Any image a user may hand to inference becomes an H×W×3 uint8 RGB array here:
files, bytes, streams and PIL images by training's reader
(:func:`fcnseg.data.images.load_image`), arrays and tensors by the same transparency rule."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

from fcnseg.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageTooLargeError,
    composite_rgba_array,
    load_image,
    too_large_error,
)


def to_rgb_uint8(image: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any accepted input as an H×W×3 uint8 RGB array. Paths, bytes, file objects and PIL
    images go through :func:`load_image`. Arrays are H×W, H×W×3 or H×W×4 (alpha composited on
    white, as files are); tensors 3×H×W (or 1×3×H×W). uint8 values are 0-255, uint16 scaled
    from 0-65535, floats read as 0-1 (values outside are an error rather than a guess)."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ImageError("<tensor>", f"expected a 3×H×W tensor, got shape {tuple(t.shape)}")
        return _array_to_rgb(t.permute(1, 2, 0).numpy(), "<tensor>", max_pixels)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, "<array>", max_pixels)
    if not isinstance(image, _READABLE) and not hasattr(image, "read"):
        several = ("; one image per call: Segmenter.predict_batch takes several"
                   if isinstance(image, list | tuple) else "")
        raise ImageError("<input>", f"unsupported input type {type(image).__name__} (give a "
                                    f"path, bytes, a file object, a PIL image, an array or a "
                                    f"tensor){several}")
    with predict_limit():
        return load_image(image, max_pixels=max_pixels)


#: How a refusal for size says to raise the limit, in fcnseg predict's and the Segmenter's terms.
RAISE_MAX_PIXELS = "fcnseg predict --max-pixels PIXELS, or the Segmenter's max_pixels, raises it"


@contextlib.contextmanager
def predict_limit() -> Iterator[None]:
    """An image over the pixel limit refused naming how to raise it (:data:`RAISE_MAX_PIXELS`),
    not only as a possible decompression bomb."""
    try:
        yield
    except ImageTooLargeError as e:
        raise e.raised_by(RAISE_MAX_PIXELS) from None


#: What :func:`load_image` reads, besides file objects (anything with ``read``).
_READABLE = (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)


_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.bool_): 1.0}


def _array_to_rgb(a: np.ndarray, where: str, max_pixels: int | None) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ImageError(where, f"expected H×W, H×W×3 or H×W×4, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(where, f"empty image of shape {a.shape}")
    if max_pixels is not None and a.shape[0] * a.shape[1] > max_pixels:
        raise too_large_error(where, a.shape[1], a.shape[0], max_pixels,
                              "").raised_by(RAISE_MAX_PIXELS)
    full = _FULL_SCALE.get(a.dtype, 1.0)
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ImageError(where, f"floating-point images are read as RGB in [0, 1], got values "
                                    f"in [{lo:.4g}, {hi:.4g}]; pass uint8 for 0-255 values")
    elif a.dtype not in _FULL_SCALE:
        raise ImageError(where, f"unsupported dtype {a.dtype} (use uint8, uint16 or float)")
    if a.dtype == np.uint8 and a.shape[-1] == 3:
        return np.ascontiguousarray(a)
    values = np.nan_to_num(a.astype(np.float64)) / full
    rgb = values[..., :3] if values.shape[-1] != 1 else np.repeat(values, 3, axis=-1)
    if values.shape[-1] == 4:
        rgb = composite_rgba_array(values)
    rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)
