"""The server under the app: a header timeout, a cap on connections (in /healthz), and accept
errors logged in one line at most every few seconds, on loopback sockets."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fcnseg.inference import Segmenter
from fcnseg.serve import create_app
from fcnseg.serve.server import AcceptErrorLog, GuardedServer, build_server, serve_app

_GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class _Running:
    """``fcnseg serve``'s server (the guarded uvicorn) in a thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        service = app.state.service
        self.gauge = service.connections
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = build_server(app, service.limits, service.connections,
                                   log_level="warning")
        self.server.config.lifespan = "off"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        _until(lambda: self.server.started, "the server to start")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (5 s at most)."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.fixture
def running(segmenter: Segmenter) -> Iterator[Callable[..., _Running]]:
    started: list[_Running] = []

    def start(**limits: Any) -> _Running:
        started.append(_Running(create_app(segmenter, batching=False, **limits)))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_a_client_trickling_its_headers_gets_408_and_is_closed(running) -> None:
    server = running(header_timeout_s=0.5)
    with server.connect() as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed_after = None
        start = time.monotonic()
        for i in range(40):  # a header byte every 0.1 s: never complete within 4 s
            try:
                slow.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:  # the server closed the connection
                closed_after = time.monotonic() - start
                break
            time.sleep(0.1)
        answer = _read_all(slow)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"headers did not arrive in time" in answer
    assert closed_after is None or closed_after < 3.0
    assert server.gauge.header_timeouts == 1
    with server.connect() as quick:  # a client that sends its headers at once is answered
        quick.sendall(_GET_HEALTH)
        assert _read_all(quick).startswith(b"HTTP/1.1 200 ")


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(running) -> None:
    server = running(header_timeout_s=0.3)
    with server.connect() as idle:
        assert _read_all(idle).startswith(b"HTTP/1.1 408 ")
    _until(lambda: server.gauge.open == 0, "the connection to be counted closed")


def test_a_header_timeout_is_logged_once_with_the_client_address(running, caplog) -> None:
    server = running(header_timeout_s=0.3)
    with caplog.at_level(logging.WARNING, logger="fcnseg.serve"), server.connect() as idle:
        client = "{}:{}".format(*idle.getsockname())
        assert _read_all(idle).startswith(b"HTTP/1.1 408 ")
    closed = [r.getMessage() for r in caplog.records if "--header-timeout" in r.getMessage()]
    assert len(closed) == 1 and client in closed[0], closed


def test_connections_beyond_the_cap_get_503_and_healthz_reports_them(running) -> None:
    server = running(max_connections=2, header_timeout_s=30)
    first, second = server.connect(), server.connect()
    try:
        _until(lambda: server.gauge.open == 2, "two open connections")
        with server.connect() as third:
            answer = _read_all(third)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer
        head, body = answer.split(b"\r\n\r\n", 1)
        assert b"\r\ndate: " in head and b"\r\nserver: " in head  # as every other answer's
        assert body == b'{"detail":"too many open connections; try again later"}'
        first.close()
        _until(lambda: server.gauge.open == 1, "the first connection to be counted closed")
        with server.connect() as check:
            check.sendall(_GET_HEALTH)
            body = _read_all(check).split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["connections"] == {"open": 2, "limit": 2, "refused": 1,
                                                   "header_timeouts": 0}
    finally:
        first.close()
        second.close()


def test_under_another_server_healthz_claims_no_connection_cap(segmenter: Segmenter) -> None:
    from fastapi.testclient import TestClient

    # The test client calls the app directly, as plain uvicorn.run(app) would serve it:
    # nothing counts, caps or times out connections, so nothing may claim to.
    with TestClient(create_app(segmenter, batching=False, max_connections=2)) as client:
        assert client.get("/healthz").json()["connections"] is None
        limits = client.get("/v1/model").json()["limits"]
    assert limits["header_timeout_s"] is None and limits["max_connections"] is None
    assert limits["max_pixels"] > 0  # the app's own limits still apply and are reported


