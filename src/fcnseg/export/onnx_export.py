"""ONNX export with dynamic batch, height and width, verified with onnxruntime.

The graph has one input ``input`` and one output ``logits`` (``labels`` when it ends in an
argmax), or one input per modality (``color``, ``hha``, ``depth``) and one output per head
(``semantic``, ``geometric``), also named in the metadata (``input_names``, ``output_names``).
The FCN's input-dependent crops become Shape → Slice subgraphs, which a second sample of another
size and batch verifies. ``exporter="legacy"`` is TorchScript-based (fast, quiet); ``"dynamo"``
is ``torch.export``-based (needs onnxscript).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from fcnseg.export.common import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    ExportError,
    ExportSubject,
    RunExport,
    SampleCheck,
    quiet_tracing,
    verified_export,
)
from fcnseg.utils.files import atomic_path
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.artifacts import GRAPH_DIGEST, graph_digest, onnx_session

EXPORTERS = ("legacy", "dynamo")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: The output of a graph that ends in an argmax (``labels_out``).
LABELS_NAME = "labels"


@dataclass(frozen=True)
class OnnxExport:
    """Result of :func:`export_onnx`: where it went and how it compared with PyTorch."""

    path: str
    opset: int
    exporter: str
    checks: list[SampleCheck]
    size_bytes: int


def _require_onnx() -> Any:
    """The ``onnx`` module, where onnxruntime is installed too (the fcnseg[onnx] extra)."""
    try:
        import onnx
        import onnxruntime  # noqa: F401 - the exports are checked with it
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx and onnxruntime ({e.name} is missing); "
                          f"install them with: pip install 'fcnseg[onnx]'") from None
    return onnx


def _export_to(file: Path, graph: _GraphIO, sample: Any, opset: int, exporter: str) -> None:
    """Write the ONNX model straight into ``file`` (a VGG16 FCN's graph is over 500 MB), with
    dynamic batch, height and width."""
    # Quiet: shape-inference notes, the dynamo exporter's registration log and progress.
    with quiet_tracing(FutureWarning, UserWarning,
                       logger="torch.onnx._internal.exporter._registration"):
        if exporter == "legacy":
            axes = {0: "batch", 2: "height", 3: "width"}
            with torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    graph, graph.positional(sample), str(file), dynamo=False,
                    opset_version=opset, input_names=graph.inputs, output_names=graph.outputs,
                    dynamic_axes={name: axes for name in (*graph.inputs, *graph.outputs)},
                    do_constant_folding=True,
                )
            return
        dims = {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}  # shared by every input
        with contextlib.redirect_stdout(io.StringIO()):
            program = torch.onnx.export(
                graph, graph.positional(sample), None, dynamo=True, opset_version=opset,
                input_names=graph.inputs, output_names=graph.outputs,
                # _GraphIO takes *inputs: one argument holding a tuple of tensors.
                dynamic_shapes=(tuple(dims for _ in graph.inputs),),
            )
        program.save(str(file))


@dataclass(frozen=True)
class OnnxOptions:
    """How :func:`export_onnx` exports and verifies.

    Attributes:
        sample_size: height and width of the sample (a second, of another size and batch 2,
            checks that the axes are dynamic).
        opset: ONNX opset version.
        exporter: ``"legacy"`` (TorchScript-based) or ``"dynamo"``.
        atol: the largest absolute difference to PyTorch accepted on either sample...
        rtol: ... or this fraction of the largest logit, where that is more.
        raw_pixels: the graph takes raw pixels (RGB 0-255, or raw inputs per modality) and
            normalises them itself; False exports the bare network, taking normalised input;
            None: raw pixels unless the model is bare (``preprocess=False``; True: ExportError).
        labels_out: the graph ends in an argmax: output ``labels``, N×H×W uint8 (int32 past
            256 classes), checked equal to the verified logits' argmax.
    """

    sample_size: tuple[int, int] = (64, 64)
    opset: int = 18
    exporter: str = "legacy"
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    raw_pixels: bool | None = None
    labels_out: bool = False


def export_onnx(model: nn.Module, path: PathLike, options: OnnxOptions | None = None, /, *,
                description: Mapping[str, Any], **option_fields: Any) -> OnnxExport:
    """Export ``model`` (run in eval mode on the CPU, float32) to ONNX at ``path``, verified
    before the file is written.

    ``description``: JSON-able facts stored in ``metadata_props``, one JSON string per key; it
    must hold ``class_names``, ``palette`` and ``input_convention``, as
    :meth:`Segmenter(model, ...).describe() <fcnseg.inference.Segmenter.describe>` gives them.
    How it is exported is ``options``, or the :class:`OnnxOptions` the keyword ``option_fields``
    make (``export_onnx(model, path, description=d, sample_size=(96, 96))``).

    Raises:
        ExportError: the description lacks a key above (one line naming them), the export
            failed, or onnxruntime's outputs differ from PyTorch's by ``atol`` or more, or
            have another shape. ``path`` is then left as it was.
    """
    opts = dataclasses.replace(options or OnnxOptions(), **option_fields)
    if opts.exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {opts.exporter!r}")
    onnx = _require_onnx()
    # Written to a temporary and checked from there: one copy of the weights in memory at a
    # time, and ``path`` replaced only by a verified file.
    with atomic_path(path) as tmp:
        subject, run, checks = verified_export(
            model, opts.sample_size, lambda subject: _write(tmp, subject, opts, description),
            what=f"{opts.exporter} ONNX export", description=description,
            raw_pixels=opts.raw_pixels, atol=opts.atol, rtol=opts.rtol)
        if opts.labels_out:
            wide = int(description.get("num_classes") or 0) > 256
            tmp.write_bytes(_with_labels_out(onnx.load(str(tmp)), subject, run, wide))
        size = tmp.stat().st_size
    return OnnxExport(str(path), opts.opset, opts.exporter, checks, size)


def _write(file: Path, subject: ExportSubject, opts: OnnxOptions,
           description: Mapping[str, Any]) -> RunExport:
    """Export ``subject`` into ``file`` with its metadata, checked; answer its runner."""
    onnx = _require_onnx()
    if opts.labels_out and subject.outputs:
        raise ExportError("--labels-out: a model of several heads exports its logits only")
    graph = _GraphIO(subject)
    _export_to(file, graph, subject.samples[0], opts.opset, opts.exporter)
    gc.collect()  # the tracer's graph and its constants
    proto = onnx.load(str(file))
    set_metadata(proto, subject.metadata(description))
    onnx.save(proto, str(file))
    del proto
    onnx.checker.check_model(str(file))  # by path: checks without loading it again
    return graph.runner(onnx_session(str(file), lean=True))


class _GraphIO(nn.Module):
    """An export subject's model with the graph's positional, named ``inputs`` and ``outputs``
    (one of each, or one per modality and head)."""

    def __init__(self, subject: ExportSubject) -> None:
        super().__init__()
        self.model, self.modalities, self.heads = subject.model, subject.inputs, subject.outputs
        self.inputs = list(self.modalities or [INPUT_NAME])
        self.outputs = list(self.heads or [OUTPUT_NAME])
        self.eval()

    def forward(self, *x: torch.Tensor) -> Any:
        out = self.model(dict(zip(self.inputs, x, strict=True)) if self.modalities else x[0])
        return tuple(out[name] for name in self.outputs) if self.heads else out

    def positional(self, x: Any) -> tuple[torch.Tensor, ...]:
        """A sample (a tensor, or ``{modality: tensor}``) as the graph's inputs, in order."""
        return tuple(x[name] for name in self.inputs) if self.modalities else (x,)

    def runner(self, session: Any) -> Any:
        """A function running ``session`` on a sample, answering as the model does."""
        def run(x: Any) -> Any:
            feed = {n: t.numpy() for n, t in zip(self.inputs, self.positional(x), strict=True)}
            # One output: whatever its name (``labels`` once an argmax ends the graph).
            got = session.run(self.outputs if self.heads else None, feed)
            return dict(zip(self.outputs, got, strict=True)) if self.heads else got[0]

        return run


def set_metadata(proto: Any, metadata: Mapping[str, str]) -> None:
    """Replace an ONNX model's ``metadata_props`` with ``metadata`` and the digest of its graph
    as it is now (checked when the file is read); fcnseg is its producer."""
    del proto.metadata_props[:]
    digest = {GRAPH_DIGEST: json.dumps(graph_digest(proto.graph))}
    for key, value in {**metadata, **digest}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "fcnseg"


def _with_labels_out(proto: Any, subject: ExportSubject, run_logits: RunExport,
                     wide: bool) -> bytes:
    """The verified logits graph ending in labels, checked to give its argmax on each sample."""
    append_argmax(proto, wide=wide)
    labelled = proto.SerializeToString()
    run_labels = _GraphIO(subject).runner(onnx_session(labelled))
    for x in subject.samples:
        expected = np.asarray(run_logits(x)).argmax(1)
        got = run_labels(x)
        if got.shape != expected.shape or not np.array_equal(got.astype(np.int64), expected):
            raise ExportError("the argmax appended to the graph does not give the logits' "
                              "labels")
    return labelled


def append_argmax(proto: Any, *, wide: bool = False) -> None:
    """End an ONNX graph of one N×C×H×W logits output in ArgMax over C and a Cast to uint8
    (int32 when ``wide``): N×H×W labels named :data:`LABELS_NAME`, as its metadata says."""
    onnx = _require_onnx()
    TensorProto, helper = onnx.TensorProto, onnx.helper
    graph = proto.graph
    out = graph.output[0]
    label_type = TensorProto.INT32 if wide else TensorProto.UINT8
    graph.node.extend([
        helper.make_node("ArgMax", [out.name], [LABELS_NAME + "_argmax"], axis=1, keepdims=0),
        helper.make_node("Cast", [LABELS_NAME + "_argmax"], [LABELS_NAME], to=label_type),
    ])
    dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    new_out = helper.make_tensor_value_info(LABELS_NAME, label_type,
                                            [dims[0], *dims[2:]] if len(dims) == 4 else None)
    graph.output.remove(out)
    graph.output.append(new_out)
    onnx.checker.check_model(proto)
    meta = {e.key: e.value for e in proto.metadata_props}
    meta["outputs"] = json.dumps("labels")
    meta["output"] = json.dumps(f"N×H×W labels (uint8; int32 past 256 classes), output "
                                f"{LABELS_NAME!r}: the argmax over the classes of the logits")
    set_metadata(proto, meta)
