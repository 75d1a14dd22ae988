"""Fast paths as a transform: :func:`optimize` swaps layers for exact, faster equivalents.

The models' ``forward`` only runs plain PyTorch layers. :func:`optimize` changes a built model in
place, keeping every parameter and state-dict key, and records what it did in
``model.optimizations``:

- **fc GEMM** (:class:`GemmConv2d`, fc6/fc7): oneDNN's convolution re-lays out such large
  weights on every call, while one im2col copy and one GEMM run near the matmul peak.
- **prepared convolutions** (:class:`PackedConv2d`): in CPU inference, oneDNN's convolution on
  a weight laid out (and under autocast, cast) once rather than on every call.
- **separable upsampling** (:class:`SeparableBilinearUpsampling`): a frozen bilinear
  deconvolution is ``U_h · x[c] · U_wᵀ`` for banded matrices U that also absorb the crop.

The fast layers hold the very parameters of the layers they replace and run the plain
computation where they do not apply (other devices, a trained upsampling weight, gradients,
tracing, exporting, ``torch.compile``, dispatch modes). :func:`plain_copy` gives the plain
layers back. Prepared weights live outside the state dict, follow the parameters' versions and
are not copied or pickled."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

from fcnseg.models.upsample import BilinearUpsampling, is_bilinear

T = TypeVar("T")

#: Upper bound on one im2col buffer (elements); larger inputs are processed in bands of rows.
_MAX_COLUMN_ELEMENTS = 1 << 24


def _exporting() -> bool:
    return (torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export())


# -- oneDNN kernels with weights prepared once ----------------------------------------------------
_ONEDNN = torch.ops.mkldnn
_HAS_ONEDNN = torch.backends.mkldnn.is_available()

# A probe operator that says whether a call reaches the CPU kernels directly. Its kernel for the
# Python dispatch key runs instead whenever a dispatch mode (FLOP counter, fake tensors, ...) or
# a tensor subclass is in play, and says no: those expect the standard operators.
_PROBE = torch.library.Library("fcnseg", "FRAGMENT")
if not hasattr(torch.ops.fcnseg, "reaches_cpu_kernels"):
    _PROBE.define("reaches_cpu_kernels(Tensor x) -> bool")
    _PROBE.impl("reaches_cpu_kernels", lambda x: True, "CPU")
    _PROBE.impl("reaches_cpu_kernels", lambda x: False, "Python")


def _onednn_dtype(layer: nn.Module, x: torch.Tensor) -> torch.dtype | None:
    """The dtype to run ``layer(x)`` in through oneDNN in CPU inference, or None: plain path."""
    # torch.compile first: the checks after it are not traceable (graph breaks).
    if (torch.compiler.is_compiling() or _exporting() or x.device.type != "cpu"
            or x.dim() != 4 or not _HAS_ONEDNN or not torch.ops.fcnseg.reaches_cpu_kernels(x)):
        return None
    if torch.is_grad_enabled() and (x.requires_grad
                                    or any(p.requires_grad for p in layer.parameters())):
        return None
    kinds = (torch.float32, torch.bfloat16)
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        usable = x.dtype in kinds and layer.weight.dtype in kinds
    else:  # without autocast the plain layer requires matching dtypes; so does this path
        dtype = x.dtype
        usable = layer.weight.dtype == dtype
    if not usable or dtype not in kinds or (dtype == torch.bfloat16
                                            and not _ONEDNN._is_mkldnn_bf16_supported()):
        return None
    return dtype


class _PreparedWeights:
    """What a layer derives from its parameters, per key, remade when they change; not pickled."""

    _prepared: dict

    def _prepare(self, key: object, make: Callable[..., T]) -> T:
        weight, bias = self.weight, self.bias
        try:
            # In-place changes move the version; `.data =` and `module.to()` swap the storage.
            versions = tuple((t._version, t.data_ptr()) for t in (weight, bias) if t is not None)
        except RuntimeError:  # inference tensors have no version counter: prepare every call
            return make(weight, bias, key)
        cache = self.__dict__.setdefault("_prepared", {})
        hit = cache.get(key)
        if hit is not None and hit[0] is weight and hit[1] is bias and hit[2] == versions:
            return hit[3]
        with torch.no_grad():
            prepared = make(weight, bias, key)
        cache[key] = (weight, bias, versions, prepared)
        return prepared

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # type: ignore[misc]
        state.pop("_prepared", None)
        return state


# -- fc6 / fc7 as one GEMM ------------------------------------------------------------------------
def conv_gemm(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` as im2col and one matrix product (CPU, stride 1, no groups), channels-last,
    with gradients (training keeps the im2col buffer: ~25 MB per 500×500 image for fc6).
    Elsewhere the plain convolution runs."""
    if (x.device.type != "cpu" or x.dim() != 4 or _exporting() or conv.groups != 1
            or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.padding_mode != "zeros"
            or not isinstance(conv.padding, tuple)):
        return nn.Conv2d.forward(conv, x)
    (kh, kw), (ph, pw) = conv.kernel_size, conv.padding
    n, _, h, w = x.shape
    out_h, out_w = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    if out_h < 1 or out_w < 1:
        return nn.Conv2d.forward(conv, x)  # let the convolution raise its own size error
    weight, channels_inner = _gemm_matrix(conv.weight)
    if weight is None:
        return nn.Conv2d.forward(conv, x)
    bias = conv.bias
    dtype = _onednn_dtype(conv, x) if isinstance(conv, _PreparedWeights) else None
    if dtype is not None:
        # oneDNN's GEMM: on this kind of CPU it runs float32 at up to twice the speed of the
        # BLAS behind torch.mm, and the bfloat16 matrix is cast once rather than every call.
        weight, bias = conv._prepare(dtype, _gemm_operands)
        x = x.to(dtype)
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
        if dtype is not None:
            out = _ONEDNN._linear_pointwise(cols, weight, bias, "none", [], "")
        else:
            out = (torch.mm(cols, weight.t()) if bias is None
                   else torch.addmm(bias, cols, weight.t()))
        bands.append(out.view(n, band.shape[1], out_w, -1))
    out = bands[0] if len(bands) == 1 else torch.cat(bands, dim=1)
    return out.permute(0, 3, 1, 2)  # N×C×H×W shape, channels-last strides: no copy


