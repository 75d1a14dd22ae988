"""The work of ``POST /v1/segment`` is done here by plain functions.
An upload's header is checked, then it is decoded, segmented and encoded into the answer."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from fcnseg.data.images import (
    IMAGE_FORMATS,
    TIFF_MAGIC,
    bomb_size,
    camera_raw_problem,
    check_pixels,
    ftyp_format,
    header_upright_size,
    image_format_problem,
    signature_format,
    tiff_samples,
)
from fcnseg.data.palette import distinct_palette
from fcnseg.data.rasters import raster_info
from fcnseg.inference import ImageError, ImageTooLargeError, Prediction, Segmenter, load_image
from fcnseg.inference.classnames import AmbiguousClassName, find_class, parse_classes, shown_token
from fcnseg.inference.files import PictureStyle, overlay_picture
from fcnseg.inference.rasters import needs_tiling
from fcnseg.inference.visualize import (
    background_classes,
    heatmap,
    label_png_bytes,
    picture_png_bytes,
    picture_size,
    shrunk,
)
from fcnseg.serve.errors import RequestError
from fcnseg.serve.limits import PREVIEW_MAX_SIDE
from fcnseg.utils.quiet import ignoring
from fcnseg.weightfiles.artifacts import labels_only_error

log = logging.getLogger("fcnseg.serve")

#: ``predict(image, return_probs=...)``: a decoded image's prediction, or a raster file's
#: (its path) as :meth:`Segmenter.predict` segments it.
Predict = Callable[..., Prediction]


@dataclass(frozen=True)
class SegmentOptions:
    """What a client asked for: ``format`` ``"png"`` (the label map) or ``"json"`` (counts and
    base64 PNGs), and for JSON an ``overlay`` of opacity ``alpha`` and the probability maps of
    ``heatmap_classes`` (by head in ``head_heatmap_classes``; the first head's are both)."""

    format: Literal["png", "json"] = "png"
    overlay: bool = False
    alpha: float = 0.5
    heatmap_classes: tuple[int, ...] = ()
    head_heatmap_classes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def wants_probs(self) -> bool:
        """Whether any heatmap is asked for (the segmenter must then return probabilities)."""
        return bool(self.heatmap_classes) or any(self.head_heatmap_classes.values())


def parse_heatmap_classes(spec: str | None, names: Sequence[str]) -> tuple[int, ...]:
    """``"all"``, or comma-separated class names or indices, as class indices (as ``fcnseg
    predict --heatmaps``; 400 if unknown)."""
    try:
        return tuple(parse_classes(spec or "", names))
    except ValueError as e:
        raise RequestError(400, f"heatmap: {e}") from None


def parse_head_heatmap_classes(spec: str | None,
                               heads: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, ...]]:
    """:func:`parse_heatmap_classes` for several heads: ``"all"`` every class of every head, a
    name the heads that have it, an index the first head's class (400 for a name no head has)."""
    chosen: dict[str, list[int]] = {h: [] for h in heads}
    first = next(iter(heads))
    for token in (t.strip() for t in (spec or "").split(",")):
        if not token:
            continue
        try:
            found = {h: find_class(token, names, indices=h == first)
                     for h, names in heads.items()}
        except AmbiguousClassName as e:
            raise RequestError(400, f"heatmap: {e}") from None
        picked = {h: [index] for h, index in found.items() if index is not None}
        if not picked and token == "all":
            picked = {h: list(range(len(names))) for h, names in heads.items()}
        if not picked:
            listing = "; ".join(f"{h}: {', '.join(names)}" for h, names in heads.items())
            raise RequestError(400, f"heatmap: unknown class {shown_token(token)}; give 'all', "
                                    f"class names ({listing}) or indices of the {first} head")
        for h, indices in picked.items():
            chosen[h] += [c for c in indices if c not in chosen[h]]
    return {h: tuple(c) for h, c in chosen.items()}


