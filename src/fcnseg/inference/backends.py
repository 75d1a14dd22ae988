"""Inference backends: exported models (ONNX, int8 ONNX, TorchScript) run as a PyTorch model.

``fcnseg predict``, ``evaluate``, ``serve`` and ``info`` take an exported file by
``--checkpoint`` as they take a ``.pt``: :func:`read_artifact` turns the file's metadata (class
names, palette, input convention, geometry, quantization record) into the dict that
:func:`fcnseg.checkpoint.load_checkpoint` returns, and :func:`artifact_model` gives an
``nn.Module`` that runs the file with its own runtime (ONNX Runtime, TorchScript) and answers
like the model it came from: raw N×3×H×W pixels in (RGB 0-255), N×C×H×W float32 logits out,
with ``arch``, ``geometry``, ``num_classes``, ``input_convention`` and ``preprocess``
attributes. Everything built on models (sliding windows, TTA, batching, evaluation) therefore
works on artifacts unchanged.

A graph that takes raw pixels (``input_pixels`` = ``"rgb_0_255"`` in its metadata, what
``fcnseg export`` and ``fcnseg quantize`` write) is fed the pixels as they are; a graph taking
normalised input (``"normalized"``) gets them through the model's
:class:`~fcnseg.models.preprocess.Preprocess` first; a graph that ends in an argmax
(``outputs`` = ``"labels"``) answers with one-hot logits, so that labels are exact and
probabilities are 0 or 1.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.conventions import InputConvention, get_convention
from fcnseg.models.preprocess import Preprocess
from fcnseg.utils.validate import expect_mapping

__all__ = [
    "ArtifactError",
    "ArtifactModel",
    "artifact_kind",
    "artifact_model",
    "read_artifact",
]

#: What ``input_pixels`` says of a graph that takes RGB pixel values 0-255 (N×3×H×W float32).
RAW_PIXELS = "rgb_0_255"
#: The TorchScript archive's metadata file (see :mod:`fcnseg.export.torchscript`).
TORCHSCRIPT_METADATA = "fcnseg.json"
#: Largest metadata we read from an artifact (class names, palettes and figures are far less).
MAX_METADATA_BYTES = 16 << 20


class ArtifactError(ValueError):
    """An exported model file cannot be used: unreadable, undescribed, or its runtime missing."""


def artifact_kind(path: str | os.PathLike[str]) -> str | None:
    """``"onnx"``, ``"torchscript"`` or None (a checkpoint, or not a file) for ``path``, from
    its name and first bytes (an ONNX file is a protobuf whose first field is the IR version; a
    TorchScript archive is a zip with ``code/`` and ``extra/fcnseg.json``)."""
    p = Path(path)
    if not p.is_file():
        return None
    if p.suffix.lower() == ".onnx":
        return "onnx"
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        if any(n.endswith(f"/extra/{TORCHSCRIPT_METADATA}") for n in names) and any(
                "/code/" in n for n in names):
            return "torchscript"
        return None
    if head[:1] == b"\x08" and p.suffix.lower() not in (".pt", ".pth", ".tar", ".safetensors"):
        return "onnx"  # field 1 (ir_version), varint
    return None


def _onnx_metadata(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:
        raise ArtifactError(f"{path}: an ONNX model needs onnx and onnxruntime; install them "
                            f"with: pip install 'fcnseg[onnx]'") from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise ArtifactError(f"{path}: cannot be read as an ONNX model ({type(e).__name__})") \
            from None
    meta: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            meta[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            meta[entry.key] = entry.value
    return meta


def _torchscript_metadata(path: Path) -> dict[str, Any]:
    # Read the description from the archive without loading (running) the TorchScript code.
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(f"/extra/{TORCHSCRIPT_METADATA}"))
        if z.getinfo(name).file_size > MAX_METADATA_BYTES:
            raise ArtifactError(f"{path}: {name} is larger than any model description")
        text = z.read(name)
    try:
        meta = json.loads(text) if text else {}
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: {name} is not JSON ({e.msg})") from None
    return dict(expect_mapping(meta, f"{path}: {name}", "a JSON object", error=ArtifactError))


def read_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint-shaped description of an exported model at ``path``: ``model``
    (``arch``, ``build_kwargs`` with ``num_classes`` and ``geometry``, ``input_convention``),
    ``classes``, ``metrics`` and ``artifact`` (``kind``, ``input_pixels``, ``outputs``,
    ``quantization`` when it is an int8 model, ``fcnseg_version``, ``temperature``: already
    applied inside the graph), no weights.

    Raises:
        ArtifactError: not an exported model, or its metadata lacks the description that
            ``fcnseg export`` writes (class names, palette, input convention).
    """
    p = Path(path)
    kind = artifact_kind(p)
    if kind is None:
        raise ArtifactError(f"{p}: not an ONNX or TorchScript model")
    meta = _onnx_metadata(p) if kind == "onnx" else _torchscript_metadata(p)
    missing = [k for k in ("class_names", "palette", "input_convention") if k not in meta]
    if missing:
        raise ArtifactError(f"{p}: the {kind} model's metadata lacks {missing}; export it with "
                            f"fcnseg export (or fcnseg quantize), which records them")
    names = meta["class_names"]
    if not isinstance(names, list):
        raise ArtifactError(f"{p}: class_names: expected a list of names")
    if len(meta.get("output_names") or []) > 1 or len(meta.get("input_names") or []) > 1:
        raise ArtifactError(f"{p}: a model of several inputs or heads runs from its checkpoint "
                            f"(.pt); its export is for other runtimes")
    ignore_index = meta.get("ignore_index", 255)
    palette = list(meta["palette"]) if isinstance(meta["palette"], list) else meta["palette"]
    if isinstance(palette, list) and isinstance(meta.get("ignore_color"), list) \
            and isinstance(ignore_index, int) and 0 <= ignore_index < 256:
        palette = palette + [[0, 0, 0]] * max(0, ignore_index - len(palette))
        palette = palette[:ignore_index] + [meta["ignore_color"]] + palette[ignore_index + 1:]
    return {
        "format": _checkpoint_format(),
        "model_state_dict": {},
        "model": {"arch": meta.get("arch", "exported"),
                  "build_kwargs": {"num_classes": len(names), "geometry": meta.get("geometry")},
                  "input_convention": meta["input_convention"]},
        "classes": {"names": names, "palette": palette, "ignore_index": ignore_index},
        "recipe": {}, "iteration": 0, "epoch": 0,
        "metrics": meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
        "state": {},
        "artifact": {
            "kind": kind,
            "input_pixels": meta.get("input_pixels", "normalized"),
            "outputs": meta.get("outputs", "logits"),
            "quantization": meta.get("quantization"),
            "fcnseg_version": meta.get("fcnseg_version"),
            # Already applied: the exported logits are divided by it (no "temperature" key,
            # so that nothing divides them again).
            "temperature": meta.get("temperature", 1.0),
        },
    }


