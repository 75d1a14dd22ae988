"""Read (and write) Caffe ``.caffemodel`` files with no Caffe installed.

A ``.caffemodel`` is one serialized ``NetParameter`` (:mod:`fcnseg.weightfiles.caffe_proto`),
500-550 MB for the reference models, nearly all packed float ``data``. The reader walks the
protobuf wire format field by field: each blob's data goes from the file straight into its numpy
array (one copy of the weights in memory), and protobuf decodes only the small fields. Layers in
the current ``layer`` (field 100) and V1 ``layers`` (field 2) formats are read, a V0 layer nested
in a V1 one too. Errors name the file, and the layer where one is involved.

A file is untrusted, so memory and time are bounded by its size: values are read into arrays
sized by the bytes holding them; layers, blobs and fields count against a budget growing with the
file (:data:`ENTRY_BUDGET_FLOOR` plus one per :data:`BYTES_PER_ENTRY` bytes); a blob shape has at
most Caffe's 32 axes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from google.protobuf.message import DecodeError

from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.caffe_proto import (
    V1_LAYER_TYPES,
    BlobProto,
    BlobShape,
    LayerParameter,
    NetParameter,
    V0LayerParameter,
    V1LayerParameter,
)

# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5

#: Layers, blobs and other fields (each a Python object or more) a file may hold: this many ...
ENTRY_BUDGET_FLOOR = 16_384
#: ... plus one per this many bytes of the file (a reference FCN holds a few hundred).
BYTES_PER_ENTRY = 1024
#: Caffe's own limit on the axes of a blob (kMaxBlobAxes).
MAX_BLOB_AXES = 32
# The longest encoding of a BlobShape of MAX_BLOB_AXES dimensions.
_MAX_SHAPE_BYTES = MAX_BLOB_AXES * 11 + 16
# The fields handed to protobuf: the net's name, a blob's shapes (a layer's: _LAYER_FORMATS).
_NET_FIELDS = (1,)
_BLOB_FIELDS = (1, 2, 3, 4, 7)
# A blob's values: field → (dtype, the wire type of one unpacked value).
_VALUES = {5: ("<f4", _FIXED32), 8: ("<f8", _FIXED64)}  # data, double_data

# V1 enum names → the type strings of the current format.
_V1_TYPE_NAMES = {
    "CONVOLUTION": "Convolution", "DECONVOLUTION": "Deconvolution",
    "INNER_PRODUCT": "InnerProduct", "POOLING": "Pooling", "RELU": "ReLU", "DROPOUT": "Dropout",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "LRN": "LRN", "DATA": "Data",
    "CONCAT": "Concat", "ELTWISE": "Eltwise", "SPLIT": "Split", "ACCURACY": "Accuracy",
    "POWER": "Power", "FLATTEN": "Flatten", "SLICE": "Slice", "SIGMOID": "Sigmoid",
    "TANH": "TanH", "IMAGE_DATA": "ImageData", "MEMORY_DATA": "MemoryData",
}
_V1_ENUM_NAMES = {number: name for name, number in V1_LAYER_TYPES.items()}
# V0 (oldest format) type strings.
_V0_TYPE_NAMES = {"conv": "Convolution", "innerproduct": "InnerProduct", "pool": "Pooling",
                  "relu": "ReLU", "dropout": "Dropout", "lrn": "LRN", "softmax": "Softmax"}


class CaffeModelError(ValueError):
    """A ``.caffemodel`` file is unreadable, truncated, or does not fit the model."""


@dataclass
class CaffeBlob:
    """One blob of a layer: its shape as recorded in the file and its values (float32)."""

    shape: tuple[int, ...]
    data: np.ndarray  # float32, already reshaped to ``shape``
    #: the shape came from the legacy num/channels/height/width fields (always 4-D)
    legacy_shape: bool = False


@dataclass
class CaffeLayer:
    """A layer of a ``.caffemodel``: name, type (current-format spelling) and blobs."""

    name: str
    type: str
    blobs: list[CaffeBlob] = field(default_factory=list)


@dataclass
class CaffeNet:
    """The layers of a ``.caffemodel``, in file order."""

    path: Path
    name: str
    #: ``"layer"`` (current format, field 100) or ``"V1"`` (``layers``, field 2)
    layer_format: str
    layers: list[CaffeLayer]

    def layer(self, name: str) -> CaffeLayer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise CaffeModelError(f"{self.path}: has no layer {name!r}")

    def with_blobs(self) -> dict[str, CaffeLayer]:
        """The layers that carry weights, by name."""
        return {lay.name: lay for lay in self.layers if lay.blobs}


# -- the wire-format walker -------------------------------------------------------------------


class _Stream:
    """A file read field by field; every read is bounded by the enclosing message's end."""

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f = f
        self.path = path
        self.size = size
        self.budget = ENTRY_BUDGET_FLOOR + size // BYTES_PER_ENTRY
        self.entries = 0
        self.skip_values = False  # read_caffemodel(weights=False)
        #: where :meth:`fields` goes on after a consumer read past the field; None: just past it
        self.resume_at: int | None = None

    def count(self, where: str | _LayerLabel) -> None:
        """Count one more layer, blob or field against the file's budget (module doc)."""
        self.entries += 1
        if self.entries > self.budget:
            raise CaffeModelError(
                f"{self.path}: not a .caffemodel a Caffe net writes: more than {self.budget:,} "
                f"layers, blobs and fields in {self.size:,} bytes (stopped at {where}); reading "
                f"on would take far more memory than the file's size"
            )

    def truncated(self, where: str | _LayerLabel, detail: str = "") -> CaffeModelError:
        more = f" ({detail})" if detail else ""
        return CaffeModelError(
            f"{self.path}: truncated or not a .caffemodel: {where} ends past the end of its "
            f"message or of the file{more}. Download the file again."
        )

    def varint(self, end: int, where: str | _LayerLabel) -> int:
        result = shift = 0
        while True:
            if self.f.tell() >= end:
                raise self.truncated(where)
            b = self.f.read(1)
            if not b:
                raise self.truncated(where)
            result |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise CaffeModelError(f"{self.path}: not a .caffemodel: bad varint in {where}")

    def fields(self, end: int, where: str | _LayerLabel, overflow_ok: tuple[int, ...] = ()
               ) -> Iterator[tuple[int, int, int, int]]:
        """Yield ``(number, wire_type, start, length)`` for each field up to ``end`` (a varint's
        value as ``length``), the stream at its payload, then moved past it. A field running
        past ``end`` is an error, except for ``overflow_ok`` numbers (the consumer reports)."""
        while self.f.tell() < end:
            start = self.f.tell()
            tag = self.varint(end, where)
            number, wire = tag >> 3, tag & 7
            if number == 0 or wire not in (_VARINT, _FIXED64, _LEN, _FIXED32):
                raise CaffeModelError(
                    f"{self.path}: not a .caffemodel (a serialized Caffe NetParameter): invalid "
                    f"field tag {tag} at byte {start} in {where}"
                )
            self.count(where)  # runs of unpacked values count once (_read_unpacked)
            if wire == _VARINT:
                yield number, wire, start, self.varint(end, where)
                continue
            length = self.varint(end, where) if wire == _LEN else 8 if wire == _FIXED64 else 4
            payload = self.f.tell()
            if payload + length > end and number not in overflow_ok:
                raise self.truncated(where, f"field {number} at byte {start} declares "
                                            f"{length} bytes, {end - payload} remain")
            yield number, wire, start, length
            self.f.seek(payload + length if self.resume_at is None else self.resume_at)
            self.resume_at = None

    def field_bytes(self, start: int, wire: int, length: int) -> bytes:
        """The whole encoded field that began at ``start`` (tag included), position kept."""
        here = self.f.tell()
        end = here if wire == _VARINT else here + length
        self.f.seek(start)
        data = self.f.read(end - start)
        self.f.seek(here)
        return data


