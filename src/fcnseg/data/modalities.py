"""Input modalities other than colour, and their fixed normalisations (NYUDv2's HHA and depth).

A dataset with several inputs returns them as a dict keyed by modality name (``{"color": ...,
"hha": ..., "depth": ...}``). Colour follows the model's input convention; the other
modalities have a normalisation of their own, the reference release's, listed here so that
datasets and transforms agree on it:

- ``hha``: H×W×3 uint8 (horizontal disparity, height above ground, angle with gravity), kept in
  its stored channel order, minus :data:`HHA_MEAN`; no scaling.
- ``depth``: H×W raw depth as stored in the 16-bit PNGs (millimetres), used as
  ``log(depth) - LOG_DEPTH_MEAN``. Pixels without a depth (0) become 0 after normalisation (the
  mean) rather than ``-inf``.
"""

from __future__ import annotations

import math

import numpy as np

from fcnseg.conventions import InputConvention

__all__ = [
    "COLOR",
    "HHA_MEAN",
    "LOG_DEPTH_MEAN",
    "MODALITY_FILL",
    "normalize_depth",
    "normalize_hha",
    "normalize_input",
]

#: The colour modality's key: normalised by the model's input convention.
COLOR = "color"

#: Mean HHA pixel of NYUDv2 (in the PNGs' channel order).
HHA_MEAN: tuple[float, float, float] = (132.431, 94.076, 118.477)

#: Mean log depth of NYUDv2 (depth in the PNGs' units).
LOG_DEPTH_MEAN: float = 7.844

#: The raw value of each non-colour modality that normalises to zero: what crops pad with.
MODALITY_FILL: dict[str, float | tuple[float, ...]] = {
    "hha": HHA_MEAN,
    "depth": math.exp(LOG_DEPTH_MEAN),
}


def normalize_hha(hha: np.ndarray) -> np.ndarray:
    """H×W×3 HHA (0-255) → 3×H×W float32, minus :data:`HHA_MEAN`."""
    x = np.asarray(hha, dtype=np.float32) - np.asarray(HHA_MEAN, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalize_depth(depth: np.ndarray) -> np.ndarray:
    """H×W raw depth → 1×H×W float32 ``log(depth) - LOG_DEPTH_MEAN`` (0 where depth ≤ 0)."""
    d = np.asarray(depth, dtype=np.float32)
    valid = d > 0
    out = np.zeros(d.shape, np.float32)
    out[valid] = np.log(d[valid]) - np.float32(LOG_DEPTH_MEAN)
    return out[None]


def normalize_input(modality: str | None, array: np.ndarray,
                    convention: InputConvention) -> np.ndarray:
    """One input as the model takes it (C×H×W float32): colour (``modality`` None or
    ``"color"``) by the model's ``convention``, the other modalities by their own rule."""
    if modality in (None, COLOR):
        return convention.normalize_numpy(array)
    if modality == "hha":
        return normalize_hha(array)
    if modality == "depth":
        return normalize_depth(array)
    raise ValueError(f"no normalisation for input modality {modality!r}: known: color, hha, "
                     f"depth")
