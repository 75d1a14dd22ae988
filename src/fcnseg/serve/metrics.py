"""Request ids and Prometheus metrics: one ASGI middleware around the whole app.

Each request gets an id, the client's ``X-Request-ID`` when it is a sane one, else a new one,
echoed in the ``X-Request-ID`` header of every answer, in every error body and in the server's
access line, and is counted into the app's own :class:`ServiceMetrics` (``GET /metrics``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fcnseg.inference import Segmenter
from fcnseg.serve.errors import error_response

#: The longest client request id kept; a longer one is replaced by a new id.
MAX_REQUEST_ID_CHARS = 128
#: Latency buckets (s): small images on a GPU to 24 MP photos on a busy CPU.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: The reason a request was refused, by its status: admission (queue full) or the size limits.
REFUSALS = {503: "queue_full", 413: "too_large"}


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` if it is 1 to :data:`MAX_REQUEST_ID_CHARS` visible ASCII
    characters (no spaces or control characters, which would garble the log line), else a new
    random one (32 hex digits)."""
    given = next((value for name, value in headers if name.lower() == b"x-request-id"), b"")
    if 0 < len(given) <= MAX_REQUEST_ID_CHARS and all(0x21 <= c <= 0x7E for c in given):
        return given.decode("ascii")
    return uuid.uuid4().hex


class ServiceMetrics:
    """One app's metrics, in a registry of its own (apps in one process never share counts)."""

    def __init__(self, segmenter: Segmenter) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("fcnseg_requests", "Requests answered, by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("fcnseg_request_duration_seconds", "Time from a request's "
                                 "headers to its answer, by route", ["route"], registry=r,
                                 buckets=LATENCY_BUCKETS_S)
        self.images = Counter("fcnseg_images_segmented", "Images segmented", registry=r)
        self.pixels = Counter("fcnseg_pixels_segmented", "Pixels of the images segmented",
                              registry=r)
        self.refused = Counter("fcnseg_requests_refused", "Requests refused: 503 queue_full "
                               "(admission), 413 too_large (upload or pixels)", ["reason"],
                               registry=r)
        self.in_flight = Gauge("fcnseg_requests_in_flight", "Requests being answered",
                               registry=r)
        model, path = segmenter.describe(), segmenter.checkpoint_path
        Info("fcnseg_model", "The served model", registry=r).info({
            "name": Path(path).name if path else model["arch"], "arch": model["arch"],
            "classes": str(model["num_classes"]), "precision": str(model["precision"])})

    def count(self, route: str, status: int, seconds: float, state: dict) -> None:
        """One answered request (``state``: the request's, with ``image_size`` once probed)."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status in REFUSALS:
            self.refused.labels(REFUSALS[status]).inc()
        if status == 200 and (size := state.get("image_size")):
            self.images.inc()
            self.pixels.inc(size[0] * size[1])


class RequestTelemetry:
    """ASGI middleware: the request id (in ``scope["state"]["request_id"]`` and the answer's
    ``X-Request-ID``) and the metrics, labelled by route: the matched route's path, or (for an
    answer given before routing, 413 and 408, or by a route of Starlette's) the request's path
    when one of ``paths``, or the mount of ``mounts`` it is below (``/static``), else
    ``unmatched`` (arbitrary paths would make a metric of every URL a scanner tries)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, paths: Collection[str],
                 mounts: Collection[str] = ()) -> None:
        self.app, self.metrics, self.paths, self.mounts = app, metrics, paths, mounts

    def route(self, scope: Scope) -> str:
        """The route label of an answered request."""
        if matched := getattr(scope.get("route"), "path", None):  # FastAPI's, once routed
            return matched
        path = scope["path"]
        if path in self.paths:
            return path
        return next((mount for mount in self.mounts if path.startswith(f"{mount}/")),
                    "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = rid = request_id(scope["headers"])
        status, started = 0, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"x-request-id", rid.encode())]}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not status:  # else Starlette's plain 500, without the id
                await error_response(scope, 500, "internal server error")(
                    scope, receive, send_with_id)
            raise
        finally:
            self.metrics.in_flight.dec()
            if status:  # else the client left before an answer
                self.metrics.count(self.route(scope), status, time.perf_counter() - started,
                                   state)
