"""A request to a model with several inputs (NYUDv2 RGB-HHA, RGB-D) uploads one file per input.
Fields are named by modality (``color``, ``hha``, ``depth``); the files are segmented together."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request

from fcnseg.data.images import read_samples
from fcnseg.data.modalities import modality_problem
from fcnseg.inference import ImageError, Segmenter, load_image
from fcnseg.serve.errors import RequestError
from fcnseg.serve.segment import (
    SegmentOptions,
    encode_answer,
    image_errors,
    inference_errors,
    probe_image,
)


def _fields(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


async def read_modality_uploads(request: Request, input_names: Sequence[str]) -> dict[str, bytes]:
    """``{modality: bytes}`` of a multipart request with one file per input of the model;
    RequestError 415 for a body that is no multipart form, 400 naming the missing, unexpected
    or repeated file fields, or an empty file."""
    expected = f"one file per input, in the multipart fields {_fields(input_names)}"
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise RequestError(415, f"this model takes {expected}; send multipart/form-data, not "
                                f"{content_type or 'a body without Content-Type'!r}")
    # One more file than needed is read, so that an extra field is named rather than cut off.
    async with request.form(max_files=len(input_names) + 1, max_fields=8,
                            max_part_size=64 * 2**10) as form:
        items = form.multi_items()
        sent = [k for k, _ in items if k in input_names]
        repeated = [k for k in dict.fromkeys(sent) if sent.count(k) > 1]
        if repeated:  # which one to use would be a guess: refuse, naming the field
            raise RequestError(400, f"the field {_fields(repeated)} is sent more than once: "
                                    f"this model takes {expected}")
        files = {k: v for k, v in items if isinstance(v, UploadFile)}
        extra = [k for k in files if k not in input_names]
        if extra:
            raise RequestError(400, f"unexpected file field {_fields(extra)}: this model takes "
                                    f"{expected}")
        missing = [m for m in input_names if m not in files]
        if missing:
            raise RequestError(400, f"missing the {_fields(missing)} file: this model takes "
                                    f"{expected}")
        data = {m: await files[m].read() for m in input_names}
    empty = [m for m, d in data.items() if not d]
    if empty:
        raise RequestError(400, f"the {_fields(empty)} upload is empty")
    return data


def probe_inputs(uploads: Mapping[str, bytes], max_pixels: int) -> tuple[int, int]:
    """Width and height shared by every upload, from their headers (no pixel decoded): each
    upload's 415/413 names its field, and uploads of different sizes get 400."""
    sizes = {}
    for modality, data in uploads.items():
        try:
            sizes[modality] = probe_image(data, max_pixels)
        except RequestError as e:
            raise RequestError(e.status_code, f"{modality}: {e.detail}") from None
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{m} {w}×{h}" for m, (w, h) in sizes.items())
        raise RequestError(400, f"the inputs differ in size ({listing}); every input of one "
                                f"request must have the same width and height")
    return next(iter(sizes.values()))


def decode_input(modality: str, data: bytes, max_pixels: int) -> np.ndarray:
    """One upload's pixels: RGB for ``color``, the stored values for ``hha`` and ``depth``.
    ImageError for undecodable data or values unlike the training data's."""
    if modality == "color":
        return load_image(data, name=modality, max_pixels=max_pixels)
    values = read_samples(data, name=modality, max_pixels=max_pixels)
    problem = modality_problem(modality, values)
    if problem:
        raise ImageError(modality, problem)
    return values


def segment_inputs(segmenter: Segmenter, uploads: Mapping[str, bytes], options: SegmentOptions,
                   max_pixels: int) -> bytes | dict[str, Any]:
    """Decode, segment and encode one request's ``{modality: bytes}`` as
    :func:`~fcnseg.serve.segment.segment_upload` does one image (in a worker thread)."""
    t0 = time.perf_counter()
    with image_errors():
        arrays = {m: decode_input(m, data, max_pixels) for m, data in uploads.items()}
    sizes = {m: a.shape[:2] for m, a in arrays.items()}
    if len(set(sizes.values())) > 1:  # EXIF orientation can differ where the headers agree
        listing = ", ".join(f"{m} {w}×{h}" for m, (h, w) in sizes.items())
        raise RequestError(400, f"the inputs differ in size ({listing})")
    t1 = time.perf_counter()
    height, width = next(iter(sizes.values()))
    with inference_errors(f"uploads {list(arrays)} of {width}×{height}"):
        pred = segmenter.predict_inputs(arrays, return_probs=options.wants_probs)
    return encode_answer(segmenter, pred, options, decode_s=t1 - t0,
                         inference_s=time.perf_counter() - t1)
