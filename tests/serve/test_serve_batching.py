"""Requests that wait for the model share a forward pass, and each gets its own answer."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from fcnseg.serve import create_app
from fcnseg.serve.batching import InferenceBatcher, batching_from_probe, decide_batching


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def _hold_first_predict(segmenter, monkeypatch):
    """Make the first single-image forward pass wait for ``release``, so that the requests
    sent meanwhile queue up behind it."""
    entered, release = threading.Event(), threading.Event()
    real_predict = segmenter.predict
    calls = []

    def held_predict(image, **kwargs):
        calls.append(image.shape)
        if len(calls) == 1:
            entered.set()
            release.wait(timeout=30)
        return real_predict(image, **kwargs)

    monkeypatch.setattr(segmenter, "predict", held_predict)
    return entered, release


def _post(client: TestClient, png: bytes) -> np.ndarray:
    r = client.post("/v1/segment", files={"image": ("a.png", png, "image/png")})
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)))


def _send_queued(app, images, entered, release) -> tuple[list[np.ndarray], dict]:
    """POST ``images`` (pixels, png) pairs, all but the first queued behind the first one held
    in the model; the labels answered and ``/healthz``'s batching report."""
    with TestClient(app) as client, ThreadPoolExecutor(len(images)) as pool:
        batcher = app.state.service.batcher
        first = pool.submit(_post, client, images[0][1])
        assert entered.wait(timeout=20)
        rest = [pool.submit(_post, client, png) for _, png in images[1:]]
        _wait_for(lambda: batcher._jobs.qsize() == len(images) - 1)
        release.set()
        labels = [first.result(timeout=30)] + [f.result(timeout=30) for f in rest]
        return labels, client.get("/healthz").json()["batching"]


def test_queued_requests_share_one_forward_pass_and_get_their_own_answers(
        segmenter, make_image, monkeypatch):
    images = [make_image(40, 56, seed=i) for i in range(4)]
    expected = [segmenter.predict(pixels).label for pixels, _ in images]
    entered, release = _hold_first_predict(segmenter, monkeypatch)
    app = create_app(segmenter, max_concurrency=4, max_queue=4, batching=True)
    labels, stats = _send_queued(app, images, entered, release)
    for label, want in zip(labels, expected, strict=True):
        np.testing.assert_array_equal(label, want)
    assert stats["batch_sizes"] == {"1": 1, "3": 1}
    assert (stats["forward_passes"], stats["images"], stats["largest_batch"]) == (2, 4, 3)
    assert stats["mean_batch"] == 2.0
    assert stats["enabled"] is True


def test_with_batching_off_queued_requests_run_one_by_one(segmenter, make_image, monkeypatch):
    images = [make_image(40, 56, seed=i) for i in range(4)]
    expected = [segmenter.predict(pixels).label for pixels, _ in images]
    entered, release = _hold_first_predict(segmenter, monkeypatch)
    app = create_app(segmenter, max_concurrency=4, max_queue=4, batching=False)
    labels, stats = _send_queued(app, images, entered, release)
    for label, want in zip(labels, expected, strict=True):
        np.testing.assert_array_equal(label, want)
    assert stats["batch_sizes"] == {"1": 4}
    assert (stats["enabled"], stats["reason"]) == (False, "off: as configured")


def test_by_default_healthz_reports_the_probes_decision(segmenter):
    with TestClient(create_app(segmenter, max_concurrency=4)) as client:
        batching = client.get("/healthz").json()["batching"]
    decision = decide_batching(segmenter, max_pixels=10**6)
    assert batching["enabled"] is decision.enabled
    assert batching["reason"] == decision.reason
    assert batching["reason"].startswith("on: on this CPU" if decision.enabled
                                         else "off: on this CPU")
    assert set(batching["probe"]) == {"two_single_s", "batch_of_two_s"}


def test_a_probe_batches_only_when_a_batch_is_clearly_faster_per_image():
    assert batching_from_probe(single_s=1.0, batch_s=0.6).enabled
    assert not batching_from_probe(single_s=1.0, batch_s=0.95).enabled
    slower = batching_from_probe(single_s=1.0, batch_s=1.2)
    assert not slower.enabled
    assert slower.reason == "off: on this CPU a batch of two took 1.20× the time of two " \
                            "single passes, no faster than one image at a time"


def test_batching_off_for_a_small_gain_says_why_it_is_too_small():
    # 0.92× is faster, yet not by enough: the reason must say so rather than read as a
    # contradiction.
    reason = batching_from_probe(single_s=1.0, batch_s=0.92).reason
    assert reason.startswith("off:") and "0.92×" in reason
    assert "too small" in reason and "0.90× or less" in reason


class _TimedSegmenter:
    """A stand-in segmenter on ``device`` whose passes advance a fake clock: ``single_s`` per
    image alone, ``batch_s`` per batch."""

    def __init__(self, device: str, single_s: float, batch_s: float) -> None:
        self.device = torch.device(device)
        self.single_s, self.batch_s = single_s, batch_s
        self.now = 0.0
        self.calls: list[str] = []

    def clock(self) -> float:
        return self.now

    def predict(self, image, **kwargs):
        self.calls.append("single")
        self.now += self.single_s

    def predict_batch(self, images, **kwargs):
        self.calls.append(f"batch of {len(images)}")
        self.now += self.batch_s


