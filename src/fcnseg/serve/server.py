"""The HTTP server under the app: uvicorn, guarded against clients that hold sockets.

The app bounds a request once its headers are in; this module bounds the connections:

- **Header timeout.** A connection that does not deliver a request's complete headers within
  ``header_timeout_s`` of opening (or of its previous response) gets 408 and is closed, so that
  sockets trickling a byte now and then cannot hold every file descriptor.
- **Connection cap.** One connection over ``max_connections`` (lowered to fit the open-file
  limit) is answered 503 and closed. ``GET /healthz`` reports the counts
  (:class:`ConnectionGauge`); under another server, which applies neither guard, ``null``.
- **Logs.** One access line per request with its id, image size, path (never the query
  string), status and milliseconds (``fcnseg.serve.access``, in place of uvicorn's); each
  refusal and header timeout in one line naming the client.
- **Accept errors.** Out of file descriptors, asyncio reports every failed ``accept()`` with a
  traceback; they are logged as one line at most every :data:`ACCEPT_ERROR_LOG_INTERVAL_S` s.
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
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string, get_remote_addr

from fcnseg.serve.limits import ConnectionGauge, ServiceLimits

log = logging.getLogger("fcnseg.serve")
access_log = logging.getLogger("fcnseg.serve.access")

#: Accept errors are logged at most once per this many seconds.
ACCEPT_ERROR_LOG_INTERVAL_S = 10.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _raw_response(status: str, detail: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 error response that closes its connection, outside any request cycle."""
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()  # as FastAPI's
    given = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return (f"HTTP/1.1 {status}\r\n".encode() + given
            + f"content-type: application/json\r\nconnection: close\r\n"
              f"content-length: {len(body)}\r\n\r\n".encode() + body)


_REFUSED = ("503 Service Unavailable", "too many open connections; try again later")
_TIMED_OUT = ("408 Request Timeout", "the request headers did not arrive in time")


