"""Fast execution paths for the FCN models that keep their parameters and outputs.

- :func:`conv_gemm`: fc6 (7×7, 512→4096) and fc7 (1×1, 4096→4096) have weights of 411 MB and
  67 MB but only a few hundred output positions per image. oneDNN's convolution re-lays out such a
  weight on every call and runs far below the machine's matrix-multiply peak on CPU; one im2col
  copy plus a single GEMM against the weight as stored runs close to that peak.
- :func:`optimize_for_inference`: the opt-in settings (eval mode, channels_last, cuDNN
  autotuning) that measured faster in ``fcnseg bench``.
- :func:`fast_paths`: switch the built-in fast paths off (or on) inside a ``with`` block.

The final bilinear upsampling's fast path lives with the kernels in
:func:`fcnseg.models.upsample.upsample_crop`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["conv_gemm", "fast_paths", "optimize_for_inference", "plain_path_only"]

#: Upper bound on one im2col buffer (elements); larger inputs are processed in bands of rows.
_MAX_COLUMN_ELEMENTS = 1 << 24

_enabled = {"gemm": True, "upsample": True}


@contextlib.contextmanager
def fast_paths(
    enabled: bool = True, *, gemm: bool | None = None, upsample: bool | None = None
) -> Iterator[None]:
    """Turn the models' fast paths on or off inside a ``with`` block (they are on by default).

    ``with fast_paths(False):`` runs every layer as its plain module, e.g. to compare outputs
    or timings; ``gemm`` (fc6/fc7 as one GEMM) and ``upsample`` (separable bilinear
    upsampling) override ``enabled`` for one path each.
    """
    previous = dict(_enabled)
    _enabled["gemm"] = bool(enabled if gemm is None else gemm)
    _enabled["upsample"] = bool(enabled if upsample is None else upsample)
    try:
        yield
    finally:
        _enabled.update(previous)


def plain_path_only(path: str) -> bool:
    """True when ``path`` ("gemm" or "upsample") must run as plain modules: switched off, or
    while tracing, scripting or exporting (so exported graphs hold the ordinary layers and
    keep dynamic sizes). Under ``torch.compile`` the GEMM path stays (plain tensor ops that
    compile well); the upsampling's cached matrices do not, so it runs plain there."""
    return (
        not _enabled[path]
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_exporting()
        or (path != "gemm" and torch.compiler.is_compiling())
        or torch.onnx.is_in_onnx_export()
    )


def _gemm_applies(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and not plain_path_only("gemm")
        and conv.groups == 1
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and type(conv) is nn.Conv2d
    )


def conv_gemm(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` computed as im2col and one matrix product (CPU, stride 1, no groups).

    Falls back to ``conv(x)`` where the conditions do not hold (other devices, strided or grouped
    convolutions, a weight in neither NCHW nor channels-last layout, tracing or exporting). The
    result has ``conv(x)``'s shape and values (up to rounding) and is laid out channels-last;
    gradients flow to ``x``, the weight and the bias. In training the im2col buffer is kept for
    the backward pass (~25 MB per 500×500 image for fc6). Forward hooks on ``conv`` are not
    called.
    """
    if not _gemm_applies(conv, x):
        return conv(x)
    (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
    n, _, h, w = x.shape
    out_h, out_w = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    if out_h < 1 or out_w < 1:
        return conv(x)  # let the convolution raise its own error about the input size
    # The weight as a (out, in·kh·kw) matrix without copying it: its stored order decides the
    # order of the im2col columns, (C, kh, kw) for contiguous and (kh, kw, C) for channels-last.
    weight = conv.weight
    if weight.is_contiguous():
        weight, channels_inner = weight.view(conv.out_channels, -1), False
    elif weight.is_contiguous(memory_format=torch.channels_last):
        weight, channels_inner = weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1), True
    else:
        return conv(x)
    # Windows over an N×H×W×C view: (N, out_h, out_w, C, kh, kw).
    x = x.permute(0, 2, 3, 1)
    if ph or pw:
        x = nn.functional.pad(x, (0, 0, pw, pw, ph, ph))
    windows = x.unfold(1, kh, 1).unfold(2, kw, 1)
    if channels_inner:
        windows = windows.permute(0, 1, 2, 4, 5, 3)
    rows_per_band = max(1, _MAX_COLUMN_ELEMENTS // (n * out_w * weight.shape[1]))
    bands = []
    for top in range(0, out_h, rows_per_band):
        band = windows[:, top : top + rows_per_band]
        cols = band.reshape(-1, weight.shape[1])
        out = (torch.mm(cols, weight.t()) if conv.bias is None
               else torch.addmm(conv.bias, cols, weight.t()))
        bands.append(out.view(n, band.shape[1], out_w, -1))
    out = bands[0] if len(bands) == 1 else torch.cat(bands, dim=1)
    return out.permute(0, 3, 1, 2)  # N×C×H×W shape, channels-last strides: no copy


def optimize_for_inference(
    model: nn.Module,
    *,
    channels_last: bool = True,
    cudnn_benchmark: bool = True,
) -> nn.Module:
    """Put ``model`` in its fastest exact inference set-up (in place; returns it).

    Sets eval mode, converts the weights to channels-last (faster convolutions and pools on CPU
    and GPU), and turns on cuDNN autotuning when the model is on CUDA. None of these changes the
    outputs beyond float rounding. Reduced precision (``torch.autocast``) and ``torch.compile``
    are left to the caller: they change numbers or cost compile time (docs/performance.md).
    """
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if cudnn_benchmark and any(p.is_cuda for p in model.parameters()):
        torch.backends.cudnn.benchmark = True
    return model
