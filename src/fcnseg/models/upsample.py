"""Upsampling layers are bilinear deconvolutions, as the FCN reference initialises them.
Each is a plain ``nn.ConvTranspose2d`` that can also compute a window of its output (for heads)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def bilinear_kernel(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """2-D bilinear interpolation kernel of ``size``×``size`` (size 4: 0.25, 0.75, 0.75, 0.25)."""
    if size < 1:
        raise ValueError(f"kernel size must be positive, got {size}")
    f = (size + 1) // 2
    c = f - 1 if size % 2 == 1 else f - 0.5
    axis = 1 - (torch.arange(size, dtype=torch.float64) - c).abs() / f
    return torch.outer(axis, axis).to(dtype)


class BilinearUpsampling(nn.ConvTranspose2d):
    """A bias-free, channel-diagonal transposed convolution holding a bilinear kernel, frozen
    as the reference's (learning rate 0); set ``requires_grad`` to train it."""

    def __init__(self, channels: int, kernel: int, stride: int, padding: int = 0) -> None:
        super().__init__(channels, channels, kernel, stride=stride, padding=padding, bias=False)
        self.weight.requires_grad_(False)

    @classmethod
    def like(cls, layer: BilinearUpsampling) -> BilinearUpsampling:
        """A ``cls`` layer with ``layer``'s settings and its very weight."""
        new = cls(layer.in_channels, layer.kernel_size[0], layer.stride[0], layer.padding[0])
        new.weight = layer.weight
        return new.train(layer.training)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.zero_()
            diagonal = torch.arange(self.in_channels, device=self.weight.device)
            self.weight[diagonal, diagonal] = bilinear_kernel(self.kernel_size[0]).to(
                self.weight.device, self.weight.dtype)

    def forward_window(self, x: torch.Tensor, offset: int, size: Sequence[int]) -> torch.Tensor:
        """Rows and columns ``offset … offset + size - 1`` of ``self(x)``; zero outside its
        output (a negative ``offset`` zero-pads the input, only without padding)."""
        h, w = size[0], size[1]  # no int(): tracing for export keeps them symbolic
        if offset < 0:
            if self.padding != (0, 0):
                raise ValueError("a window before the output needs a deconvolution without "
                                 "padding")
            # Whole input pixels of zeros, plus one, so the window ends inside the output too.
            extra = math.ceil(-offset / self.stride[0]) + 1
            x = F.pad(x, (extra, extra, extra, extra))
            offset += extra * self.stride[0]
        return self(x)[..., offset : offset + h, offset : offset + w]


#: ``bilinear_upsampling(channels, kernel, stride, padding=0)``: a :class:`BilinearUpsampling`.
bilinear_upsampling = BilinearUpsampling


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
