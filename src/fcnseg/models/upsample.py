"""Bilinear deconvolution kernels, as the FCN reference initialises its upsampling layers."""

from __future__ import annotations

import functools

import torch
from torch import nn

from fcnseg.models.fastpath import plain_path_only

__all__ = ["bilinear_kernel", "bilinear_upsampling", "is_bilinear", "upsample_crop"]


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
        diagonal = torch.arange(channels, device=layer.weight.device)
        layer.weight[diagonal, diagonal] = bilinear_kernel(kernel).to(layer.weight.device)
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


# -- the fast path -----------------------------------------------------------------------------
# A frozen channel-diagonal bilinear deconvolution is separable: along each axis it is a banded
# (out × in) interpolation matrix U, and layer(x)[c] = U_h · x[c] · U_wᵀ. Two small matrix products
# replace a dense C×C transposed convolution (which multiplies by C² − C zero kernels), and the crop
# that follows is folded into U by keeping only the rows that survive it.


def _is_plain_bilinear(layer: nn.ConvTranspose2d) -> bool:
    """``is_bilinear`` plus the layout the separable path assumes, cached per weight version.

    The answer is kept on the layer with the weight's storage and version counter, so loading a
    state dict or an optimizer step (both in-place writes) invalidates it.
    """
    w = layer.weight
    try:
        key: tuple | None = (w.data_ptr(), w._version, w.dtype, w.device)
    except RuntimeError:  # inference tensors carry no version counter: check every time
        key = None
    cached = layer.__dict__.get("_fcnseg_bilinear")
    if key is not None and cached is not None and cached[0] == key:
        return cached[1]
    kh, kw = layer.kernel_size
    plain = (
        kh == kw
        and layer.stride[0] == layer.stride[1]
        and layer.padding[0] == layer.padding[1]
        and layer.dilation == (1, 1)
        and layer.output_padding == (0, 0)
        and layer.padding_mode == "zeros"
        and is_bilinear(layer)
    )
    if key is not None:
        layer.__dict__["_fcnseg_bilinear"] = (key, plain)
    return plain


@functools.lru_cache(maxsize=64)
def _axis_matrix(
    kernel: int, stride: int, padding: int, in_len: int, start: int, out_len: int,
    dtype: torch.dtype, device: torch.device,
) -> torch.Tensor:
    """Rows ``start … start+out_len-1`` of the 1-D bilinear transposed convolution as a matrix."""
    f = (kernel + 1) // 2
    c = f - 1 if kernel % 2 == 1 else f - 0.5
    taps = 1 - (torch.arange(kernel, dtype=torch.float64) - c).abs() / f
    # Output o receives input i through tap o + padding - i * stride (when inside the kernel).
    tap = (torch.arange(start, start + out_len)[:, None] + padding
           - stride * torch.arange(in_len)[None, :])
    inside = (tap >= 0) & (tap < kernel)
    u = torch.where(inside, taps[tap.clamp(0, kernel - 1)], torch.zeros((), dtype=torch.float64))
    # A normal (not inference) tensor, so that autograd may save it when the input needs a grad.
    with torch.inference_mode(False):
        return u.to(dtype=dtype, device=device)


def upsample_crop(
    layer: nn.ConvTranspose2d,
    x: torch.Tensor,
    offset: int = 0,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``layer(x)`` cropped at ``offset`` (both axes) to ``size``, by the cheapest exact route.

    A channel-diagonal bilinear layer (``is_bilinear``) whose weight needs no gradient here
    (``requires_grad`` off, or autograd disabled) runs as two matrix products that compute only
    the kept pixels; gradients still flow to ``x``. Any other layer (trained, modified, or while
    tracing/compiling/exporting) runs as the ordinary transposed convolution and the crop.
    Both give the same values up to rounding.
    """
    k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
    weight_grad = layer.weight.requires_grad and torch.is_grad_enabled()
    if weight_grad or x.dim() != 4 or plain_path_only("upsample") or not _is_plain_bilinear(layer):
        out = layer(x)
        if size is None:
            return out
        return out[..., offset : offset + size[0], offset : offset + size[1]]
    n, ch, h, w = x.shape
    full_h, full_w = (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k
    out_h, out_w = (full_h - offset, full_w - offset) if size is None else size
    if offset < 0 or offset + out_h > full_h or offset + out_w > full_w:
        raise ValueError(f"crop {offset}+{out_h}×{out_w} outside the {full_h}×{full_w} output")
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    u_h = _axis_matrix(k, s, p, h, offset, out_h, dtype, x.device)
    u_w = _axis_matrix(k, s, p, w, offset, out_w, dtype, x.device)
    x = x.to(dtype).reshape(n * ch, h, w)
    # Height first on the small input map (batched), then width as one large product: the
    # bigger half of the work runs as a single GEMM rather than many small ones.
    cols = torch.matmul(u_h, x).view(n * ch * out_h, w)
    return torch.mm(cols, u_w.t()).view(n, ch, out_h, out_w)