def _gemm_matrix(weight: torch.Tensor) -> tuple[torch.Tensor | None, bool]:
    """A weight as an (out, in·kh·kw) matrix without a copy, and whether it is channels-last."""
    if weight.is_contiguous():
        return weight.view(weight.shape[0], -1), False
    if weight.is_contiguous(memory_format=torch.channels_last):
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1), True
    return None, False


def _gemm_operands(weight: torch.Tensor, bias: torch.Tensor | None,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    matrix = _gemm_matrix(weight)[0]
    assert matrix is not None  # conv_gemm checked the layout
    return matrix.detach().to(dtype), None if bias is None else bias.detach().to(dtype)


class GemmConv2d(_PreparedWeights, nn.Conv2d):
    """``nn.Conv2d`` computed by :func:`conv_gemm`; in CPU inference by oneDNN, against a weight
    copy (bfloat16 under autocast) made once."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_gemm(self, x)


def _conv_like(cls: type[nn.Conv2d], conv: nn.Conv2d) -> nn.Conv2d:
    """A ``cls`` with ``conv``'s settings and its very parameters (built on the meta device)."""
    new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
              padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
              bias=conv.bias is not None, padding_mode=conv.padding_mode, device="meta")
    new.weight, new.bias = conv.weight, conv.bias
    return new.train(conv.training)


