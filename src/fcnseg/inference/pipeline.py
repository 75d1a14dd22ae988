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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.data.palette import distinct_palette
from fcnseg.inference.files import PictureStyle, reserve_outputs, segment_files, write_outputs
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
class OutputOptions:
    """What :func:`write_predictions` writes for each prediction.

    Attributes:
        heatmap_classes: class indices whose heatmaps are written.
        heatmaps_present: write heatmaps for the classes present in each prediction instead.
        uncertainty: uncertainty maps to write (``"entropy"``, ``"maxprob"``).
        probs: also write ``NAME_probs.npz``.
        style: how overlays and heatmaps are drawn.
        protected: resolved paths never to be replaced (the inputs).
        observe: called with (input path, output name, prediction) for each prediction
            after its files are written (in a writer thread): pre-annotations and
            uncertainty ranking gather theirs this way.
    """

    heatmap_classes: tuple[int, ...] = ()
    heatmaps_present: bool = False
    uncertainty: tuple[str, ...] = ()
    probs: bool = False
    style: PictureStyle = field(default_factory=PictureStyle)
    protected: frozenset[Path] = field(default_factory=frozenset)
    observe: Callable[[Path, str, Prediction], None] | None = None
    observe_needs_probs: bool = False

    @property
    def needs_probs(self) -> bool:
        """Whether the predictions must carry probabilities."""
        return bool(self.probs or self.heatmap_classes or self.heatmaps_present
                    or self.uncertainty or self.observe_needs_probs)


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
    style = options.style
    plain = PictureStyle(alpha=style.alpha, legend=style.legend, outlines=style.outlines)

    def reserved(name: str, pred: Prediction) -> tuple[list[tuple[Any, ...]], Exception | None]:
        """Each head's files, listed in the manifest (here, in input order), with what draws
        them; and the error that stopped the listing, if any."""
        heat = pred.present_classes() if options.heatmaps_present else options.heatmap_classes
        todo: list[tuple[Any, ...]] = []
        try:
            files = reserve_outputs(out_dir, name, pred, heatmap_classes=heat,
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

    def job(path: Path, name: str, pred: Prediction | Exception) -> Callable[[], FileOutcome]:
        if isinstance(pred, ImageError):  # its message names the file
            return lambda: FileOutcome(path, name, f"skipped {pred}")
        if isinstance(pred, Exception):
            return lambda: FileOutcome(path, name, f"skipped {path}: prediction failed "
                                                   f"({type(pred).__name__}: {pred})")
        todo, stopped = reserved(name, pred)

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

    jobs = (job(path, name, pred) for path, name, pred in predictions)
    if workers == 0:
        for run in jobs:
            yield run()
        return
    count = workers or default_workers()
    with background_pool(count, "fcnseg-write") as pool:
        yield from in_order(jobs, pool, max(pending, 2 * count))


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
