"""Request bodies are read whole, within a size and a time limit, before a request is admitted.

These drive the application through ASGI directly, so a test controls exactly when each byte
of a body arrives, or that it never does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from fcnseg.serve import create_app
from fcnseg.serve.body import ReadBodyFirst

GUARD_S = 20.0  # only so that a regression fails instead of hanging the suite


def _scope(content_length: int | None, content_type: str = "image/png") -> dict[str, Any]:
    headers = [(b"host", b"testserver"), (b"content-type", content_type.encode())]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/segment",
            "raw_path": b"/v1/segment", "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000)}


class Exchange:
    """One request through ASGI: its body handed out as scripted, its answer recorded.

    ``chunks`` are sent in turn; after them comes ``then``: "stall" (wait forever),
    "hang up" (a disconnect) or "done" (the last chunk ends the body).
    """

    def __init__(self, chunks: list[bytes], then: str = "done",
                 content_length: int | None = None) -> None:
        self.chunks = list(chunks)
        self.then = then
        self.scope = _scope(content_length)
        self.receive_calls = 0
        self.stalled = anyio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            more = bool(self.chunks) or self.then != "done"
            return {"type": "http.request", "body": chunk, "more_body": more}
        if self.then == "hang up":
            return {"type": "http.disconnect"}
        self.stalled.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self, app: Callable[..., Awaitable[None]]) -> Exchange:
        await app(self.scope, self.receive, self.send)
        return self

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def headers(self) -> dict[str, str]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return {k.decode().lower(): v.decode() for k, v in start["headers"]}

    @property
    def detail(self) -> str:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return json.loads(body)["detail"]


def _run(exchange: Exchange, app: Any) -> Exchange:
    async def main() -> Exchange:
        with anyio.fail_after(GUARD_S):
            return await exchange.run(app)

    return anyio.run(main)


def test_declared_length_over_the_limit_is_413_before_reading_the_body(segmenter):
    app = create_app(segmenter, max_upload_bytes=200_000)
    exchange = _run(Exchange([bytes(1000)], then="stall", content_length=20_000_000), app)
    assert exchange.status == 413
    assert "20000000" in exchange.detail and "200000" in exchange.detail
    assert exchange.receive_calls == 0


def test_upload_that_stalls_is_408_and_its_connection_closed(segmenter):
    app = create_app(segmenter, body_timeout_s=0.2)
    exchange = _run(Exchange([b"\x89PNG"], then="stall", content_length=100_000), app)
    assert exchange.status == 408
    assert exchange.headers["connection"] == "close"
    assert "4 of 100000 bytes" in exchange.detail


def test_a_stalled_uploads_408_carries_the_request_id(segmenter):
    exchange = Exchange([b"\x89PNG"], then="stall", content_length=100_000)
    exchange.scope["headers"].append((b"x-request-id", b"slow-9"))
    _run(exchange, create_app(segmenter, body_timeout_s=0.2))
    body = b"".join(m.get("body", b"") for m in exchange.sent if m["type"] == "http.response.body")
    assert exchange.status == 408 and exchange.headers["x-request-id"] == "slow-9"
    assert json.loads(body)["request_id"] == "slow-9"


def test_stalled_upload_holds_no_place_in_the_queue(segmenter, make_image):
    """With room for one request, a stalled upload must not make a complete one wait or 503."""
    app = create_app(segmenter, max_concurrency=1, max_queue=0)
    _, png = make_image(32, 32)
    stalled = Exchange([b"\x89PNG"], then="stall", content_length=100_000)
    complete = Exchange([png], content_length=len(png))

    async def main() -> None:
        with anyio.fail_after(GUARD_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stalled.run, app)
                await stalled.stalled.wait()
                await complete.run(app)
                tg.cancel_scope.cancel()  # the stalled client gives up

    anyio.run(main)
    assert complete.status == 200, complete.sent


def test_client_hanging_up_mid_upload_is_one_log_line(segmenter, caplog):
    app = create_app(segmenter)
    with caplog.at_level(logging.INFO):
        exchange = _run(Exchange([bytes(100)], then="hang up", content_length=100_000), app)
    assert exchange.sent == []
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is None
    assert "hung up" in lines[0].getMessage() and "100 of 100000" in lines[0].getMessage()


def test_body_streaming_past_the_limit_is_413(segmenter):
    app = create_app(segmenter, max_upload_bytes=25_000)
    exchange = _run(Exchange([bytes(10_000)] * 3, then="stall"), app)
    assert exchange.status == 413
    assert "25000" in exchange.detail


def test_the_app_gets_the_body_whole_in_one_message():
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())

    _run(Exchange([b"ab", b"cd", b"ef"]), ReadBodyFirst(app, max_bytes=6, timeout_s=5))
    assert got == [{"type": "http.request", "body": b"abcdef", "more_body": False}]


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_create_app_rejects_a_non_positive_body_timeout(segmenter, timeout):
    with pytest.raises(ValueError, match="body_timeout_s"):
        create_app(segmenter, body_timeout_s=timeout)
