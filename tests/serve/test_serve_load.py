"""A load test on loopback: uvicorn serving real sockets, good and bad requests mixed."""

from __future__ import annotations

import io
import random
import time
from concurrent.futures import ThreadPoolExecutor, wait

import httpx
import numpy as np
from PIL import Image

from fcnseg.serve import create_app

REQUESTS = 40
DEADLINE_S = 45.0


def test_mixed_concurrent_requests_are_all_answered_correctly(segmenter, make_image,
                                                              live_server):
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
        # Larger than the byte limit, up to ~3 MB: the server reads and drops the rest of the
        # body, so the client still gets its 413 rather than a reset connection.
        cases.append(("too many bytes", b"\x89PNG\r\n\x1a\n" + bytes(300_000 * 3**i), 413))
    assert len(cases) == REQUESTS
    rng.shuffle(cases)

    server = live_server(create_app(segmenter, max_upload_bytes=200_000, max_pixels=96 * 96,
                                    max_concurrency=2, max_queue=REQUESTS))
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30.0) as client, ThreadPoolExecutor(8) as pool:

        def send(body: bytes) -> httpx.Response:
            return client.post("/v1/segment", files={"image": ("upload", body, "image/png")})

        futures = [pool.submit(send, body) for _, body, _ in cases]
        done, pending = wait(futures, timeout=DEADLINE_S)
        assert not pending, f"{len(pending)} of {REQUESTS} requests unanswered in {DEADLINE_S} s"
        for (kind, _, expected), future in zip(cases, futures, strict=True):
            response = future.result()
            if kind == "good":
                assert response.status_code == 200, (kind, response.text)
                label = np.asarray(Image.open(io.BytesIO(response.content)))
                np.testing.assert_array_equal(label, expected, err_msg=kind)
            else:
                assert response.status_code == expected, (kind, response.text)
        health = client.get("/healthz")
    elapsed = time.monotonic() - started
    assert health.status_code == 200
    assert (health.json()["running"], health.json()["waiting"]) == (0, 0)
    assert elapsed < DEADLINE_S
