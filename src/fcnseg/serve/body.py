"""Request bodies are read whole, within a size and a time limit, before the app sees them.
A request takes a place in the queue only once its body is here, so a client that stalls holds a
socket, never a place another request could use."""

from __future__ import annotations

import logging

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fcnseg.serve.errors import error_response

log = logging.getLogger("fcnseg.serve")


class ReadBodyFirst:
    """ASGI middleware: read each HTTP request's body whole before passing the request on.

    Over ``max_bytes`` (declared, or once streamed): 413, the connection left open so that a
    client sending its whole body first still reads it. Not complete within ``timeout_s``: 408
    and the connection closed. A client hanging up mid-upload is logged in one line.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((int(value) for name, value in scope.get("headers") or ()
                         if name.lower() == b"content-length" and value.strip().isdigit()), None)
        if declared is not None and declared > self.max_bytes:
            await _answer(scope, send, 413, f"upload of {declared} bytes is larger than the "
                                            f"limit of {self.max_bytes} bytes")
            return
        body = await self._read(scope, receive, send, declared)
        if body is None:
            return
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def replay() -> Message:
            return next(messages, None) or await receive()  # then the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive, send: Send,
                    declared: int | None) -> bytes | None:
        """The whole body, or None once the request has been answered (or its client left)."""
        chunks: list[bytes] = []
        received = 0
        of = f" of {declared}" if declared is not None else ""
        with anyio.move_on_after(self.timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    log.warning("%s hung up during the upload of %s (%d%s bytes received)",
                                _client(scope), _target(scope), received, of)
                    return None
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    await _answer(scope, send, 413, f"upload is larger than the limit of "
                                                    f"{self.max_bytes} bytes")
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        log.warning("%s sent %d%s bytes of the upload of %s in %g s; answered 408",
                    _client(scope), received, of, _target(scope), self.timeout_s)
        # Connection: close, so that the server drops the connection rather than waiting on it.
        await _answer(scope, send, 408, f"the upload did not arrive within {self.timeout_s:g} s "
                                        f"({received}{of} bytes received)", close=True)
        return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"client {client[0]}:{client[1]}" if client else "a client"


def _target(scope: Scope) -> str:
    return f"{scope.get('method', '?')} {scope.get('path', '?')}"


async def _answer(scope: Scope, send: Send, status: int, detail: str, *,
                  close: bool = False) -> None:
    headers = {"Connection": "close"} if close else None
    await error_response(scope, status, detail, headers)(scope, _no_receive, send)


async def _no_receive() -> Message:  # a response never reads the request
    raise RuntimeError("a response read the request")
