"""The web service: a :class:`~fcnseg.inference.Segmenter` behind FastAPI.

Endpoints: ``POST /v1/segment`` (an image, or one file per modality, in; a palette PNG or JSON
out), ``GET /v1/model``, ``GET /healthz`` (and ``HEAD``), ``GET /metrics`` (Prometheus),
``/openapi.json`` and a page at ``/``.
The routes only wire HTTP to :class:`~fcnseg.serve.service.SegmentationService`, which stays
bounded whatever it is sent: bodies within ``max_upload_bytes`` (413) and ``body_timeout_s``
(408); image headers read before decoding (413, 415, 400); admission or 503 at once; one model
thread; every error ``{"detail": "<one line>", "request_id": ...}``; every answer with its
``X-Request-ID`` (:mod:`fcnseg.serve.metrics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from fcnseg import __version__
from fcnseg.inference import Segmenter
from fcnseg.inference.visualize import label_png_bytes as encode_label_png
from fcnseg.serve.body import ReadBodyFirst
from fcnseg.serve.errors import http_error_response, validation_error_response
from fcnseg.serve.limits import ServiceLimits
from fcnseg.serve.metrics import RequestTelemetry, ServiceMetrics
from fcnseg.serve.segment import SegmentOptions, heatmap_options
from fcnseg.serve.service import SegmentationService

__all__ = ["create_app", "encode_label_png"]

# Everything the page loads comes from this server: no CDN (the service may be offline).
_PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
             "style-src 'self'; connect-src 'self'")

router = APIRouter()


def _service(request: Request) -> SegmentationService:
    return request.app.state.service


#: The app's service, as a route parameter.
Service = Annotated[SegmentationService, Depends(_service)]


@cache
def _page() -> str:
    return resources.files("fcnseg.serve").joinpath("static/index.html").read_text("utf-8")


# HEAD is answered as GET, without the body (the server drops it): uptime checkers and load
# balancers probe with HEAD.
@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse,
                  include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(_page(), headers={"Content-Security-Policy": _PAGE_CSP})


# Browsers ask for it on every page load; no content rather than a 404 in their consoles.
@router.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
async def favicon() -> Response:
    return Response(status_code=204)


# GET registered first: a 405 on /healthz names the first route's methods in Allow.
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz")
async def healthz(service: Service) -> dict[str, Any]:
    """Liveness, and how busy the service is."""
    return service.health()


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Requests, latency, images and pixels segmented, refusals and the model, in Prometheus'
    text format."""
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/model")
async def model_info(service: Service) -> dict[str, Any]:
    """The served model: classes and palette, architecture, geometry, input convention, and
    the service's limits."""
    return service.model_info()


@router.post(
    "/v1/segment",
    responses={200: {"content": {"image/png": {}, "application/json": {}},
                     "description": "the label map (PNG) or JSON"},
               400: {"description": "corrupt image, bad parameter, or a missing or unexpected "
                                    "modality field"},
               408: {"description": "the upload did not arrive in time"},
               413: {"description": "upload or image too large"},
               415: {"description": "not an image"},
               422: {"description": "a query parameter out of range"},
               503: {"description": "queue full"}},
    openapi_extra={"requestBody": {"content": {
        "multipart/form-data": {"schema": {
            "type": "object", "description": "one image in 'image'; for a model with several "
                                             "inputs, one file per modality named by it "
                                             "(GET /v1/model lists them as input_names)",
            "properties": {"image": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def segment(
    request: Request,
    service: Service,
    format: Literal["png", "json"] = Query(
        "png", description="png: the label map as a palette PNG; json: pixel counts and "
                           "base64 PNGs"),
    overlay: bool = Query(False, description="json: add the overlay picture"),
    alpha: float = Query(0.5, ge=0.0, le=1.0, description="overlay opacity"),
    heatmap: str | None = Query(
        None, description="json: class heatmaps for 'all' or comma-separated class names or "
                          "indices"),
) -> Response:
    """Segment an uploaded image (multipart field ``image``, or the raw body); for a model with
    several inputs, one file per modality in fields named by it (``color``, ``hha``)."""
    options = SegmentOptions(format=format, overlay=overlay, alpha=alpha,
                             **heatmap_options(heatmap, service.segmenter))
    return await service.segment(request, options)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await anyio.to_thread.run_sync(app.state.service.close)  # the inference thread


def create_app(segmenter: Segmenter, limits: ServiceLimits | None = None, /, *,
               batching: bool | None = None, **limit_fields: Any) -> FastAPI:
    """The FastAPI application serving ``segmenter``.

    ``limits`` (:class:`~fcnseg.serve.limits.ServiceLimits`) bound what the service accepts and
    holds at once; ``limit_fields`` set single ones (``create_app(s, max_pixels=256 * 256)``).
    ``batching``: whether requests waiting for the model share a forward pass; None decides as
    :func:`~fcnseg.serve.batching.decide_batching` does (``GET /healthz`` reports it).
    """
    limits = dataclasses.replace(limits or ServiceLimits(), **limit_fields)
    # No /docs or /redoc: FastAPI's pages load their scripts from CDNs, blank on the offline
    # machines the service runs on; the schema itself stays at /openapi.json.
    app = FastAPI(title="fcnseg", version=__version__,
                  summary="Semantic segmentation with a Fully Convolutional Network",
                  lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.state.service = SegmentationService(segmenter, limits, batching)
    app.state.metrics = ServiceMetrics(segmenter)
    app.add_middleware(ReadBodyFirst, max_bytes=limits.max_upload_bytes,
                       timeout_s=limits.body_timeout_s)
    # Outermost: the id and the counts cover ReadBodyFirst's 413 and 408 too.
    app.add_middleware(RequestTelemetry, metrics=app.state.metrics,
                       paths={app.openapi_url, *(route.path for route in router.routes)},
                       mounts=["/static"])
    app.add_exception_handler(HTTPException, http_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("fcnseg.serve", "static")]), name="static")
    return app
