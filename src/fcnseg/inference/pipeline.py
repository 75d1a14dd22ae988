"""``fcnseg predict`` for files at the model's pace: images are read ahead, segmented in batches,
and their outputs written behind (by :func:`fcnseg.inference.files.write_predictions`).

Decoding (Pillow) and encoding (PNG's zlib) release the GIL, so they run in threads beside the
model's forward passes instead of between them. Results and problems still come back in input
order, and the files written are byte for byte those of reading, segmenting and writing one
file after another: the batches are the same (``batch_size`` consecutive inputs, the
same-size ones stacked) and each prediction's outputs are listed in the folder's manifest, in
input order, before a writer thread draws them.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from fcnseg.inference.files import FileOutcome, OutputOptions, write_predictions
from fcnseg.inference.images import ImageError
from fcnseg.inference.prefetch import read_ahead, read_or_error
from fcnseg.inference.segmenter import Prediction, Segmenter


def predict_files(
    segmenter: Segmenter,
    inputs: Sequence[tuple[Path, str]],
    out_dir: Path,
    options: OutputOptions = OutputOptions(),
    *,
    batch_size: int = 4,
    workers: int | None = None,
) -> Iterator[FileOutcome]:
    """Read, segment and write ``inputs`` (file, output name) into ``out_dir``: what
    ``fcnseg predict`` does for colour images. Reading and writing overlap the model's work
    (``workers`` threads each; 0 does everything in the calling thread, one file after another).
    Yields one :class:`FileOutcome` per input, in input order."""
    predictions = segment_files(segmenter, inputs, batch_size=batch_size,
                                return_probs=options.needs_probs, read_workers=workers)
    yield from write_predictions(predictions, out_dir, segmenter.palette, options,
                                 workers=workers, pending=2 * batch_size)


def segment_files(
    segmenter: Segmenter, inputs: Sequence[tuple[Path, str]], *, batch_size: int = 4,
    return_probs: bool = False, read_workers: int | None = None,
) -> Iterator[tuple[Path, str, Prediction | Exception]]:
    """Read and segment ``inputs`` (file, name) ``batch_size`` at a time, in order.

    Yields ``(file, name, prediction)`` in input order, or ``(file, name, error)`` for a file
    that cannot be read (:class:`ImageError`) or segmented; the other files are still
    segmented. When a batch fails (out of memory, say), its images are retried one by one to
    find the one at fault.
    Files are decoded in ``read_workers`` threads (default: one per two cores, 1 to 4) while the
    model runs, up to two batches ahead; 0 reads each batch just before it runs.
    """
    if read_workers == 0:
        loaded: Iterator[tuple[Path, str, np.ndarray | ImageError]] = (
            (path, name, read_or_error(path, segmenter.max_pixels)) for path, name in inputs)
    else:
        loaded = read_ahead(inputs, max_pixels=segmenter.max_pixels, workers=read_workers,
                            ahead=2 * batch_size)
    with contextlib.closing(loaded):
        while chunk := list(itertools.islice(loaded, batch_size)):
            yield from _segment_chunk(segmenter, chunk, batch_size, return_probs)


def _segment_chunk(
    segmenter: Segmenter, chunk: list[tuple[Path, str, np.ndarray | ImageError]],
    batch_size: int, return_probs: bool,
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


def _predict_or_error(segmenter: Segmenter, image: np.ndarray,
                      return_probs: bool) -> Prediction | Exception:
    try:
        return segmenter.predict(image, return_probs=return_probs)
    except Exception as e:  # noqa: BLE001 - reported for this file alone
        return e
