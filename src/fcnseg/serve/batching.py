"""One thread runs the model for the whole service; requests that wait for it share a batch.

The :class:`InferenceBatcher`'s thread takes every image waiting (after a short pause), stacks
those of one size and need for probabilities into a forward pass of at most ``max_batch``
images and ``max_pixels`` pixels (so no more memory than the largest single request), and
answers each request; a failed batch is rerun image by image so only the request at fault fails.

Whether to batch is decided at start (:func:`decide_batching`): on a GPU yes; on a CPU, where
one image already keeps every core busy and a batch is often no faster per image, only when a
short probe finds a batch of two clearly faster than two single passes.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fcnseg.inference import Prediction, Segmenter

#: Batching is chosen on a CPU when a batch of two takes at most this fraction of the time of
#: two single passes: a clear gain, not one a busy machine's noise could fake.
BATCH_GAIN = 0.9
#: Side of the square images the CPU probe times (or less, to stay within ``max_pixels``).
PROBE_SIDE = 256


@dataclass(frozen=True)
class BatchingDecision:
    """Whether requests that wait for the model share a forward pass, and why (``reason``: one
    line, as ``GET /healthz`` reports it); the probe's seconds for two images one by one
    (``single_s``) and as one batch (``batch_s``), None without a probe."""

    enabled: bool
    reason: str
    single_s: float | None = None
    batch_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """As ``GET /healthz`` reports it."""
        out: dict[str, Any] = {"enabled": self.enabled, "reason": self.reason}
        if self.single_s is not None and self.batch_s is not None:
            out["probe"] = {"two_single_s": round(self.single_s, 4),
                            "batch_of_two_s": round(self.batch_s, 4)}
        return out


def batching_from_probe(single_s: float, batch_s: float) -> BatchingDecision:
    """The decision from a probe's times: two images one by one (``single_s``) against the
    same two as one batch (``batch_s``); batching only when ``batch_s <= BATCH_GAIN *
    single_s``."""
    ratio = batch_s / single_s
    took = f"on this CPU a batch of two took {ratio:.2f}× the time of two single passes"
    needs = f"(batching needs {BATCH_GAIN:.2f}× or less)"
    if batch_s <= BATCH_GAIN * single_s:
        return BatchingDecision(True, f"on: {took} {needs}", single_s, batch_s)
    why = (f"a gain too small to pay for waiting to fill a batch {needs}" if ratio < 1.0
           else "no faster than one image at a time")
    return BatchingDecision(False, f"off: {took}, {why}", single_s, batch_s)


_decisions: weakref.WeakKeyDictionary[Segmenter, BatchingDecision] = weakref.WeakKeyDictionary()


def decide_batching(segmenter: Segmenter, *, max_pixels: int, rounds: int = 3,
                    clock: Any = time.perf_counter) -> BatchingDecision:
    """Whether a service of ``segmenter`` should batch queued requests: on a GPU yes; on a CPU
    as :func:`batching_from_probe` finds over ``rounds`` interleaved rounds (the fastest of
    each) of two :data:`PROBE_SIDE`² images. Kept per segmenter: no second probe."""
    known = _decisions.get(segmenter)
    if known is not None:
        return known
    if segmenter.device.type != "cpu":
        decision = BatchingDecision(True, f"on: a {segmenter.device.type} device runs the "
                                          f"images of a batch in parallel")
    else:
        side = max(32, min(PROBE_SIDE, math.isqrt(max_pixels)))
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(2)]
        singles, batches = [], []
        for r in range(rounds + 1):  # round 0 warms up (oneDNN primitives, caches)
            start = clock()
            for image in images:
                segmenter.predict(image)
            middle = clock()
            segmenter.predict_batch(images, batch_size=2)
            end = clock()
            if r:
                singles.append(middle - start)
                batches.append(end - middle)
        decision = batching_from_probe(min(singles), min(batches))
    _decisions[segmenter] = decision
    return decision


@dataclass
class _Job:
    image: np.ndarray | str  # a raster file's path: segmented alone, by Segmenter.predict
    return_probs: bool
    answer: Future[Prediction] = field(default_factory=Future)


@dataclass
class BatchStats:
    """What the batcher has done: how many forward passes it ran of each size (images)."""

    batch_sizes: Counter[int] = field(default_factory=Counter)

    def add(self, size: int) -> None:
        """Count one forward pass of ``size`` images."""
        self.batch_sizes[size] += 1

    def to_dict(self) -> dict[str, Any]:
        """As ``GET /healthz`` reports it (``mean_batch``: images per forward pass)."""
        passes = self.batch_sizes.total()
        images = sum(size * n for size, n in self.batch_sizes.items())
        return {"forward_passes": passes, "images": images,
                "mean_batch": round(images / passes if passes else 0.0, 3),
                "largest_batch": max(self.batch_sizes, default=0),
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}


class InferenceBatcher:
    """Runs ``segmenter`` in one thread on batches of the images that requests hand it, at most
    ``max_batch`` images and ``max_pixels`` pixels a pass (a larger single image runs alone)."""

    #: After the first image arrives, how long to wait for others.
    max_wait_s = 0.002

    def __init__(self, segmenter: Segmenter, *, max_batch: int, max_pixels: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.segmenter = segmenter
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        self.stats = BatchStats()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def predict(self, image: np.ndarray | str, *, return_probs: bool = False) -> Prediction:
        """Segment one decoded H×W×3 uint8 image in the next batch, or the raster file at the
        path ``image`` alone; blocks (call it from a worker thread). Raises what the segmenter
        raised for this image."""
        job = _Job(image, return_probs)
        with self._lock:
            if self._closed:
                raise RuntimeError("the inference batcher is closed")
            if self._thread is None:  # started on first use: an app never used holds no thread
                self._thread = threading.Thread(target=self._run, name="fcnseg-inference",
                                                daemon=True)
                self._thread.start()
            self._jobs.put(job)
        return job.answer.result()

    def close(self) -> None:
        """Stop the thread once the images already handed in are done."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            thread.join(timeout=60)

    # -- the inference thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            jobs, stop = self._gather(first)
            for batch in self._batches(jobs):
                self._answer(batch)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job, those behind it within ``max_wait_s``, and whether it was closed."""
        jobs = [first]
        if self.max_batch == 1:  # nothing to wait for: each image runs alone anyway
            return jobs, False
        deadline = time.monotonic() + self.max_wait_s
        while True:
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return jobs, False
            if job is None:
                return jobs, True
            jobs.append(job)

    def _batches(self, jobs: list[_Job]) -> Iterator[list[_Job]]:
        """``jobs`` by image size and need for probabilities, cut into passes within limits."""
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for job in jobs:
            if isinstance(job.image, str):  # a raster file: alone
                yield [job]
                continue
            groups.setdefault((job.image.shape, job.return_probs), []).append(job)
        for group in groups.values():
            height, width = group[0].image.shape[:2]
            per_pass = max(1, min(self.max_batch, self.max_pixels // max(1, height * width)))
            for start in range(0, len(group), per_pass):
                yield group[start : start + per_pass]

    def _answer(self, batch: list[_Job]) -> None:
        """Run one forward pass and give each job its prediction (or its error)."""
        probs = batch[0].return_probs
        if len(batch) > 1:
            try:
                preds = self.segmenter.predict_batch([j.image for j in batch],
                                                     return_probs=probs, batch_size=len(batch))
            except Exception:  # noqa: BLE001 - run them one by one to find the one at fault
                pass
            else:
                self.stats.add(len(batch))
                for job, pred in zip(batch, preds, strict=True):
                    job.answer.set_result(pred)
                return
        for job in batch:
            try:
                pred = self.segmenter.predict(job.image, return_probs=probs)
            except BaseException as e:  # noqa: BLE001 - handed to the request that waits
                job.answer.set_exception(e)
            else:
                job.answer.set_result(pred)
            finally:
                self.stats.add(1)
