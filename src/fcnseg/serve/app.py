"""The web service: a :class:`~fcnseg.inference.Segmenter` behind FastAPI.

Endpoints: ``POST /v1/segment`` (an image in, a palette PNG label map or JSON out),
``GET /v1/model``, ``GET /healthz`` and a static page at ``/``.

The service is meant to stay up and bounded whatever it is sent:

- request bodies over ``max_upload_bytes`` are refused with 413 while they stream in (the
  declared ``Content-Length`` is checked first), so an upload never sits in memory whole
  unless it is within the limit;
- image headers are read before any decoding: more than ``max_pixels`` pixels gives 413, data
  that is no image gives 415, an image that fails to decode gives 400;
- at most ``max_concurrency`` images are decoded and segmented at once, in worker threads (never
  on the event loop), and at most ``max_queue`` more are admitted (uploading or waiting); beyond
  that requests get 503 at once, so at most ``max_concurrency + max_queue`` uploads are held;
- nothing is cached between requests: each request's buffers go when its response is sent.
"""

from __future__ import annotations

import base64
import io
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from fcnseg.inference import ImageError, ImageTooLargeError, Prediction, Segmenter, load_image
from fcnseg.inference.visualize import heatmap, overlay
from fcnseg.inference.visualize import label_png_bytes as encode_label_png
from fcnseg.serve.limits import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_UPLOAD_BYTES,
    PREVIEW_MAX_SIDE,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "create_app",
    "encode_label_png",
]

log = logging.getLogger("fcnseg.serve")

# After refusing an oversized body, read (and drop) at most this much more of it so that the
# client, still sending, gets to read the 413 instead of a reset connection.
_DRAIN_LIMIT_BYTES = 64 * 2**20

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a request body passes the limit."""


class _BodySizeLimit:
    """ASGI middleware: answer 413 to request bodies over ``max_bytes``, counting as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _drain(receive)
            await self._refuse(send, int(declared))
            return
        received = 0
        more_body = True
        started = False

        async def counting_receive() -> Any:
            nonlocal received, more_body
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = bool(message.get("more_body", False))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:  # cannot happen with our endpoints (they read the body first)
                raise
            if more_body:  # once the body is complete, receive() would wait for a disconnect
                await _drain(receive)
            await self._refuse(send, None)

    async def _refuse(self, send: Any, declared: int | None) -> None:
        size = f" ({declared} bytes)" if declared is not None else ""
        detail = f"upload is larger than the limit of {self.max_bytes} bytes{size}"
        await JSONResponse({"detail": detail}, status_code=413)({"type": "http"}, _no_receive,
                                                                 send)


async def _no_receive() -> Any:  # a response never reads the request
    raise RuntimeError("unreachable")


async def _drain(receive: Any) -> None:
    drained = 0
    while drained <= _DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class _Admission:
    """Bounded concurrency with a bounded queue.

    ``limiter`` caps the worker threads that decode and segment; ``in_flight`` counts admitted
    requests (uploading, waiting for a thread, or running). Both change only on the event loop,
    so the check and the increment in :meth:`try_admit` cannot interleave with another
    request's.
    """

    def __init__(self, max_concurrency: int, max_queue: int) -> None:
        self.limiter = anyio.CapacityLimiter(max_concurrency)
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.in_flight = 0

    @property
    def running(self) -> int:
        return int(self.limiter.borrowed_tokens)

    @property
    def waiting(self) -> int:
        return self.in_flight - self.running

    def try_admit(self) -> bool:
        if self.in_flight >= self.max_concurrency + self.max_queue:
            return False
        self.in_flight += 1
        return True

    def busy(self) -> HTTPException:
        return HTTPException(
            503, f"server busy: {self.max_concurrency} running and {self.max_queue} queued; "
                 f"retry shortly", headers={"Retry-After": "1"})

    def release(self) -> None:
        self.in_flight -= 1


@dataclass(frozen=True)
class _Options:
    format: Literal["png", "json"]
    overlay: bool
    alpha: float
    heatmap_classes: tuple[int, ...]


def _png(img: Image.Image, compress_level: int = 6) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_heatmap_classes(spec: str | None, names: list[str]) -> tuple[int, ...]:
    """``"all"``, or comma-separated class names or indices, as class indices."""
    if spec is None or not spec.strip():
        return ()
    if spec.strip() == "all":
        return tuple(range(len(names)))
    chosen: list[int] = []
    for token in (t.strip() for t in spec.split(",")):
        if token.isdigit() and int(token) < len(names):
            index = int(token)
        elif token in names:
            index = names.index(token)
        else:
            raise HTTPException(
                400, f"heatmap: unknown class {token!r}; give 'all', class names or indices "
                     f"0..{len(names) - 1}")
        if index not in chosen:
            chosen.append(index)
    return tuple(chosen)