def test_serve_app_keeps_the_header_timeout_and_the_connection_cap(
        segmenter: Segmenter, monkeypatch: pytest.MonkeyPatch) -> None:
    servers: list[GuardedServer] = []
    startup = GuardedServer.startup

    async def remember(self: GuardedServer, sockets=None) -> None:
        servers.append(self)
        await startup(self, sockets=sockets)

    monkeypatch.setattr(GuardedServer, "startup", remember)
    with socket.socket() as s:  # a free port (released just before serve_app takes it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(segmenter, batching=False, header_timeout_s=0.3, max_connections=3)
    thread = threading.Thread(target=serve_app, args=(app, "127.0.0.1", port),
                              kwargs={"log_level": "warning"}, daemon=True)
    thread.start()
    try:
        _until(lambda: servers and servers[0].started, "serve_app to start")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
            assert _read_all(slow).startswith(b"HTTP/1.1 408 ")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as check:
            check.sendall(_GET_HEALTH)
            body = _read_all(check).split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["connections"] == {"open": 1, "limit": 3, "refused": 0,
                                                   "header_timeouts": 1}
    finally:
        if servers:
            servers[0].should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_serve_app_on_a_busy_port_raises_an_oserror_in_one_line(segmenter: Segmenter) -> None:
    app = create_app(segmenter, batching=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=rf"^cannot serve on 127\.0\.0\.1:{port}: [^\n]*; "
                                          r"choose another --port or --host$"):
            serve_app(app, "127.0.0.1", port)


def _health_check(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as check:
        check.sendall(_GET_HEALTH)
        assert _read_all(check).startswith(b"HTTP/1.1 200 ")


def _serve_one_health_check(segmenter: Segmenter, log_level: str = "info",
                            client: Callable[[tuple[str, int]], None] = _health_check) -> None:
    """Start ``fcnseg serve``'s server (its logging configured as the command configures it),
    let ``client`` talk to its address (default: one ``GET /healthz``) and stop."""
    app = create_app(segmenter, batching=False)
    service = app.state.service
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = build_server(app, service.limits, service.connections, log_level=log_level)
        server.config.lifespan = "off"
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            _until(lambda: server.started, "the server to start")
            client(sock.getsockname())
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_access_log_lines_begin_with_the_time(segmenter: Segmenter, capsys) -> None:
    _serve_one_health_check(segmenter)
    access = [line for line in capsys.readouterr().out.splitlines() if "GET /healthz" in line]
    assert len(access) == 1
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} INFO: ", access[0]), access


def test_each_request_is_logged_once_with_its_status_and_milliseconds(segmenter: Segmenter,
                                                                      capsys) -> None:
    _serve_one_health_check(segmenter)
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "/healthz" in line]
    assert len(lines) == 1, lines  # not uvicorn's line beside fcnseg's
    assert re.search(r'127\.0\.0\.1:\d+ - "GET /healthz HTTP/1\.1" 200 \d+\.\d ms$',
                     lines[0]), lines


def test_a_request_whose_client_hangs_up_unanswered_gets_an_access_line_without_status(
        segmenter: Segmenter, capsys) -> None:
    def hang_up_mid_upload(address: tuple[str, int]) -> None:
        with socket.create_connection(address, timeout=5) as client:
            client.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                           b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
            time.sleep(0.2)
        time.sleep(0.3)  # the server sees the connection lost

    _serve_one_health_check(segmenter, client=hang_up_mid_upload)
    lines = [line for line in capsys.readouterr().out.splitlines() if "/v1/segment" in line]
    assert len(lines) == 1, lines
    assert re.search(r'"POST /v1/segment HTTP/1\.1" - \d+\.\d ms \(the client hung up before the '
                     r'answer\)$', lines[0]), lines


def test_a_refused_connection_is_logged_once_with_the_client_address(running, caplog) -> None:
    server = running(max_connections=1, header_timeout_s=30)
    with server.connect() as first:
        _until(lambda: server.gauge.open == 1, "one open connection")
        with caplog.at_level(logging.WARNING, logger="fcnseg.serve"), \
                server.connect() as second:
            client = "{}:{}".format(*second.getsockname())
            assert _read_all(second).startswith(b"HTTP/1.1 503 ")
        first.close()
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and client in refusals[0], refusals
    assert "--max-connections" in refusals[0]


