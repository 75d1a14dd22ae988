"""Segmenting many files at the model's pace: images are read ahead and outputs written behind.

Decoding (Pillow) and encoding (PNG's zlib) release the GIL, so they run in threads beside the
model's forward passes instead of between them. Results and problems still come back in input
order, and the files written are byte for byte those of reading, segmenting and writing one
file after another: the batches are the same (``batch_size`` consecutive inputs, the
same-size ones stacked) and each prediction's outputs are listed in the folder's manifest, in
input order, before a writer thread draws them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnseg.data.palette import distinct_palette
from fcnseg.inference.files import (
    OutputFiles,
    OutputOptions,
    PictureStyle,
    reserve_outputs,
    segment_files,
    write_outputs,
)
from fcnseg.inference.images import ImageError
from fcnseg.inference.prefetch import background_pool, default_workers, in_order
from fcnseg.inference.segmenter import Prediction, Segmenter

__all__ = [
    "FileOutcome",
    "OutputOptions",
    "predict_files",
    "write_predictions",
]

@dataclass(frozen=True)
class FileOutcome:
    """What became of one input: ``problem`` is None when its outputs were written, else one
    line naming the file and what went wrong (as ``fcnseg predict`` reports it)."""

    path: Path
    name: str
    problem: str | None = None


def write_predictions(
    predictions: Iterable[tuple[Path, str, Prediction | Exception]],
    out_dir: Path,
    palette: np.ndarray,
    options: OutputOptions = OutputOptions(),
    *,
    workers: int | None = None,
    pending: int = 8,
) -> Iterator[FileOutcome]:
    """Write the outputs of each prediction into ``out_dir`` in ``workers`` threads; yield one
    :class:`FileOutcome` per item, in order. An item that is an exception (the file could not
    be read or segmented) is reported and skipped; a prediction whose outputs cannot be written
    is reported, and the others are still written. ``workers=0`` writes in the calling thread.
    At most ``pending`` predictions wait to be written (more than a batch, so that the model
    goes on with the next batch while the last one's outputs are written)."""
    jobs = (_write_job(path, name, pred, out_dir, palette, options)
            for path, name, pred in predictions)
    if workers == 0:
        for run in jobs:
            yield run()
        return
    count = workers or default_workers()
    with background_pool(count, "fcnseg-write") as pool:
        yield from in_order(jobs, pool, max(pending, 2 * count))


#: One set of files to draw: where they go, the prediction, its palette and picture style.
_Drawing = tuple[OutputFiles, Prediction, np.ndarray, PictureStyle]


def _reserve_heads(out_dir: Path, name: str, pred: Prediction, palette: np.ndarray,
                   options: OutputOptions) -> tuple[list[_Drawing], Exception | None]:
    """Each head's files, listed in the manifest (here, in input order), with what draws
    them; and the error that stopped the listing, if any."""
    style = options.style
    plain = PictureStyle(alpha=style.alpha, legend=style.legend, outlines=style.outlines)
    todo: list[_Drawing] = []
    try:
        files = reserve_outputs(out_dir, name, pred, heatmap_classes=options.heatmaps_for(pred),
                                uncertainty=options.uncertainty, probs=options.probs,
                                protected=options.protected)
        todo.append((files, pred, palette, style))
        # A model with several heads (SIFT Flow): each further head writes its label map
        # and overlay as NAME_<head>_label.png ...
        for head, head_pred in list(pred.heads.items())[1:]:
            files = reserve_outputs(out_dir, f"{name}_{head}", head_pred,
                                    protected=options.protected)
            todo.append((files, head_pred, distinct_palette(head_pred.class_names), plain))
    except (OSError, ValueError) as e:
        return todo, e
    return todo, None


def _write_job(path: Path, name: str, pred: Prediction | Exception, out_dir: Path,
               palette: np.ndarray, options: OutputOptions) -> Callable[[], FileOutcome]:
    """What a writer thread runs for one item; its files are reserved here, in input order."""
    if isinstance(pred, ImageError):  # its message names the file
        return lambda: FileOutcome(path, name, f"skipped {pred}")
    if isinstance(pred, Exception):
        return lambda: FileOutcome(path, name, f"skipped {path}: prediction failed "
                                               f"({type(pred).__name__}: {pred})")
    todo, stopped = _reserve_heads(out_dir, name, pred, palette, options)

    def write() -> FileOutcome:
        try:
            for files, p, colours, how in todo:
                write_outputs(files, p, colours, how)
            if stopped is not None:
                raise stopped
        except (OSError, ValueError) as e:
            hint = "; choose another --out" if isinstance(e, FileExistsError) else ""
            return FileOutcome(path, name, f"{path}: cannot write outputs ({e}{hint})")
        if options.observe is not None:
            try:
                options.observe(path, name, pred)
            except (OSError, ValueError) as e:
                return FileOutcome(path, name, f"{path}: {e}")
        return FileOutcome(path, name)
    return write


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
