"""Errors of the web service, all answered in one shape: ``{"detail": "<what is wrong>"}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


class RequestError(HTTPException):
    """A request the service refuses: an HTTP status, a one-line reason for the client (and
    headers), answered ``{"detail": ...}`` as FastAPI answers every HTTPException."""


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
    return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)
