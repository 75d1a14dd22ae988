"""``fcnseg predict`` for files at the model's pace: images read ahead, segmented in batches
and their outputs written behind, in threads beside the forward passes; results come back in
input order, and the files are byte for byte those of one file after another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fcnseg.inference.files import FileOutcome, OutputOptions, write_predictions
from fcnseg.inference.prefetch import segment_files as segment_files  # re-exported
from fcnseg.inference.segmenter import Segmenter


def predict_files(segmenter: Segmenter, inputs: Sequence[tuple[Path, str]], out_dir: Path,
                  options: OutputOptions = OutputOptions(), *, batch_size: int = 4,
                  workers: int | None = None,
                  warn: Callable[[str], None] | None = None) -> Iterator[FileOutcome]:
    """Read, segment and write ``inputs`` (file, output name) into ``out_dir`` as ``fcnseg
    predict`` does for colour images, reading and writing in ``workers`` threads each (0: all
    in the calling thread); one :class:`FileOutcome` per input, in order. ``warn`` is told the
    first :meth:`Segmenter.dim_image_warning`."""
    predictions = segment_files(segmenter, inputs, batch_size=batch_size,
                                return_probs=options.probs_wanted, read_workers=workers)
    if warn is not None:
        predictions = _warning_once_if_dim(predictions, segmenter, warn)
    yield from write_predictions(predictions, out_dir, segmenter.palette, options,
                                 workers=workers, pending=2 * batch_size)


def _warning_once_if_dim(predictions: Iterable[tuple[Path, str, Any]], segmenter: Segmenter,
                         warn: Callable[[str], None]) -> Iterator[tuple[Path, str, Any]]:
    """``predictions`` as they come, the first :meth:`Segmenter.dim_image_warning` to ``warn``."""
    warned = False
    for path, name, pred in predictions:
        if not warned and not isinstance(pred, Exception) \
                and (line := segmenter.dim_image_warning(path, pred.image)) is not None:
            warn(line)
            warned = True
        yield path, name, pred
