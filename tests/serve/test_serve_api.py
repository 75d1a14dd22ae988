"""The HTTP API through the ASGI test client: each endpoint and each limit."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, features

from fcnseg.inference import Segmenter
from fcnseg.serve import create_app


@pytest.fixture
def client(segmenter: Segmenter) -> Iterator[TestClient]:
    with TestClient(create_app(segmenter, max_upload_bytes=200_000, max_pixels=96 * 96)) as c:
        yield c


def _decode_png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_segment_returns_palette_png_equal_to_predict(client, segmenter, make_image):
    pixels, png = make_image(48, 64)
    r = client.post("/v1/segment", files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    label_img = _decode_png(r.content)
    assert label_img.mode == "P"
    assert label_img.getpalette()[: 3 * 4] == segmenter.palette[:4].reshape(-1).tolist()
    np.testing.assert_array_equal(np.asarray(label_img), segmenter.predict(pixels).label)


def test_segment_accepts_raw_image_body(client, segmenter, make_image):
    pixels, jpeg = make_image(40, 40, seed=3, fmt="JPEG")
    r = client.post("/v1/segment", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200
    expected = segmenter.predict(jpeg).label  # the decoded JPEG, not the pixels before it
    np.testing.assert_array_equal(np.asarray(_decode_png(r.content)), expected)


def test_segment_json_has_counts_label_overlay_and_heatmaps(client, segmenter, make_image):
    pixels, png = make_image(32, 80, seed=1)
    r = client.post("/v1/segment", params={"format": "json", "overlay": "true",
                                           "heatmap": "sky,3"},
                    files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 200
    body = r.json()
    expected = segmenter.predict(pixels, return_probs=True)
    assert (body["width"], body["height"]) == (80, 32)
    assert body["pixel_counts"] == expected.class_pixel_counts()
    assert sum(body["pixel_counts"].values()) == 32 * 80
    label = np.asarray(_decode_png(base64.b64decode(body["label_png"])))
    np.testing.assert_array_equal(label, expected.label)
    assert _decode_png(base64.b64decode(body["overlay_png"])).size == (80, 32)
    assert set(body["heatmaps"]) == {"sky", "tree"}
    assert _decode_png(base64.b64decode(body["heatmaps"]["tree"])).size == (80, 32)


def test_segment_rejects_unknown_heatmap_class(client, make_image):
    _, png = make_image(32, 32)
    r = client.post("/v1/segment", params={"format": "json", "heatmap": "unicorn"},
                    files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 400
    assert "unicorn" in r.json()["detail"]


@pytest.mark.parametrize("number", ["²", "①", "٣", "9" * 5_000])
def test_heatmap_numbers_that_are_no_class_index_are_a_400_naming_the_field(
    client, make_image, number
):
    _, png = make_image(32, 32)
    r = client.post("/v1/segment", params={"format": "json", "heatmap": f"sky,{number}"},
                    files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("heatmap: unknown class") and "\n" not in detail
    assert len(detail) < 400  # five thousand digits are not echoed whole


def test_model_describes_classes_palette_geometry_and_convention(client, segmenter):
    r = client.get("/v1/model")
    assert r.status_code == 200
    body = r.json()
    assert body["class_names"] == segmenter.class_names
    assert body["palette"] == segmenter.palette[: segmenter.num_classes].tolist()
    assert body["arch"] == "fcn8s"
    assert body["geometry"] == "same"
    assert body["input_convention"] == segmenter.input_convention.to_dict()
    assert body["limits"]["max_pixels"] == 96 * 96


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_head_healthz_and_head_page_answer_as_get_without_a_body(client):
    for path in ("/healthz", "/"):
        r = client.head(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == client.get(path).headers["content-type"]
        assert r.content == b""


def test_a_method_healthz_does_not_take_is_405_allowing_get(client):
    # Allow names GET, the method /healthz is for (not only the HEAD answered beside it).
    r = client.post("/healthz")
    assert r.status_code == 405
    assert "GET" in r.headers["allow"].split(", ")
    assert "head" not in client.get("/openapi.json").json()["paths"]["/healthz"]


def test_no_docs_pages_that_need_a_cdn_but_the_schema_is_served(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    schema = client.get("/openapi.json")
    assert schema.status_code == 200 and "/v1/segment" in schema.json()["paths"]


def test_the_browsers_favicon_request_gets_no_content_not_404(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 204 and r.content == b""
    assert "/favicon.ico" not in client.get("/openapi.json").json()["paths"]


def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text


def test_upload_over_byte_limit_is_413(client):
    big = b"\x89PNG\r\n\x1a\n" + bytes(250_000)
    r = client.post("/v1/segment", files={"image": ("big.png", big, "image/png")})
    assert r.status_code == 413
    assert "200000" in r.json()["detail"]


def test_streamed_upload_over_byte_limit_is_413(client):
    # No Content-Length: the body arrives in chunks and is counted as it streams in.
    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield bytes(10_000)

    r = client.post("/v1/segment", content=chunks(), headers={"Content-Type": "image/png"})
    assert r.status_code == 413


def test_image_over_pixel_limit_is_413(client, make_image):
    _, png = make_image(97, 96)  # one row more than 96×96
    r = client.post("/v1/segment", files={"image": ("wide.png", png, "image/png")})
    assert r.status_code == 413
    assert r.json()["detail"] == ("image of 96×97 = 9312 pixels is over the limit of 9216 "
                                  "pixels (fcnseg serve --max-pixels PIXELS raises it)")


def test_a_phone_photo_over_the_pixel_limit_is_sized_as_it_is_shown(client):
    # Stored 90 wide and 120 high, EXIF orientation 6: shown 120×90, as a phone shows it.
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (90, 120), (40, 90, 160)).save(buf, format="JPEG", exif=exif.tobytes())
    r = client.post("/v1/segment", files={"image": ("phone.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 413
    assert r.json()["detail"].startswith("image of 120×90 = 10800 pixels is over the limit")


def test_decompression_bomb_is_refused_before_decoding(client):
    # A tiny PNG whose header claims 20000×20000 pixels: the refusal must come from the header
    # alone, before any pixel is decoded (decoding would fail here, giving 400 instead).
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]  # chunk type and data of IHDR, which its CRC covers
    ihdr[4:12] = (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big")  # width, height
    data[12:29] = ihdr
    data[29:33] = zlib.crc32(bytes(ihdr)).to_bytes(4, "big")
    r = client.post("/v1/segment", files={"image": ("bomb.png", bytes(data), "image/png")})
    assert r.status_code == 413
    assert "400000000" in r.json()["detail"]


def test_a_bomb_over_pillows_own_limit_is_refused_at_the_services_limit(client):
    # 60000×60000 is over twice Pillow's limit, which Pillow refuses in words of its own.
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data[12:29]
    ihdr[4:12] = (60000).to_bytes(4, "big") * 2
    data[12:29] = ihdr
    data[29:33] = zlib.crc32(bytes(ihdr)).to_bytes(4, "big")
    r = client.post("/v1/segment", files={"image": ("bomb.png", bytes(data), "image/png")})
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert "60000×60000" in detail and f"limit of {96 * 96} pixels" in detail
    assert "178956970" not in detail


def _tiff_of_bands(bands: int) -> bytes:
    import tifffile

    buf = io.BytesIO()
    pixels = np.random.default_rng(bands).integers(0, 256, (24, 32, bands), dtype=np.uint8)
    tifffile.imwrite(buf, pixels, photometric="minisblack", planarconfig="contig")
    return buf.getvalue()


@pytest.mark.parametrize("bands", [5, 2])
def test_a_tiff_of_other_bands_is_a_400_with_the_segmenters_line(client, segmenter, tmp_path,
                                                                 bands):
    data = _tiff_of_bands(bands)
    path = tmp_path / "bands.tif"
    path.write_bytes(data)
    with pytest.raises(ValueError) as refused:
        segmenter.predict(str(path))
    r = client.post("/v1/segment", files={"image": ("bands.tif", data, "image/tiff")})
    assert r.status_code == 400
    assert r.json()["detail"] == str(refused.value).replace(str(path), "upload")
    assert r.json()["detail"].startswith(f"upload: {bands} band(s) of uint8")


def _tiff_of_kind(kind: str) -> bytes:
    import tifffile

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    if kind == "float grey":
        tifffile.imwrite(buf, rng.random((24, 32)).astype(np.float32))
    elif kind == "cmyk":
        tifffile.imwrite(buf, rng.integers(0, 256, (24, 32, 4), dtype=np.uint8),
                         photometric="separated")
    else:  # premultiplied alpha
        rgba = rng.integers(0, 256, (24, 32, 4)).astype(np.uint16)
        rgba[..., :3] = rgba[..., :3] * rgba[..., 3:] // 255
        tifffile.imwrite(buf, rgba.astype(np.uint8), photometric="rgb", extrasamples=[1])
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["float grey", "cmyk", "premultiplied alpha"])
def test_a_float_cmyk_or_premultiplied_tiff_is_segmented_as_the_segmenter_reads_the_file(
        client, segmenter, tmp_path, kind):
    data = _tiff_of_kind(kind)
    path = tmp_path / "scan.tif"
    path.write_bytes(data)
    r = client.post("/v1/segment", files={"image": ("scan.tif", data, "image/tiff")})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.asarray(_decode_png(r.content)),
                                  segmenter.predict(str(path)).label)


def test_non_image_upload_is_415(client):
    r = client.post("/v1/segment", files={"image": ("notes.txt", b"hello, world\n" * 10,
                                                    "text/plain")})
    assert r.status_code == 415


def test_formats_outside_the_accepted_rasters_are_415(client):
    # Pillow reads EPS headers, but decoding would hand the data to Ghostscript.
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format="EPS")
    r = client.post("/v1/segment", files={"image": ("a.eps", buf.getvalue(),
                                                    "application/postscript")})
    assert r.status_code == 415
    assert "PNG" in r.json()["detail"]


@pytest.mark.parametrize(("query", "field"), [({"format": "gif"}, "format"),
                                             ({"alpha": "2"}, "alpha"),
                                             ({"overlay": "maybe"}, "overlay")])
def test_bad_query_parameter_is_a_flat_422(client, make_image, query, field):
    _, png = make_image(32, 32)
    r = client.post("/v1/segment", params=query, files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 422
    assert set(r.json()) == {"detail", "request_id"}
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert f"query parameter {field!r}" in detail
    assert query[field] in detail


def test_non_image_content_type_is_415(client):
    r = client.post("/v1/segment", json={"image": "not here"})
    assert r.status_code == 415


def test_corrupt_image_is_400(client, make_image):
    _, png = make_image(64, 64)
    truncated = png[: len(png) // 2]
    r = client.post("/v1/segment", files={"image": ("cut.png", truncated, "image/png")})
    assert r.status_code == 400
    assert "upload" in r.json()["detail"]


def test_any_decoder_error_is_400_not_500(client, make_image, monkeypatch):
    # Pillow's decoders raise struct.error, IndexError, ... on some corrupt data, not only
    # OSError: a corrupt upload is the client's fault whatever the decoder raises.
    import struct

    def broken_load(self):
        raise struct.error("unpack requires a buffer of 4 bytes")

    _, png = make_image(32, 32)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", broken_load)
    r = client.post("/v1/segment", files={"image": ("odd.png", png, "image/png")})
    assert r.status_code == 400
    assert "unpack requires" in r.json()["detail"]


def test_empty_form_is_400(client):
    r = client.post("/v1/segment", data={"note": "no file"},
                    files={"other": ("", b"", "application/octet-stream")})
    assert r.status_code == 400


def test_full_queue_gives_503_and_queued_requests_finish(segmenter, make_image, monkeypatch):
    """One request runs (held inside predict), one waits; the third is refused with 503."""
    entered, release = threading.Event(), threading.Event()
    real_predict = segmenter.predict

    def held_predict(image, **kwargs):
        entered.set()
        release.wait(timeout=30)
        return real_predict(image, **kwargs)

    monkeypatch.setattr(segmenter, "predict", held_predict)
    _, png = make_image(32, 32)
    app = create_app(segmenter, max_concurrency=1, max_queue=1)

    def post(client: TestClient) -> int:
        return client.post("/v1/segment",
                           files={"image": ("a.png", png, "image/png")}).status_code

    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, client)
        assert entered.wait(timeout=20)
        queued = pool.submit(post, client)
        _wait_for(lambda: client.get("/healthz").json()["waiting"] == 1)
        refused = client.post("/v1/segment", files={"image": ("a.png", png, "image/png")})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        health = client.get("/healthz").json()
        # The 503 speaks of the same numbers, in the same words, as /healthz.
        for key in ("running", "waiting"):
            assert f"{health[key]} {key}" in refused.json()["detail"]
        for key in ("max_concurrency", "max_queue"):
            assert f"{key} {health[key]}" in refused.json()["detail"]
        release.set()
        assert running.result(timeout=30) == 200
        assert queued.result(timeout=30) == 200
        health = client.get("/healthz").json()
        assert (health["running"], health["waiting"]) == (0, 0)


def test_failing_inference_is_500_and_service_stays_up(segmenter, make_image, monkeypatch):
    def broken_predict(image, **kwargs):
        raise RuntimeError("a kernel failed (simulated)")

    monkeypatch.setattr(segmenter, "predict", broken_predict)
    _, png = make_image(32, 32)
    with TestClient(create_app(segmenter, batching=False)) as client:
        r = client.post("/v1/segment", files={"image": ("a.png", png, "image/png")})
        assert r.status_code == 500
        assert "RuntimeError" in r.json()["detail"]
        health = client.get("/healthz").json()
        assert (health["status"], health["running"], health["waiting"]) == ("ok", 0, 0)


def test_inference_out_of_memory_is_a_500_that_says_so_and_what_to_do(segmenter, make_image,
                                                                    monkeypatch):
    def starved_predict(image, **kwargs):  # torch's CPU allocator's words
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 9437184000 bytes.")

    monkeypatch.setattr(segmenter, "predict", starved_predict)
    _, png = make_image(30, 40)  # height, width
    with TestClient(create_app(segmenter, batching=False)) as client:
        r = client.post("/v1/segment", files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 500
    detail = r.json()["detail"]
    assert "out of memory segmenting an upload of 40×30" in detail
    assert "smaller image" in detail and "--max-pixels" in detail


def test_create_app_rejects_bad_limits(segmenter):
    with pytest.raises(ValueError, match="max_concurrency"):
        create_app(segmenter, max_concurrency=0)


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_an_image_field_sent_twice_is_a_400_naming_the_field(client, make_image):
    _, first = make_image(32, 32, seed=1)
    _, second = make_image(32, 32, seed=2)
    r = client.post("/v1/segment", files=[("image", ("a.png", first, "image/png")),
                                          ("image", ("b.png", second, "image/png"))])
    assert r.status_code == 400
    assert r.json()["detail"].startswith("the field 'image' is sent more than once")


def test_create_app_takes_limits_whole_and_single_ones_over_them(segmenter):
    from fcnseg.serve import ServiceLimits

    limits = ServiceLimits(max_pixels=64 * 64, max_queue=3)
    with TestClient(create_app(segmenter, limits, max_queue=5)) as c:
        served = c.get("/v1/model").json()["limits"]
    assert (served["max_pixels"], served["max_queue"]) == (64 * 64, 5)


def test_model_says_a_checkpoint_gives_probabilities(client):
    assert client.get("/v1/model").json()["probabilities"] is True


def test_model_says_a_labels_only_export_gives_no_probabilities(labels_only_segmenter):
    with TestClient(create_app(labels_only_segmenter)) as c:
        assert c.get("/v1/model").json()["probabilities"] is False


def test_a_labels_only_exports_heatmap_refusal_names_no_server_path(labels_only_segmenter,
                                                                    make_image):
    _, png = make_image(32, 32)
    with TestClient(create_app(labels_only_segmenter)) as c:
        r = c.post("/v1/segment", params={"format": "json", "heatmap": "all"},
                   files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert "m.labels.onnx" in detail and "--labels-out" in detail
    assert os.path.dirname(labels_only_segmenter.checkpoint_path) not in detail


def test_a_heic_upload_is_415_saying_heic_and_how_to_convert(client):
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(range(256))
    r = client.post("/v1/segment", files={"image": ("IMG_0071.heic", heic, "image/heic")})
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert "HEIC" in detail and "convert it to JPEG" in detail


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")
def test_an_avif_upload_is_segmented(client, make_image):
    _, avif = make_image(32, 32, fmt="AVIF")
    r = client.post("/v1/segment", files={"image": ("a.avif", avif, "image/avif")})
    assert r.status_code == 200, r.text


def test_a_dng_upload_is_415_saying_camera_raw_and_what_to_do(client, tmp_path):
    import tifffile

    path = tmp_path / "real_like.tif"  # what makes it raw is its DNGVersion tag, not its name
    tifffile.imwrite(path, np.zeros((8, 12), np.uint16),
                     extratags=[(50706, "B", 4, (1, 4, 0, 0), True)])
    r = client.post("/v1/segment", files={"image": ("x.tif", path.read_bytes(), "image/tiff")})
    assert r.status_code == 415
    detail = r.json()["detail"]
    assert detail.startswith("upload: a camera raw file (DNG)")
    assert "export it as JPEG or TIFF from the raw converter" in detail
