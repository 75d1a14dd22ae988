"""The front of every model: raw pixels in, the network's normalised input out.

A model takes what files hold (RGB 0-255 as uint8 or float, HHA images, raw depth) and its
:class:`Preprocess` (``model.preprocess``) turns them into what its weights were trained on. The
constants are buffers outside the state dict (the checkpoint records the convention), so they
follow the model to its device and into exported graphs. This is the only place where images are
normalised; ``preprocess=False`` gives the bare network, as the reference's Caffe nets are."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fcnseg.conventions import LOG_DEPTH_MEAN, NYUD_HHA, InputConvention, get_convention
from fcnseg.utils.keyed import keyed
from fcnseg.utils.nodata import without_data

#: The colour modality's key: normalised by the model's input convention.
COLOR = "color"


class ChannelNormalize(nn.Module):
    """An :class:`~fcnseg.conventions.InputConvention` as a module: N×C×H×W raw values →
    reordered, times ``scale``, minus ``mean``, divided by ``std``, computed in float32 (or
    wider) and given in the buffers' type, which follows the model's (``model.half()``). A
    multi-band model's pixels without data (every band its ``nodata``, or any band NaN) give
    0, the band means, as training fills them: a raw tile goes in as the file holds it."""

    def __init__(self, convention: InputConvention | str | Mapping[str, Any]) -> None:
        super().__init__()
        c = get_convention(convention)  # type: ignore[arg-type]
        self.convention = c
        self.register_buffer("mean", torch.tensor(c.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(c.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.convention
        dtype = torch.promote_types(self.mean.dtype, torch.float32)
        out = x.to(dtype)
        if c.channel_order == "BGR":
            out = out.flip(-3)
        normal = (out * c.scale - self.mean.to(dtype)) / self.std.to(dtype)
        if c.bands is not None:
            missing = without_data(x, c.nodata, 1)  # in the input's type: a float32 file's 0.1
            if missing is not None:  # in place: no second full-size copy on the hot path
                normal.masked_fill_(missing.unsqueeze(1), 0.0)
        return _as(self.mean, normal)

    def describe(self) -> dict[str, Any]:
        return {"kind": "channels", **self.convention.to_dict()}

    def extra_repr(self) -> str:
        return self.convention.name


class LogDepth(nn.Module):
    """Raw depth N×1×H×W (millimetres, 0 where unknown) → ``log(depth) - mean``, and 0 (the
    mean) where the depth is unknown."""

    def __init__(self, mean: float = LOG_DEPTH_MEAN) -> None:
        super().__init__()
        self.log_mean = float(mean)
        self.register_buffer("mean", torch.tensor(self.log_mean), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.to(torch.promote_types(self.mean.dtype, torch.float32))
        valid = d > 0
        return _as(self.mean, torch.where(valid, torch.log(torch.where(valid, d, 1.0))
                                          - self.log_mean, 0.0))

    def describe(self) -> dict[str, Any]:
        return {"kind": "log_depth", "mean": self.log_mean}

    def extra_repr(self) -> str:
        return f"mean={self.log_mean}"


def _as(like: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x`` in ``like``'s dtype: a model cast to half, bfloat16 or double gets its own."""
    return x if x.dtype == like.dtype else x.to(like.dtype)


def _step_for(name: str, convention: InputConvention) -> nn.Module:
    if name == "depth":
        return LogDepth()
    if name == "hha" and convention.name != NYUD_HHA.name:
        return ChannelNormalize(NYUD_HHA)  # the HHA stream beside a colour one
    return ChannelNormalize(convention)


