"""Hostile files (a few KB whose headers claim huge sizes) are refused in one line naming the
file, before anything their claimed size would need is allocated."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from traced import peak_traced

from fcnseg.cli.main import main

tifffile = pytest.importorskip("tifffile")

#: A claimed size over the image reader's pixel limit (144 megapixels) in a file of a few KB.
HUGE = 12_000


def claimed_size_tiff(values: np.ndarray, width: int, height: int) -> bytes:
    """A little-endian TIFF of ``values`` whose ImageWidth and ImageLength tags are rewritten
    to claim ``width``×``height``: a few hundred bytes that say they hold far more."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, values, photometric="minisblack", planarconfig="contig")
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength, rewritten as one LONG each
            struct.pack_into("<HHII", data, entry, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def band_bomb() -> bytes:
    """A 4-band uint16 TIFF (a satellite chip's bands) claiming HUGE×HUGE pixels."""
    return claimed_size_tiff(np.zeros((16, 16, 4), np.uint16), HUGE, HUGE)


def labelme_doc(image_path: str, image_data: bytes | None) -> dict:
    return {"version": "5.0.1", "flags": {}, "imagePath": image_path,
            "imageData": base64.b64encode(image_data).decode() if image_data else None,
            "imageHeight": HUGE, "imageWidth": HUGE,
            "shapes": [{"label": "a", "points": [[0, 0], [10, 0], [10, 10]],
                        "shape_type": "polygon", "group_id": None, "flags": {}}]}


def refused_in_one_line(capsys: pytest.CaptureFixture[str], src: Path, out: Path) -> str:
    code = main(["import", "labelme", str(src), "--out", str(out)])
    said = capsys.readouterr()
    assert code != 0
    lines = (said.out + said.err).splitlines()
    line = next(x for x in lines if "pixels is more than the limit" in x)
    assert "x.json" in line and f"{HUGE}×{HUGE}" in line
    return line


def test_import_refuses_an_embedded_band_tiff_whose_header_claims_a_huge_size(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.json").write_text(json.dumps(labelme_doc("x.tif", band_bomb())))
    line = refused_in_one_line(capsys, src, tmp_path / "out")
    assert "embedded image" in line


def test_import_refuses_a_band_tiff_file_whose_header_claims_a_huge_size(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.tif").write_bytes(band_bomb())
    (src / "x.json").write_text(json.dumps(labelme_doc("x.tif", None)))
    line = refused_in_one_line(capsys, src, tmp_path / "out")
    assert "x.tif" in line


def png_claiming(width: int, height: int) -> bytes:
    """A 4×4 grey PNG whose IHDR (its CRC fixed) claims ``width``×``height``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_import_refuses_a_labelme_mask_png_claiming_a_huge_size_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (20, 20)).save(src / "x.png")
    doc = labelme_doc("x.png", None) | {"imageHeight": 20, "imageWidth": 20}
    doc["shapes"] = [{"label": "a", "points": [[0, 0], [10, 10]], "shape_type": "mask",
                      "mask": base64.b64encode(png_claiming(20_000, 20_000)).decode()}]
    (src / "x.json").write_text(json.dumps(doc))
    main(["import", "labelme", str(src), "--out", str(tmp_path / "out")])
    said = capsys.readouterr()
    lines = [x for x in (said.out + said.err).splitlines() if "shape 0" in x]
    assert len(lines) == 1 and "x.json" in lines[0] and "claims more pixels" in lines[0]


@pytest.mark.parametrize("text", ['{"shapes": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  '{"shapes": [], "imageHeight": ' + "9" * 5000 + "}"],
                         ids=["nested-100000-deep", "integer-of-5000-digits"])
def test_import_refuses_hostile_json_in_one_line_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.json").write_text(text)
    main(["import", "labelme", str(src), "--out", str(tmp_path / "out")])
    said = capsys.readouterr()
    lines = [x for x in (said.out + said.err).splitlines() if "error" in x]
    assert len(lines) == 1 and "x.json: not a labelme JSON file" in lines[0]


def test_a_16_bit_colour_png_takes_little_more_than_its_samples_to_read(tmp_path: Path) -> None:
    # A PNG bomb of 16-bit samples at the pixel limit (a few hundred KB of zeros) must cost
    # its samples and one decode's copy, not several uint16 temporaries besides.

    from ondisk import save_png_16

    from fcnseg.data.images import read_samples

    png = save_png_16(tmp_path / "c16.png", np.zeros((600, 800, 4), np.uint16))
    samples, peak = peak_traced(lambda: read_samples(png))
    assert samples.dtype == np.uint16 and samples.shape == (600, 800, 4)
    # The samples, plus one decode's 8-bit copy (Pillow joins its bytes from chunks: twice
    # that at its peak); the uint16 temporaries of a shift and an OR took over 3 times.
    assert peak < 2.6 * samples.nbytes


def test_a_dataset_yaml_nested_thousands_deep_is_one_line_naming_it(tmp_path: Path) -> None:
    from fcnseg.data.folder import load_folder_config

    path = tmp_path / "dataset.yaml"
    path.write_text("classes: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ValueError) as e:
        load_folder_config(path)
    assert str(e.value) == f"{path}: not valid YAML: nested too deeply"


def test_a_label_studio_picture_url_never_names_a_file_outside_the_export(
        tmp_path: Path) -> None:
    # "/data//x/secret.png" once read as the absolute /x/secret.png and was copied into the
    # dataset; pictures are looked for in the images folder and under the export only.
    from PIL import Image

    from fcnseg.data.annotations import import_annotations

    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(secret)
    export = tmp_path / "export"
    export.mkdir()
    tasks = [{"id": 1, "data": {"image": f"/data/{secret}"}, "annotations": [{"result": [
        {"type": "polygonlabels", "original_width": 8, "original_height": 8,
         "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["a"]}}]}]}]
    (export / "tasks.json").write_text(json.dumps(tasks))
    report = import_annotations("labelstudio", export / "tasks.json", tmp_path / "out")
    assert not list((tmp_path / "out").glob("images/*"))
    assert len(report.errors) == 1 and "missing image" in report.errors[0]


def sparse_band_tiff(width: int, height: int, bands: int, tile: int = 1024) -> bytes:
    """A tiled uint16 TIFF of ``bands`` separate planes whose tiles are all absent (offset and
    byte count 0, which readers take as zeros): a few KB that declare gigabytes of samples."""
    tiles = -(-width // tile) * -(-height // tile) * bands
    tags = [(256, 4, [width]), (257, 4, [height]), (258, 3, [16] * bands), (259, 3, [1]),
            (262, 3, [1]), (277, 3, [bands]), (284, 3, [2]), (322, 3, [tile]),
            (323, 3, [tile]), (324, 4, [0] * tiles), (325, 4, [0] * tiles),
            (339, 3, [1] * bands)]
    data_at = 8 + 2 + 12 * len(tags) + 4
    ifd, blobs = struct.pack("<H", len(tags)), b""
    for tag, kind, values in tags:
        raw = struct.pack(f"<{len(values)}{'H' if kind == 3 else 'I'}", *values)
        if len(raw) <= 4:
            ifd += struct.pack("<HHI", tag, kind, len(values)) + raw.ljust(4, b"\0")
        else:
            ifd += struct.pack("<HHII", tag, kind, len(values), data_at + len(blobs))
            blobs += raw
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + blobs


def test_a_raster_declaring_hundreds_of_absent_bands_is_refused_before_reading(
        tmp_path: Path) -> None:
    from fcnseg.data.images import ImageTooLargeError
    from fcnseg.data.rasters import open_raster, read_raster

    path = tmp_path / "sparse.tif"
    path.write_bytes(sparse_band_tiff(4000, 4000, 500))  # 16 GB of samples in 66 KB
    with pytest.raises(ImageTooLargeError) as e:
        read_raster(path)
    assert str(e.value).startswith(f"{path}: 4000×4000 pixels of 500 bands")
    with open_raster(path) as reader:  # by windows (fcnseg predict): any size
        assert reader.read(0, 0, 8, 8).shape == (8, 8, 500)


def test_a_raster_of_many_bands_whose_file_holds_them_is_read(tmp_path: Path) -> None:
    from fcnseg.data.rasters import read_raster

    values = np.arange(40 * 30 * 20, dtype=np.uint16).reshape(40, 30, 20)
    tifffile.imwrite(tmp_path / "bands.tif", values, photometric="minisblack",
                     planarconfig="contig")
    np.testing.assert_array_equal(read_raster(tmp_path / "bands.tif", max_pixels=1200),
                                  values)  # 5 times the values of 1200 RGBA pixels


def test_a_mat_mask_whose_compressed_variables_decode_past_the_limit_is_refused_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy")
    from scipy.io import savemat

    import fcnseg.data.io as data_io
    from fcnseg.data.errors import DataError

    path = tmp_path / "bomb.mat"  # 2 MB of zeros in a few KB
    savemat(path, {"GTcls": {"Segmentation": np.zeros((2000, 1000), np.uint8)}},
            do_compression=True)
    assert path.stat().st_size < 20_000
    monkeypatch.setattr(data_io, "MAX_PIXELS", 1000)  # a limit of 8000 bytes + 1 MB
    with pytest.raises(DataError) as e:
        data_io.load_mat(path)
    assert str(e.value).startswith(f"{path}: refusing mask: its compressed variables decode")


def test_a_mat_label_of_more_pixels_than_the_limit_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy")
    from scipy.io import savemat

    import fcnseg.data.io as data_io
    from fcnseg.data.errors import DataError

    savemat(tmp_path / "big.mat", {"LabelMap": np.zeros((40, 30), np.uint8)})
    monkeypatch.setattr(data_io, "MAX_PIXELS", 1000)
    with pytest.raises(DataError) as e:
        data_io.read_mat_label(tmp_path / "big.mat", "LabelMap")
    assert "30×40 = 1200 pixels is more than the limit of 1000" in str(e.value)
    monkeypatch.setattr(data_io, "MAX_PIXELS", 1200)
    assert data_io.read_mat_label(tmp_path / "big.mat", "LabelMap").shape == (40, 30)


def test_an_sbd_mask_of_more_pixels_than_the_limit_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("scipy")
    from scipy.io import savemat

    import fcnseg.data.io as data_io
    from fcnseg.data.errors import DataError
    from fcnseg.data.sbd import read_sbd_mat

    savemat(tmp_path / "2008_000001.mat",
            {"GTcls": {"Segmentation": np.zeros((40, 30), np.uint8)}})
    monkeypatch.setattr(data_io, "MAX_PIXELS", 1000)
    with pytest.raises(DataError) as e:
        read_sbd_mat(tmp_path / "2008_000001.mat")
    expected = "GTcls.Segmentation of 30×40 = 1200 pixels is more than the limit of 1000"
    assert expected in str(e.value)


def test_import_sizes_a_band_tiff_past_the_default_limit_once_max_pixels_is_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.data import io as mask_io
    from fcnseg.data.annotations.importer import picture_size

    # A genuine raster of HUGE×HUGE (a satellite scene) is imported once the documented limit,
    # fcnseg.data.io.MAX_PIXELS, is raised: the same limit its pixels are later read under.
    monkeypatch.setattr(mask_io, "MAX_PIXELS", 2 * HUGE * HUGE)
    (tmp_path / "x.tif").write_bytes(band_bomb())
    assert picture_size(tmp_path / "x.tif") == (HUGE, HUGE)
    assert picture_size(band_bomb()) == (HUGE, HUGE)


def test_import_holds_a_band_tiff_to_a_lowered_max_pixels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.data import io as mask_io
    from fcnseg.data.annotations.importer import picture_size
    from fcnseg.data.images import ImageTooLargeError

    monkeypatch.setattr(mask_io, "MAX_PIXELS", 100)
    (tmp_path / "x.tif").write_bytes(tifffile_bands(16, 16))
    with pytest.raises(ImageTooLargeError, match="raise fcnseg.data.io.MAX_PIXELS"):
        picture_size(tmp_path / "x.tif")


def tifffile_bands(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((height, width, 4), np.uint16), photometric="minisblack",
                     planarconfig="contig")
    return buf.getvalue()
