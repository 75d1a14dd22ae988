"""Reading any image a user may hand to inference as an H×W×3 uint8 RGB array.

Photos carry their orientation in EXIF and are turned upright first, so that predictions line
up with what an image viewer shows. Grayscale, palette, CMYK and 16-bit images are converted;
transparent images are composited on white (a transparent pixel has no colour of its own, and
white is what a viewer shows behind it). Pixel counts above a limit are refused before
decoding, so that a small compressed file cannot make the process allocate gigabytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "ImageTooLargeError", "load_image", "to_rgb_uint8"]

#: Default pixel limit: Pillow's own decompression-bomb threshold (about 89 million pixels).
DEFAULT_MAX_PIXELS: int = int(Image.MAX_IMAGE_PIXELS or 89_478_485)

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | IO[bytes]


class ImageError(ValueError):
    """An input cannot be used as an image; the message names the source and the problem."""

    def __init__(self, source: object, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class ImageTooLargeError(ImageError):
    """An image has more pixels than allowed (possibly a decompression bomb)."""


def _source_name(source: Any, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<image bytes>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<PIL image>"
    return str(getattr(source, "name", "<image stream>"))


def _check_pixels(img: Image.Image, where: str, max_pixels: int | None) -> None:
    if max_pixels is None:
        return
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            where, f"{w}×{h} = {w * h} pixels is more than the limit of {max_pixels} "
                   f"(a decompression bomb?); raise max_pixels to read it"
        )


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read an image as an upright H×W×3 uint8 RGB array.

    Args:
        source: a file path, the encoded bytes of an image, a binary file object or a PIL image.
        name: how to name the source in error messages (default: the path, or a placeholder).
        max_pixels: refuse images with more pixels than this before decoding them
            (``None``: no limit).

    Raises:
        ImageError: the source is missing, not an image, truncated or corrupt.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    where = _source_name(source, name)
    if isinstance(source, Image.Image):
        _check_pixels(source, where, max_pixels)
        return _pil_to_rgb(source, where)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ImageError(where, "no such file" if not path.exists() else "not a file")
        stream: Any = path
    elif isinstance(source, bytes | bytearray | memoryview):
        stream = io.BytesIO(bytes(source))
    else:
        stream = source
    _allow_pillow(max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; we decide with max_pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as img:
                _check_pixels(img, where, max_pixels)
                img.load()
                return _pil_to_rgb(img, where)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(where, f"refused as a decompression bomb ({e})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(where, "not an image in a format Pillow can read") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many kinds on bad data
        # Truncated or corrupt data surfaces as OSError, SyntaxError, ValueError, EOFError, but
        # also struct.error, IndexError or NotImplementedError depending on the codec: all of
        # them mean this one input is unusable, never that the caller should stop.
        raise ImageError(where, f"cannot be decoded, truncated or corrupt "
                                f"({type(e).__name__}: {e})") from None


def _allow_pillow(max_pixels: int | None) -> None:
    """Let Pillow open what ``max_pixels`` allows: Pillow refuses more than twice its own
    limit outright, so a larger finite limit is raised there too (only ever raised, never
    lowered; :func:`_check_pixels` still applies the caller's limit). ``None`` leaves Pillow's
    process-wide decompression-bomb guard as it is rather than switching it off for everyone."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and max_pixels is not None and max_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _pil_to_rgb(img: Image.Image, where: str) -> np.ndarray:
    # A broken EXIF block should not lose the pixels: keep the image as stored then.
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (and 32-bit integer) grayscale: scale the 16-bit range to 8 bits.
        a = np.asarray(img).astype(np.float64)
        return _gray_to_rgb(np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        scale = 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else 1.0
        return _gray_to_rgb(np.clip(np.round(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
    try:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (ValueError, OSError) as e:
        raise ImageError(where, f"image mode {mode!r} cannot be converted to RGB ({e})") from None


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=-1)


def to_rgb_uint8(image: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any accepted input as an H×W×3 uint8 RGB array.

    Paths, bytes, file objects and PIL images go through :func:`load_image`. Arrays are H×W
    (grayscale), H×W×3 or H×W×4 (alpha composited on white). Tensors are 3×H×W (or 1×3×H×W).
    uint8 values are 0-255; uint16 values are scaled from 0-65535; floating-point values are
    read as 0-1 (torchvision's convention) and anything outside is an error rather than a guess.
    """
    import torch

    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise ImageError("<tensor>", f"expected a 3×H×W tensor, got shape {tuple(t.shape)}")
        return _array_to_rgb(t.permute(1, 2, 0).numpy(), "<tensor>", max_pixels)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, "<array>", max_pixels)
    return load_image(image, max_pixels=max_pixels)


def _array_to_rgb(a: np.ndarray, where: str, max_pixels: int | None) -> np.ndarray:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ImageError(where, f"expected H×W, H×W×3 or H×W×4, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageError(where, f"empty image of shape {a.shape}")
    if max_pixels is not None and a.shape[0] * a.shape[1] > max_pixels:
        raise ImageTooLargeError(where, f"{a.shape[1]}×{a.shape[0]} pixels is more than the "
                                        f"limit of {max_pixels}")
    # Full-scale value of each dtype: the colour and alpha channels are read relative to it.
    if a.dtype == np.uint8:
        full = 255.0
    elif a.dtype == np.uint16:
        full = 65535.0
    elif a.dtype == np.bool_:
        full = 1.0
    elif np.issubdtype(a.dtype, np.floating):
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ImageError(where, f"floating-point images are read as RGB in [0, 1], got values "
                                    f"in [{lo:.4g}, {hi:.4g}]; pass uint8 for 0-255 values")
        full = 1.0
    else:
        raise ImageError(where, f"unsupported dtype {a.dtype} (use uint8, uint16 or float)")
    if a.dtype == np.uint8 and a.shape[-1] == 3:
        return np.ascontiguousarray(a)
    values = np.nan_to_num(a.astype(np.float64)) / full
    rgb = values[..., :3] if values.shape[-1] != 1 else np.repeat(values, 3, axis=-1)
    if values.shape[-1] == 4:
        alpha = values[..., 3:4]
        rgb = rgb * alpha + (1.0 - alpha)  # composite on white
    rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)
