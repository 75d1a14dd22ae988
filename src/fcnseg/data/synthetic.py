"""The embedded default dataset: procedurally generated scenes of textured shapes.

Every object class has its own shape, hue family and texture, so the classes are separable by
local cues, yet thin bars, rings and small blobs reward fine output resolution (FCN-32s blurs
what FCN-8s resolves). Samples are generated from ``(seed, index)`` alone, at any size.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from fcnseg.data.base import SegmentationDataset, Transform

SYNTHETIC_CLASSES: tuple[str, ...] = ("background", "disc", "rectangle", "triangle", "bar",
                                      "ring", "blob")

# Hue centre of each object class (degrees); objects jitter around it. 60 degrees apart so that
# colour alone nearly separates the classes and shape/texture settle the rest.
_HUES = {1: 0.0, 2: 55.0, 3: 120.0, 4: 185.0, 5: 240.0, 6: 300.0}
_HUE_JITTER = 12.0


def _noise_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a small random grid resized bilinearly to h×w."""
    gh, gw = max(2, cells * h // max(h, w) + 1), max(2, cells * w // max(h, w) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BILINEAR))


def _neighbours(a: np.ndarray, pad: str) -> list[np.ndarray]:
    """Each pixel's 4 neighbours (up, down, left, right); outside the image ``np.pad``'s."""
    p = np.pad(a, 1, mode=pad)
    return [p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]


def _colour(rng: np.random.Generator, hue: float) -> np.ndarray:
    h = ((hue + rng.uniform(-_HUE_JITTER, _HUE_JITTER)) % 360.0) / 360.0
    s = rng.uniform(0.55, 1.0)
    v = rng.uniform(0.6, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


class SyntheticSegmentation(SegmentationDataset):
    """Procedurally generated segmentation scenes: the built-in dataset that needs no download.

    Background, disc, rectangle, triangle, bar, ring and blob (clustered ellipses), each with a
    hue family and a texture, 3-7 objects over low-saturation noise. ``num_images`` of
    ``size`` (``S`` or ``(H, W)``); sample ``i`` depends only on ``(seed, i)`` (use other seeds
    for val). ``ignore_border``: a void band that wide on object boundaries, like VOC's.
    """

    classes = SYNTHETIC_CLASSES
    ignore_index = 255

    def __init__(self, num_images: int, size: int | tuple[int, int] = 128, seed: int = 0,
                 transform: Transform | None = None, *, ignore_border: int = 0) -> None:
        super().__init__(transform)
        if int(num_images) < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if h < 8 or w < 8:
            raise ValueError(f"size must be at least 8×8 pixels, got {h}×{w}")
        if ignore_border < 0:
            raise ValueError(f"ignore_border must be >= 0, got {ignore_border}")
        self.num_images = int(num_images)
        self.size = (int(h), int(w))
        self.seed = int(seed)
        self.ignore_border = int(ignore_border)

    def __len__(self) -> int:
        return self.num_images

    def name(self, index: int) -> str:
        return f"synthetic-{self.seed}-{index:06d}"

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        h, w = self.size
        s = float(min(h, w))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

        image = self._background(rng, h, w, s)
        label = np.zeros((h, w), dtype=np.int64)
        # Draw order: big shapes first, so thin and small ones stay visible on top of them.
        n = int(rng.integers(3, 8))
        kinds = rng.integers(1, 7, size=n)
        kinds = sorted(kinds, key=lambda k: (k in (4, 5, 6), rng.random()))
        for cls in kinds:
            mask = self._shape(rng, int(cls), yy, xx, h, w, s)
            if not mask.any():
                continue
            colour = _colour(rng, _HUES[int(cls)])
            tex = self._texture(rng, int(cls), yy, xx, mask, s)
            image[mask] = colour[None, :] * tex[mask][:, None]
            label[mask] = cls

        image += rng.normal(0.0, 6.0, size=image.shape).astype(np.float32)
        image = np.clip(image, 0, 255).astype(np.uint8)
        if self.ignore_border:
            label = self._void_band(label)
        return image, label

    @staticmethod
    def _background(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
        hue = rng.random()
        sat = rng.uniform(0.0, 0.2)
        base = np.array(colorsys.hsv_to_rgb(hue, sat, 1.0), dtype=np.float32)
        smooth = _noise_field(rng, h, w, int(rng.integers(3, 7)))
        fine = _noise_field(rng, h, w, max(4, int(s / 4)))
        value = rng.uniform(0.25, 0.45) + 0.35 * smooth + 0.15 * fine
        return (value[..., None] * base[None, None, :] * 255.0).astype(np.float32)

    @staticmethod
    def _shape(rng: np.random.Generator, cls: int, yy: np.ndarray, xx: np.ndarray, h: int,
               w: int, s: float) -> np.ndarray:
        cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
        if cls == 1:  # disc
            r = rng.uniform(0.08, 0.2) * s
            return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if cls in (2, 4):  # a rotated rectangle, or a bar: a long thin one
            a = rng.uniform(0, np.pi)
            if cls == 2:
                half_u, half_v = rng.uniform(0.07, 0.2, size=2) * s
            else:
                half_u = rng.uniform(0.2, 0.45) * s
                half_v = max(1.0, rng.uniform(0.015, 0.035) * s)
            u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
            v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
            return (np.abs(u) <= half_u) & (np.abs(v) <= half_v)
        if cls == 3:  # triangle: three vertices around a centre
            r = rng.uniform(0.14, 0.28) * s
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3
            angles = angles + rng.uniform(-0.35, 0.35, size=3)
            px, py = cx + r * np.cos(angles), cy + r * np.sin(angles)
            # Inside: on the same side of all three edges, whichever way the vertices turn.
            cross = [(px[j] - px[i]) * (yy - py[i]) - (py[j] - py[i]) * (xx - px[i])
                     for i, j in ((0, 1), (1, 2), (2, 0))]
            return (np.logical_and.reduce([c >= 0 for c in cross])
                    | np.logical_and.reduce([c <= 0 for c in cross]))
        if cls == 5:  # ring: a thin circular outline
            r = rng.uniform(0.1, 0.22) * s
            t = max(1.5, rng.uniform(0.025, 0.045) * s)
            d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
            return np.abs(d - r) <= t
        # blob: a cluster of small ellipses
        mask = np.zeros_like(yy, dtype=bool)
        for _ in range(int(rng.integers(1, 4))):
            by = cy + rng.normal(0, 0.06) * s
            bx = cx + rng.normal(0, 0.06) * s
            ry, rx = np.maximum(1.5, rng.uniform(0.03, 0.06, size=2) * s)
            mask |= ((yy - by) / ry) ** 2 + ((xx - bx) / rx) ** 2 <= 1.0
        return mask

    @staticmethod
    def _texture(rng: np.random.Generator, cls: int, yy: np.ndarray, xx: np.ndarray,
                 mask: np.ndarray, s: float) -> np.ndarray:
        """A brightness multiplier around 1 that differs in kind between classes."""
        if cls == 1:  # shading: brighter towards one side
            a = rng.uniform(0, 2 * np.pi)
            ys, xs = np.nonzero(mask)
            g = (xx - xs.mean()) * np.cos(a) + (yy - ys.mean()) * np.sin(a)
            return 1.0 - 0.25 * np.clip(g / (0.2 * s), -1, 1)
        if cls == 2:  # stripes
            a = rng.uniform(0, np.pi)
            period = rng.uniform(5.0, 8.0)
            phase = (xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / period)
            return 0.8 + 0.2 * np.sign(np.sin(phase))
        if cls == 3:  # checks
            p = int(rng.integers(4, 7))
            return np.where(((yy // p + xx // p) % 2) == 0, 1.0, 0.7).astype(np.float32)
        if cls == 6:  # speckle
            return 0.75 + 0.25 * rng.random(yy.shape, dtype=np.float32)
        return np.ones_like(yy)  # bars and rings: flat

    def _void_band(self, label: np.ndarray) -> np.ndarray:
        """Mark pixels within ``ignore_border`` of a class boundary as void, like VOC."""
        band = np.logical_or.reduce([n != label for n in _neighbours(label, "edge")])
        for _ in range(self.ignore_border - 1):
            band = np.logical_or.reduce([band, *_neighbours(band, "constant")])
        out = label.copy()
        out[band] = self.ignore_index
        return out
