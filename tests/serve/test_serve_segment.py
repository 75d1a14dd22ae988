"""The work of POST /v1/segment as plain functions, without HTTP."""

from __future__ import annotations

import base64
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from fcnseg.serve.errors import RequestError, validation_detail
from fcnseg.serve.limits import ServiceLimits
from fcnseg.serve.segment import (
    SegmentOptions,
    parse_heatmap_classes,
    preview_size,
    probe_image,
    segment_upload,
)

NAMES = ["background", "sky", "road", "tree"]


def test_segment_upload_png_is_the_label_map_of_predict(segmenter, make_image):
    pixels, png = make_image(40, 56, seed=5)
    answer = segment_upload(segmenter, png, SegmentOptions(format="png"), max_pixels=96 * 96)
    assert isinstance(answer, bytes)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(answer))),
                                  segmenter.predict(pixels).label)


def test_segment_upload_json_has_counts_and_the_pictures_asked_for(segmenter, make_image):
    pixels, png = make_image(24, 40, seed=6)
    options = SegmentOptions(format="json", overlay=False, heatmap_classes=(2,))
    answer = segment_upload(segmenter, png, options, max_pixels=96 * 96)
    assert isinstance(answer, dict)
    assert answer["pixel_counts"] == segmenter.predict(pixels).class_pixel_counts()
    assert "overlay_png" not in answer
    assert list(answer["heatmaps"]) == ["road"]
    assert Image.open(io.BytesIO(base64.b64decode(answer["heatmaps"]["road"]))).size == (40, 24)