def heatmap_options(spec: str | None, segmenter: Segmenter) -> dict[str, Any]:
    """The heatmap fields of :class:`SegmentOptions` for the ``heatmap`` query parameter; 400
    for a model exported with labels only (no probabilities to draw)."""
    if spec and getattr(segmenter, "labels_only", False):
        # Its file name only: where the server keeps its files is none of a client's business.
        path = segmenter.checkpoint_path
        model = Path(path).name if path else "the model"
        raise RequestError(400, labels_only_error(model, "heatmap"))
    if not segmenter.heads:
        return {"heatmap_classes": parse_heatmap_classes(spec, segmenter.class_names)}
    by_head = parse_head_heatmap_classes(spec, segmenter.heads)
    return {"heatmap_classes": by_head[next(iter(by_head))], "head_heatmap_classes": by_head}


def head_palette(segmenter: Segmenter, head: str) -> np.ndarray:
    """A head's colours as ``fcnseg predict`` draws them: the checkpoint's palette for the first
    head, the standard one for the others."""
    if not segmenter.heads or head == next(iter(segmenter.heads)):
        return segmenter.palette
    return distinct_palette(segmenter.heads[head])


async def read_upload(request: Request) -> bytes:
    """The image bytes of a request: a multipart file field, or the raw body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        # One more file than used is read, so that a second one is named rather than cut off.
        async with request.form(max_files=2, max_fields=8, max_part_size=64 * 2**10) as form:
            files = [(k, v) for k, v in form.multi_items() if isinstance(v, UploadFile)]
            if not files:
                raise RequestError(400, "no file in the form; send the image in a multipart "
                                        "field named 'image'")
            if len(files) > 1:  # which one to segment would be a guess
                names = list(dict.fromkeys(k for k, _ in files))
                problem = (f"the field {names[0]!r} is sent more than once" if len(names) == 1
                           else f"files in the fields {', '.join(map(repr, names))}")
                raise RequestError(400, f"{problem}: send one image, in the field 'image'")
            data = await files[0][1].read()
    elif content_type.startswith("image/") or content_type in ("application/octet-stream", ""):
        data = await request.body()
    else:
        raise RequestError(415, f"Content-Type {content_type!r} is not accepted; send "
                                f"multipart/form-data with the image in field 'image', or the "
                                f"image itself with an image/* Content-Type")
    if not data:
        raise RequestError(400, "the upload is empty")
    return data


def probe_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Upright width and height from the image header, no pixel decoded: 415 for no accepted
    image, 413 over ``max_pixels``, 400 for a TIFF of bands a colour model does not take."""
    stream = io.BytesIO(data)
    refuse_camera_raw(data)
    samples = tiff_samples(stream) if data.startswith(TIFF_MAGIC) else None  # one header parse
    if samples is not None and (problem := samples.bands_problem()):
        raise RequestError(400, f"upload: {problem}")
    # Formats outside the allow-list of every image reader are refused unread: some Pillow
    # plugins hand the data to outside programs (EPS to Ghostscript).
    try:
        with ignoring(Image.DecompressionBombWarning), \
                Image.open(stream, formats=IMAGE_FORMATS) as img:
            width, height = header_upright_size(img)
    except Image.DecompressionBombError as e:
        size = bomb_size(stream)  # the service's limit is the one to name, not Pillow's
        if size is None:
            raise RequestError(413, f"image refused as a decompression bomb ({e})") from None
        width, height = size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        grey = samples if samples is not None and samples.integer_grey else None
        if grey is None:  # else one the image reader reads by tifffile (big-endian uint32)
            if (kind := signature_format(data[:64])) is not None:
                raise RequestError(400, f"upload: cannot be opened, the signature of "
                                        f"{kind} but truncated or corrupt data") from None
            if ftyp_format(data[:64]) is not None:  # HEIC, or AVIF this Pillow cannot read
                raise RequestError(415, f"upload: {image_format_problem(data[:64])}") from None
            raise RequestError(415, f"upload is not an image in an accepted format "
                                    f"({', '.join(IMAGE_FORMATS)})") from None
        width, height = grey.width, grey.height
    if width * height > max_pixels:
        raise RequestError(413, f"image of {over_the_limit(width, height, max_pixels)}")
    return width, height


