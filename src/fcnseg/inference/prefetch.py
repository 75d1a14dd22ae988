"""Threads here work ahead of a consumer and hand results back in order.
:func:`segment_files` reads images ahead of the model (decoders and zlib release the GIL, so
reading and writing run beside the forward passes rather than between them)."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fcnseg.inference.images import ImageError, load_image, predict_limit
from fcnseg.inference.segmenter import Prediction, ProbsWanted, Segmenter

#: How much lower (Linux nice levels) reading and writing threads run than the model's: they get
#: the cores it leaves idle.
BACKGROUND_NICENESS = 10

T = TypeVar("T")


def default_workers() -> int:
    """Threads for reading, and as many for writing: one per two cores, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def _run_in_background() -> None:
    """Lower the calling thread's priority by :data:`BACKGROUND_NICENESS` where allowed."""
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid,
                       min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS))


def background_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A thread pool for work beside the model (decoding, encoding), at a lower priority."""
    return ThreadPoolExecutor(workers, thread_name_prefix=name,
                              initializer=_run_in_background)


def in_order(jobs: Iterable[Callable[[], T]], pool: ThreadPoolExecutor,
             ahead: int) -> Iterator[T]:
    """Run ``jobs`` in ``pool``, at most ``ahead`` submitted and not yet handed back; yield
    their results (or raise their exceptions) in submission order, each as soon as ready."""
    pending: deque[Future[T]] = deque()
    for job in jobs:
        pending.append(pool.submit(job))
        while pending and (len(pending) >= ahead or pending[0].done()):
            yield pending.popleft().result()
    yield from (pending.popleft().result() for _ in range(len(pending)))


def until(stop: Callable[[], bool] | None, items: Iterator[T]) -> Iterator[T]:
    """``items`` until ``stop()`` is true, asked before each is taken."""
    while not (stop and stop()) and (item := next(items, None)) is not None:
        yield item


def read_or_error(path: Path, max_pixels: int | None) -> np.ndarray | ImageError:
    """The image at ``path``, or the :class:`ImageError` naming why it cannot be read."""
    try:
        with predict_limit():
            return load_image(path, max_pixels=max_pixels)
    except ImageError as e:
        return e


def read_ahead(
    inputs: Sequence[tuple[Path, str]], *, max_pixels: int | None, workers: int | None = None,
    ahead: int = 8,
) -> Iterator[tuple[Path, str, np.ndarray | ImageError]]:
    """``(file, name, RGB array or ImageError)`` for each input, in order, decoded in
    ``workers`` threads up to ``ahead`` files ahead of the consumer."""

    def read(path: Path, name: str) -> Callable[[], tuple[Path, str, np.ndarray | ImageError]]:
        return lambda: (path, name, read_or_error(path, max_pixels))

    with background_pool(workers or default_workers(), "fcnseg-read") as pool:
        yield from in_order((read(p, n) for p, n in inputs), pool, max(1, ahead))


def segment_files(segmenter: Segmenter, inputs: Sequence[tuple[Path, str]], *,
                  batch_size: int = 4, return_probs: ProbsWanted = False,
                  read_workers: int | None = None
                  ) -> Iterator[tuple[Path, str, Prediction | Exception]]:
    """Read and segment ``inputs`` (file, name) ``batch_size`` at a time; yield ``(file, name,
    prediction or error)`` in input order (a failing batch is retried image by image). Files
    are decoded in ``read_workers`` threads (default :func:`default_workers`) up to two batches
    ahead (0: just before each batch); a multi-band or HHA model reads its files itself."""
    loaded: Iterator[tuple[Path, str, Any]]
    if segmenter.input_convention.bands is not None or segmenter.input_names == ("hha",):
        loaded = ((path, name, path) for path, name in inputs)  # read and checked as stored
    elif read_workers == 0:
        loaded = ((path, name, read_or_error(path, segmenter.max_pixels)) for path, name in inputs)
    else:
        loaded = read_ahead(inputs, max_pixels=segmenter.max_pixels, workers=read_workers,
                            ahead=2 * batch_size)
    with contextlib.closing(loaded):
        while chunk := list(itertools.islice(loaded, batch_size)):
            yield from _segment_chunk(segmenter, chunk, batch_size, return_probs)


def _segment_chunk(
    segmenter: Segmenter, chunk: list[tuple[Path, str, Any]], batch_size: int,
    return_probs: ProbsWanted,
) -> list[tuple[Path, str, Prediction | Exception]]:
    """One chunk of read inputs segmented together (same-size images stacked)."""
    images = [image for _, _, image in chunk if not isinstance(image, ImageError)]
    try:
        preds = segmenter.predict_batch(images, return_probs=return_probs, batch_size=batch_size)
    except Exception:  # noqa: BLE001 - find out below which image fails
        preds = [_predict_or_error(segmenter, image, return_probs) for image in images]
    results = iter(preds)
    return [(path, name, image if isinstance(image, ImageError) else next(results))
            for path, name, image in chunk]


def _predict_or_error(segmenter: Segmenter, image: Any,
                      return_probs: ProbsWanted) -> Prediction | Exception:
    try:
        return segmenter.predict(image, return_probs=return_probs)
    except Exception as e:  # noqa: BLE001 - reported for this file alone
        return e
