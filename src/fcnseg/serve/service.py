"""One served model: the segmenter, its limits and its admission, behind the app's routes."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fcnseg.inference import Segmenter
from fcnseg.serve.admission import Admission
from fcnseg.serve.limits import ServiceLimits
from fcnseg.serve.segment import SegmentOptions, probe_image, read_upload, segment_upload

__all__ = ["SegmentationService"]

#: The fields of :meth:`Segmenter.describe` that ``GET /v1/model`` reports.
_MODEL_FIELDS = ("arch", "geometry", "num_classes", "class_names", "palette", "ignore_index",
                 "input_convention")


class SegmentationService:
    """What the routes answer with, for one segmenter under one set of limits."""

    def __init__(self, segmenter: Segmenter, limits: ServiceLimits) -> None:
        self.segmenter = segmenter
        self.limits = limits
        self.admission = Admission(limits.max_concurrency, limits.max_queue)

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: liveness, and how busy the service is."""
        return {"status": "ok", **self.admission.load()}

    def model_info(self) -> dict[str, Any]:
        """``GET /v1/model``: classes, palette, architecture, geometry, input convention and
        the service's limits."""
        description = self.segmenter.describe()
        return {**{key: description[key] for key in _MODEL_FIELDS}, "limits": self.limits.to_dict()}

    async def segment(self, request: Request, options: SegmentOptions) -> Response:
        """``POST /v1/segment``: admit (503 when full), check the image header, then decode,
        segment and encode in a worker thread (at most ``max_concurrency`` at once).

        The body is already read in full (:class:`~fcnseg.serve.body.ReadBodyFirst`), so a
        place is only ever held by a request whose upload has arrived.
        """
        with self.admission.place():
            data = await read_upload(request)
            await anyio.to_thread.run_sync(probe_image, data, self.limits.max_pixels)
            answer = await anyio.to_thread.run_sync(
                segment_upload, self.segmenter, data, options, self.limits.max_pixels,
                limiter=self.admission.limiter)
        if isinstance(answer, bytes):
            return Response(answer, media_type="image/png",
                            headers={"Content-Disposition": 'inline; filename="label.png"'})
        return JSONResponse(answer)
