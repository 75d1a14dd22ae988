"""The HTTP server under the app: uvicorn, guarded against clients that hold sockets.

The app bounds what a request may cost once its headers are in (:mod:`fcnseg.serve.body`,
:mod:`fcnseg.serve.admission`); this module bounds the connections themselves:

- **Header timeout.** A connection must deliver a request's complete headers within
  ``header_timeout_s`` seconds of opening (or of its previous response); one that trickles them
  in, or sends nothing, gets 408 and is closed. Without it, a few hundred sockets that each send
  a byte now and then hold every file descriptor of the process.
- **Connection cap.** At most ``max_connections`` connections are open at once (lowered to fit
  the process's open-file limit); one more is answered 503 and closed at once.
  ``GET /healthz`` reports the open connections, the cap and how many were refused or timed
  out (:class:`ConnectionGauge`); under another server, which applies neither guard, it
  reports ``"connections": null``.
- **Accept errors.** When the process runs out of file descriptors anyway, asyncio reports every
  failed ``accept()`` with a traceback, up to thousands a second. They are logged as one line at
  most every :data:`ACCEPT_ERROR_LOG_INTERVAL_S` seconds, with the count of those folded in.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
import uvicorn.config
from uvicorn.protocols.http.h11_impl import H11Protocol

from fcnseg.serve.limits import ConnectionGauge, ServiceLimits

log = logging.getLogger("fcnseg.serve")

#: Accept errors are logged at most once per this many seconds.
ACCEPT_ERROR_LOG_INTERVAL_S = 10.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _raw_response(status: str, detail: str) -> bytes:
    """A whole HTTP/1.1 error response that closes its connection, written before (or instead
    of) any request cycle."""
    body = json.dumps({"detail": detail}).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


_REFUSED = _raw_response("503 Service Unavailable", "too many open connections; try again later")
_TIMED_OUT = _raw_response("408 Request Timeout", "the request headers did not arrive in time")


def guarded_protocol(gauge: ConnectionGauge, header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the header timeout and the connection cap of the module
    doc, counting into ``gauge``."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _counted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            gauge.enforced = True
            if gauge.open >= gauge.limit:
                gauge.refused += 1
                transport.write(_REFUSED)
                transport.close()
                return
            gauge.open += 1
            self._counted = True
            super().connection_made(transport)
            self._wait_for_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._counted:
                return  # refused at once: uvicorn never knew it
            gauge.open -= 1
            self._counted = False
            self._stop_waiting()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a request's headers are in
                self._stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._wait_for_headers()  # the next request on this connection

        def _wait_for_headers(self) -> None:
            self._stop_waiting()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _stop_waiting(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            gauge.header_timeouts += 1
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_TIMED_OUT)
            self.transport.close()

    return GuardedH11Protocol


@dataclass
class AcceptErrorLog:
    """An event-loop exception handler that logs running out of file descriptors (or memory)
    in ``accept()`` as one line at most every ``interval_s`` seconds, and hands every other
    error to the loop's default handler."""

    interval_s: float = ACCEPT_ERROR_LOG_INTERVAL_S
    _last: float = float("-inf")
    _folded: int = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._folded += 1
            return
        folded = f" ({self._folded} more since the last report)" if self._folded else ""
        log.error("cannot accept connections: %s%s; lower --max-connections or raise the "
                  "open-file limit (ulimit -n)", exc.strerror or exc, folded)
        self._last, self._folded = now, 0


class GuardedServer(uvicorn.Server):
    """uvicorn's server with :class:`AcceptErrorLog` as its event loop's exception handler."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(AcceptErrorLog())
        await super().startup(sockets=sockets)


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the time (ISO 8601, with its UTC offset) at the
    start of every line, fcnseg's own messages (logger ``fcnseg.serve``) written as uvicorn's."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter["fmt"] = "%(asctime)s " + formatter["fmt"]
        formatter["datefmt"] = "%Y-%m-%dT%H:%M:%S%z"
    config["loggers"]["fcnseg.serve"] = {"handlers": ["default"]}
    return config


def build_server(app: Any, limits: ServiceLimits, gauge: ConnectionGauge, *,
                 log_level: str = "info") -> GuardedServer:
    """The server of :func:`serve`, to be run (``.run(sockets=[sock])``) and stopped
    (``.should_exit = True``) by its caller."""
    return GuardedServer(uvicorn.Config(app, log_level=log_level, log_config=log_config(),
                                        http=guarded_protocol(gauge, limits.header_timeout_s)))


def serve(app: Any, sock: socket.socket, limits: ServiceLimits, gauge: ConnectionGauge, *,
          log_level: str = "info") -> None:
    """Serve ``app`` on the bound socket ``sock`` until interrupted, with the guards of the
    module doc (``gauge.limit`` is the connection cap)."""
    build_server(app, limits, gauge, log_level=log_level).run(sockets=[sock])


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound to ``host:port`` (IPv6 when ``host`` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def serve_app(app: Any, host: str = "127.0.0.1", port: int = 8000, *,
              log_level: str = "info") -> None:
    """Serve an app of :func:`~fcnseg.serve.app.create_app` on ``host:port`` until
    interrupted, as ``fcnseg serve`` does: with the three guards of the module doc, from the
    app's limits (plain ``uvicorn.run(app)`` applies none of them)."""
    service = app.state.service
    with bind_socket(host, port) as sock:
        serve(app, sock, service.limits, service.connections, log_level=log_level)
