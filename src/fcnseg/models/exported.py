"""A model in an exported file (ONNX, int8 ONNX, TorchScript) runs by the file's own runtime.
It is behind a PyTorch module's interface.

:func:`artifact_model` turns a description from :func:`fcnseg.weightfiles.artifacts.read_artifact`
into an ``nn.Module`` that answers like the model it came from, so every command takes it by
``--checkpoint`` as it takes a ``.pt``. A graph ending in an argmax answers one-hot logits."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.conventions import InputConvention, get_convention
from fcnseg.models.preprocess import Preprocess
from fcnseg.utils.hardware import INT8_DOT_FLAGS, cpu_info
from fcnseg.utils.keyed import first_of, keyed, unkeyed
from fcnseg.utils.validate import fields_of
from fcnseg.weightfiles.artifacts import (
    RAW_PIXELS,
    ArtifactError,
    graph_changed_text,
    labels_only,
    onnx_session,
)

#: The logit of the class a labels-only graph answers (0 for the others): its softmax is exactly
#: 1 and 0 in float32, so heatmaps and calibration say "certain", not softmax([1, 0, 0]) = 0.58.
LABEL_LOGIT = 1000.0


@dataclass(frozen=True, kw_only=True)
class ArtifactInfo:
    """What an exported file records of its model, and the runtime that runs it; ``head_classes``
    is ``{head: number of classes}`` of a model of several heads."""

    runtime: str
    arch: str
    geometry: str | None
    num_classes: int
    convention: InputConvention
    raw_pixels: bool
    labels_out: bool
    precision: str
    input_names: tuple[str, ...] = ("color",)
    head_classes: Mapping[str, int] = field(default_factory=dict)


def _recorded(name: str) -> property:
    return property(attrgetter(f"info.{name}"), doc=f"Its :class:`ArtifactInfo`'s ``{name}``.")


class ArtifactModel(nn.Module):
    """An exported model behind a PyTorch module's interface: raw N×3×H×W input (or
    ``{modality: input}``), N×C×H×W float32 logits (or ``{head: logits}``), with ``arch``,
    ``num_classes``, ``input_convention``, ``preprocess``; ``runtime`` (``"onnxruntime"`` or
    ``"torchscript"``) and ``precision`` (``"int8"`` or ``"fp32"``, whatever autocast says),
    read from its :class:`ArtifactInfo` (``info``)."""

    # Properties reading the field of ``info`` of the same place (input_convention: convention).
    (runtime, arch, geometry, num_classes, input_convention, input_names, raw_pixels, labels_out,
     precision, head_classes) = (_recorded(f) for f in (
        "runtime", "arch", "geometry", "num_classes", "convention", "input_names", "raw_pixels",
        "labels_out", "precision", "head_classes"))

    def __init__(self, run: Any, info: ArtifactInfo) -> None:
        super().__init__()
        self._run = run
        self.info = info
        #: What the file does to raw pixels: inside its graph (``raw_pixels``), else this.
        self.preprocess = Preprocess(info.input_names, info.convention)
        self.optimizations = [f"runtime: {info.runtime}"
                              + (" int8" if info.precision == "int8" else "")]

    def forward(self, x: torch.Tensor | dict[str, torch.Tensor]) -> Any:
        device = first_of(x).device
        inputs = {m: t.detach().float().cpu() for m, t in keyed(x).items()}
        if not self.raw_pixels:  # Preprocess takes {None: tensor} as that tensor
            inputs = keyed(self.preprocess(inputs))
        heads = keyed(self._run(unkeyed({m: t.contiguous() for m, t in inputs.items()})))
        if None not in heads:
            return {h: t.float().to(device) for h, t in heads.items()}
        out = heads[None]
        if self.labels_out:
            labels = out.long()
            out = torch.zeros(labels.shape[0], self.num_classes, *labels.shape[1:])
            out.scatter_(1, labels.unsqueeze(1), LABEL_LOGIT)
        return out.float().to(device)


def artifact_model(ckpt: Mapping[str, Any], *, threads: int | None = None) -> ArtifactModel:
    """The :class:`ArtifactModel` of a description from :func:`read_artifact` (its ``path``)."""
    art = ckpt["artifact"]
    path = str(ckpt["path"])
    quantized = bool(art.get("quantization"))
    for warning in (graph_changed_text(path) if art.get("changed") else None,
                    int8_kernel_warning(path, art.get("quantization"), cpu_info().flags)):
        if warning:
            warnings.warn(warning, RuntimeWarning, stacklevel=2)
    onnx = art["kind"] == "onnx"
    heads = fields_of(ckpt["classes"].get("heads"))
    run = (_onnx_runner(path, threads, art.get("output_names")) if onnx
           else _torchscript_runner(path))
    return ArtifactModel(run, ArtifactInfo(
        runtime="onnxruntime" if onnx else "torchscript", arch=str(ckpt["model"]["arch"]),
        geometry=ckpt["model"]["build_kwargs"].get("geometry"),
        num_classes=int(ckpt["model"]["build_kwargs"]["num_classes"]),
        convention=get_convention(ckpt["model"]["input_convention"]),
        raw_pixels=art.get("input_pixels") == RAW_PIXELS,
        labels_out=labels_only(ckpt),
        precision="int8" if quantized else "fp32",
        input_names=tuple(art.get("input_names") or ("color",)),
        head_classes={h: len(names) for h, names in heads.items()},
    )).eval()


def int8_dot_products(flags: Iterable[str] | None = None) -> bool:
    """Whether a CPU (this one, or of these /proc/cpuinfo flags) has int8 dot products summing
    in 32 bits (AVX512-VNNI, AVX-VNNI, AMX-INT8)."""
    return bool(set(INT8_DOT_FLAGS) & set(cpu_info().flags if flags is None else flags))


def int8_kernel_warning(path: str, record: Any, flags: Iterable[str]) -> str | None:
    """One line when a full-range int8 model runs on a CPU without VNNI, whose kernels its
    weights can saturate; else None."""
    record = fields_of(record)  # no quantization record: no int8 weights
    if not record or int8_dot_products(flags):
        return None
    if record.get("exact_without_vnni", record.get("reduce_range", False)):
        return None
    return (f"{path}: this CPU has no int8 dot products (VNNI), and the model's full-range "
            f"int8 weights can saturate its int8 kernels, so the accuracy measured when it was "
            f"quantized may not hold here; check it with fcnseg evaluate, or quantize it with "
            f"--reduce-range")


def _onnx_runner(path: str, threads: int | None, heads: list[str] | None = None) -> Any:
    """Runs the graph on a tensor or ``{modality: tensor}``; ``{head: tensor}`` for ``heads``."""
    try:
        session = onnx_session(path, threads)
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's own errors are long and varied
        first = " ".join(str(e).split())[:200]
        raise ArtifactError(f"{path}: ONNX Runtime cannot load the model ({first})") from None
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor | dict[str, torch.Tensor]) -> Any:
        feed = {(name if m is None else m): t.numpy() for m, t in keyed(x).items()}
        if heads:
            got = session.run(heads, feed)
            return {h: torch.from_numpy(np.asarray(o)) for h, o in zip(heads, got, strict=True)}
        return torch.from_numpy(np.asarray(session.run(None, feed)[0]))

    return run


def _torchscript_runner(path: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(path, map_location="cpu").eval()

    def run(x: torch.Tensor | dict[str, torch.Tensor]) -> Any:
        with torch.no_grad():
            return module(x)  # a dict in (several inputs), a dict out (several heads)

    return run
