"""This module declares the messages of Caffe's ``caffe.proto`` that a ``.caffemodel`` needs.
Caffe's field numbers, types and ``packed`` options are kept, built with ``descriptor_pb2`` (no
``protoc``, no Caffe); only fields of weights and layer identity are declared (others ignored)."""

from __future__ import annotations

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


# Each message's fields as caffe.proto declares them ("label type name = number [packed]").
_MESSAGES = {
    "BlobShape": ["repeated int64 dim = 1 packed"],
    "BlobProto": ["optional BlobShape shape = 7", "repeated float data = 5 packed",
                  "repeated float diff = 6 packed", "repeated double double_data = 8 packed",
                  "repeated double double_diff = 9 packed", "optional int32 num = 1",
                  "optional int32 channels = 2", "optional int32 height = 3",
                  "optional int32 width = 4"],
    "LayerParameter": ["optional string name = 1", "optional string type = 2",
                       "repeated string bottom = 3", "repeated string top = 4",
                       "repeated BlobProto blobs = 7"],
    "V0LayerParameter": ["optional string name = 1", "optional string type = 2",
                         "repeated BlobProto blobs = 50"],
    "V1LayerParameter": ["repeated string bottom = 2", "repeated string top = 3",
                         "optional string name = 4",
                         "optional V1LayerParameter.LayerType type = 5",
                         "repeated BlobProto blobs = 6", "optional V0LayerParameter layer = 1"],
    "NetParameter": ["optional string name = 1", "repeated string input = 3",
                     "repeated int32 input_dim = 4", "repeated LayerParameter layer = 100",
                     "repeated V1LayerParameter layers = 2"],
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name="fcnseg/caffe.proto", package="caffe",
                                             syntax="proto2")
    for message, fields in _MESSAGES.items():
        proto = fdp.message_type.add(name=message)
        for spec in fields:
            label, ftype, name, _, number, *packed = spec.split()
            f = proto.field.add(name=name, number=int(number),
                                label=getattr(_F, f"LABEL_{label.upper()}"))
            if hasattr(_F, f"TYPE_{ftype.upper()}"):  # a scalar
                f.type = getattr(_F, f"TYPE_{ftype.upper()}")
            else:  # a message of this file, or the V1 layer type enum
                f.type = _F.TYPE_ENUM if ftype.endswith("LayerType") else _F.TYPE_MESSAGE
                f.type_name = f".caffe.{ftype}"
            if packed:
                f.options.packed = True
    enum = fdp.message_type[4].enum_type.add(name="LayerType")  # V1LayerParameter's
    for name, number in V1_LAYER_TYPES.items():
        enum.value.add(name=name, number=number)
    return fdp


# A private pool: a real caffe_pb2 imported in the same process keeps its own definitions.
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


# The message classes, in _MESSAGES's order.
BlobShape, BlobProto, LayerParameter, V0LayerParameter, V1LayerParameter, NetParameter = (
    message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"caffe.{name}"))
    for name in _MESSAGES)