def refuse_camera_raw(data: bytes) -> None:
    """A 415 for a camera raw upload (a DNG or CR2 is a TIFF inside), before any reader."""
    if problem := camera_raw_problem(io.BytesIO(data)):
        raise RequestError(415, f"upload: {problem}")


def over_the_limit(width: int, height: int, limit: int) -> str:
    """An upload's size over the pixel limit, naming the option that raises it."""
    return (f"{width}×{height} = {width * height} pixels is over the limit of {limit} pixels "
            f"(fcnseg serve --max-pixels PIXELS raises it)")


@contextlib.contextmanager
def image_errors(message: Callable[[ImageError], str] = str) -> Iterator[None]:
    """Decoding errors as the request's: 413 for too many pixels, 400 for the rest."""
    try:
        yield
    except ImageTooLargeError as e:
        if e.width is not None and e.height is not None and e.limit is not None:
            e = ImageTooLargeError(e.source, over_the_limit(e.width, e.height, e.limit))
        raise RequestError(413, message(e)) from None
    except ImageError as e:
        raise RequestError(400, message(e)) from None


@contextlib.contextmanager
def inference_errors(what: str) -> Iterator[None]:
    """A failed inference as 500, logged with its traceback (the service goes on)."""
    try:
        yield
    except ImageError:  # the input's fault (a corrupt tile of a raster): for image_errors
        raise
    except Exception as e:  # noqa: BLE001
        log.exception("segmenting %s failed", what)
        if isinstance(e, MemoryError) or any(w in str(e).lower() for w in _OUT_OF_MEMORY_WORDS):
            raise RequestError(500, f"inference failed: out of memory segmenting {what} "
                                    f"({type(e).__name__}); send a smaller image, or lower "
                                    f"fcnseg serve --max-pixels so that images this large get "
                                    f"413 before they reach the model") from None
        raise RequestError(500, f"inference failed ({type(e).__name__})") from None


#: How allocators word running out of memory: torch's CPU and CUDA ones, ONNX Runtime's, C++'s.
_OUT_OF_MEMORY_WORDS = ("out of memory", "not enough memory", "can't allocate memory",
                        "cannot allocate memory", "failed to allocate memory", "bad_alloc",
                        "bad allocation")


def segment_upload(segmenter: Segmenter, data: bytes, options: SegmentOptions,
                   max_pixels: int, predict: Predict | None = None) -> bytes | dict[str, Any]:
    """Decode, segment and encode one upload: PNG bytes for ``format="png"``, else the JSON
    dict. Slow: run it in a worker thread. ``predict`` (default ``segmenter.predict``) segments
    the decoded image, or the raster file ``fcnseg predict`` would tile (:func:`raster_by_tiles`).
    RequestError: 413 for too many pixels, 400 for a bad image, 500 for a failed inference."""
    t0 = time.perf_counter()
    with raster_by_tiles(segmenter, data) as raster:
        if raster is None:
            with image_errors():
                source: Any = load_image(data, name="upload", max_pixels=max_pixels)
            what = f"an upload of {source.shape[1]}×{source.shape[0]}"
        else:  # decoded once, as fcnseg predict decodes it: not whole by the image reader too
            with image_errors(_as_upload):
                info = raster_info(raster)
                check_pixels("upload", info.width, info.height, max_pixels)
            source, what = str(raster), f"a TIFF upload of {info.width}×{info.height}"
        t1 = time.perf_counter()
        with image_errors(_as_upload), inference_errors(what):
            pred = (predict or segmenter.predict)(source, return_probs=options.wants_probs)
    return encode_answer(segmenter, pred, options, decode_s=t1 - t0,
                         inference_s=time.perf_counter() - t1)


def _as_upload(e: ImageError) -> str:
    return f"upload: {e.problem}"  # not the upload's temporary file