def _checkpoint_format() -> Any:
    from fcnseg.pretrained.resolve import FORMAT

    return FORMAT


class ArtifactModel(nn.Module):
    """An exported model behind a PyTorch module's interface: normalised N×3×H×W input,
    N×C×H×W float32 logits (see the module docstring).

    Attributes:
        runtime: ``"onnxruntime"`` or ``"torchscript"``.
        precision: ``"int8"`` for a quantized model, else ``"fp32"``: the arithmetic is the
            file's own, whatever autocast says around it.
    """

    def __init__(self, run: Any, *, runtime: str, arch: str, geometry: str | None,
                 num_classes: int, convention: InputConvention, raw_pixels: bool,
                 labels_out: bool, precision: str) -> None:
        super().__init__()
        self._run = run
        self.runtime = runtime
        self.arch = arch
        self.geometry = geometry
        self.num_classes = int(num_classes)
        self.input_convention = convention
        #: What the file does to raw pixels: inside its graph (``raw_pixels``), else here.
        self.preprocess = Preprocess(("color",), convention)
        self.raw_pixels = raw_pixels
        self.labels_out = labels_out
        self.precision = precision
        self.optimizations = [f"runtime: {runtime}" + (" int8" if precision == "int8" else "")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        x = x.detach().float().cpu()
        if not self.raw_pixels:
            x = self.preprocess(x)
        out = self._run(x.contiguous())
        if self.labels_out:
            labels = out.long()
            out = torch.zeros(labels.shape[0], self.num_classes, *labels.shape[1:])
            out.scatter_(1, labels.unsqueeze(1), 1.0)
        return out.float().to(device)


def artifact_model(ckpt: Mapping[str, Any], *, threads: int | None = None) -> ArtifactModel:
    """The :class:`ArtifactModel` of a description from :func:`read_artifact` (its ``path``)."""
    art = ckpt["artifact"]
    path = str(ckpt["path"])
    quantized = bool(art.get("quantization"))
    if art["kind"] == "onnx":
        run = _onnx_runner(path, threads)
        runtime = "onnxruntime"
    else:
        run = _torchscript_runner(path)
        runtime = "torchscript"
    return ArtifactModel(
        run, runtime=runtime, arch=str(ckpt["model"]["arch"]),
        geometry=ckpt["model"]["build_kwargs"].get("geometry"),
        num_classes=int(ckpt["model"]["build_kwargs"]["num_classes"]),
        convention=get_convention(ckpt["model"]["input_convention"]),
        raw_pixels=art.get("input_pixels") == RAW_PIXELS,
        labels_out=art.get("outputs") == "labels",
        precision="int8" if quantized else "fp32",
    ).eval()


def onnx_session(model: str | bytes, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of ``model`` (a path or serialized bytes), all graph
    optimisations on, ``threads`` intra-op threads (None: PyTorch's thread count)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ArtifactError("running an ONNX model needs onnxruntime; install it with: "
                            "pip install 'fcnseg[onnx]'") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _onnx_runner(path: str, threads: int | None) -> Any:
    try:
        session = onnx_session(path, threads)
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 - ONNX Runtime's own errors are long and varied
        first = " ".join(str(e).split())[:200]
        raise ArtifactError(f"{path}: ONNX Runtime cannot load the model ({first})") from None
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(session.run(None, {name: x.numpy()})[0]))

    return run


def _torchscript_runner(path: str) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(path, map_location="cpu").eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return run
