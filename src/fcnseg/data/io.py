"""Reading images and label maps, turning every kind of bad file into a :class:`DataError`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fcnseg.data.base import DataError

__all__ = ["MAX_PIXELS", "check_label_values", "read_image", "read_label", "remap_values"]

#: Images larger than this many pixels are refused as possible decompression bombs (Pillow's own
#: default limit). Raise it (``fcnseg.data.io.MAX_PIXELS = ...``) for genuinely huge images.
MAX_PIXELS = 89_478_485


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise DataError(path, f"missing {what} (no such file)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; we refuse with our own check below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(path, f"refusing {what}: decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise DataError(path, f"unreadable {what}: not an image file Pillow can decode") from None
    except OSError as e:
        raise DataError(path, f"unreadable {what}: {e}") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise DataError(
            path,
            f"refusing {what} of {w}×{h} = {w * h} pixels (more than MAX_PIXELS = {MAX_PIXELS}): "
            f"possible decompression bomb; raise fcnseg.data.io.MAX_PIXELS if it is genuine",
        )
    try:
        img.load()  # decode now, so truncation shows up here rather than later
    except (OSError, SyntaxError, ValueError) as e:
        img.close()
        raise DataError(path, f"unreadable or truncated {what}: {e}") from None
    return img


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as an H×W×3 uint8 RGB array."""
    path = Path(path)
    with _open(path, "image") as img:
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            raise DataError(path, f"image has mode {img.mode}: expected an 8-bit colour image")
        return np.asarray(img.convert("RGB"))


def read_label(
    path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    ignore_index: int = 255,
    remap: Mapping[int, int] | None = None,
    colors: np.ndarray | None = None,
    color_ignore: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Read a label map as an H×W int64 array of class indices.

    Palette ("P") PNGs give their indices (never converted to RGB); greyscale and 16-bit masks
    their values. RGB masks need ``colors`` (a K×3 array, class k has colour ``colors[k]``;
    ``color_ignore`` marks void); any other colour is an error naming the first few found.
    ``remap`` then replaces raw values (e.g. ``{255: 1}``), and with ``num_classes`` every value
    must be in ``[0, num_classes)`` or equal ``ignore_index``.
    """
    path = Path(path)
    with _open(path, "mask") as img:
        mode = img.mode
        if mode in ("RGB", "RGBA"):
            if colors is None:
                raise DataError(
                    path,
                    "RGB mask where class indices are expected: save masks as index or palette "
                    "PNGs, or give a colour table ('colors' in dataset.yaml)",
                )
            rgb = np.asarray(img.convert("RGB"))
            label = _rgb_to_index(path, rgb, np.asarray(colors), color_ignore, ignore_index)
        elif mode in ("P", "L", "1", "I;16", "I;16B", "I;16L", "I"):
            label = np.asarray(img).astype(np.int64)
        else:
            raise DataError(
                path, f"mask has unsupported mode {mode}: expected an index or palette PNG"
            )
    label = remap_values(label, remap)
    if num_classes is not None:
        depth = "16-bit mask: " if mode.startswith("I") else ""
        check_label_values(path, label, num_classes, ignore_index, prefix=depth)
    return label


def _rgb_to_index(
    path: Path, rgb: np.ndarray, colors: np.ndarray, color_ignore: tuple[int, int, int] | None,
    ignore_index: int,
) -> np.ndarray:
    code = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): k for k, (r, g, b) in enumerate(colors)}
    if color_ignore is not None:
        r, g, b = color_ignore
        table[(int(r) << 16) | (int(g) << 8) | int(b)] = ignore_index
    keys = np.array(sorted(table), dtype=np.int64)
    values = np.array([table[k] for k in keys], dtype=np.int64)
    pos = np.searchsorted(keys, code).clip(0, len(keys) - 1)
    known = keys[pos] == code
    if not known.all():
        bad = np.unique(code[~known])[:5]
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in bad)
        raise DataError(
            path,
            f"{int((~known).sum())} pixels have colours not in the colour table, e.g. {shown}",
        )
    return values[pos]


def remap_values(label: np.ndarray, remap: Mapping[int, int] | None) -> np.ndarray:
    """Replace raw mask values by others, e.g. ``{255: 1}`` for 0/255 binary masks."""
    if not remap:
        return label
    out = label.copy()
    for src, dst in remap.items():
        out[label == int(src)] = int(dst)
    return out


def check_label_values(
    path: str | os.PathLike[str], label: np.ndarray, num_classes: int, ignore_index: int,
    *, prefix: str = "",
) -> None:
    """Raise :class:`DataError` if a value is outside ``[0, num_classes)`` and not the ignore."""
    bad = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if bad.any():
        values = np.unique(label[bad])
        shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise DataError(
            path,
            f"{prefix}label values outside [0, {num_classes}) other than the ignore value "
            f"{ignore_index}: {shown} ({int(bad.sum())} pixels). Fix the masks, or map the "
            f"values with 'remap' in dataset.yaml (e.g. {{255: 1}} for 0/255 binary masks)",
        )