def test_segment_upload_refuses_a_corrupt_image_with_400(segmenter, make_image):
    _, png = make_image(64, 64)
    with pytest.raises(RequestError) as refused:
        segment_upload(segmenter, png[: len(png) // 2], SegmentOptions(), max_pixels=96 * 96)
    assert refused.value.status_code == 400


def test_probe_image_reads_the_size_and_refuses_too_many_pixels(make_image):
    _, png = make_image(30, 20)
    assert probe_image(png, max_pixels=600) == (20, 30)
    with pytest.raises(RequestError) as refused:
        probe_image(png, max_pixels=599)
    assert refused.value.status_code == 413


@pytest.mark.parametrize("head", [b"II*\x00\x08\x00", b"II+\x00\x08\x00\x00\x00\x00\x00"],
                         ids=["classic", "BigTIFF"])
def test_a_tiff_upload_cut_before_its_first_offset_is_refused_not_a_server_error(head):
    with pytest.raises(RequestError) as refused:
        probe_image(head, max_pixels=600)
    assert refused.value.status_code in (400, 415)


def _png_header_of(width: int, height: int) -> bytes:
    """A one-pixel PNG whose header states ``width``×``height`` (only the header is read)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (5472, 3648), (6000, 4000)])
def test_the_default_pixel_limit_admits_phone_and_camera_photos(size):
    assert probe_image(_png_header_of(*size), ServiceLimits().max_pixels) == size


def test_the_default_pixel_limit_refuses_a_50_megapixel_photo_naming_the_option():
    with pytest.raises(RequestError, match="--max-pixels") as refused:
        probe_image(_png_header_of(8160, 6120), ServiceLimits().max_pixels)
    assert refused.value.status_code == 413


def test_the_default_limits_take_a_50_megapixel_jpeg_in_time_over_3_mbit_per_s():
    limits = ServiceLimits()
    assert limits.max_upload_bytes >= 25 * 10**6  # a 50-megapixel JPEG: 10-25 MB
    assert limits.body_timeout_s >= limits.max_upload_bytes * 8 / 3e6


def test_probe_image_refuses_data_that_is_no_image_with_415():
    with pytest.raises(RequestError) as refused:
        probe_image(b"%PDF-1.4\n" * 10, max_pixels=10**6)
    assert refused.value.status_code == 415


@pytest.mark.parametrize(("spec", "expected"), [(None, ()), ("", ()), ("all", (0, 1, 2, 3)),
                                                ("sky, 3", (1, 3)), ("road,2,road", (2,))])
def test_parse_heatmap_classes(spec, expected):
    assert parse_heatmap_classes(spec, NAMES) == expected


@pytest.mark.parametrize("spec", ["unicorn", "4", "-1"])
def test_parse_heatmap_classes_refuses_unknown_classes_with_400(spec):
    with pytest.raises(RequestError, match="unknown class") as refused:
        parse_heatmap_classes(spec, NAMES)
    assert refused.value.status_code == 400


def test_preview_size_keeps_the_aspect_within_the_preview_side():
    assert preview_size(375, 500) == (500, 375)
    assert preview_size(1000, 4096) == (1024, 250)


def test_validation_detail_is_one_line_naming_each_parameter():
    errors = [{"loc": ("query", "format"), "msg": "Input should be 'png' or 'json'",
               "input": "gif"},
              {"loc": ("query", "alpha"), "msg": "Input should be less than or equal to 1",
               "input": "2"}]
    assert validation_detail(errors) == (
        "query parameter 'format': Input should be 'png' or 'json' (got 'gif'); "
        "query parameter 'alpha': Input should be less than or equal to 1 (got '2')")


def test_segment_upload_overlay_leaves_the_background_unblended_like_predict(segmenter,
                                                                             make_image):
    pixels, png = make_image(72, 96, seed=15)  # about 6% predicted background (class 0)
    label = segmenter.predict(pixels).label
    background = label == 0
    assert background.any() and not background.all()
    options = SegmentOptions(format="json", overlay=True, alpha=0.5)
    answer = segment_upload(segmenter, png, options, max_pixels=96 * 96)
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["overlay_png"]))))
    assert picture.shape == pixels.shape  # under the preview size: no resize, no legend
    np.testing.assert_array_equal(picture[background], pixels[background])
    assert (picture[~background] != pixels[~background]).any(axis=-1).mean() > 0.5


def test_a_turned_tiff_upload_larger_than_a_tile_is_answered_upright(segmenter, monkeypatch,
                                                                      tmp_path):
    from dataclasses import replace

    import tifffile

    from fcnseg.data.images import load_image

    rgb = np.random.default_rng(3).integers(0, 65536, (40, 56, 3)).astype(np.uint16)
    stream = io.BytesIO()  # 16-bit RGB, which fcnseg predict tiles; Orientation 6: turned 90°
    tifffile.imwrite(stream, rgb, photometric="rgb", extratags=[(274, 3, 1, 6, True)])
    data = stream.getvalue()
    monkeypatch.setattr(segmenter, "tiles", replace(segmenter.tiles, tile=16, overlap=4))
    answer = segment_upload(segmenter, data, SegmentOptions(format="png"), max_pixels=96 * 96)
    assert load_image(data).shape[:2] == (56, 40)  # as the image reader turns it
    upright = tmp_path / "upright.tif"  # the same pixels stored upright, tiled alike
    tifffile.imwrite(upright, np.rot90(rgb, k=-1), photometric="rgb")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(answer))),
                                  segmenter.predict(upright).label)


def test_a_geotiff_upload_within_one_tile_has_its_nodata_labelled_as_predict_labels_it(
        segmenter, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from fcnseg.inference.rasters import NODATA_LABEL

    rgb = np.random.default_rng(4).integers(1, 65536, (3, 40, 56)).astype(np.uint16)
    rgb[:, :10, :12] = 0  # the file's nodata: no data there
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", height=40, width=56, count=3, dtype="uint16",
                       photometric="RGB", crs="EPSG:32633", nodata=0,
                       transform=from_origin(500000.0, 4000000.0, 10.0, 10.0)) as ds:
        ds.write(rgb)
    assert max(rgb.shape[1:]) <= segmenter.tiles.tile  # one tile: segmented whole
    answer = segment_upload(segmenter, path.read_bytes(), SegmentOptions(format="png"),
                            max_pixels=96 * 96)
    served = np.asarray(Image.open(io.BytesIO(answer)))
    assert (served[:10, :12] == NODATA_LABEL).all()
    np.testing.assert_array_equal(served, segmenter.predict(str(path)).label)


def test_a_big_endian_32_bit_grey_tiff_upload_is_segmented_as_the_image_reader_reads_it(
        segmenter):
    import tifffile

    from fcnseg.data.images import load_image

    values = np.random.default_rng(4).integers(0, 70000, (40, 56)).astype(">u4")
    stream = io.BytesIO()
    tifffile.imwrite(stream, values)  # a byte order Pillow cannot decode at this depth
    data = stream.getvalue()
    assert probe_image(data, max_pixels=96 * 96) == (56, 40)
    answer = segment_upload(segmenter, data, SegmentOptions(format="png"), max_pixels=96 * 96)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(answer))),
                                  segmenter.predict(load_image(data)).label)


def test_probing_a_tiff_upload_parses_its_header_once(monkeypatch):
    # Its bands are checked and, where Pillow cannot open it (big-endian uint32), its size read
    # from the one tifffile parse.
    import tifffile

    stream = io.BytesIO()
    tifffile.imwrite(stream, np.zeros((40, 56), ">u4"))
    parse, parses = tifffile.TiffFile.__init__, []

    def counted(self, *args, **kwargs):
        parses.append(args)
        parse(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffFile, "__init__", counted)
    assert probe_image(stream.getvalue(), max_pixels=96 * 96) == (56, 40)
    assert len(parses) == 1


def _tiled_16_bit_upload(segmenter, monkeypatch, tmp_path):
    """A 16-bit RGB GeoTIFF upload larger than the segmenter's (small) tile, its bytes and
    path."""
    from dataclasses import replace

    import tifffile
    from geotags import GEOTIFF_TAGS

    rgb = np.random.default_rng(9).integers(0, 65536, (40, 56, 3)).astype(np.uint16)
    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", extratags=GEOTIFF_TAGS)
    monkeypatch.setattr(segmenter, "tiles", replace(segmenter.tiles, tile=16, overlap=4))
    return path.read_bytes(), path


def test_a_tiled_tiff_upload_is_decoded_once_by_the_raster_reader(segmenter, monkeypatch,
                                                                  tmp_path):
    data, path = _tiled_16_bit_upload(segmenter, monkeypatch, tmp_path)
    monkeypatch.setattr("fcnseg.serve.segment.load_image",
                        lambda *a, **k: pytest.fail("decoded whole by the image reader too"))
    answer = segment_upload(segmenter, data, SegmentOptions(format="png"), max_pixels=96 * 96)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(answer))),
                                  segmenter.predict(path).label)


def test_a_tiled_tiff_upload_over_the_limit_or_corrupt_is_refused_as_a_bad_upload(
        segmenter, monkeypatch, tmp_path):
    data, _ = _tiled_16_bit_upload(segmenter, monkeypatch, tmp_path)
    with pytest.raises(RequestError) as e:
        segment_upload(segmenter, data, SegmentOptions(format="png"), max_pixels=40 * 50)
    assert e.value.status_code == 413
    with pytest.raises(RequestError) as e:
        segment_upload(segmenter, data[:len(data) // 2], SegmentOptions(format="png"),
                       max_pixels=96 * 96)
    assert e.value.status_code == 400 and e.value.detail.startswith("upload")


def test_probe_image_calls_a_png_signature_with_corrupt_content_corrupt_with_400():
    garbage = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    with pytest.raises(RequestError) as refused:
        probe_image(garbage, max_pixels=10**6)
    assert refused.value.status_code == 400
    assert "PNG" in refused.value.detail and "corrupt" in refused.value.detail
