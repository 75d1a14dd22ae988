"""``fcnseg predict`` for files at the model's pace: images are read ahead, segmented in batches,
and their outputs written behind (:func:`fcnseg.inference.files.write_predictions`), in
threads beside the model's forward passes (decoding and zlib release the GIL). Results come
back in input order, and the files written are byte for byte those of one file after another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from fcnseg.inference.files import FileOutcome, OutputOptions, write_predictions
from fcnseg.inference.prefetch import segment_files as segment_files  # re-exported
from fcnseg.inference.segmenter import Segmenter


def predict_files(segmenter: Segmenter, inputs: Sequence[tuple[Path, str]], out_dir: Path,
                  options: OutputOptions = OutputOptions(), *, batch_size: int = 4,
                  workers: int | None = None) -> Iterator[FileOutcome]:
    """Read, segment and write ``inputs`` (file, output name) into ``out_dir``: what
    ``fcnseg predict`` does for colour images. Reading and writing overlap the model's work
    (``workers`` threads each; 0 does everything in the calling thread, one file after another).
    Yields one :class:`FileOutcome` per input, in input order."""
    predictions = segment_files(segmenter, inputs, batch_size=batch_size,
                                return_probs=options.needs_probs, read_workers=workers)
    yield from write_predictions(predictions, out_dir, segmenter.palette, options,
                                 workers=workers, pending=2 * batch_size)
