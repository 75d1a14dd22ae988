"""A load test on loopback: uvicorn serving real sockets, good and bad requests mixed, beside
clients that stall mid-upload."""

from __future__ import annotations

import io
import random
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import numpy as np
from PIL import Image

from fcnseg.serve import create_app

REQUESTS = 40
STALLED = 50
BODY_TIMEOUT_S = 1.0
DEADLINE_S = 45.0


class StalledUploads:
    """Keeps ``count`` sockets stalled mid-upload on 127.0.0.1: each sends headers declaring
    100000 bytes, then 4 bytes, and waits. A socket the server answers is replaced by a new
    one until :meth:`stop`; then the thread waits (bounded) for the rest to be answered."""

    REQUEST = (b"POST /v1/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
               b"Content-Length: 100000\r\n\r\n\x89PNG")

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.statuses: list[int | None] = []  # one per answered socket
        self.unanswered = 0
        self._open = [self._stall() for _ in range(count)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _stall(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(self.REQUEST)
        return sock

    def _answer(self, sock: socket.socket) -> int | None:
        data = b""
        try:
            while chunk := sock.recv(65536):  # the server closes the connection after its 408
                data += chunk
        except OSError:  # reset, or not closed within the socket's timeout: keep what came
            pass
        sock.close()
        first = data.split(b"\r\n", 1)[0].split()
        return int(first[1]) if len(first) > 1 and first[1].isdigit() else None

    def _run(self) -> None:
        deadline = None
        while self._open:
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + BODY_TIMEOUT_S + 15
            if deadline is not None and time.monotonic() > deadline:
                break
            readable, _, _ = select.select(self._open, [], [], 0.05)
            for sock in readable:
                self._open.remove(sock)
                self.statuses.append(self._answer(sock))
                if not self._stop.is_set():
                    self._open.append(self._stall())
        self.unanswered = len(self._open)
        for sock in self._open:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_mixed_requests_beside_stalled_uploads_are_all_answered_correctly(
        segmenter, make_image, live_server):
    rng = random.Random(0)
    cases: list[tuple[str, bytes, np.ndarray | int]] = []  # (kind, body, expected)
    for i in range(24):
        pixels, png = make_image(rng.randint(32, 96), rng.randint(32, 96), seed=i)
        cases.append(("good", png, segmenter.predict(pixels).label))
    for i in range(4):
        _, png = make_image(64, 64, seed=100 + i)
        cases.append(("corrupt", png[: len(png) // 3], 400))
        cases.append(("not an image", b"%PDF-1.4 not really\n" * (i + 1), 415))
        cases.append(("too many pixels", make_image(97 + i, 96, seed=i)[1], 413))
        # Larger than the byte limit, up to ~3 MB: the server drops the rest of the body as it
        # arrives, so the client still gets its 413 rather than a reset connection.
        cases.append(("too many bytes", b"\x89PNG\r\n\x1a\n" + bytes(300_000 * 3**i), 413))
    assert len(cases) == REQUESTS
    rng.shuffle(cases)

    # 10 places (2 running + 8 queued): far fewer than the stalled sockets, enough for the
    # 8 clients of the mixed load. A stalled upload must hold none of them.
    server = live_server(create_app(segmenter, max_upload_bytes=200_000, max_pixels=96 * 96,
                                    max_concurrency=2, max_queue=8,
                                    body_timeout_s=BODY_TIMEOUT_S))
    stalled = StalledUploads(server.port, STALLED)
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client, \
                ThreadPoolExecutor(8) as pool:

            def send(body: bytes) -> httpx.Response:
                return client.post("/v1/segment", files={"image": ("upload", body, "image/png")})

            futures = [pool.submit(send, body) for _, body, _ in cases]
            done, pending = wait(futures, timeout=DEADLINE_S)
            assert not pending, f"{len(pending)} of {REQUESTS} unanswered in {DEADLINE_S} s"
    finally:
        stalled.stop()
    responses = [future.result() for future in futures]
    assert [r.status_code for r in responses].count(503) == 0  # no lockout
    for (kind, _, expected), response in zip(cases, responses, strict=True):
        if kind == "good":
            assert response.status_code == 200, (kind, response.text)
            label = np.asarray(Image.open(io.BytesIO(response.content)))
            np.testing.assert_array_equal(label, expected, err_msg=kind)
        else:
            assert response.status_code == expected, (kind, response.text)
    # Every stalled upload was answered 408 once the body timeout passed, and let go.
    assert stalled.unanswered == 0
    assert len(stalled.statuses) >= STALLED
    assert set(stalled.statuses) == {408}
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        health = client.get("/healthz")
    assert health.status_code == 200
    assert (health.json()["running"], health.json()["waiting"]) == (0, 0)
