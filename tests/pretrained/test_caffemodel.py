"""Reading .caffemodel files: both layer formats, legacy shapes, double data, damaged files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fcnseg.pretrained.caffemodel import CaffeModelError, read_caffemodel, write_caffemodel


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def test_field_numbers_follow_caffe_proto_for_the_current_format(tmp_path: Path) -> None:
    # Encoded by hand from caffe.proto: NetParameter.layer = 100, LayerParameter name 1, type 2,
    # blobs 7; BlobProto shape 7 (BlobShape.dim 1, packed), data 5 (packed float).
    values = np.arange(6, dtype="<f4")
    blob = (_len_field(7, _len_field(1, _varint(2) + _varint(3)))
            + _len_field(5, values.tobytes()))
    layer = _len_field(1, b"conv1") + _len_field(2, b"Convolution") + _len_field(7, blob)
    path = tmp_path / "hand.caffemodel"
    path.write_bytes(_len_field(1, b"net") + _len_field(100, layer))
    net = read_caffemodel(path)
    assert (net.name, net.layer_format) == ("net", "layer")
    (conv,) = net.layers
    assert (conv.name, conv.type) == ("conv1", "Convolution")
    assert conv.blobs[0].shape == (2, 3)
    assert np.array_equal(conv.blobs[0].data, values.reshape(2, 3))


def test_field_numbers_follow_caffe_proto_for_the_v1_format(tmp_path: Path) -> None:
    # NetParameter.layers = 2; V1LayerParameter name 4, type 5 (enum: INNER_PRODUCT = 14),
    # blobs 6; BlobProto legacy num 1, channels 2, height 3, width 4; double_data 8; and floats
    # written unpacked (one tag per value), which protobuf readers must also accept.
    doubles = np.array([0.5, -1.25, 3.0, 4.5], dtype="<f8")
    weight = (_varint_field(1, 1) + _varint_field(2, 1) + _varint_field(3, 2)
              + _varint_field(4, 2) + _len_field(8, doubles.tobytes()))
    bias = (_varint_field(1, 1) + _varint_field(2, 1) + _varint_field(3, 1) + _varint_field(4, 2)
            + b"".join(_varint(5 << 3 | 5) + struct.pack("<f", v) for v in (7.0, -8.0)))
    layer = (_len_field(2, b"bottom") + _len_field(4, b"fc")
             + _varint_field(5, 14) + _len_field(6, weight) + _len_field(6, bias))
    path = tmp_path / "hand_v1.caffemodel"
    path.write_bytes(_len_field(2, layer))
    net = read_caffemodel(path)
    assert net.layer_format == "V1"
    fc = net.layer("fc")
    assert fc.type == "InnerProduct"
    assert fc.blobs[0].shape == (1, 1, 2, 2) and fc.blobs[0].legacy_shape
    assert np.array_equal(fc.blobs[0].data.ravel(), doubles.astype(np.float32))
    assert np.array_equal(fc.blobs[1].data.ravel(), np.array([7.0, -8.0], np.float32))


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "V1"])
@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_blobs_read_back_exactly(tmp_path: Path, v1: bool, double: bool) -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    path = write_caffemodel(tmp_path / "m.caffemodel",
                            [("data", "Data", []), ("conv1", "Convolution", [weight, bias]),
                             ("relu1", "ReLU", [])], v1=v1, double=double)
    net = read_caffemodel(path)
    assert [lay.name for lay in net.layers] == ["data", "conv1", "relu1"]
    conv = net.layer("conv1")
    assert conv.blobs[0].data.dtype == np.float32
    assert np.array_equal(conv.blobs[0].data, weight)
    assert np.array_equal(conv.blobs[1].data.ravel(), bias)
    assert conv.blobs[1].shape == ((1, 1, 1, 4) if v1 else (4,))


def test_truncated_file_names_the_file_and_layer(tmp_path: Path) -> None:
    weight = np.ones((8, 3, 3, 3), np.float32)
    path = write_caffemodel(tmp_path / "cut.caffemodel",
                            [("conv1", "Convolution", [weight, np.ones(8, np.float32)])])
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CaffeModelError, match=r"cut.caffemodel: truncated.*layer 'conv1'"):
        read_caffemodel(path)


def test_a_torch_checkpoint_is_not_taken_for_a_caffemodel(tmp_path: Path) -> None:
    path = tmp_path / "weights.caffemodel"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(CaffeModelError, match=r"weights.caffemodel.*not a .caffemodel"):
        read_caffemodel(path)


def test_a_file_with_no_layers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(_len_field(1, b"just a name"))
    with pytest.raises(CaffeModelError, match="empty.caffemodel: no layers"):
        read_caffemodel(path)


def test_blob_whose_shape_disagrees_with_its_data_is_refused(tmp_path: Path) -> None:
    blob = _len_field(7, _len_field(1, _varint(5))) + _len_field(5, np.zeros(4, "<f4").tobytes())
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(_len_field(100, _len_field(1, b"score") + _len_field(7, blob)))
    with pytest.raises(CaffeModelError, match=r"layer 'score' blob 0: shape \(5,\) needs 5 "
                                              r"values, the file holds 4"):
        read_caffemodel(path)


def _many(payload: bytes, count: int) -> bytes:
    return payload * count


@pytest.mark.parametrize("content", ["empty blobs", "empty layers", "layer fields"])
def test_entries_beyond_what_the_file_size_justifies_are_refused(tmp_path: Path,
                                                                 content: str) -> None:
    # Each entry is two or three bytes in the file but a Python object or more in memory: a
    # 16 MB file of them once took 3.9 GB and two minutes. The reader stops at a budget that
    # grows with the file's size, naming the file in one line.
    from fcnseg.pretrained.caffemodel import BYTES_PER_ENTRY, ENTRY_BUDGET_FLOOR

    count = ENTRY_BUDGET_FLOOR + 50_000
    name = _len_field(1, b"conv1")
    if content == "empty blobs":
        data = _len_field(100, name + _many(_len_field(7, b""), count))
    elif content == "empty layers":
        data = _many(_len_field(100, b""), count)
    else:  # bottom: repeated strings, of which protobuf would keep every one
        data = _len_field(100, name + _many(_len_field(3, b""), count))
    path = tmp_path / "crafted.caffemodel"
    path.write_bytes(data)
    assert count > ENTRY_BUDGET_FLOOR + len(data) // BYTES_PER_ENTRY
    with pytest.raises(CaffeModelError) as e:
        read_caffemodel(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "more than its size" in message or "far more memory" in message


def test_a_blob_shape_of_more_axes_than_caffe_allows_is_refused_before_parsing(
        tmp_path: Path) -> None:
    dims = _len_field(1, _many(_varint(1), 100_000))  # packed: 100,000 axes of 1
    blob = _len_field(7, dims) + _len_field(5, np.zeros(1, "<f4").tobytes())
    path = tmp_path / "axes.caffemodel"
    path.write_bytes(_len_field(100, _len_field(1, b"score") + _len_field(7, blob)))
    with pytest.raises(CaffeModelError, match=r"axes.caffemodel: layer 'score' blob 0: a shape "
                                              r"of 100,00\d bytes, more than Caffe's 32 axes"):
        read_caffemodel(path)


def test_a_shape_of_32_axes_is_read(tmp_path: Path) -> None:
    path = write_caffemodel(tmp_path / "ok.caffemodel",
                            [("w", "Convolution", [np.ones((1,) * 32, np.float32)])])
    assert read_caffemodel(path).layer("w").blobs[0].shape == (1,) * 32


def test_unpacked_values_are_read_in_file_order_around_other_fields(tmp_path: Path) -> None:
    # Caffe packs its values; other writers may not: (tag, value) pairs, here split in two
    # runs by the shape field, then doubles the same way.
    def unpacked(number: int, wire: int, fmt: str, values) -> bytes:
        return b"".join(_varint(number << 3 | wire) + struct.pack(fmt, v) for v in values)

    floats = np.arange(6, dtype=np.float32) / 4
    shape = _len_field(7, _len_field(1, _varint(2) + _varint(3)))
    blob = unpacked(5, 5, "<f", floats[:2]) + shape + unpacked(5, 5, "<f", floats[2:])
    doubles = unpacked(8, 1, "<d", [0.5, -1.25]) + _len_field(7, _len_field(1, _varint(2)))
    path = tmp_path / "unpacked.caffemodel"
    path.write_bytes(_len_field(100, _len_field(1, b"w") + _len_field(7, blob)
                                + _len_field(7, doubles)))
    first, second = read_caffemodel(path).layer("w").blobs
    assert first.shape == (2, 3) and np.array_equal(first.data.ravel(), floats)
    assert second.shape == (2,) and np.array_equal(second.data, [0.5, -1.25])


def test_a_layer_of_millions_of_small_fields_is_refused_by_the_budget(tmp_path: Path) -> None:
    # blobs_lr (V1 field 7, a float each) repeated: each walked field counts, so the walk
    # ends after a bounded number of steps.
    from fcnseg.pretrained.caffemodel import ENTRY_BUDGET_FLOOR

    lr = _varint(7 << 3 | 5) + struct.pack("<f", 1.0)
    path = tmp_path / "lr.caffemodel"
    path.write_bytes(_len_field(2, _len_field(4, b"conv1") + lr * (ENTRY_BUDGET_FLOOR + 50_000)))
    with pytest.raises(CaffeModelError, match=r"lr.caffemodel: .*stopped at layer 'conv1'"):
        read_caffemodel(path)


def test_a_v0_layer_inside_a_v1_layer_gives_its_name_type_and_blobs(tmp_path: Path) -> None:
    # The oldest files: V1LayerParameter.layer = 1 holds a V0LayerParameter (name 1, type 2 as
    # a string, blobs 50); the V1 layer around it has neither name nor type.
    values = np.arange(4, dtype="<f4")
    blob = _len_field(7, _len_field(1, _varint(2) + _varint(2))) + _len_field(5, values.tobytes())
    v0 = _len_field(1, b"conv1") + _len_field(2, b"conv") + _len_field(50, blob)
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(_len_field(2, _len_field(1, v0) + _len_field(2, b"data")))
    net = read_caffemodel(path)
    (conv,) = net.layers
    assert (net.layer_format, conv.name, conv.type) == ("V1", "conv1", "Convolution")
    assert np.array_equal(conv.blobs[0].data, values.reshape(2, 2))


def test_a_damaged_v0_blob_names_the_v1_layer_around_it(tmp_path: Path) -> None:
    v0 = _len_field(1, b"inner") + _len_field(50, _len_field(5, b"\0" * 3))
    path = tmp_path / "v0bad.caffemodel"
    path.write_bytes(_len_field(2, _len_field(4, b"outer") + _len_field(1, v0)))
    with pytest.raises(CaffeModelError, match=r"^\S*v0bad.caffemodel: layer 'outer' blob 0: "
                                              r"packed data of 3 bytes"):
        read_caffemodel(path)
