"""Exported models (ONNX, int8 ONNX, TorchScript) are handled as files:
what kind a file is, its metadata as a checkpoint-shaped description (:func:`read_artifact`),
and ONNX Runtime sessions. Nothing here runs the graph or any code in the file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from fcnseg.utils.file_kinds import TORCHSCRIPT_EXPANSION, zip_expansion_problem
from fcnseg.utils.files import FileSignature, file_signature
from fcnseg.utils.validate import expect_mapping, fields_of
from fcnseg.weightfiles.resolve import checkpoint_dict

#: What ``input_pixels`` says of a graph that takes RGB pixel values 0-255 (N×3×H×W float32).
RAW_PIXELS = "rgb_0_255"
#: What an export's description must hold for fcnseg to load the file again.
REQUIRED_DESCRIPTION = ("class_names", "palette", "input_convention")
#: The TorchScript archive's metadata file (see :mod:`fcnseg.export.torchscript`).
TORCHSCRIPT_METADATA = "fcnseg.json"
#: Largest metadata we read from an artifact (class names, palettes and figures are far less).
MAX_METADATA_BYTES = 16 << 20
#: Metadata key of the SHA-256 of the graph (nodes and weights) as fcnseg wrote it.
GRAPH_DIGEST = "graph_sha256"


class ArtifactError(ValueError):
    """An exported model file cannot be used: unreadable, undescribed, or its runtime missing."""


def artifact_kind(path: str | os.PathLike[str]) -> str | None:
    """``"onnx"``, ``"torchscript"`` or None for ``path``, from its name and first bytes."""
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
        scripted = any(n.endswith(f"/extra/{TORCHSCRIPT_METADATA}") for n in names)
        return "torchscript" if scripted and any("/code/" in n for n in names) else None
    if head[:1] == b"\x08" and p.suffix.lower() not in (".pt", ".pth", ".tar", ".safetensors"):
        return "onnx"  # field 1 (ir_version), varint
    return None


def graph_digest(graph: Any) -> str:
    """The SHA-256 of an ONNX graph as serialized: its nodes and weights, not the metadata."""
    return hashlib.sha256(graph.SerializeToString()).hexdigest()


def _file_graph_digest(raw: bytes) -> str | None:
    """:func:`graph_digest` of an ONNX file's bytes, hashing its graph (ModelProto field 7) where
    it lies rather than serializing it again (5 times slower); None for bytes it cannot walk."""
    digest = hashlib.sha256()
    try:
        for number, data in protobuf_fields(raw):
            if number == 7:
                digest.update(data)
    except ValueError:
        return None
    return digest.hexdigest()


def protobuf_fields(message: bytes) -> Iterator[tuple[int, memoryview]]:
    """The top-level fields of a serialized protobuf ``message``: each one's number and bytes
    (a varint's value is skipped: empty bytes; a field running past the end is cut short).
    ValueError at a key, length or wire type that cannot be read."""
    view, at = memoryview(message), 0
    while at < len(message):
        try:
            key, at = read_varint(message, at)
            start, end = _field_span(message, at, key & 7)
        except (IndexError, KeyError):
            raise ValueError("protobuf message cut off or of an unknown wire type") from None
        yield key >> 3, view[start:end]
        at = end


def _field_span(message: bytes, at: int, wire: int) -> tuple[int, int]:
    """Where the bytes of a field of wire type ``wire`` after its key at ``at`` start and end
    (IndexError: cut off; KeyError: an unknown wire type)."""
    if wire == 0:
        end = read_varint(message, at)[1]
        return end, end
    if wire == 2:
        size, start = read_varint(message, at)
        return start, start + size
    return at, at + {1: 8, 5: 4}[wire]


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The protobuf varint at ``data[at:]`` and the offset after it (IndexError at the end)."""
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an ONNX file (what ``fcnseg export`` records), JSON values decoded; the
    graph's external data is not read."""
    return _parse_onnx(path)[2]


def read_onnx(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`read_onnx_metadata`, and the graph's ``parameters`` (its initializers' values)
    and ``changed``: whether it differs from the :data:`GRAPH_DIGEST` recorded (None: none)."""
    signature = file_signature(path)
    raw, proto, meta = _parse_onnx(path)
    recorded = meta.get(GRAPH_DIGEST)
    changed = None if recorded is None else recorded != _graph_digest_once(signature, raw)
    if changed and _keeps_external_data(proto):  # its weights moved to a file beside it
        digest = _external_graph_digest(proto, Path(path).parent)
        changed = None if digest is None else digest != recorded
    return meta, {"parameters": sum(math.prod(t.dims) for t in proto.graph.initializer),
                  "changed": changed}


def _graph_digest_once(signature: FileSignature | None, raw: bytes) -> str | None:
    """:func:`_file_graph_digest` of ``raw``, an ONNX file's bytes as ``signature`` describes
    the file (device, inode, size, times): hashed once in a process while it keeps them."""
    if signature is None:
        return _file_graph_digest(raw)
    if signature not in _GRAPH_DIGESTS:
        _GRAPH_DIGESTS[signature] = _file_graph_digest(raw)
    return _GRAPH_DIGESTS[signature]


#: The graph digests of the ONNX files read, by file signature (:func:`_graph_digest_once`).
_GRAPH_DIGESTS: dict[FileSignature, str | None] = {}


def _parse_onnx(path: str | os.PathLike[str]) -> tuple[bytes, Any, dict[str, Any]]:
    """An ONNX file's bytes, its ModelProto (external data not read) and its metadata."""
    try:
        import onnx
    except ImportError:
        raise ArtifactError(f"{path}: an ONNX model needs onnx and onnxruntime; install them "
                            f"with: pip install 'fcnseg[onnx]'") from None
    try:
        raw = Path(path).read_bytes()
        proto = onnx.load_model_from_string(raw)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file
        raise ArtifactError(f"{path}: cannot be read as an ONNX model ({type(e).__name__})") \
            from None
    meta: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            meta[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            meta[entry.key] = entry.value
        except (RecursionError, ValueError):  # nested thousands deep; thousands of digits
            raise ArtifactError(f"{path}: metadata {entry.key[:40]!r} is no value fcnseg "
                                f"export writes (nested too deeply or too long a number)"
                                ) from None
    return raw, proto, meta


def _keeps_external_data(proto: Any) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in proto.graph.initializer)


def _external_graph_digest(proto: Any, folder: Path) -> str | None:
    """:func:`graph_digest` of ``proto`` with the weights it keeps in external data files (in
    ``folder``) read back in as fcnseg wrote them; None where they cannot be read (onnxruntime
    then says why)."""
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    moved = [t for t in proto.graph.initializer if uses_external_data(t)]
    try:
        load_external_data_for_model(proto, str(folder))
    except Exception:  # noqa: BLE001 - a missing or unsafe file: not ours to judge here
        return None
    for tensor in moved:
        tensor.ClearField("data_location")  # DEFAULT, set explicitly by the loader
    return graph_digest(proto.graph)


def graph_changed_text(path: str | os.PathLike[str]) -> str:
    """The one line saying an export's graph is not the one fcnseg wrote and measured."""
    return (f"{path}: the file changed since fcnseg wrote it (its weights or graph differ from "
            f"the {GRAPH_DIGEST} in its metadata), so the accuracy figures recorded in it no "
            f"longer apply")


def read_torchscript_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The description ``fcnseg export`` saved in a TorchScript archive ({} when it holds none),
    read from the zip without loading (running) the TorchScript code."""
    with zipfile.ZipFile(path) as z:
        name = next((n for n in z.namelist() if n.endswith(f"/extra/{TORCHSCRIPT_METADATA}")),
                    None)
        if name is None:
            return {}
        if z.getinfo(name).file_size > MAX_METADATA_BYTES:
            raise ArtifactError(f"{path}: {name} is larger than any model description")
        text = z.read(name)
    try:
        meta = json.loads(text) if text else {}
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: {name} is not JSON ({e.msg})") from None
    except (RecursionError, ValueError):  # nested thousands deep; thousands of digits
        raise ArtifactError(f"{path}: {name} is no description fcnseg export writes "
                            f"(nested too deeply or too long a number)") from None
    return dict(expect_mapping(meta, f"{path}: {name}", "a JSON object", error=ArtifactError))


def read_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint-shaped description of an exported model, no weights: ``model``,
    ``classes``, ``metrics``, ``recipe`` (``data.val`` recorded at export) and ``artifact``
    (``kind``, ``input_pixels``, ``outputs``, ``quantization``, ``fcnseg_version``,
    ``temperature``). ArtifactError: not an exported model, or undescribed.
    """
    p = Path(path)
    kind = artifact_kind(p)
    if kind is None:
        raise ArtifactError(f"{p}: not an ONNX or TorchScript model")
    problem = zip_expansion_problem(p, TORCHSCRIPT_EXPANSION) if kind == "torchscript" else None
    if problem is not None:  # before torch.jit.load inflates its members
        raise ArtifactError(f"{p}: not an exported model: {problem}")
    meta, graph = read_onnx(p) if kind == "onnx" else (read_torchscript_metadata(p), {})
    missing = [k for k in REQUIRED_DESCRIPTION if k not in meta]
    if missing:
        raise ArtifactError(f"{p}: the {kind} model's metadata lacks {missing}; export it "
                            f"with fcnseg export (or fcnseg quantize), or from Python with a "
                            f"description holding them (Segmenter(...).describe()), which "
                            f"record them")
    names = meta["class_names"]
    if not isinstance(names, list):
        raise ArtifactError(f"{p}: class_names: expected a list of names")
    inputs, heads = _names(p, meta, "input_names"), _names(p, meta, "output_names")
    head_classes = _head_classes(p, meta, heads)
    ignore_index = meta.get("ignore_index", 255)
    palette = list(meta["palette"]) if isinstance(meta["palette"], list) else meta["palette"]
    if isinstance(palette, list) and isinstance(meta.get("ignore_color"), list) \
            and isinstance(ignore_index, int) and 0 <= ignore_index < 256:
        palette += [[0, 0, 0]] * (ignore_index + 1 - len(palette))
        palette[ignore_index] = meta["ignore_color"]
    return checkpoint_dict(
        {},
        {"arch": meta.get("arch", "exported"),
         "build_kwargs": {"num_classes": len(names), "geometry": meta.get("geometry")},
         "input_convention": meta["input_convention"]},
        {"names": names, "palette": palette, "ignore_index": ignore_index,
         **({"heads": head_classes} if head_classes else {}),
         **{k: meta[k] for k in ("coco_categories",) if k in meta}},
        recipe={"data": {"val": meta["validation_data"]}}
        if isinstance(meta.get("validation_data"), dict) else {},
        metrics=meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
        artifact={
            "kind": kind,
            "input_pixels": meta.get("input_pixels", "normalized"),
            "outputs": meta.get("outputs", "logits"),
            "input": meta.get("input"),  # what the graph takes, in words, as exported
            "quantization": meta.get("quantization"),
            "fcnseg_version": meta.get("fcnseg_version"),
            "input_names": inputs,
            "output_names": heads,
            # Applied inside the graph: not the top-level key, which would divide again.
            "temperature": meta.get("temperature", 1.0),
            **graph,  # an ONNX graph's parameters and whether it changed since written
        },
    )


def _names(path: Path, meta: Mapping[str, Any], key: str) -> list[str] | None:
    """The input or output names an export records (``key``), where it has several."""
    names = meta.get(key)
    if names is None:
        return None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ArtifactError(f"{path}: {key}: expected a list of names")
    return list(names) if len(names) > 1 else None


def _head_classes(path: Path, meta: Mapping[str, Any],
                  heads: list[str] | None) -> dict[str, list[str]] | None:
    """``{head: class names}`` of an export with several heads, from its ``heads`` metadata."""
    if not heads:
        return None
    what = "{head: [class names]}"
    recorded = meta.get("heads")
    recorded = expect_mapping({} if recorded is None else recorded, f"{path}: heads", what,
                              error=ArtifactError)
    if not all(isinstance(v, list) for v in recorded.values()):
        raise ArtifactError(f"{path}: heads: expected {what}")
    missing = [h for h in heads if h not in recorded]
    if missing:
        raise ArtifactError(f"{path}: heads: no class names for the output(s) {missing}")
    return {h: [str(n) for n in recorded[h]] for h in heads}


def labels_only(ckpt: Mapping[str, Any]) -> bool:
    """Whether a loaded description is of a model exported with labels only (``--labels-out``),
    which gives no probabilities."""
    return fields_of(ckpt.get("artifact")).get("outputs") == "labels"


def labels_only_error(path: str | os.PathLike[str], what: str) -> str:
    """The one line refusing ``what`` (options that need probabilities) for the labels-only
    model at ``path``."""
    return (f"{what}: {path} was exported with labels only (--labels-out), so it gives no "
            f"probabilities; export the checkpoint again without --labels-out for them")


def onnx_session(model: str | bytes, threads: int | None = None, *, lean: bool = False) -> Any:
    """An ONNX Runtime CPU session of ``model`` (a path or bytes), ``threads`` intra-op threads
    (None: PyTorch's count), all graph optimisations on; ``lean``: for a one-off check, holding
    the weights about once (basic optimisations, no pre-packing, no memory arena)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ArtifactError("running an ONNX model needs onnxruntime; install it with: "
                            "pip install 'fcnseg[onnx]'") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if lean:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
