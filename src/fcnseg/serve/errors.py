"""The web service answers all its errors in one shape.
That is ``{"detail": "<what is wrong>", "request_id": "<the request's id>"}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope


class RequestError(HTTPException):
    """A request the service refuses: an HTTP status, a one-line reason for the client (and
    headers), answered by :func:`http_error_response`."""


def error_response(scope: Scope, status: int, detail: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error answer: its one-line ``detail`` and the request's id
    (:class:`~fcnseg.serve.metrics.RequestTelemetry` sets it)."""
    body = {"detail": detail, "request_id": scope.get("state", {}).get("request_id")}
    return JSONResponse(body, status_code=status, headers=headers)


async def http_error_response(request: Request, exc: Exception) -> JSONResponse:
    """Every HTTPException (RequestError, Starlette's 404 and 405) as :func:`error_response`."""
    assert isinstance(exc, HTTPException)
    return error_response(request.scope, exc.status_code, exc.detail, exc.headers)


def validation_detail(errors: Sequence[Mapping[str, Any]]) -> str:
    """FastAPI's list of validation errors as one line, e.g.
    ``query parameter 'format': Input should be 'png' or 'json' (got 'gif')``."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if len(loc) >= 2 and loc[0] in ("query", "path", "header", "cookie"):
            where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}"
        else:
            where = ".".join(loc) or "request"
        part = f"{where}: {error.get('msg', 'invalid')}"
        if "input" in error and isinstance(error["input"], (str, int, float)):
            part += f" (got {error['input']!r})"
        parts.append(part)
    return "; ".join(parts) or "invalid request"


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    """422 with a flat ``detail`` string, as every other error (FastAPI's default nests a
    list of objects)."""
    assert isinstance(exc, RequestValidationError)
    return error_response(request.scope, 422, validation_detail(exc.errors()))
