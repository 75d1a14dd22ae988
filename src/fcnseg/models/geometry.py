"""Coordinate maps through convolution, pooling and deconvolution layers.

Feature index ``i`` (on either axis) is centred on input coordinate ``scale * i + shift``. A
convolution or pool (kernel k, stride s, padding p, dilation d) gives ``scale' = scale * s``,
``shift' = shift + scale * (d * (k - 1) / 2 - p)``; a deconvolution gives ``scale' = scale / s``,
``shift' = shift + scale * (p - (k - 1) / 2) / s``. Two maps of one scale line up after cropping
the earlier one by ``(shift_ref - shift_big) / scale``: the Caffe reference's crop offsets (19;
5, 27; 5, 9, 31) are these numbers, and the "same" geometry picks paddings that make them zero."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class CoordMap:
    """Feature index ``i`` is centred on input coordinate ``scale * i + shift``."""

    scale: float
    shift: float

    def through(self, layer: nn.Module) -> CoordMap:
        """The map of ``layer``'s output, given that this is the map of its input."""
        k, s, p, d = _params(layer)
        if isinstance(layer, nn.ConvTranspose2d):
            return CoordMap(self.scale / s, self.shift + self.scale * (p - (k - 1) / 2) / s)
        if k is None:  # shape-preserving layer (ReLU, dropout, ...)
            return self
        return CoordMap(self.scale * s, self.shift + self.scale * (d * (k - 1) / 2 - p))


IDENTITY = CoordMap(1.0, 0.0)


def trace(layers: Iterable[nn.Module], start: CoordMap = IDENTITY) -> CoordMap:
    """Compose the coordinate map through a sequence of layers."""
    m = start
    for layer in layers:
        m = m.through(layer)
    return m


def crop_offset(big: CoordMap, ref: CoordMap, *, allow_negative: bool = False) -> int:
    """Offset at which to crop the map ``big`` so that it lines up element for element with ``ref``
    (a ValueError for other scales, a fractional offset, or a negative one unless allowed)."""
    if not math.isclose(big.scale, ref.scale):
        raise ValueError(f"cannot align maps of different scales: {big} vs {ref}")
    off = (ref.shift - big.shift) / big.scale
    if not math.isclose(off, round(off), abs_tol=1e-9) or (round(off) < 0 and not allow_negative):
        raise ValueError(f"maps do not align on a non-negative whole offset ({off}): {big}, {ref}")
    return int(round(off))


def deconv_padding_for(src: CoordMap, target: CoordMap, kernel: int, stride: int) -> int:
    """Padding for a (kernel, stride) deconvolution of ``src`` to line up with ``target``."""
    p = (target.shift - src.shift) * stride / src.scale + (kernel - 1) / 2
    if not math.isclose(p, round(p), abs_tol=1e-9) or round(p) < 0:
        raise ValueError(f"no whole non-negative padding aligns {src} to {target} (got {p})")
    expected_scale = src.scale / stride
    if not math.isclose(expected_scale, target.scale):
        raise ValueError(f"stride {stride} maps scale {src.scale} to {expected_scale}, "
                         f"not {target.scale}")
    return int(round(p))


def output_size(n: int, layers: Iterable[nn.Module]) -> int:
    """Spatial size after ``layers`` for an input of size ``n`` (PyTorch's rounding rules)."""
    for layer in layers:
        k, s, p, d = _params(layer)
        if k is None:
            continue
        if isinstance(layer, nn.ConvTranspose2d):
            n = (n - 1) * s - 2 * p + d * (k - 1) + 1 + _pair(layer.output_padding)
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d) and layer.ceil_mode:
            out = math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1
            if (out - 1) * s >= n + p:  # the last window must start inside the input
                out -= 1
            n = out
        else:
            n = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if n < 1:
            return n
    return n


def _pair(v: int | tuple[int, ...]) -> int:
    if isinstance(v, tuple):
        if len(set(v)) != 1:
            raise ValueError(f"only square kernels, strides and paddings are supported, got {v}")
        return int(v[0])
    return int(v)


def _params(layer: nn.Module) -> tuple:
    if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.MaxPool2d | nn.AvgPool2d):
        k = _pair(layer.kernel_size)
        s = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
        p = _pair(layer.padding)
        d = _pair(getattr(layer, "dilation", 1))
        return k, s, p, d
    return None, 1, 0, 1


def output_stride(model: nn.Module, default: int = 32) -> int:
    """The spacing, in input pixels, of a model's coarsest scores: the largest scale of its
    ``coord_maps`` (of the network behind a preprocessing wrapper's ``network`` too); ``default``
    (32, the FCNs' coarsest stride, a multiple of every finer one) where it declares none. Input
    windows that start on multiples of it see the score grid of a pass over the whole input."""
    for m in (model, getattr(model, "network", None)):
        maps_of = getattr(m, "coord_maps", None)
        maps = maps_of() if callable(maps_of) else maps_of
        if maps:
            found = maps.values() if hasattr(maps, "values") else maps  # a dict or a list
            scales = [c.scale if isinstance(c, CoordMap) else c[0] for c in found]
            return max(1, int(round(max(scales))))
    return default