@pytest.mark.parametrize(("batch_s", "enabled"), [(1.2, True), (2.1, False)])
def test_on_a_cpu_the_probe_times_two_singles_against_a_batch_of_two(batch_s, enabled):
    seg = _TimedSegmenter("cpu", single_s=1.0, batch_s=batch_s)
    decision = decide_batching(seg, max_pixels=10**6, rounds=2, clock=seg.clock)
    assert decision.enabled is enabled
    assert (decision.single_s, decision.batch_s) == pytest.approx((2.0, batch_s), rel=1e-9)
    assert seg.calls == ["single", "single", "batch of 2"] * 3  # a warm-up and 2 rounds
    assert decide_batching(seg, max_pixels=10**6, clock=seg.clock) is decision  # kept
    assert len(seg.calls) == 9


def test_on_a_gpu_batching_is_on_without_a_probe():
    seg = _TimedSegmenter("cuda", single_s=1.0, batch_s=5.0)
    decision = decide_batching(seg, max_pixels=10**6, clock=seg.clock)
    assert decision.enabled
    assert decision.reason.startswith("on: a cuda device")
    assert seg.calls == []


def _run_queued(batcher, jobs, entered):
    """Hand ``jobs`` ((image, return_probs) pairs) to ``batcher`` from threads, all queued
    behind a first image held in the model (until ``entered`` is set), and return the futures
    of the first image and of the jobs."""
    pool = ThreadPoolExecutor(len(jobs) + 1)
    blocker = pool.submit(batcher.predict, jobs[0][0])
    assert entered.wait(timeout=20)
    futures = [pool.submit(batcher.predict, image, return_probs=probs) for image, probs in jobs]
    _wait_for(lambda: batcher._jobs.qsize() == len(jobs))
    pool.shutdown(wait=False)  # its threads end once the caller releases the held image
    return blocker, futures


def test_batches_group_same_size_images_and_keep_probability_requests_apart(
        segmenter, make_image, monkeypatch):
    entered, release = _hold_first_predict(segmenter, monkeypatch)
    batcher = InferenceBatcher(segmenter, max_batch=8, max_pixels=10**6)
    a = [make_image(32, 48, seed=i)[0] for i in range(3)]
    b = [make_image(48, 32, seed=10 + i)[0] for i in range(2)]
    jobs = [(a[0], False), (b[0], False), (a[1], False), (a[2], True), (b[1], False)]
    try:
        blocker, futures = _run_queued(batcher, jobs, entered)
        release.set()
        preds = [f.result(timeout=30) for f in futures]
        blocker.result(timeout=30)
    finally:
        release.set()
        batcher.close()
    # The held image alone; then a[0]+a[1] together, a[2] (with probabilities) alone, b[0]+b[1].
    assert batcher.stats.batch_sizes == {1: 2, 2: 2}
    for (image, probs), pred in zip(jobs, preds, strict=True):
        np.testing.assert_array_equal(pred.label, segmenter.predict(image).label)
        assert (pred.probs is not None) == probs


def test_a_forward_pass_holds_no_more_pixels_than_max_pixels(segmenter, make_image,
                                                              monkeypatch):
    entered, release = _hold_first_predict(segmenter, monkeypatch)
    # Room for two 32×32 images per pass: three queued ones run as 2 + 1.
    batcher = InferenceBatcher(segmenter, max_batch=8, max_pixels=2 * 32 * 32)
    jobs = [(make_image(32, 32, seed=i)[0], False) for i in range(3)]
    try:
        blocker, futures = _run_queued(batcher, jobs, entered)
        release.set()
        for f in futures:
            f.result(timeout=30)
    finally:
        release.set()
        batcher.close()
    assert batcher.stats.batch_sizes == {1: 2, 2: 1}


def test_a_failing_batch_is_retried_image_by_image(segmenter, make_image, monkeypatch):
    entered, release = _hold_first_predict(segmenter, monkeypatch)
    real_batch = segmenter.predict_batch

    def broken_batch(images, **kwargs):
        images = list(images)
        if len(images) > 1:
            raise RuntimeError("out of memory (simulated)")
        return real_batch(images, **kwargs)

    monkeypatch.setattr(segmenter, "predict_batch", broken_batch)
    batcher = InferenceBatcher(segmenter, max_batch=4, max_pixels=10**6)
    jobs = [(make_image(32, 32, seed=i)[0], False) for i in range(3)]
    try:
        blocker, futures = _run_queued(batcher, jobs, entered)
        release.set()
        preds = [f.result(timeout=30) for f in futures]
    finally:
        release.set()
        batcher.close()
    for (image, _), pred in zip(jobs, preds, strict=True):
        np.testing.assert_array_equal(pred.label, segmenter.predict(image).label)
    assert batcher.stats.batch_sizes == {1: 4}


def test_a_closed_batcher_refuses_new_images(segmenter, make_image):
    batcher = InferenceBatcher(segmenter, max_batch=2, max_pixels=10**6)
    image = make_image(32, 32)[0]
    batcher.predict(image)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.predict(image)
