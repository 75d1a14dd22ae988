"""Bilinear deconvolution kernels, as the FCN reference initialises its upsampling layers."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["bilinear_kernel", "bilinear_upsampling", "is_bilinear"]


def bilinear_kernel(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """2-D bilinear interpolation kernel of ``size``×``size``.

    factor f = (size + 1) // 2, centre c = f - 1 (odd size) or f - 0.5 (even size),
    value(i, j) = (1 - |i - c| / f) * (1 - |j - c| / f). size 4 gives 0.25, 0.75, 0.75, 0.25.
    """
    if size < 1:
        raise ValueError(f"kernel size must be positive, got {size}")
    f = (size + 1) // 2
    c = f - 1 if size % 2 == 1 else f - 0.5
    axis = 1 - (torch.arange(size, dtype=torch.float64) - c).abs() / f
    return torch.outer(axis, axis).to(dtype)


def bilinear_upsampling(
    channels: int, kernel: int, stride: int, padding: int = 0
) -> nn.ConvTranspose2d:
    """A bias-free transposed convolution holding a channel-diagonal bilinear kernel.

    Channel ``c`` of the output is the bilinear upsampling of channel ``c`` of the input; the
    off-diagonal kernels are zero. The weight starts frozen (``requires_grad=False``): the
    reference never trains its upsampling layers (learning rate 0); set ``requires_grad`` back to
    True to train them.
    """
    layer = nn.ConvTranspose2d(channels, channels, kernel, stride=stride, padding=padding,
                               bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        k = bilinear_kernel(kernel)
        for c in range(channels):
            layer.weight[c, c] = k
    layer.weight.requires_grad_(False)
    return layer


def is_bilinear(layer: nn.ConvTranspose2d) -> bool:
    """True if ``layer`` still holds its channel-diagonal bilinear kernel exactly."""
    w = layer.weight
    if w.shape[0] != w.shape[1] or layer.groups != 1 or layer.bias is not None:
        return False
    expected = torch.zeros_like(w)
    k = bilinear_kernel(w.shape[-1], w.dtype).to(w.device)
    idx = torch.arange(w.shape[0], device=w.device)
    expected[idx, idx] = k
    return bool(torch.equal(w.detach(), expected))
