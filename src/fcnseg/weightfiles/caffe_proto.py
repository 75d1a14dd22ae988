"""The messages of Caffe's ``caffe.proto`` that a ``.caffemodel`` needs, with Caffe's own field
numbers, types and ``packed`` options, built with ``descriptor_pb2`` (no ``protoc``, no Caffe).

Only the fields that carry weights and layer identity are declared; every other field of a real
file (convolution parameters, learning-rate multipliers, ...) is kept by protobuf as an unknown
field and ignored. ``V1LayerParameter`` is the old ``layers`` format, ``V0LayerParameter`` the
oldest (nested in a V1 layer); ``BlobProto``'s ``num``/``channels``/``height``/``width`` are the
legacy 4-D shape.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto

#: V1LayerParameter.LayerType, as numbered in caffe.proto.
V1_LAYER_TYPES: dict[str, int] = {
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
    "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6,
    "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38, "FLATTEN": 8,
    "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11, "IMAGE_DATA": 12,
    "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18,
    "SIGMOID": 19, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
    "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}


def _field(
    name: str, number: int, ftype: int, label: int = _F.LABEL_OPTIONAL, *,
    type_name: str | None = None, packed: bool = False,
) -> _F:
    f = _F(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if packed:
        f.options.packed = True
    return f


def _file() -> descriptor_pb2.FileDescriptorProto:
    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    fdp = descriptor_pb2.FileDescriptorProto(name="fcnseg/caffe.proto", package="caffe",
                                             syntax="proto2")
    shape = fdp.message_type.add(name="BlobShape")
    shape.field.append(_field("dim", 1, _F.TYPE_INT64, rep, packed=True))

    blob = fdp.message_type.add(name="BlobProto")
    blob.field.extend([
        _field("shape", 7, _F.TYPE_MESSAGE, opt, type_name=".caffe.BlobShape"),
        _field("data", 5, _F.TYPE_FLOAT, rep, packed=True),
        _field("diff", 6, _F.TYPE_FLOAT, rep, packed=True),
        _field("double_data", 8, _F.TYPE_DOUBLE, rep, packed=True),
        _field("double_diff", 9, _F.TYPE_DOUBLE, rep, packed=True),
        _field("num", 1, _F.TYPE_INT32),
        _field("channels", 2, _F.TYPE_INT32),
        _field("height", 3, _F.TYPE_INT32),
        _field("width", 4, _F.TYPE_INT32),
    ])

    layer = fdp.message_type.add(name="LayerParameter")
    layer.field.extend([
        _field("name", 1, _F.TYPE_STRING),
        _field("type", 2, _F.TYPE_STRING),
        _field("bottom", 3, _F.TYPE_STRING, rep),
        _field("top", 4, _F.TYPE_STRING, rep),
        _field("blobs", 7, _F.TYPE_MESSAGE, rep, type_name=".caffe.BlobProto"),
    ])

    v0 = fdp.message_type.add(name="V0LayerParameter")
    v0.field.extend([
        _field("name", 1, _F.TYPE_STRING),
        _field("type", 2, _F.TYPE_STRING),
        _field("blobs", 50, _F.TYPE_MESSAGE, rep, type_name=".caffe.BlobProto"),
    ])

    v1 = fdp.message_type.add(name="V1LayerParameter")
    enum = v1.enum_type.add(name="LayerType")
    for name, number in V1_LAYER_TYPES.items():
        enum.value.add(name=name, number=number)
    v1.field.extend([
        _field("bottom", 2, _F.TYPE_STRING, rep),
        _field("top", 3, _F.TYPE_STRING, rep),
        _field("name", 4, _F.TYPE_STRING),
        _field("type", 5, _F.TYPE_ENUM, type_name=".caffe.V1LayerParameter.LayerType"),
        _field("blobs", 6, _F.TYPE_MESSAGE, rep, type_name=".caffe.BlobProto"),
        _field("layer", 1, _F.TYPE_MESSAGE, type_name=".caffe.V0LayerParameter"),
    ])

    net = fdp.message_type.add(name="NetParameter")
    net.field.extend([
        _field("name", 1, _F.TYPE_STRING),
        _field("input", 3, _F.TYPE_STRING, rep),
        _field("input_dim", 4, _F.TYPE_INT32, rep),
        _field("layer", 100, _F.TYPE_MESSAGE, rep, type_name=".caffe.LayerParameter"),
        _field("layers", 2, _F.TYPE_MESSAGE, rep, type_name=".caffe.V1LayerParameter"),
    ])
    return fdp


# A private pool: a real caffe_pb2 imported in the same process keeps its own definitions.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"caffe.{name}"))


BlobShape = _message("BlobShape")
BlobProto = _message("BlobProto")
LayerParameter = _message("LayerParameter")
V0LayerParameter = _message("V0LayerParameter")
V1LayerParameter = _message("V1LayerParameter")
NetParameter = _message("NetParameter")