def _packed_convolution(conv: nn.Conv2d, input_size: Sequence[int]):  # type: ignore[no-untyped-def]
    def make(weight: torch.Tensor, bias: torch.Tensor | None,
             dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        packed = _ONEDNN._reorder_convolution_weight(
            weight.detach().to(dtype).contiguous(), list(conv.padding), list(conv.stride),
            list(conv.dilation), conv.groups, list(input_size))
        return packed, None if bias is None else bias.detach().to(dtype)
    return make


class PackedConv2d(_PreparedWeights, nn.Conv2d):
    """``nn.Conv2d`` that, in CPU inference, runs oneDNN's convolution on a weight laid out (and
    cast under autocast) once, not on every call; anywhere else the plain convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = _onednn_dtype(self, x)
        if dtype is None or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return nn.Conv2d.forward(self, x)
        weight, bias = self._prepare(dtype, _packed_convolution(self, x.shape))
        return _ONEDNN._convolution_pointwise(
            x.to(dtype), weight, bias, list(self.padding), list(self.stride),
            list(self.dilation), self.groups, "none", [], "")


# -- separable bilinear upsampling -----------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _axis_matrix(kernel: int, stride: int, padding: int, in_len: int, start: int,
                 out_len: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Rows ``start … start+out_len-1`` of the 1-D bilinear deconvolution as a matrix."""
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


class SeparableBilinearUpsampling(_PreparedWeights, BilinearUpsampling):
    """:class:`BilinearUpsampling` whose windows are two matrix products computing only the
    kept pixels, while the weight is frozen (or autograd off), still bilinear (checked again
    after any change), and nothing is traced; otherwise the plain deconvolution runs."""

    def forward_window(self, x: torch.Tensor, offset: int, size: Sequence[int]) -> torch.Tensor:
        weight_grad = self.weight.requires_grad and torch.is_grad_enabled()
        if (weight_grad or x.dim() != 4 or _exporting() or torch.compiler.is_compiling()
                or not self._prepare("bilinear", lambda weight, bias, key: _separable(self))):
            return super().forward_window(x, offset, size)
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        n, ch, h, w = x.shape
        out_h, out_w = int(size[0]), int(size[1])
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


def _separable(layer: nn.ConvTranspose2d) -> bool:
    """Whether the separable computation gives ``layer``'s values."""
    kh, kw = layer.kernel_size
    return (kh == kw and layer.stride[0] == layer.stride[1]
            and layer.padding[0] == layer.padding[1] and layer.dilation == (1, 1)
            and layer.output_padding == (0, 0) and layer.padding_mode == "zeros"
            and is_bilinear(layer))


# -- the transform -------------------------------------------------------------------------------
_FAST = (GemmConv2d, PackedConv2d, SeparableBilinearUpsampling)


def _plain(layer: nn.Module) -> nn.Module:
    """The plain layer a fast one stands for (``layer`` itself when it is not a fast one)."""
    if isinstance(layer, (GemmConv2d, PackedConv2d)):
        return _conv_like(nn.Conv2d, layer)
    if isinstance(layer, SeparableBilinearUpsampling):
        return BilinearUpsampling.like(layer)
    return layer


def _replace(model: nn.Module, choose) -> dict[str, nn.Module]:  # type: ignore[no-untyped-def]
    """Replace the layers ``choose(parent, name, layer)`` replaces; ``{state-dict name: new}``."""
    key_map = getattr(model, "key_map", None)
    replaced: dict[str, nn.Module] = {}
    for path, parent in list(model.named_modules()):
        for name, layer in list(parent.named_children()):
            new = choose(parent, name, layer)
            if new is not None and new is not layer:
                setattr(parent, name, new)
                where = f"{path}.{name}" if path else name
                if key_map is not None:
                    where = key_map.to_reference(f"{where}.").removesuffix(".")
                replaced[where] = new
    return replaced


def optimize(model: nn.Module, for_: str = "inference", *,
             device: str | torch.device | None = None, channels_last: bool = False,
             gemm: bool = True, separable_upsampling: bool = True,
             packed_convolutions: bool = True, cudnn_benchmark: bool = True) -> nn.Module:
    """Put ``model`` in its fast set-up for inference or training (in place; returns it).

    Moves it to ``device`` (when given), sets eval or train mode, and swaps layers for fast
    equivalents with the same parameters and keys: fc6/fc7 for :class:`GemmConv2d` (``gemm``),
    frozen bilinear deconvolutions for :class:`SeparableBilinearUpsampling`, other convolutions
    for :class:`PackedConv2d`; optionally channels-last memory, and cuDNN autotuning on CUDA for
    inference. Outputs change by float rounding at most; what was done is appended to
    ``model.optimizations``. Reduced precision is the caller's autocast, ``torch.compile`` too.
    """
    if for_ not in ("inference", "training"):
        raise ValueError(f"optimize: for_ must be 'inference' or 'training', got {for_!r}")
    done: list[str] = list(getattr(model, "optimizations", []))
    if device is not None:
        model.to(device)
    model.train(for_ == "training")

    def choose(parent: nn.Module, name: str, layer: nn.Module) -> nn.Module | None:
        if type(layer) is nn.Conv2d and gemm and name in getattr(parent, "fully_connected", ()):
            return _conv_like(GemmConv2d, layer)
        if type(layer) is BilinearUpsampling and separable_upsampling and _separable(layer):
            return SeparableBilinearUpsampling.like(layer)
        if type(layer) is nn.Conv2d and packed_convolutions:
            return _conv_like(PackedConv2d, layer)
        return None

    replaced = _replace(model, choose)
    done += [f"{path}: GEMM" for path, m in replaced.items() if isinstance(m, GemmConv2d)]
    done += [f"{path}: separable bilinear" for path, m in replaced.items()
             if isinstance(m, SeparableBilinearUpsampling)]
    packed = sum(isinstance(m, PackedConv2d) for m in replaced.values())
    if packed:
        done.append(f"convolutions: oneDNN prepacked ({packed})")
    if channels_last:
        model.to(memory_format=torch.channels_last)
        done.append("channels_last")
    on_cuda = any(p.is_cuda for p in model.parameters())
    if cudnn_benchmark and on_cuda and for_ == "inference":
        torch.backends.cudnn.benchmark = True
        done.append("cudnn.benchmark")
    model.optimizations = done
    return model


def plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every fast layer back to a plain one (for export and
    comparisons); ``optimizations`` is cleared."""
    return make_plain(copy.deepcopy(model))


def make_plain(model: nn.Module) -> nn.Module:
    """:func:`plain_copy` in place, for a model about to be exported and dropped (a copy would
    double the memory)."""
    _replace(model, lambda parent, name, layer: _plain(layer))
    for m in model.modules():
        m.__dict__.pop("_prepared", None)
    if hasattr(model, "optimizations"):
        model.optimizations = []
    return model


def is_plain(model: nn.Module) -> bool:
    """Whether ``model`` holds no fast layer (nothing :func:`make_plain` would change)."""
    return not any(isinstance(m, _FAST) or "_prepared" in m.__dict__ for m in model.modules())
