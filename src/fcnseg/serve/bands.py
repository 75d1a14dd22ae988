"""A multi-band model's requests carry one raster upload, its header checked first:
segmented as ``fcnseg predict`` segments a raster file, answered like a colour image."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from PIL import Image

from fcnseg.data.images import TIFF_MAGIC, ImageError
from fcnseg.data.rasters import RasterReader, open_raster
from fcnseg.inference import Segmenter
from fcnseg.inference.rasters import held_raster, model_bands, segmenter_tile_fn
from fcnseg.inference.visualize import picture_png_bytes
from fcnseg.serve.segment import (
    SegmentOptions,
    encode_answer,
    image_errors,
    inference_errors,
    preview_size,
    probe_image,
    refuse_camera_raw,
    upload_file,
)


@contextlib.contextmanager
def _opened(data: bytes, segmenter: Segmenter,
            max_pixels: int) -> Iterator[tuple[RasterReader, Callable[[ImageError], str]]]:
    """The upload as a reader of the model's bands, and what names the upload in its errors."""
    refuse_camera_raw(data)  # a DNG is a TIFF inside: 415 before the raster reader's 400
    if not data.startswith(TIFF_MAGIC):
        probe_image(data, max_pixels)  # other formats: those of the image reader, else 415
    with upload_file(data) as path:

        def named(e: ImageError) -> str:  # about the upload rather than its temporary file
            message = " ".join(f"upload: {e.problem}".split())  # one line
            return message.replace(str(path), "upload").replace(path.name, "upload")

        with image_errors(named):
            reader = open_raster(path, max_pixels=max_pixels)
            bands = model_bands(segmenter, reader.info)
            if bands is not None:
                reader.close()
                reader = open_raster(path, bands=bands, max_pixels=max_pixels)
        try:
            with image_errors(named):
                segmenter_tile_fn(segmenter, reader.info)  # checks the band count, nothing run
            yield reader, named
        finally:
            reader.close()


def probe_raster(data: bytes, segmenter: Segmenter, max_pixels: int) -> tuple[int, int]:
    """Width and height from the raster's header, its bands checked, no pixel decoded."""
    with _opened(data, segmenter, max_pixels) as (reader, _):
        return reader.info.width, reader.info.height


def segment_raster(segmenter: Segmenter, data: bytes, options: SegmentOptions,
                   max_pixels: int) -> bytes | dict[str, Any]:
    """Read, segment and encode one multi-band upload: the label map as PNG bytes for
    ``format="png"``, else the JSON payload with ``image_png``, the raster's picture at the
    preview size. Slow: run it in a worker thread."""
    t0 = time.perf_counter()
    with _opened(data, segmenter, max_pixels) as (reader, named), image_errors(named):
        raster = held_raster(reader.read_all(), "upload", reader.info.nodata)
    t1 = time.perf_counter()
    height, width = raster.info.height, raster.info.width
    with inference_errors(f"a raster upload of {width}×{height}"):
        pred = segmenter.predict(raster, return_probs=options.wants_probs)
    answer = encode_answer(segmenter, pred, options, decode_s=t1 - t0,
                           inference_s=time.perf_counter() - t1)
    if options.format == "json":  # browsers draw no multi-band TIFF: the picture comes along
        small = Image.fromarray(pred.image).resize(preview_size(height, width), Image.BILINEAR)
        answer["image_png"] = base64.b64encode(picture_png_bytes(np.asarray(small))).decode()
    return answer
