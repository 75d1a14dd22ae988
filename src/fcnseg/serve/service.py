"""One served model: the segmenter, its limits and its admission, behind the app's routes."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fcnseg.inference import Segmenter
from fcnseg.serve.admission import Admission
from fcnseg.serve.bands import probe_raster, segment_raster
from fcnseg.serve.batching import BatchingDecision, InferenceBatcher, decide_batching
from fcnseg.serve.limits import ConnectionGauge, ServiceLimits, connection_cap
from fcnseg.serve.modalities import probe_inputs, read_modality_uploads, segment_inputs
from fcnseg.serve.segment import (
    SegmentOptions,
    head_palette,
    probe_image,
    read_upload,
    segment_upload,
)

#: The fields of :meth:`Segmenter.describe` that ``GET /v1/model`` reports.
_MODEL_FIELDS = ("arch", "geometry", "num_classes", "class_names", "palette", "ignore_index",
                 "input_convention")


class SegmentationService:
    """What the routes answer with, for one segmenter under one set of limits."""

    def __init__(self, segmenter: Segmenter, limits: ServiceLimits,
                 batching: bool | None = None) -> None:
        self.segmenter = segmenter
        self.limits = limits
        self.admission = Admission(limits.max_concurrency, limits.max_queue)
        self.batching = _batching_decision(segmenter, limits, batching)
        # With batching on, requests waiting for the model thread share its forward passes.
        max_batch = limits.max_concurrency if self.batching.enabled else 1
        self.batcher = InferenceBatcher(segmenter, max_batch=max_batch,
                                        max_pixels=limits.max_pixels)
        # Counted by the server's connections (fcnseg.serve.server), whose cap it holds.
        self.connections = ConnectionGauge(connection_cap(limits.max_connections))

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: liveness, load, open connections and their cap (None under a
        server that enforces neither), and how (and why) it batches."""
        connections = self.connections.to_dict() if self.connections.enforced else None
        return {"status": "ok", **self.admission.load(), "connections": connections,
                "batching": {**self.batching.to_dict(), **self.batcher.stats.to_dict()}}

    def close(self) -> None:
        """Stop the inference thread (at the app's shutdown)."""
        self.batcher.close()

    def model_info(self) -> dict[str, Any]:
        """``GET /v1/model``: the model's description, ``input_names``, each head's classes and
        colours, whether it gives probabilities, and the limits (the server's own None under
        another server)."""
        seg = self.segmenter
        description = seg.describe()
        heads = {h: {"class_names": list(names),
                     "palette": head_palette(seg, h)[: len(names)].tolist()}
                 for h, names in seg.heads.items()}
        limits = self.limits.to_dict()
        if not self.connections.enforced:  # under plain uvicorn.run(app)
            limits["header_timeout_s"] = limits["max_connections"] = None
        return {**{key: description[key] for key in _MODEL_FIELDS},
                "input_names": list(seg.input_names), "heads": heads,
                "probabilities": not getattr(seg, "labels_only", False), "limits": limits}

    async def segment(self, request: Request, options: SegmentOptions) -> Response:
        """``POST /v1/segment``: admit (503 when full), check the image header, then decode,
        segment and encode in a worker thread: one file per modality for a model with several
        inputs, one raster for a multi-band model, else one image."""
        seg, max_pixels = self.segmenter, self.limits.max_pixels
        with self.admission.place():
            if len(seg.input_names) > 1:  # one file per modality
                uploads = await read_modality_uploads(request, seg.input_names)
                probe = partial(probe_inputs, uploads, max_pixels)
                work = partial(segment_inputs, seg, uploads, options, max_pixels)
            elif seg.input_convention.bands is not None:  # one raster of the model's bands
                data = await read_upload(request)
                probe = partial(probe_raster, data, seg, max_pixels)
                work = partial(segment_raster, seg, data, options, max_pixels)
            else:
                data = await read_upload(request)
                probe = partial(probe_image, data, max_pixels)
                work = partial(segment_upload, seg, data, options, max_pixels,
                               self.batcher.predict)
            request.state.image_size = await anyio.to_thread.run_sync(probe)  # (w, h)
            answer = await anyio.to_thread.run_sync(work, limiter=self.admission.limiter)
        if isinstance(answer, bytes):  # the label map PNG
            return Response(answer, media_type="image/png",
                            headers={"Content-Disposition": 'inline; filename="label.png"'})
        return JSONResponse(answer)


def _batching_decision(segmenter: Segmenter, limits: ServiceLimits,
                       batching: bool | None) -> BatchingDecision:
    """Batching as asked, else off where requests never share the batcher, else measured."""
    if batching is not None:
        return BatchingDecision(batching, f"{'on' if batching else 'off'}: as configured")
    if len(segmenter.input_names) > 1:
        return BatchingDecision(False, "off: the model takes several inputs per request")
    if segmenter.input_convention.bands is not None:
        return BatchingDecision(False, "off: the model takes multi-band rasters, segmented one "
                                       "at a time")
    if limits.max_concurrency == 1:
        return BatchingDecision(False, "off: one request is segmented at a time")
    return decide_batching(segmenter, max_pixels=limits.max_pixels)