def test_serve_messages_go_once_to_the_handler_the_application_configured(
        segmenter: Segmenter, capsys) -> None:
    root = logging.getLogger()
    saved, stream = root.handlers[:], io.StringIO()
    application_handler = logging.StreamHandler(stream)  # as logging.basicConfig() adds
    application_handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    root.handlers[:] = [application_handler]
    try:
        _serve_one_health_check(segmenter, log_level="warning")
        logging.getLogger("fcnseg.serve").warning("a client hung up")
    finally:
        root.handlers[:] = saved
    assert stream.getvalue() == "WARNING:fcnseg.serve:a client hung up\n"
    assert "a client hung up" not in capsys.readouterr().err


def test_serve_messages_carry_their_level_without_an_application_handler(
        segmenter: Segmenter, capsys) -> None:
    root, serve_log = logging.getLogger(), logging.getLogger("fcnseg.serve")
    saved = root.handlers[:]
    root.handlers[:] = []
    try:
        _serve_one_health_check(segmenter, log_level="warning")
        serve_log.warning("a client hung up")
    finally:
        root.handlers[:] = saved
        serve_log.handlers.clear()  # its handler writes to this test's captured stderr
        serve_log.propagate = True
    lines = [line for line in capsys.readouterr().err.splitlines() if "hung up" in line]
    assert len(lines) == 1 and re.search(r" WARNING: +a client hung up$", lines[0]), lines


def test_accept_errors_are_logged_once_per_interval_with_a_count(caplog) -> None:
    handler = AcceptErrorLog(interval_s=3600)
    loop_errors: list[dict] = []

    class Loop:
        def default_exception_handler(self, context: dict) -> None:
            loop_errors.append(context)

    emfile = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
    with caplog.at_level(logging.ERROR, logger="fcnseg.serve"):
        for _ in range(1000):
            handler(Loop(), {"message": "socket.accept() out of system resource",
                             "exception": emfile})
        handler(Loop(), {"message": "something else", "exception": ValueError("x")})
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is None
    assert "Too many open files" in caplog.records[0].getMessage()
    assert [c["message"] for c in loop_errors] == ["something else"]
    handler.interval_s = 0.0
    with caplog.at_level(logging.ERROR, logger="fcnseg.serve"):
        handler(Loop(), {"message": "socket.accept() out of system resource", "exception": emfile})
    assert "999 more since the last report" in caplog.records[-1].getMessage()


# A server process with few file descriptors: every connection past them fails in accept().
_STARVED_SERVER = r"""
import resource, socket, sys
from fcnseg.serve.limits import ConnectionGauge, ServiceLimits
from fcnseg.serve.server import serve

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
serve(app, sock, ServiceLimits(header_timeout_s=30), ConnectionGauge(limit=1000),
      log_level="warning")
"""


def test_running_out_of_file_descriptors_logs_no_traceback_per_accept(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _STARVED_SERVER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    clients: list[socket.socket] = []
    try:
        port = int(proc.stdout.readline())
        _until(lambda: _accepts(port), "the server to answer")
        for _ in range(100):  # more than the 64 descriptors the server may hold
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(2.5)  # accept() fails again and again meanwhile
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    reports = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert "Traceback" not in err and "out of system resource" not in err, err[-2000:]
    assert len(reports) == 1 and "Too many open files" in reports[0]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return _read_all(s).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_healthz_connections_keep_the_documented_key_order() -> None:
    from fcnseg.serve.limits import ConnectionGauge

    gauge = ConnectionGauge(limit=256, open=1, enforced=True)
    # docs/serve.md shows {"open": 1, "limit": 256, "refused": 0, "header_timeouts": 0}
    assert list(gauge.to_dict().items()) == [("open", 1), ("limit", 256), ("refused", 0),
                                             ("header_timeouts", 0)]