@contextlib.contextmanager
def upload_file(data: bytes) -> Iterator[Path]:
    """The upload as a private temporary file (the raster readers read files), removed after."""
    fd, name = tempfile.mkstemp(prefix="fcnseg-upload-", suffix=".tif")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def raster_by_tiles(segmenter: Segmenter, data: bytes) -> Iterator[Path | None]:
    """A TIFF upload that ``fcnseg predict`` segments by tiles, as a temporary file (so that its
    labels are those of the label GeoTIFF); None for every other upload (segmented whole)."""
    tiles = segmenter.tiles
    if not data.startswith(TIFF_MAGIC) or tiles is None:
        yield None
        return
    with upload_file(data) as path:
        try:  # not yet decoded: a header the raster reader refuses is the image reader's
            tiled = needs_tiling(path, segmenter.max_pixels, tiles.tile)
        except Exception:  # noqa: BLE001 - to report, in one line
            tiled = False
        yield path if tiled else None


def encode_answer(segmenter: Segmenter, pred: Prediction, options: SegmentOptions, *,
                  decode_s: float = 0.0, inference_s: float = 0.0) -> bytes | dict[str, Any]:
    """A prediction as the answer: the (first head's) label map PNG for ``format="png"``, else
    the JSON payload, with every head's own under ``heads`` for a model with several."""
    t2 = time.perf_counter()
    label_png = label_png_bytes(pred.label, segmenter.palette)
    if options.format == "png":
        return label_png
    body = _payload(pred, segmenter.palette, segmenter.class_names, options,
                    options.heatmap_classes, getattr(segmenter, "background_class", None),
                    label_png)
    if pred.heads:
        body["heads"] = {}
        for h, p in pred.heads.items():
            palette = head_palette(segmenter, h)
            body["heads"][h] = {"class_names": list(p.class_names),
                                "palette": palette[: len(p.class_names)].tolist(),
                                **_payload(p, palette, p.class_names, options,
                                           options.head_heatmap_classes.get(h, ()))}
    body["timing_ms"] = {"decode": round(decode_s * 1e3, 1),
                         "inference": round(inference_s * 1e3, 1),
                         "encode": round((time.perf_counter() - t2) * 1e3, 1)}
    return body


def preview_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) of the pictures in JSON answers: longer side at most PREVIEW_MAX_SIDE."""
    return picture_size(height, width, PREVIEW_MAX_SIDE)[::-1]


def _payload(pred: Prediction, palette: np.ndarray, class_names: Sequence[str],
             options: SegmentOptions, heatmap_classes: Sequence[int],
             background: str | None = None, label_png: bytes | None = None) -> dict[str, Any]:
    """One head's JSON: size, pixel counts, classes present, label PNG, overlay, heatmaps."""
    height, width = pred.label.shape
    counts = pred.class_pixel_counts()
    body: dict[str, Any] = {
        "width": width,
        "height": height,
        "pixel_counts": counts,
        "present": [name for name, n in counts.items() if n > 0],
        "label_png": _b64(label_png or label_png_bytes(pred.label, palette)),
    }
    if not (options.overlay or heatmap_classes):
        return body
    size = preview_size(height, width)
    body["preview_size"] = list(size)
    if options.overlay:
        small = Image.fromarray(pred.image).resize(size, Image.BILINEAR)
        small_label = shrunk(pred.label, size[::-1], nearest=True)
        # As predict draws it, with no legend (the JSON lists the classes present).
        style = PictureStyle(alpha=options.alpha, legend=False,
                             unblended=tuple(background_classes(class_names, background)))
        picture = overlay_picture(replace(pred, image=np.asarray(small), label=small_label),
                                  palette, style)
        body["overlay_png"] = _b64(picture_png_bytes(picture))
    if heatmap_classes:
        if pred.probs is None:
            raise RuntimeError("the segmenter returned no probabilities for the heatmaps")
        body["heatmaps"] = {}
        for c in heatmap_classes:
            # Fixed [0, 1] range: the colours then mean the same probability in every map.
            picture = heatmap(shrunk(pred.probs[c], size[::-1]), vmin=0.0, vmax=1.0)
            body["heatmaps"][class_names[c]] = _b64(picture_png_bytes(picture))
    return body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