def guarded_protocol(gauge: ConnectionGauge, header_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the header timeout and the connection cap of the module
    doc, counting into ``gauge``."""

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _counted = False
        _access: _AccessLine | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            gauge.enforced = True
            if gauge.open >= gauge.limit:
                _refuse(transport, gauge, self.server_state.default_headers)
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
            if self._access is not None:  # no line yet if it is not answered
                self._access.write("-", " (the client hung up before the answer)")
            super().connection_lost(exc)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a new request
                self._access = _AccessLine(self.cycle)
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
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                _close_for_late_headers(self, gauge, header_timeout_s)

    return GuardedH11Protocol


def _close_for_late_headers(protocol: H11Protocol, gauge: ConnectionGauge,
                            header_timeout_s: float) -> None:
    """Close a connection whose request headers are late (408 unless a response is under way)."""
    gauge.header_timeouts += 1
    answered = protocol.cycle is None or protocol.cycle.response_complete
    if answered:
        protocol.transport.write(_raw_response(*_TIMED_OUT,
                                               protocol.server_state.default_headers))
    protocol.transport.close()
    log.warning("closed the connection from %s: no complete request headers within %g s "
                "(--header-timeout)%s", _peer(protocol.client), header_timeout_s,
                "; answered 408" if answered else "")


def _refuse(transport: asyncio.Transport, gauge: ConnectionGauge,
            headers: list[tuple[bytes, bytes]]) -> None:
    """Answer a connection over the cap 503, close it and log it in one line."""
    gauge.refused += 1
    log.warning("refused a connection from %s: as many connections are open as "
                "--max-connections allows (%d); answered 503", _peer(get_remote_addr(transport)),
                gauge.limit)
    transport.write(_raw_response(*_REFUSED, headers))
    transport.close()


def _peer(address: tuple[str, int] | None) -> str:
    """A client's ``host:port``, as access lines name it."""
    return f"{address[0]}:{address[1]}" if address else "an unknown client"


class _AccessLine:
    """The access line of one request, written once its response is complete (status, ms from
    headers to last byte), or with status ``-`` if the client hangs up first; the request id
    and image size are those the app put in the request's ``state``."""

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self.cycle, self.started, self.status, self.written = cycle, time.perf_counter(), 0, False
        self._send = cycle.send
        cycle.send = self.send  # type: ignore[method-assign]

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
        if self.cycle.response_complete:
            self.write(str(self.status))

    def write(self, status: str, note: str = "") -> None:
        """Log the line, once."""
        if self.written:
            return
        self.written, scope = True, self.cycle.scope
        state = scope.get("state", {})  # the request id and image size, set by the app
        size = state.get("image_size")
        access_log.info('request_id=%s %s%s - "%s %s HTTP/%s" %s %.1f ms%s',
                        state.get("request_id", "-"), f"image={size[0]}x{size[1]} " if size else "",
                        get_client_addr(scope), scope["method"],
                        get_path_with_query_string({**scope, "query_string": b""}),  # no secrets
                        scope["http_version"], status, (time.perf_counter() - self.started) * 1e3,
                        note)


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


def log_config(log_level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration with an ISO 8601 time on every line, and fcnseg's
    loggers at ``log_level``: access lines on stdout as uvicorn's; other messages on stderr, or
    to the root logger's handlers alone where the application configured it (never twice)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter["fmt"] = "%(asctime)s " + formatter["fmt"]
        formatter["datefmt"] = "%Y-%m-%dT%H:%M:%S%z"
    config["handlers"]["fcnseg.access"] = {**config["handlers"]["default"],
                                           "stream": "ext://sys.stdout"}
    level = uvicorn.config.LOG_LEVELS[log_level.lower()]
    config["loggers"]["fcnseg.serve.access"] = {"handlers": ["fcnseg.access"], "level": level,
                                                "propagate": False}
    own = [] if logging.getLogger().handlers else ["default"]
    config["loggers"]["fcnseg.serve"] = {"handlers": own, "level": level, "propagate": not own}
    return config


def build_server(app: Any, limits: ServiceLimits, gauge: ConnectionGauge, *,
                 log_level: str = "info") -> GuardedServer:
    """The server of :func:`serve`, to be run (``.run(sockets=[sock])``) and stopped
    (``.should_exit = True``) by its caller."""
    # access_log=False: fcnseg's access line, with its duration, replaces uvicorn's.
    return GuardedServer(uvicorn.Config(app, log_level=log_level,
                                        log_config=log_config(log_level), access_log=False,
                                        http=guarded_protocol(gauge, limits.header_timeout_s)))


def serve(app: Any, sock: socket.socket, limits: ServiceLimits, gauge: ConnectionGauge, *,
          log_level: str = "info") -> None:
    """Serve ``app`` on the bound ``sock`` until interrupted (``gauge.limit``: the cap)."""
    build_server(app, limits, gauge, log_level=log_level).run(sockets=[sock])


class PortUnavailableError(OSError, RuntimeError):
    """The address to serve on cannot be bound (in use, not ours, or not an address here)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound to ``host:port`` (IPv6 when ``host`` has a colon).

    Raises:
        PortUnavailableError: one line naming ``host:port`` and why (e.g. already in use).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:  # as uvicorn binds (an IPv6 host dual-stack where the system makes it so)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise PortUnavailableError(f"cannot serve on {where}: {e.strerror or e}; choose "
                                   f"another --port or --host") from None
    sock.set_inheritable(True)
    return sock


def serve_app(app: Any, host: str = "127.0.0.1", port: int = 8000, *,
              log_level: str = "info") -> None:
    """Serve an app of :func:`~fcnseg.serve.app.create_app` on ``host:port`` until
    interrupted, as ``fcnseg serve`` does, with the guards of the module doc from its limits."""
    service = app.state.service
    with bind_socket(host, port) as sock:
        serve(app, sock, service.limits, service.connections, log_level=log_level)