def _read_floats(s: _Stream, length: int, dtype: str, where: str) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    if length % itemsize:
        raise CaffeModelError(f"{s.path}: {where}: packed data of {length} bytes is not a whole "
                              f"number of {itemsize}-byte values")
    if s.skip_values:  # the shape alone: zeros that take no memory, the data left unread
        return np.broadcast_to(np.zeros(1, dtype=dtype), (length // itemsize,))
    arr = np.empty(length // itemsize, dtype=dtype)
    got = s.f.readinto(memoryview(arr).cast("B"))
    if got != length:
        raise s.truncated(where, f"{got} of {length} bytes of data")
    return arr


def _parse(message: Any, data: bytes, s: _Stream, where: str, what: str) -> Any:
    try:
        return message.FromString(data)
    except DecodeError as e:
        raise CaffeModelError(f"{s.path}: {where}: not a valid {what} ({e})") from e


def _read_unpacked(s: _Stream, start: int, end: int, dtype: str, tag: int) -> np.ndarray:
    """The values of a run of unpacked fields (tag, value, tag, value ...) from ``start``, read
    in bulk: a Python step per value would take minutes for a few MB."""
    value_size = np.dtype(dtype).itemsize
    if s.f.tell() - start != 1:  # a tag of several bytes: not Caffe's writing; one value
        return np.frombuffer(s.f.read(value_size), dtype=dtype).copy()
    record = np.dtype([("tag", "u1"), ("value", dtype)])  # unaligned: 1 + value_size bytes
    s.f.seek(start)
    parts: list[np.ndarray] = []
    pos = start
    while pos + record.itemsize <= end:
        count = min((end - pos) // record.itemsize, 1 << 20)
        records = np.frombuffer(s.f.read(count * record.itemsize), dtype=record)
        other = np.flatnonzero(records["tag"] != tag)
        run = int(other[0]) if other.size else len(records)
        parts.append(records["value"][:run].copy())
        pos += run * record.itemsize
        if run < len(records):
            break
    s.resume_at = pos
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _read_blob(s: _Stream, end: int, where: str) -> CaffeBlob:
    s.count(where)
    chunks: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    rest = bytearray()
    for number, wire, start, length in s.fields(end, where):
        if number in _VALUES and wire in (_LEN, _VALUES[number][1]):  # packed or unpacked
            dtype = _VALUES[number][0]
            values = (_read_floats(s, length, dtype, where) if wire == _LEN
                      else _read_unpacked(s, start, end, dtype, (number << 3) | wire))
            (chunks if number == 5 else doubles).append(values)
        elif number in _BLOB_FIELDS:  # not diff, double_diff: gradients, not needed
            if number == 7 and wire == _LEN and length > _MAX_SHAPE_BYTES:
                raise CaffeModelError(f"{s.path}: {where}: a shape of {length:,} bytes, more "
                                      f"than Caffe's {MAX_BLOB_AXES} axes can take")
            rest += s.field_bytes(start, wire, length)
    msg = _parse(BlobProto, bytes(rest), s, where, "BlobProto")
    if len(msg.shape.dim) > MAX_BLOB_AXES:
        raise CaffeModelError(f"{s.path}: {where}: a shape of {len(msg.shape.dim)} axes, more "
                              f"than Caffe's {MAX_BLOB_AXES}")
    parts = chunks or doubles  # one array is kept as it is: no copy of a 400 MB blob
    data = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.empty(0, "<f4")])
    data = data.astype(np.float32, copy=False)  # no copy of little-endian floats here
    legacy = not msg.HasField("shape")
    if not legacy:
        shape = tuple(int(d) for d in msg.shape.dim)
    elif any(msg.HasField(f) for f in ("num", "channels", "height", "width")):
        shape = (int(msg.num), int(msg.channels), int(msg.height), int(msg.width))
    else:
        shape = (data.size,)
    if any(d < 0 for d in shape):
        raise CaffeModelError(f"{s.path}: {where}: shape {shape} has a negative dimension")
    if math.prod(shape) != data.size:
        raise CaffeModelError(f"{s.path}: {where}: shape {shape} needs {math.prod(shape)} "
                              f"values, the file holds {data.size}")
    return CaffeBlob(shape, data.reshape(shape), legacy_shape=legacy)


@dataclass
class _LayerLabel:
    """A layer's label in messages, named once its name has been read (errors format it)."""

    index: int
    name: str = ""

    def __str__(self) -> str:
        return f"layer {self.name!r}" if self.name else f"layer #{self.index}"


# Per layer format: its message, the field numbers of its blobs and of its name, and the fields
# handed to protobuf (name and type).
_LAYER_FORMATS = {"layer": (LayerParameter, 7, 1, (1, 2)),
                  "V1": (V1LayerParameter, 6, 4, (4, 5)),
                  "V0": (V0LayerParameter, 50, 1, (1, 2))}


def _read_layer(s: _Stream, end: int, fmt: str, label: str | _LayerLabel) -> CaffeLayer:
    """A layer of format ``fmt``; ``label`` takes its name once read."""
    message, blob_field, name_field, kept = _LAYER_FORMATS[fmt]
    rest = bytearray()
    blobs: list[CaffeBlob] = []
    nested: CaffeLayer | None = None
    for number, wire, start, length in s.fields(end, label):
        if number == blob_field and wire == _LEN:
            blobs.append(_read_blob(s, s.f.tell() + length, f"{label} blob {len(blobs)}"))
        elif fmt == "V1" and number == 1 and wire == _LEN:
            nested = _read_layer(s, s.f.tell() + length, "V0", str(label))
        elif number in kept:
            rest += s.field_bytes(start, wire, length)
            if number == name_field and wire == _LEN and isinstance(label, _LayerLabel):
                label.name = s.f.read(length).decode("utf-8", "replace")
    msg = _parse(message, bytes(rest), s, str(label), "V0 layer" if fmt == "V0" else "layer")
    ltype = msg.type
    if fmt == "V1":
        type_name = _V1_ENUM_NAMES.get(msg.type, str(msg.type))
        ltype = _V1_TYPE_NAMES.get(type_name, type_name)
    elif fmt == "V0":
        ltype = _V0_TYPE_NAMES.get(msg.type, msg.type)
    layer = CaffeLayer(msg.name, ltype, blobs)
    if nested is not None:  # a V0 layer inside a V1 one: Caffe upgrades it the same way
        layer.name = layer.name or nested.name
        layer.type = nested.type if not msg.HasField("type") else layer.type
        layer.blobs = layer.blobs or nested.blobs
    return layer


def _peek_name(s: _Stream, payload: int, end: int, name_field: int) -> str:
    """The name of a layer cut short, read from what remains of it ("" if not found)."""
    s.f.seek(payload)
    try:
        for number, wire, _start, length in s.fields(end, "a cut layer"):
            if number == name_field and wire == _LEN:
                return s.f.read(length).decode("utf-8", "replace")
    except CaffeModelError:
        pass
    return ""


def read_caffemodel(path: PathLike, *, weights: bool = True) -> CaffeNet:
    """Read every layer of a ``.caffemodel`` and its blobs (float32 numpy arrays), in about
    one copy of the weights. ``weights=False`` reads the shapes only (values are read-only
    zeros that take no memory): enough to recognise the model. :class:`CaffeModelError` for a
    truncated file or one that is not a serialized ``NetParameter``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .caffemodel file")
    size = path.stat().st_size
    if size == 0:
        raise CaffeModelError(f"{path}: empty file, not a .caffemodel")
    layers: list[CaffeLayer] = []
    formats: set[str] = set()
    head = bytearray()
    with open(path, "rb", buffering=1 << 16) as f:
        s = _Stream(f, path, size)
        s.skip_values = not weights
        for number, wire, start, length in s.fields(size, "the NetParameter", (100, 2)):
            if number in (100, 2) and wire == _LEN:
                fmt = "layer" if number == 100 else "V1"
                if f.tell() + length > size:
                    name = _peek_name(s, f.tell(), size, _LAYER_FORMATS[fmt][2])
                    raise s.truncated(_LayerLabel(len(layers), name),
                                      f"{length} bytes declared, {size - f.tell()} in the file")
                formats.add(fmt)
                s.count(_LayerLabel(len(layers)))
                layers.append(_read_layer(s, f.tell() + length, fmt, _LayerLabel(len(layers))))
            elif number in _NET_FIELDS:
                head += s.field_bytes(start, wire, length)
    try:
        net = NetParameter.FromString(bytes(head))
    except DecodeError as e:
        raise CaffeModelError(f"{path}: not a .caffemodel ({e})") from e
    if not layers:
        raise CaffeModelError(
            f"{path}: no layers: not a .caffemodel (a serialized Caffe NetParameter with "
            f"'layer' or 'layers' entries)"
        )
    fmt = "V1" if formats == {"V1"} else "layer"
    return CaffeNet(path, net.name, fmt, layers)


# -- writing (tests, benchmarks, and round trips) ---------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


# Above this many values, a blob's packed data is appended as encoded bytes rather than built
# through protobuf's repeated field (which would hold every value as a Python float).
_DIRECT_VALUES = 1 << 20


def _blob_bytes(array: np.ndarray, legacy: bool, double: bool) -> bytes:
    blob = BlobProto()
    arr = np.asarray(array)
    if legacy:
        dims = (1,) * (4 - arr.ndim) + tuple(arr.shape)
        if len(dims) != 4:
            raise ValueError(f"a legacy blob holds at most 4 dimensions, got {arr.shape}")
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.CopyFrom(BlobShape(dim=list(arr.shape)))
    number, dtype, repeated = (8, "<f8", blob.double_data) if double else (5, "<f4", blob.data)
    if arr.size > _DIRECT_VALUES:  # same encoding: the packed field, little-endian values
        values = np.ascontiguousarray(arr, dtype=dtype).tobytes()
        return (blob.SerializeToString() + _varint((number << 3) | _LEN)
                + _varint(len(values)) + values)
    repeated.extend(arr.astype(dtype).ravel().tolist())
    return blob.SerializeToString()


def write_caffemodel(path: PathLike, layers: Iterable[tuple[str, str, Sequence[np.ndarray]]], *,
                     v1: bool = False, legacy_shapes: bool | None = None, double: bool = False,
                     name: str = "") -> Path:
    """Write a ``.caffemodel`` holding ``(name, type, blobs)`` layers, one layer at a time:
    ``v1`` in the old ``layers`` format (V1 enum types, legacy 4-D shapes by default), else the
    current one; ``double`` stores ``double_data`` instead of ``data``."""
    path = Path(path)
    legacy = v1 if legacy_shapes is None else legacy_shapes
    v1_numbers = {v: k for k, v in _V1_TYPE_NAMES.items()}
    with open(path, "wb") as f:
        if name:
            f.write(NetParameter(name=name).SerializeToString())
        for layer_name, ltype, blobs in layers:
            if v1:
                msg = V1LayerParameter(name=layer_name,
                                       type=V1_LAYER_TYPES[v1_numbers.get(ltype, ltype)])
            else:
                msg = LayerParameter(name=layer_name, type=ltype)
            blob_tag = _varint(((6 if v1 else 7) << 3) | _LEN)
            payload = [msg.SerializeToString()]
            for arr in blobs:  # repeated message fields: appending encodings is appending blobs
                blob = _blob_bytes(arr, legacy, double)
                payload += [blob_tag, _varint(len(blob)), blob]
            f.write(_varint(((2 if v1 else 100) << 3) | _LEN)
                    + _varint(sum(len(p) for p in payload)))
            for part in payload:
                f.write(part)
    return path

