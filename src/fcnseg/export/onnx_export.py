"""ONNX export with dynamic batch, height and width, verified with onnxruntime.

A model of several inputs (NYUDv2's late and early fusion) has one graph input per modality,
named by it (``color``, ``hha``, ``depth``); a model of several heads (SIFT Flow) one output per
head (``semantic``, ``geometric``). Otherwise the graph has one input ``input`` and one output
``logits``. The names are also recorded in the metadata (``input_names``, ``output_names``).

The FCN's crops (Caffe geometry) and tail trims (same geometry) slice by sizes that depend on
the input; both exporters turn them into Shape → Slice subgraphs rather than constants, which
the verification proves by running a second sample of another size and batch.

``exporter="legacy"`` is the TorchScript-based exporter (fast, quiet); ``"dynamo"`` is the
``torch.export``-based one (needs onnxscript). Both give the same graph semantics here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.export import Dim

from fcnseg.export.common import (
    DEFAULT_ATOL,
    ExportError,
    NamedIO,
    SampleCheck,
    check_samples,
    export_subject,
)
from fcnseg.utils.files import atomic_write_bytes
from fcnseg.utils.typing import PathLike

__all__ = ["EXPORTERS", "OnnxExport", "export_onnx", "read_onnx_metadata"]

EXPORTERS = ("legacy", "dynamo")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class OnnxExport:
    """Result of :func:`export_onnx`: where it went and how it compared with PyTorch."""

    path: str
    opset: int
    exporter: str
    checks: list[SampleCheck]
    size_bytes: int


def _require_onnx() -> tuple[Any, Any]:
    try:  # onnx and onnxruntime are an optional extra (fcnseg[onnx]): imported only to export
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx and onnxruntime ({e.name} is missing); "
                          f"install them with: pip install 'fcnseg[onnx]'") from None
    return onnx, onnxruntime


def _export_bytes(model: nn.Module, sample: tuple[torch.Tensor, ...], opset: int,
                  exporter: str, inputs: list[str], outputs: list[str]) -> bytes:
    """The ONNX model as serialized bytes, with dynamic batch, height and width."""
    with warnings.catch_warnings():
        # Shape checks in the model's forward are evaluated once while tracing: expected.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # the exporters' shape-inference notes
        if exporter == "legacy":
            buf = io.BytesIO()
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                model, sample, buf, dynamo=False, opset_version=opset,
                input_names=inputs, output_names=outputs,
                dynamic_axes={name: axes for name in (*inputs, *outputs)},
                do_constant_folding=True,
            )
            return buf.getvalue()
        # The dynamo exporter prints progress to stdout and logs that torchvision's operators
        # are unavailable (we use none); keep the command's output ours.
        quiet_logger = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = quiet_logger.level
        quiet_logger.setLevel(logging.ERROR)
        dims = {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}  # shared by every input
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                program = torch.onnx.export(
                    model, sample, None, dynamo=True, opset_version=opset,
                    input_names=inputs, output_names=outputs,
                    # NamedIO takes *inputs: one argument holding a tuple of tensors.
                    dynamic_shapes=(tuple(dims for _ in inputs),),
                )
        finally:
            quiet_logger.setLevel(level)
        return program.model_proto.SerializeToString()


def export_onnx(
    model: nn.Module,
    path: PathLike,
    *,
    description: Mapping[str, Any],
    sample_size: tuple[int, int] = (224, 224),
    opset: int = 18,
    exporter: str = "legacy",
    atol: float = DEFAULT_ATOL,
) -> OnnxExport:
    """Export ``model`` to ONNX at ``path``, verified before the file is written.

    Args:
        model: the PyTorch model (run in eval mode on the CPU, float32).
        description: JSON-able facts stored in the ONNX ``metadata_props``, one JSON string per
            key (class names, palette, input convention, geometry, arch, ...).
        sample_size: height and width of the export sample; a second sample of another size
            and batch 2 checks that the axes are dynamic.
        opset: ONNX opset version.
        exporter: ``"legacy"`` (TorchScript-based) or ``"dynamo"``.
        atol: the largest absolute difference to PyTorch accepted on either sample.

    Raises:
        ExportError: the export failed, or onnxruntime's outputs differ from PyTorch's by
            ``atol`` or more, or have another shape. ``path`` is then left as it was.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    onnx, ort = _require_onnx()
    subject = export_subject(model, sample_size)
    model, samples, modalities, heads = (subject.model, subject.samples, subject.inputs,
                                         subject.outputs)
    inputs = list(modalities or [INPUT_NAME])
    outputs = list(heads or [OUTPUT_NAME])

    def positional(x: Any) -> tuple[torch.Tensor, ...]:
        return tuple(x[name] for name in inputs) if modalities else (x,)

    try:
        data = _export_bytes(NamedIO(model, modalities, heads).eval(), positional(samples[0]),
                             opset, exporter, inputs, outputs)
    except Exception as e:
        raise ExportError(f"{exporter} ONNX export failed: {type(e).__name__}: {e}") from e

    proto = onnx.load_from_string(data)
    del data  # a full VGG16 FCN is over 500 MB: hold one copy at a time
    del proto.metadata_props[:]
    for key, value in subject.metadata(description).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "fcnseg"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    del proto

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])

    def run(x: Any) -> Any:
        feed = {name: t.numpy() for name, t in zip(inputs, positional(x), strict=True)}
        got = session.run(outputs, feed)
        return dict(zip(outputs, got, strict=True)) if heads else got[0]

    checks = check_samples(model, run, samples, atol)
    atomic_write_bytes(path, data)
    return OnnxExport(str(path), opset, exporter, checks, len(data))


def read_onnx_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata of an ONNX file written by :func:`export_onnx`, JSON values decoded."""
    onnx, _ = _require_onnx()
    proto = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            out[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            out[entry.key] = entry.value
    return out