class Preprocess(nn.Module):
    """Raw inputs → network input, one step per input (modality) of the model.

    ``forward`` takes one tensor (several inputs' channels stacked in ``input_names`` order) or
    a dict keyed by input name, and returns the same, normalised. The image input (``"color"``,
    else the only one) follows ``convention``; HHA beside colour the HHA mean; depth log depth.
    """

    def __init__(self, input_names: Sequence[str] = (COLOR,),
                 convention: InputConvention | str | Mapping[str, Any] = "caffe_bgr") -> None:
        super().__init__()
        self.input_names = tuple(input_names)
        conv = get_convention(convention)  # type: ignore[arg-type]
        self.steps = nn.ModuleDict({n: _step_for(n, conv) for n in self.input_names})

    @property
    def image_input(self) -> str:
        """The input that the model's convention applies to."""
        return COLOR if COLOR in self.input_names else self.input_names[0]

    @property
    def convention(self) -> InputConvention:
        """The convention of the image input."""
        return self.steps[self.image_input].convention

    def set_convention(self, convention: InputConvention | str | Mapping[str, Any]) -> None:
        """Normalise the image input by ``convention`` from now on."""
        step = ChannelNormalize(convention)
        ref = next(iter(self.buffers()), None)
        self.steps[self.image_input] = step if ref is None else step.to(ref.device, ref.dtype)

    def describe(self) -> dict[str, dict[str, Any]]:
        """The JSON-able settings, by input name (what checkpoints record)."""
        return {n: step.describe() for n, step in self.steps.items()}

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        inputs = keyed(x)
        if None not in inputs:
            return {n: self._normalise(n, t) if n in self.steps else t for n, t in inputs.items()}
        x = inputs[None]
        if len(self.input_names) == 1:
            return self._normalise(self.input_names[0], x)
        widths = [1 if n == "depth" else 3 for n in self.input_names]
        if x.dim() != 4 or x.shape[1] != sum(widths):
            stacked = " and ".join(map("{} ({})".format, self.input_names, widths))
            raise ValueError(f"expected N×{sum(widths)}×H×W, channels of {stacked} stacked, "
                             f"got shape {tuple(x.shape)}")
        parts = torch.split(x, widths, dim=1)
        return torch.cat([self._normalise(n, p)
                          for n, p in zip(self.input_names, parts, strict=True)], dim=1)

    def _normalise(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a batch N×C×H×W (N×3×H×W for RGB images) for input "
                             f"{name!r}, got shape {tuple(x.shape)}")
        step = self.steps[name]
        if isinstance(step, ChannelNormalize) and x.shape[1] != step.convention.channels:
            what = ("bands " + ", ".join(step.convention.bands)
                    if step.convention.bands is not None else "colour channels")
            raise ValueError(f"expected N×{step.convention.channels}×H×W for input {name!r} "
                             f"({what}), got shape {tuple(x.shape)}")
        out = step(x)
        if not x.is_contiguous() and x.is_contiguous(
                memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return out


class _Preprocessed(nn.Module):
    """A network of one's own behind a :class:`Preprocess` (see :func:`with_preprocess`)."""

    def __init__(self, preprocess: Preprocess, network: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network

    def forward(self, x: Any) -> Any:
        return self.network(self.preprocess(x))


class _RawPixels(Preprocess):
    """A :class:`Preprocess` before a bare network, refusing negative colour values."""

    def _normalise(self, name: str, x: torch.Tensor) -> torch.Tensor:
        step = self.steps[name]
        if (isinstance(step, ChannelNormalize) and step.convention.bands is None
                and x.is_floating_point() and x.numel() and not _exporting()
                and (lowest := float(x.detach().amin())) < 0):
            raise ValueError(
                f"{name}: the bare network (built with preprocess=False) is given its "
                f"preprocessing ({step.convention.name}) here, as it is run on raw pixels "
                f"(0-255), but this input holds negative values (down to {lowest:.4g}): "
                f"normalised already? Run it with raw_pixels=False to give it such input "
                f"as it is")
        return super()._normalise(name, x)


def _twin_with(network: nn.Module, preprocess: Preprocess) -> nn.Module:
    """A twin of the fcnseg model ``network`` sharing its layers, with ``preprocess`` in front."""
    twin = copy.copy(network)
    twin._modules = dict(network._modules)  # type: ignore[assignment]
    twin._parameters = dict(network._parameters)  # type: ignore[assignment]
    twin._buffers = dict(network._buffers)  # type: ignore[assignment]
    ref = next(itertools.chain(network.parameters(), network.buffers()), None)
    twin.preprocess = preprocess if ref is None else preprocess.to(
        ref.device, ref.dtype if ref.is_floating_point() else None)
    return twin


def with_preprocess(network: nn.Module,
                    convention: InputConvention | str | Mapping[str, Any]) -> nn.Module:
    """``network`` (taking normalised input) behind a :class:`Preprocess` in ``convention``; for
    a bare fcnseg model, a twin sharing its layers (the bare model is left bare)."""
    input_names = tuple(getattr(network, "input_names", (COLOR,)))
    preprocess = Preprocess(input_names, convention)
    if hasattr(network, "preprocess") and hasattr(network, "identity"):
        return _twin_with(network, preprocess)
    return _Preprocessed(preprocess, network)


def raw_pixel_model(model: nn.Module) -> nn.Module:
    """``model`` as a model taking raw pixels: itself, unless it is a bare network that knows its
    ``input_convention``; then a twin sharing its layers, with that preprocessing in front
    (refusing negative colour values: normalised already)."""
    convention = getattr(model, "input_convention", None)
    if convention is None or not isinstance(getattr(model, "preprocess", None), nn.Identity):
        return model
    return _twin_with(model, _RawPixels(tuple(getattr(model, "input_names", (COLOR,))),
                                        convention))


def raw_pixel_bound(convention: InputConvention | None) -> float | None:
    """The value above which a bare network's colour input is taken for raw pixels: halfway
    between the largest normalised value and 255 (203 for Caffe's BGR, 129 for torchvision's);
    None for a multi-band convention."""
    if convention is None or convention.bands is not None:
        return None
    largest = max((255.0 * convention.scale - m) / s
                  for m, s in zip(convention.mean, convention.std, strict=True))
    return (largest + 255.0) / 2


def _exporting() -> bool:
    """Whether the forward pass is traced, compiled or exported (no data-dependent checks)."""
    return bool(torch.jit.is_tracing() or torch.jit.is_scripting()
                or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())


class BareInput(nn.Identity):
    """:class:`Preprocess`'s stand-in in a bare network (``preprocess=False``): an
    ``nn.Identity`` that refuses, in one line, integer pixels and float colour images above
    :func:`raw_pixel_bound` of its ``convention`` (not while tracing or compiling)."""

    def __init__(self, convention: InputConvention | str | Mapping[str, Any] | None = None,
                 image_input: str = COLOR) -> None:
        super().__init__()
        self.convention = None if convention is None else get_convention(convention)  # type: ignore[arg-type]
        self.image_input = image_input

    def forward(self, x: Any) -> Any:
        inputs = keyed(x)
        for name, t in inputs.items():
            if isinstance(t, torch.Tensor) and not t.is_floating_point():
                dtype = str(t.dtype).removeprefix("torch.")
                raise TypeError(f"{name or 'input'}: a bare network (built with "
                                f"preprocess=False) takes normalised float input, got {dtype}"
                                f"; normalise it per the model's input convention, or build "
                                f"the model with its preprocessing to give it raw pixels")
        key = None if None in inputs else self.image_input
        if isinstance(image := inputs.get(key), torch.Tensor) and not _exporting():
            self._refuse_raw_floats(key or "input", image)
        return x

    def _refuse_raw_floats(self, name: str, image: torch.Tensor) -> None:
        convention = getattr(self, "convention", None)  # absent from pickles of older models
        bound = raw_pixel_bound(convention)
        if bound is None or image.dim() != 4 or image.shape[1] != 3 or image.numel() == 0:
            return
        largest = float(image.detach().amax())
        if largest > bound:
            raise ValueError(
                f"{name}: a bare network (built with preprocess=False) takes input normalised "
                f"per its input convention ({convention.name}, whose images stay at or below "
                f"{2 * bound - 255:.4g}), got values up to {largest:.4g}: raw pixels? Normalise "
                f"them first, or build the model with its preprocessing to give it raw pixels")