# Raster formats accepted. Others are refused unread: some Pillow plugins hand the data to
# outside programs (EPS to Ghostscript), which a public upload should never reach. "JPEG"
# includes the multi-picture JPEGs (MPO) of many cameras.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "PPM")


def _probe(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Width and height from the image header (no pixel decoding); 415 / 413 as due."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as img:
                width, height = img.size
    except Image.DecompressionBombError as e:
        raise HTTPException(413, f"image refused as a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise HTTPException(415, f"upload is not an image in an accepted format "
                                 f"({', '.join(ACCEPTED_FORMATS)})") from None
    if width * height > max_pixels:
        raise HTTPException(413, f"image of {width}×{height} = {width * height} pixels is over "
                                 f"the limit of {max_pixels} pixels")
    return width, height


def _preview_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


class _Service:
    """The work of ``POST /v1/segment``, done in a worker thread: decode, segment, encode."""

    def __init__(self, segmenter: Segmenter, max_pixels: int) -> None:
        self.segmenter = segmenter
        self.max_pixels = max_pixels

    def segment(self, data: bytes, options: _Options) -> Response:
        """Decode, segment and encode one upload (runs in a worker thread)."""
        seg = self.segmenter
        t0 = time.perf_counter()
        try:
            image = load_image(data, name="upload", max_pixels=self.max_pixels)
        except ImageTooLargeError as e:
            raise HTTPException(413, str(e)) from None
        except ImageError as e:
            raise HTTPException(400, str(e)) from None
        t1 = time.perf_counter()
        try:
            pred = seg.predict(image, return_probs=bool(options.heatmap_classes))
        except Exception as e:  # noqa: BLE001 - one failed request must not end the service
            log.exception("segmenting an upload of %d×%d failed", image.shape[1], image.shape[0])
            raise HTTPException(500, f"inference failed ({type(e).__name__})") from None
        t2 = time.perf_counter()
        label_png = encode_label_png(pred.label, seg.palette)
        if options.format == "png":
            return Response(label_png, media_type="image/png",
                            headers={"Content-Disposition": 'inline; filename="label.png"'})
        height, width = pred.label.shape
        counts = pred.class_pixel_counts()
        body: dict[str, Any] = {
            "width": width,
            "height": height,
            "pixel_counts": counts,
            "present": [name for name, n in counts.items() if n > 0],
            "label_png": _b64(label_png),
        }
        if options.overlay or options.heatmap_classes:
            body.update(self._pictures(pred, options))
        body["timing_ms"] = {"decode": round((t1 - t0) * 1e3, 1),
                             "inference": round((t2 - t1) * 1e3, 1),
                             "encode": round((time.perf_counter() - t2) * 1e3, 1)}
        return JSONResponse(body)

    def _pictures(self, pred: Prediction, options: _Options) -> dict[str, Any]:
        """The overlay and heatmaps asked for, as base64 PNGs at preview size."""
        seg = self.segmenter
        height, width = pred.label.shape
        size = _preview_size(height, width)
        out: dict[str, Any] = {"preview_size": list(size)}
        if options.overlay:
            small = Image.fromarray(pred.image).resize(size, Image.BILINEAR)
            # uint8 labels up to 256 classes, int64 beyond (Pillow takes those as int32).
            label_img = Image.fromarray(pred.label if pred.label.dtype == np.uint8
                                        else pred.label.astype(np.int32))
            small_label = label_img.resize(size, Image.NEAREST)
            picture = overlay(np.asarray(small), np.asarray(small_label), seg.palette,
                              alpha=options.alpha)
            out["overlay_png"] = _b64(_png(Image.fromarray(picture), compress_level=3))
        if options.heatmap_classes:
            if pred.probs is None:
                raise RuntimeError("the segmenter returned no probabilities for the heatmaps")
            heatmaps = {}
            for c in options.heatmap_classes:
                prob = Image.fromarray(np.ascontiguousarray(pred.probs[c], dtype=np.float32))
                prob = prob.resize(size, Image.BILINEAR)
                # Fixed [0, 1] range: the colours then mean the same probability in every map.
                picture = heatmap(np.asarray(prob), vmin=0.0, vmax=1.0)
                heatmaps[seg.class_names[c]] = _b64(_png(Image.fromarray(picture),
                                                         compress_level=3))
            out["heatmaps"] = heatmaps
        return out


async def _read_upload(request: Request) -> bytes:
    """The image bytes of a request: a multipart file field, or the raw body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8, max_part_size=64 * 2**10) as form:
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            if not files:
                raise HTTPException(400, "no file in the form; send the image in a multipart "
                                         "field named 'image'")
            data = await files[0].read()
    elif content_type.startswith("image/") or content_type in ("application/octet-stream", ""):
        data = await request.body()
    else:
        raise HTTPException(415, f"Content-Type {content_type!r} is not accepted; send "
                                 f"multipart/form-data with the image in field 'image', or the "
                                 f"image itself with an image/* Content-Type")
    if not data:
        raise HTTPException(400, "the upload is empty")
    return data


def create_app(
    segmenter: Segmenter,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> FastAPI:
    """The FastAPI application serving ``segmenter``.

    Args:
        segmenter: the model to serve (e.g. ``Segmenter.from_checkpoint(path)``).
        max_upload_bytes: largest request body accepted; larger ones get 413.
        max_pixels: largest image (width × height) accepted; larger ones get 413.
        max_concurrency: images decoded and segmented at once (worker threads).
        max_queue: requests allowed to wait for a worker; beyond that, 503.
    """
    for name, value, least in (("max_upload_bytes", max_upload_bytes, 1),
                               ("max_pixels", max_pixels, 1),
                               ("max_concurrency", max_concurrency, 1),
                               ("max_queue", max_queue, 0)):
        if int(value) < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")
    admission = _Admission(max_concurrency, max_queue)
    service = _Service(segmenter, max_pixels)
    names = list(segmenter.class_names)
    page = resources.files("fcnseg.serve").joinpath("static/index.html").read_text("utf-8")

    app = FastAPI(title="fcnseg", summary="Semantic segmentation with a Fully Convolutional "
                                          "Network", version=_version())
    app.state.service = service
    app.add_middleware(_BodySizeLimit, max_bytes=max_upload_bytes)
    app.mount("/static", StaticFiles(packages=[("fcnseg.serve", "static")]), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        # Everything the page loads comes from this server: no CDN (the service may be offline).
        csp = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
               "style-src 'self'; connect-src 'self'")
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, and how busy the service is."""
        return {"status": "ok", "running": admission.running, "waiting": admission.waiting,
                "max_concurrency": admission.max_concurrency, "max_queue": admission.max_queue}

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        """The served model: classes and palette, architecture, geometry, input convention,
        and the service's limits."""
        return {
            "arch": segmenter.arch,
            "geometry": segmenter.geometry,
            "num_classes": segmenter.num_classes,
            "class_names": names,
            "palette": segmenter.palette[: segmenter.num_classes].tolist(),
            "ignore_index": segmenter.ignore_index,
            "input_convention": segmenter.input_convention.to_dict(),
            "limits": {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels,
                       "max_concurrency": max_concurrency, "max_queue": max_queue,
                       "preview_max_side": PREVIEW_MAX_SIDE},
        }

    @app.post(
        "/v1/segment",
        responses={200: {"content": {"image/png": {}, "application/json": {}},
                         "description": "the label map (PNG) or JSON"},
                   400: {"description": "corrupt image or bad parameter"},
                   413: {"description": "upload or image too large"},
                   415: {"description": "not an image"},
                   503: {"description": "queue full"}},
        openapi_extra={"requestBody": {"content": {
            "multipart/form-data": {"schema": {
                "type": "object", "properties": {"image": {"type": "string",
                                                           "format": "binary"}}}},
            "image/*": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def segment(
        request: Request,
        format: Literal["png", "json"] = Query(
            "png", description="png: the label map as a palette PNG; json: pixel counts and "
                               "base64 PNGs"),
        overlay: bool = Query(False, description="json: add the overlay picture"),
        alpha: float = Query(0.5, ge=0.0, le=1.0, description="overlay opacity"),
        heatmap: str | None = Query(
            None, description="json: class heatmaps for 'all' or comma-separated class names "
                              "or indices"),
    ) -> Response:
        """Segment an uploaded image (multipart field ``image``, or the raw body)."""
        options = _Options(format=format, overlay=overlay, alpha=alpha,
                           heatmap_classes=_parse_heatmap_classes(heatmap, names))
        # Admit before reading the upload, so that at most max_concurrency + max_queue
        # uploads are held in memory at once; a refused body is read and dropped so that the
        # client, still sending, gets to read the 503.
        if not admission.try_admit():
            async for _ in request.stream():
                pass
            raise admission.busy()
        try:
            data = await _read_upload(request)
            await anyio.to_thread.run_sync(_probe, data, max_pixels)
            return await anyio.to_thread.run_sync(service.segment, data, options,
                                                  limiter=admission.limiter)
        finally:
            admission.release()

    return app


def _version() -> str:
    from fcnseg import __version__

    return __version__
