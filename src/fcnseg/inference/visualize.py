"""Pictures of predictions: colour label maps, overlays, per-class heatmaps and index PNGs.

Heatmaps colour a per-class score map (the paper's "heatmaps") through a 256-entry lookup
table computed here from a formula or a few anchor colours, so no plotting library is needed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable

import numpy as np
from PIL import Image

from fcnseg.data.palette import colorize
from fcnseg.utils.files import atomic_write_bytes

__all__ = [
    "COLORMAPS",
    "colorize",
    "colormap_lut",
    "heatmap",
    "normalize_palette",
    "overlay",
    "read_label_png",
    "label_png_bytes",
    "save_label_png",
]

# Anchor colours of matplotlib's viridis at 0, 1/4, 1/2, 3/4 and 1 (its published key colours);
# the table interpolates linearly between them, close enough for a picture.
_VIRIDIS_ANCHORS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)

COLORMAPS = ("viridis", "jet", "gray")


def colormap_lut(name: str = "viridis") -> np.ndarray:
    """A 256×3 uint8 lookup table for ``name`` (one of :data:`COLORMAPS`)."""
    t = np.linspace(0.0, 1.0, 256)
    if name == "viridis":
        pos = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
        rgb = np.stack([np.interp(t, pos, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], -1) / 255
    elif name == "jet":
        # The classic piecewise-linear jet: blue → cyan → yellow → red.
        rgb = np.stack([np.clip(1.5 - np.abs(4 * t - k), 0, 1) for k in (3, 2, 1)], -1)
    elif name == "gray":
        rgb = np.repeat(t[:, None], 3, axis=1)
    else:
        raise ValueError(f"unknown colormap {name!r}; known: {COLORMAPS}")
    return np.round(rgb * 255).astype(np.uint8)


def normalize_palette(palette: np.ndarray | Iterable[Iterable[int]]) -> np.ndarray:
    """Any palette (n×3 values, n ≤ 256) as a 256×3 uint8 array, missing entries black."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    p = np.asarray(list(palette) if not isinstance(palette, np.ndarray) else palette)
    p = p.astype(np.int64).reshape(-1, 3)[:256]
    if p.size and (p.min() < 0 or p.max() > 255):
        raise ValueError("palette entries must be in 0..255")
    pal[: len(p)] = p
    return pal


def overlay(
    image: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    alpha: float = 0.5,
    *,
    exclude: Iterable[int] = (),
) -> np.ndarray:
    """Blend the label colours over an H×W×3 uint8 image: ``(1-alpha)·image + alpha·colour``.

    Pixels whose label is in ``exclude`` (e.g. background) keep the image's colour.
    """
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[:2] != label.shape:
        raise ValueError(f"overlay needs an H×W×3 image and an H×W label of the same size, "
                         f"got {image.shape} and {label.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colour = colorize(label, palette).astype(np.float32)
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colour
    out = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    skip = list(exclude)
    if skip:
        keep = np.isin(label, skip)
        out[keep] = image[keep]
    return out


def heatmap(
    scores: np.ndarray,
    colormap: str | np.ndarray = "viridis",
    *,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Colour an H×W score map (e.g. one class's probabilities) as an H×W×3 uint8 image.

    Scores map linearly from ``[vmin, vmax]`` (default: the map's own minimum and maximum) onto
    the colormap, values outside clipped; a constant map gets the colormap's first colour.
    ``colormap`` is a name from :data:`COLORMAPS` or a 256×3 lookup table.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"heatmap needs an H×W score map, got shape {s.shape}")
    lut = colormap_lut(colormap) if isinstance(colormap, str) else np.asarray(colormap, np.uint8)
    if lut.shape != (256, 3):
        raise ValueError(f"a colormap table must be 256×3, got {lut.shape}")
    s = np.nan_to_num(s)
    lo = float(s.min()) if vmin is None else float(vmin)
    hi = float(s.max()) if vmax is None else float(vmax)
    t = np.zeros_like(s) if hi <= lo else np.clip((s - lo) / (hi - lo), 0.0, 1.0)
    return lut[np.round(t * 255).astype(np.int64)]


def label_png_bytes(label: np.ndarray, palette: np.ndarray) -> bytes:
    """An H×W label map as PNG bytes whose pixel values are the class indices.

    Models of up to 256 classes get a palette ("P" mode) PNG with the model's colours, so viewers
    show colours while ``np.array(Image.open(...))`` gives the labels back exactly; wider models
    get a 16-bit grayscale PNG.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map must be H×W, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 65535):
        raise ValueError(f"label values must be in 0..65535 for a PNG, got "
                         f"{label.min()}..{label.max()}")
    if not label.size or label.max() <= 255:
        img = Image.fromarray(label.astype(np.uint8))  # "L"; putpalette makes it "P"
        img.putpalette(normalize_palette(palette).reshape(-1).tolist())
    else:
        img = Image.fromarray(label.astype(np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_label_png(
    path: str | os.PathLike[str], label: np.ndarray, palette: np.ndarray
) -> None:
    """Write an H×W label map as :func:`label_png_bytes` does, atomically."""
    try:
        data = label_png_bytes(label, palette)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    atomic_write_bytes(path, data)


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label PNG's indices (never its colours): uint8 for palette or 8-bit grayscale
    files, int64 for the 16-bit ones written for models of more than 256 classes."""
    with Image.open(path) as img:
        if img.mode in ("P", "L"):
            return np.array(img, dtype=np.uint8)
        if img.mode.startswith("I"):
            return np.array(img).astype(np.int64)
        raise ValueError(f"{path}: a label PNG must be palette or grayscale, not {img.mode}")
