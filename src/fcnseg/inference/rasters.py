"""Rasters of any size with bounded memory: tiles with overlap, blended, written by windows.

:func:`predict_raster` cuts a raster (a 50,000² GeoTIFF) into overlapping tiles whose logits are
blended by a smooth weight (:func:`blend_profile`), so that no seam shows. Tiles go in raster
order; what is final is written at once, the sums a tile row leaves for the next are spilled to
a temporary file: memory is set by the tile, the batch, the classes and one strip of tiles. The
output is a tiled GeoTIFF of class indices (CRS and geotransform kept, nodata 255, the palette
as colour table, class names as tags), with optional ``NAME_probs.tif`` and
``NAME_uncertainty.tif``. ``OUT.partial.json`` lets a run of the same job (input, model by
content, :func:`model_identity`, settings) resume; ``OUT.done.json`` makes a later one skip it.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import hashlib
import io
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.data.images import (
    ImageError,
    check_pixels,
    colour_bands_problem,
    float_scale,
    floats_to_rgb,
    integers_to_rgb,
)
from fcnseg.data.rasters import (
    BY_WINDOWS,
    RasterInfo,
    RasterReader,
    cached_blocks,
    display_rgb,
    fill_nodata,
    nodata_mask,
    open_raster,
    raster_info,
    rasterio_open,
)
from fcnseg.inference.visualize import PictureStyle, labelled_overlay, picture_size, shrunk
from fcnseg.utils.download import file_checksum
from fcnseg.utils.files import atomic_write, digest_if_unchanged
from fcnseg.utils.keyed import first_of
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import fields_of
from fcnseg.utils.windows import window_starts

#: The label written where the input has no data (the output raster's nodata value).
NODATA_LABEL = 255
#: GDAL's block cache, in bytes: next to none (blocks are written whole, read once).
_GDAL_CACHE_BYTES = 16

#: ``run(batch) -> logits``: a B×h×w×N raster batch (as read) to B×C×h×w float32 logits.
TileFn = Callable[[np.ndarray], torch.Tensor]
#: ``put(kind, row, col, piece)``: a final piece of an output ("label", "probs",
#: "uncertainty"), h×w or C×h×w, at (row, col).
PutPiece = Callable[[str, int, int, np.ndarray], None]


def default_overlap(tile: int) -> int:
    """The overlap of tiles when none is given: a quarter of the tile (128 for 512)."""
    return tile // 4


@dataclass(frozen=True)
class TileSettings:
    """How a raster is cut and what is written: tiles of ``tile`` pixels a side sharing
    ``overlap`` pixels (less than half the tile; None: :func:`default_overlap`), ``batch_size``
    at a time; ``probs`` and ``uncertainty`` also write ``NAME_probs.tif`` and
    ``NAME_uncertainty.tif`` (entropy); ``block``, the output's internal tile size, a multiple
    of 16 (None: the largest of 512 ... 16 dividing the tile step)."""

    tile: int = 512
    overlap: int = None  # type: ignore[assignment]  # None given: a quarter of the tile
    batch_size: int = 4
    probs: bool = False
    uncertainty: bool = False
    block: int | None = None

    def __post_init__(self) -> None:
        if self.tile < 16:
            raise ValueError(f"tile must be at least 16 pixels, got {self.tile}")
        if self.overlap is None:  # as fcnseg predict --overlap and Segmenter default
            object.__setattr__(self, "overlap", default_overlap(self.tile))
        if not 0 <= 2 * self.overlap < self.tile:
            raise ValueError(f"overlap must be at least 0 and less than half the tile "
                             f"({self.tile}), got {self.overlap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.block is not None and (self.block < 16 or self.block % 16):
            raise ValueError(f"block must be a multiple of 16, got {self.block}")

    def output_block(self) -> int:
        """The output GeoTIFF's block side (see ``block``)."""
        if self.block is not None:
            return self.block
        stride = self.tile - self.overlap
        return next((b for b in (512, 256, 128, 64, 32, 16) if stride % b == 0), 256)


@dataclass
class RasterOutcome:
    """What :func:`predict_raster` did: the label raster, the tiles run, and whether the
    output was complete already (skipped) or resumed from a partial run."""

    output: Path
    tiles: int
    skipped: bool = False
    resumed_from_row: int = 0
    #: A finished output of another model or other settings was there and is predicted again.
    replaced: bool = False
    #: A stopped run of another model or other settings was there: not resumed, begun anew.
    restarted: bool = False
    extra_outputs: tuple[Path, ...] = ()
    #: Probability or uncertainty rasters of an earlier run of other settings, which this run
    #: does not write, removed (they no longer matched the labels).
    removed: tuple[Path, ...] = ()


def tile_grid(height: int, width: int, tile: int, overlap: int,
              align: int = 1) -> tuple[list[int], list[int], int, int]:
    """Tile starts down and across and the tile height and width (cut to the image). With
    ``align`` > 1 (a model's output stride) every start is a multiple of it, so that each tile's
    coarse scores lie where a whole-image pass puts them: a side shrinks by less than ``align``
    so that the last tile, ending at the border, starts on it, and neighbours share at least
    ``overlap`` pixels (unaligned where the tile is too small for that)."""
    starts_y, th = _aligned_starts(height, tile, overlap, align)
    starts_x, tw = _aligned_starts(width, tile, overlap, align)
    return starts_y, starts_x, th, tw


def _aligned_starts(size: int, tile: int, overlap: int, align: int) -> tuple[list[int], int]:
    """One axis of :func:`tile_grid`: the starts and the tile's side."""
    side = min(tile, size)
    if align <= 1 or side == size or tile - overlap < 2 * align:
        return window_starts(size, side, tile - overlap), side
    side = size - -(-(size - tile) // align) * align  # size - side: a multiple of align
    stride = (side - overlap) // align * align
    return window_starts(size, side, stride), side


def blend_profile(size: int, overlap: int, at_start_border: bool,
                  at_end_border: bool) -> np.ndarray:
    """A tile's blending weight along one axis: 1 in the middle; towards an inner edge zero
    over the outer quarter of the overlap, then a cosine ramp over its next half up to 1
    (smooth, so blended logits have no kink); flat 1 up to an image border."""
    w = np.ones(size, np.float64)
    if overlap <= 0:
        return w.astype(np.float32)
    margin, ramp = overlap // 4, max(1, overlap // 2)
    t = np.clip((np.arange(size) + 0.5 - margin) / ramp, 0.0, 1.0)
    rise = 0.5 - 0.5 * np.cos(np.pi * t)
    if not at_start_border:
        w = np.minimum(w, rise)
    if not at_end_border:
        w = np.minimum(w, rise[::-1])
    return w.astype(np.float32)


# -- resumption -----------------------------------------------------------------------------

#: The suffixes of a label raster's records: of a finished run, of one under way (or stopped).
DONE_RECORD, PARTIAL_RECORD = ".done.json", ".partial.json"


def _record_path(out: Path, finished: bool) -> Path:
    """The record of a finished run, or of one still under way (or stopped)."""
    return out.with_name(out.name + (DONE_RECORD if finished else PARTIAL_RECORD))


def _fingerprint(path: Path, settings: TileSettings, classes: Sequence[str], model_id: str,
                 part: tuple[int, int] | None) -> dict[str, Any]:
    st = path.stat()
    return {"input": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "settings": asdict(settings), "classes": list(classes), "model": model_id,
            "part": None if part is None else list(part)}


def _recorded(out: Path) -> dict[str, Any] | None:
    """The record beside ``out``, the finished one first (None when none can be read)."""
    for finished in (True, False):
        with contextlib.suppress(OSError, ValueError):
            return dict(fields_of(json.loads(_record_path(out, finished).read_text("utf-8"))))
    return None


def recorded_model_id(out: PathLike) -> str | None:
    """The model identity (:func:`model_identity`) in the record beside ``out``, finished or
    partial; None where there is none."""
    record = _recorded(Path(out))
    model = fields_of(record.get("job")).get("model") if record is not None else None
    return model if isinstance(model, str) else None


def named_by_path(model: object) -> bool:
    """Whether a record's model names the checkpoint's path, as fcnseg recorded it before
    weights' digests, not :func:`model_identity`'s ``sha256=HEX``: never the same job."""
    return bool(model) and not str(model).startswith("sha256=")


def _settle_finished(out: Path) -> None:
    """Leave the finished record alone: a partial record that says it is complete (as earlier
    versions left it) becomes the finished one, any other goes."""
    if not _record_path(out, True).is_file():
        with contextlib.suppress(OSError):
            os.replace(_record_path(out, False), _record_path(out, True))
    _record_path(out, False).unlink(missing_ok=True)


def _read_sidecar(out: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The record of an earlier run of this same job, else None (all is written anew)."""
    record = _recorded(out)
    if record is not None and record.get("job") == fingerprint and out.is_file():
        return record
    return None


def _write_sidecar(out: Path, fingerprint: dict[str, Any], rows_done: int,
                   complete: bool, model_name: str = "") -> None:
    # Atomic: a run killed here leaves the previous record. model_name (the checkpoint's
    # path) is for people (fcnseg info); the job is what is compared.
    with atomic_write(_record_path(out, complete), "w") as f:
        f.write(json.dumps({"job": fingerprint, "rows_done": rows_done, "complete": complete,
                            **({"model_name": model_name} if model_name else {})}))
    if complete:
        _record_path(out, False).unlink(missing_ok=True)


def output_complete(out: PathLike, source: PathLike, classes: Sequence[str],
                    settings: TileSettings, model_id: str) -> bool:
    """Whether ``out`` is a finished output of :func:`predict_raster` (or :func:`merge_parts`)
    of this same job: this input, settings, classes and model (:func:`model_identity`)."""
    try:
        fingerprint = _fingerprint(Path(source), settings, classes, model_id, None)
    except OSError:
        return False
    record = _read_sidecar(Path(out), fingerprint)
    return record is not None and bool(record.get("complete"))


def _forget_other_job(out: Path, settings: TileSettings) -> tuple[bool, bool, tuple[Path, ...]]:
    """Remove another job's records at ``out``, and the extra rasters it wrote that this job
    does not (they would not match the labels): whether it was finished, whether it was
    stopped, and those removed."""
    record = _recorded(out)
    for finished in (True, False):
        _record_path(out, finished).unlink(missing_ok=True)
    if record is None:
        return False, False, ()
    earlier = fields_of(fields_of(record.get("job")).get("settings"))
    removed = tuple(path for kind in EXTRA_OUTPUTS
                    if earlier.get(kind) is True and not getattr(settings, kind)
                    and (path := extra_output_path(out, kind)).is_file())
    for path in removed:
        path.unlink(missing_ok=True)
    finished = bool(record.get("complete")) and out.is_file()
    return finished, not finished, removed


def rows_written(out: PathLike) -> int:
    """The rows of ``out`` that a stopped run wrote, as its record says: a run of the same job
    goes on from there (0 without a record)."""
    record = _recorded(Path(out))
    try:
        return int(record["rows_done"]) if record is not None else 0
    except (KeyError, TypeError, ValueError):
        return 0


# -- writing --------------------------------------------------------------------------------

#: The optional outputs beside a label raster ``NAME.tif``: ``NAME_probs.tif`` and
#: ``NAME_uncertainty.tif`` (each written when the :class:`TileSettings` field of its name is).
EXTRA_OUTPUTS = ("probs", "uncertainty")


def extra_output_path(out: PathLike, kind: str) -> Path:
    """Where the ``kind`` output (one of :data:`EXTRA_OUTPUTS`) of the label raster ``out``
    is written."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{kind}{out.suffix}")


def _output_paths(out: Path, settings: TileSettings) -> dict[str, Path]:
    return {"label": out, **{kind: extra_output_path(out, kind) for kind in EXTRA_OUTPUTS
                             if getattr(settings, kind)}}


class _Outputs:
    """The label raster and the optional extra rasters, opened for writing one row band at a
    time (reopened per band so that each is on disk when the record says so)."""

    def __init__(self, out: Path, info: RasterInfo, classes: Sequence[str],
                 settings: TileSettings, fresh: bool, palette: np.ndarray | None = None,
                 mask: RasterReader | None = None) -> None:
        self.info, self.classes, self.settings = info, list(classes), settings
        self.palette, self.mask = palette, mask
        self.paths = _output_paths(out, settings)
        self.kinds = frozenset(self.paths)
        if fresh:
            for kind, path in self.paths.items():
                self._create(kind, path)

    def _profile(self, kind: str) -> dict[str, Any]:
        block = self.settings.output_block()
        tiled = self.info.width >= block and self.info.height >= block
        # Pixels without data: 255 in the labels, NaN in the float rasters.
        label = kind == "label"
        profile: dict[str, Any] = {
            "driver": "GTiff", "height": self.info.height, "width": self.info.width,
            "count": len(self.classes) if kind == "probs" else 1,
            "dtype": "uint8" if label else "float32",
            "compress": "deflate", "tiled": tiled, "BIGTIFF": "IF_SAFER",
            "crs": self.info.crs, "transform": self.info.transform,
            "nodata": NODATA_LABEL if label else float("nan"),
        }
        if tiled:
            profile.update(blockxsize=block, blockysize=block)
        return profile

    def _create(self, kind: str, path: Path) -> None:
        with rasterio_open(path, "w", **self._profile(kind)) as ds:
            names = self.classes if kind == "probs" else [
                "class" if kind == "label" else "entropy"]
            for i, name in enumerate(names):
                ds.set_band_description(i + 1, name)
            if kind != "label":
                return
            # The palette as colour table (nodata transparent) and the class names as tags,
            # so that a GIS shows the classes in colour and by name.
            ds.update_tags(class_names=json.dumps(self.classes))
            ds.update_tags(1, **{f"class_{i}": name for i, name in enumerate(self.classes)})
            if self.palette is not None and len(self.classes) <= NODATA_LABEL:
                colours = {i: (*(int(v) for v in self.palette[i][:3]), 255)
                           for i in range(min(len(self.classes), len(self.palette)))}
                ds.write_colormap(1, {**colours, NODATA_LABEL: (0, 0, 0, 0)})

    @contextlib.contextmanager
    def band(self) -> Iterator[PutPiece]:
        from rasterio.windows import Window

        with contextlib.ExitStack() as stack:
            datasets = {kind: stack.enter_context(rasterio_open(path, "r+"))
                        for kind, path in self.paths.items()}

            def put(kind: str, row: int, col: int, piece: np.ndarray) -> None:
                planes = piece if piece.ndim == 3 else piece[None]
                if self.mask is not None:  # where it is 0 (alpha aside): as without data
                    kept = self.mask.read(row, col, *planes.shape[1:])
                    planes[:, ~kept[..., :len(self.mask.band_index) - self.mask.info.alpha]
                           .any(axis=-1)] = NODATA_LABEL if kind == "label" else np.nan
                window = Window(col, row, planes.shape[2], planes.shape[1])
                datasets[kind].write(planes, window=window)
            yield put


class _HeldOutputs:
    """The labels of :func:`segment_tiles`, held in memory, and its probabilities, in a
    temporary file (:func:`_spilled`)."""

    def __init__(self, info: RasterInfo, classes: Sequence[str], probs: bool,
                 planes: Sequence[int] | None) -> None:
        self.arrays = {"label": np.zeros((info.height, info.width), np.uint8)}
        self.planes = None if planes is None else list(planes)
        if probs:
            count = len(classes) if self.planes is None else len(self.planes)
            self.arrays["probs"] = _spilled((count, info.height, info.width))
        self.kinds = frozenset(self.arrays)

    @contextlib.contextmanager
    def band(self) -> Iterator[PutPiece]:
        def put(kind: str, row: int, col: int, piece: np.ndarray) -> None:
            h, w = piece.shape[-2:]
            if kind == "probs" and self.planes is not None:
                piece = piece[self.planes]
            self.arrays[kind][..., row:row + h, col:col + w] = piece
        yield put


def _spilled(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros mapped from a temporary file, removed once the array is gone:
    written a tile at a time, it is held by the system's file cache, not by the process (C×H×W
    floats of a large photo are GBs)."""
    with tempfile.TemporaryFile(prefix=".fcnseg-probs-") as f:  # the map keeps it open
        size = 4 * int(np.prod(shape))
        try:  # the room taken now: a full disk is an error here, not a crash (SIGBUS) mid-way
            if hasattr(os, "posix_fallocate"):  # not on macOS
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OSError(e.errno, f"no room in the temporary folder {tempfile.gettempdir()} "
                                       f"for {size / 2**20:,.0f} MiB of probabilities: set "
                                       f"TMPDIR to a folder with room") from None
        return np.memmap(f, np.float32, "w+", shape=shape)


def _argmax_classes(sums: np.ndarray) -> np.ndarray:
    """The class of the largest sum at each pixel (uint8; ties to the first, as argmax). One
    pass per class plane, marking by arithmetic rather than a masked store: both much faster."""
    best = sums[0].copy()
    labels = np.zeros(best.shape, np.uint8)
    better = np.empty(best.shape, bool)
    mark = np.empty(best.shape, np.uint8)
    for c in range(1, sums.shape[0]):
        np.greater(sums[c], best, out=better)
        np.multiply(better.view(np.uint8), np.uint8(c), out=mark)
        np.maximum(labels, mark, out=labels)
        np.maximum(best, sums[c], out=best)
    return labels


def _write(put: PutPiece, kinds: frozenset[str], row: int, col: int, sums: np.ndarray,
           weights: np.ndarray | None, missing: np.ndarray | None) -> None:
    """One final piece (C×h×w sums; h×w weights where probabilities or entropy are written)
    put as labels, probabilities, entropy; pixels without data as 255, NaN, NaN."""
    labels = _argmax_classes(sums)
    if missing is not None:
        labels[missing] = NODATA_LABEL
    put("label", row, col, labels)
    if weights is not None:  # the softmax in one C×h×w array, in place: a photo's are large
        probs = sums / weights
        probs -= probs.max(axis=0, keepdims=True)
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=0, keepdims=True)
        if "uncertainty" in kinds:
            entropy = -(probs * np.log(np.clip(probs, 1e-30, None))).sum(axis=0)
            if missing is not None:
                entropy[missing] = np.nan
            put("uncertainty", row, col, entropy.astype(np.float32))
        if "probs" in kinds:
            if missing is not None:
                probs[:, missing] = np.nan
            put("probs", row, col, probs)


# -- the sweep ------------------------------------------------------------------------------

class _Carry:
    """The blended sums one tile row leaves for the next (its overlap rows), spilled to a
    temporary file piece by piece in column order and read back in the same order."""

    def __init__(self, folder: Path | None) -> None:
        # Closed by close(), which _blend_rows calls in a finally block.
        self._files: list[Any] = [
            io.BytesIO() if folder is None
            else tempfile.TemporaryFile(dir=folder, prefix=".fcnseg-carry-")  # noqa: SIM115
            for _ in range(2)]
        self._shapes: list[tuple[int, ...]] = []  # of the pieces to get, the next one first
        self._next: list[tuple[int, ...]] = []  # of those put

    def put(self, piece: np.ndarray) -> None:
        self._next.append(piece.shape)
        self._files[0].write(np.ascontiguousarray(piece, np.float32).data)  # no bytes copy

    def get(self) -> np.ndarray | None:
        """The next piece of the row before (None where it left none)."""
        if not self._shapes:
            return None
        shape = self._shapes.pop(0)
        data = self._files[1].read(int(np.prod(shape)) * 4)
        return np.frombuffer(data, np.float32).reshape(shape)

    def next_row(self) -> None:
        """What was put becomes what is got; the other file is reused for the next row."""
        self._files.reverse()
        self._shapes, self._next = self._next, []
        for f in self._files:
            f.seek(0)
        self._files[0].truncate()

    def close(self) -> None:
        for f in self._files:
            f.close()


@dataclass(frozen=True)
class RasterJob:
    """What a :func:`predict_raster` run reads, how it is recorded and which share it writes:
    ``bands`` to read (None: all); ``model_id`` (:func:`model_identity`) and ``model_name``
    (for people, never compared) in the record; ``progress(tiles done)`` after each batch;
    ``started(tiles this run, tiles of its share, row resumed from)`` before the first tile;
    ``part=(k, n)``: only the k-th of n shares of the tile rows (:func:`merge_parts` joins
    them); ``nodata``: the input value without data where the file sets none; ``palette``:
    the label raster's colour table (n×3 uint8); ``mask``: a raster of the input's size, read
    by windows, whose pixels that are 0 (in every band but alpha) are written as those
    without data (``--ignore-mask``; :func:`check_mask_size`)."""

    bands: Sequence[str] | None = None
    model_id: str = ""
    model_name: str = ""
    progress: Callable[[int], None] | None = None
    started: Callable[[int, int, int], None] | None = None
    part: tuple[int, int] | None = None
    nodata: float | None = None
    palette: np.ndarray | None = None
    mask: PathLike | None = None


def predict_raster(
    run: TileFn,
    source: PathLike,
    out: PathLike,
    classes: Sequence[str],
    settings: TileSettings = TileSettings(),
    job: RasterJob = RasterJob(),
) -> RasterOutcome:
    """Segment the raster ``source`` tile by tile by ``run`` (B×h×w×N raster values to
    B×C×h×w logits) into the label GeoTIFF ``out`` (module doc) of ``classes``. An input that
    cannot be read is an :class:`ImageError` naming it (and, for a corrupt tile, where)."""
    import rasterio

    source, out = Path(source), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)  # e.g. "a/scene_tif.tif" beside "b/..."
    fingerprint = _fingerprint(source, settings, classes, job.model_id, job.part)
    record = _read_sidecar(out, fingerprint)
    if record is not None and record.get("complete"):
        _settle_finished(out)
        return RasterOutcome(out, 0, skipped=True)
    with open_raster(source, bands=job.bands) as reader, \
            (contextlib.nullcontext() if job.mask is None else open_raster(job.mask)) as mask, \
            rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES):
        info = reader.info
        if mask is not None:  # refused before anything of an earlier run is replaced
            check_mask_size(mask.info, info)
        replaced, restarted, removed = (_forget_other_job(out, settings) if record is None
                                        else (False, False, ()))
        if info.nodata is None and job.nodata is not None:  # the file's own comes first
            info = replace(info, nodata=job.nodata)
        ys, xs, _, _ = tile_grid(info.height, info.width, settings.tile, settings.overlap)
        k0, k1 = _share(len(ys), job.part)
        resume_row = max(int(record["rows_done"]) if record is not None else 0, ys[k0])
        first = _first_tile_row(ys, k0, resume_row)
        resumed = resume_row if record is not None else 0
        if job.started is not None:
            whole = k1 - _first_tile_row(ys, k0, ys[k0])  # what a fresh run of the share runs
            job.started((k1 - first) * len(xs), whole * len(xs), resumed)
        outputs = _Outputs(out, info, classes, settings, fresh=record is None,
                           palette=job.palette,
                           mask=None if mask is None else cached_blocks(mask,
                                                                         window_rows=settings.tile))
        if record is None:
            _write_sidecar(out, fingerprint, ys[k0] if k0 < len(ys) else 0, complete=k0 >= k1,
                           model_name=job.model_name)
        tiles = 0
        sweep = _blend_rows(run, reader, info, outputs, settings, range(first, k1),
                            resume_row=resume_row, progress=job.progress, spill=out.parent)
        with contextlib.closing(sweep):
            for k in sweep:
                tiles += len(xs)
                rows_done = ys[k + 1] if k + 1 < len(ys) else info.height
                if ys[k] >= resume_row:
                    _write_sidecar(out, fingerprint, rows_done, complete=k + 1 == k1,
                                   model_name=job.model_name)
    extra = tuple(p for kind, p in outputs.paths.items() if kind != "label")
    return RasterOutcome(out, tiles, resumed_from_row=resumed, extra_outputs=extra,
                         replaced=replaced, restarted=restarted, removed=removed)


def check_mask_size(mask: RasterInfo, raster: RasterInfo) -> None:
    """Refuse a mask (:class:`RasterJob`'s) of another size than ``raster``: an
    :class:`ImageError` naming the mask and both sizes."""
    if (mask.height, mask.width) != (raster.height, raster.width):
        raise ImageError(mask.path, f"{mask.width}×{mask.height} pixels, the raster {raster.path} "
                                    f"{raster.width}×{raster.height}: give a mask of the "
                                    f"raster's size")


def _blend_rows(run: TileFn, reader: RasterReader, info: RasterInfo,
                outputs: _Outputs | _HeldOutputs, settings: TileSettings, rows: range, *,
                resume_row: int = 0, progress: Callable[[int], None] | None = None,
                spill: Path | None = None, align: int = 1) -> Iterator[int]:
    """Run and blend the tile ``rows`` (of :func:`tile_grid` with ``align``), putting what is
    final from row ``resume_row`` on into ``outputs`` and yielding each row's index; carried
    sums spill into ``spill`` (None: memory)."""
    ys, xs, th, tw = tile_grid(info.height, info.width, settings.tile, settings.overlap, align)
    carry = _Carry(spill)
    # Overlapping tiles share the file's blocks: each is decoded once, not once per tile.
    tiles = _tile_logits(run, cached_blocks(reader, window_rows=th), ys, xs, rows, th, tw,
                         settings.batch_size, progress)
    try:
        for k in rows:
            _tile_row(tiles, info, outputs, carry, ys, xs, k, th, tw, settings,
                      write=ys[k] >= resume_row)
            yield k
            carry.next_row()
    finally:
        carry.close()


class _HeldRaster(RasterReader):
    """An H×W×N array read as a raster (windows are views of it)."""

    def __init__(self, image: np.ndarray, where: str, nodata: float | None) -> None:
        h, w, n = image.shape
        super().__init__(RasterInfo(where, h, w, n, image.dtype, nodata=nodata), range(n))
        self._image = image

    def _read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        return self._image[row:row + height, col:col + width]


def held_raster(image: np.ndarray, where: str = "<array>",
                nodata: float | None = None) -> RasterReader:
    """An H×W×N array held in memory as a raster reader named ``where``, whose pixels of
    every band ``nodata`` have no data (as a file's nodata tag says)."""
    if image.ndim != 3:
        raise ImageError(where, f"expected an H×W×N array of bands, got shape {image.shape}")
    return _HeldRaster(image, where, nodata)


def segment_tiles(run: TileFn, reader: RasterReader, classes: Sequence[str],
                  settings: TileSettings = TileSettings(), *, align: int = 1,
                  planes: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Segment ``reader``'s raster by the tiles and blending of :func:`predict_raster`, into
    memory, with the same labels pixel for pixel (``align``: tiles start on multiples of it, as
    :func:`tile_grid` says; 1, as rasters are cut). Returns ``{"label": H×W uint8}`` (pixels
    without data :data:`NODATA_LABEL`), with ``"probs"`` (C×H×W float32; only the ``planes``
    of those classes, in that order, where given) when ``settings.probs``."""
    info = reader.info
    outputs = _HeldOutputs(info, classes, settings.probs, planes)
    ys, _, _, _ = tile_grid(info.height, info.width, settings.tile, settings.overlap, align)
    collections.deque(_blend_rows(run, reader, info, outputs, settings, range(len(ys)),
                                  align=align), maxlen=0)
    return outputs.arrays


def _first_tile_row(ys: Sequence[int], k0: int, resume_row: int) -> int:
    """The tile row before the one whose final rows start at ``resume_row`` (its sums over that
    row are needed again), never before the share's first row less one."""
    first = max(0, next((k for k, y in enumerate(ys) if y >= resume_row), len(ys)) - 1)
    return max(first, k0 - 1, 0)


def _share(rows: int, part: tuple[int, int] | None) -> tuple[int, int]:
    """The tile rows ``[k0, k1)`` of share ``part = (k, n)`` (all rows without one)."""
    if part is None:
        return 0, rows
    k, n = part
    if not 0 <= k < n:
        raise ValueError(f"part must be (k, n) with 0 <= k < n, got {part}")
    return rows * k // n, rows * (k + 1) // n


def part_path(out: PathLike, k: int) -> Path:
    """Where share ``k`` of ``out`` is written before :func:`merge_parts` joins them."""
    out = Path(out)
    return out.with_name(f"{out.stem}.part{k}{out.suffix}")


def merge_parts(source: PathLike, out: PathLike, classes: Sequence[str],
                settings: TileSettings, n: int, *, model_id: str = "",
                model_name: str = "", palette: np.ndarray | None = None) -> None:
    """Join the ``n`` shares written by ``predict_raster(..., part=(k, n))`` into ``out`` window
    by window, record it as complete and remove the shares (``palette`` as :class:`RasterJob`)."""
    import rasterio
    from rasterio.windows import Window

    source, out = Path(source), Path(out)
    info = raster_info(source)
    ys, _, _, _ = tile_grid(info.height, info.width, settings.tile, settings.overlap)
    parts = [_output_paths(part_path(out, k), settings) for k in range(n)]
    for finished in (True, False):  # an earlier output's, before it is replaced
        _record_path(out, finished).unlink(missing_ok=True)
    outputs = _Outputs(out, info, classes, settings, fresh=True, palette=palette)
    step = 1024
    with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES), outputs.band() as put:
        for k, part in enumerate(parts):
            k0, k1 = _share(len(ys), (k, n))
            if k0 >= k1:
                continue
            r0, r1 = ys[k0], ys[k1] if k1 < len(ys) else info.height
            for kind in outputs.kinds:
                with rasterio_open(part[kind]) as src:
                    for r in range(r0, r1, step):
                        for c in range(0, info.width, step):
                            w = Window(c, r, min(step, info.width - c), min(step, r1 - r))
                            put(kind, r, c, src.read(window=w))
    _write_sidecar(out, _fingerprint(source, settings, classes, model_id, None), info.height,
                   complete=True, model_name=model_name)
    for part in parts:
        for path in [*part.values(), _record_path(part["label"], False),
                     _record_path(part["label"], True)]:
            path.unlink(missing_ok=True)


def _tile_logits(run: TileFn, reader: RasterReader, ys: list[int], xs: list[int],
                 rows: range, th: int, tw: int, batch_size: int,
                 progress: Callable[[int], None] | None
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(tile input, C×th×tw logits)`` of every tile of ``rows`` in order, in batches that run
    on across tile rows."""
    positions = [(ys[k], x) for k in rows for x in xs]
    for b0 in range(0, len(positions), batch_size):
        batch = [reader.read(y, x, th, tw) for y, x in positions[b0:b0 + batch_size]]
        logits = run(np.stack(batch)).float().cpu().numpy()
        if progress is not None:  # before the yield: nothing resumes after the last one
            progress(len(batch))
        yield from zip(batch, logits, strict=True)


def _tile_row(tiles: Iterator[tuple[np.ndarray, np.ndarray]], info: RasterInfo,
              outputs: _Outputs | _HeldOutputs, carry: _Carry, ys: list[int], xs: list[int], k: int,
              th: int, tw: int, settings: TileSettings, *, write: bool) -> None:
    """Blend tile row ``k`` left to right: final pieces written (when ``write``), its sums over
    the next tile row put in ``carry``."""
    y0 = ys[k]
    # Rows [y0, final_end) are final after this row; rows [final_end, y0 + th) carry on.
    final_end = ys[k + 1] if k + 1 < len(ys) else info.height
    split = final_end - y0
    wy = blend_profile(th, settings.overlap, k == 0, k == len(ys) - 1)

    @functools.cache
    def tile_weight(first: bool, last: bool) -> np.ndarray:  # the same for every inner tile
        return wy[:, None] * blend_profile(tw, settings.overlap, first, last)[None, :]

    # The sum of the weights is kept only for the probabilities: the labels need none.
    weighed = not outputs.kinds.isdisjoint(EXTRA_OUTPUTS)
    pending: np.ndarray | None = None  # C(+1) × th × tw sums (and weights) from the frontier on
    with contextlib.ExitStack() as stack:
        put = stack.enter_context(outputs.band()) if write else None
        for j, x0 in enumerate(xs):
            tile_input, logits = next(tiles)
            if pending is None:
                pending = np.zeros((logits.shape[0] + weighed, th, tw), np.float32)
            weight = tile_weight(j == 0, j == len(xs) - 1)
            # pending += logits × weight, in place, fused and threaded.
            torch.from_numpy(pending[:logits.shape[0]]).addcmul_(torch.from_numpy(logits),
                                                                 torch.from_numpy(weight))
            if weighed:
                pending[-1] += weight
            # Columns up to the next tile's start are final now.
            done = (xs[j + 1] if j + 1 < len(xs) else info.width) - x0
            piece = pending[:, :, :done]
            previous = carry.get()
            if previous is not None:
                piece[:, :previous.shape[1]] += previous
            if put is not None:
                sums, weights = (piece[:-1], piece[-1]) if weighed else (piece, None)
                _write(put, outputs.kinds, y0, x0, sums[:, :split],
                       None if weights is None else weights[:split],
                       nodata_mask(tile_input[:split, :done], info.nodata))
            if split < th:
                carry.put(piece[:, split:])
            pending[:, :, :tw - done] = pending[:, :, done:].copy()
            pending[:, :, tw - done:] = 0.0


def tile_count(height: int, width: int, settings: TileSettings) -> int:
    """How many tiles :func:`predict_raster` runs over a raster of this size."""
    ys, xs, _, _ = tile_grid(height, width, settings.tile, settings.overlap)
    return len(ys) * len(xs)


#: File suffixes that may hold georeferenced or huge rasters (tiled by ``fcnseg predict``).
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt")
#: Raster suffixes the image reader reads too: such a file without georeferencing is an image.
TIFF_SUFFIXES = (".tif", ".tiff")
#: Which files ``fcnseg predict`` segments by tiles, in words (its help and messages say it).
TILING_RULE = (f"a raster file ({', '.join(RASTER_SUFFIXES)}) that is georeferenced (GeoTIFF "
               f"tags, a CRS or a geotransform) or has more pixels than --max-pixels, or a "
               f"{'/'.join(s for s in RASTER_SUFFIXES if s not in TIFF_SUFFIXES)} file larger "
               f"than one --tile and not 8-bit RGB")


def needs_tiling(path: PathLike, max_pixels: int | None, tile: int | None = None) -> bool:
    """Whether ``fcnseg predict`` segments ``path`` by tiles (:data:`TILING_RULE`; ``tile``
    None: a side of any size). Every other file (a photo, a plain TIFF within ``max_pixels``
    such as a microscopy image, one that cannot be read) is segmented as an image."""
    return tiling_info(path, max_pixels, tile) is not None


def tiling_info(path: PathLike, max_pixels: int | None, tile: int | None = None
                ) -> RasterInfo | None:
    """The header of ``path`` where :func:`needs_tiling`, else None: read once, for planning
    and segmenting."""
    with tiling_reader(path, max_pixels, tile) or contextlib.nullcontext() as reader:
        return None if reader is None else reader.info


def tiling_reader(path: PathLike, max_pixels: int | None, tile: int | None = None
                  ) -> RasterReader | None:
    """A reader of ``path`` (of any size) where :func:`needs_tiling`, else None: its header,
    read once, decides."""
    suffix = Path(path).suffix.lower()
    if suffix not in RASTER_SUFFIXES:
        return None
    try:
        reader = open_raster(path)
    except ImageError:
        return None
    info = reader.info
    beyond_a_tile = tile is None or max(info.height, info.width) > tile
    colour = info.bands == 3 and info.dtype == np.uint8
    if not (is_georeferenced(path, info) or (max_pixels is not None and info.pixels > max_pixels)
            or (suffix not in TIFF_SUFFIXES and beyond_a_tile and not colour)):
        reader.close()
        return None
    return reader


def is_georeferenced(path: PathLike, info: RasterInfo) -> bool:
    """Whether a raster lies on a map grid: a CRS or geotransform, or a TIFF's GeoTIFF tags."""
    return info.transform is not None or info.crs is not None or (
        info.geotiff and Path(path).suffix.lower() in TIFF_SUFFIXES)


def model_bands(segmenter: Any, info: RasterInfo) -> tuple[str, ...] | None:
    """The bands to read from a raster for ``segmenter``'s model: a multi-band model's own
    bands by name where the file names all of them, else None (every band, in file order)."""
    bands = segmenter.input_convention.bands
    if bands is None or not info.band_names:
        return None
    have = {n.lower() for n in info.band_names}
    return tuple(bands) if all(b.lower() in have for b in bands) else None


def _check_model_input(segmenter: Any, info: RasterInfo, found: int | None = None) -> None:
    """A multi-band model's input of ``found`` bands (None: those :func:`model_bands` reads of
    the file) refused in one line naming it unless of the model's band count and depth."""
    bands = segmenter.input_convention.bands
    if found is None:
        found = len(bands) if model_bands(segmenter, info) is not None else info.bands
    if found != len(bands):
        raise ImageError(info.path, f"{found} band(s), but the model takes {len(bands)} "
                                    f"({', '.join(bands)}): segment it with a model trained on "
                                    f"these bands")
    if (problem := sample_type_problem(info.dtype, segmenter.input_convention)) is not None:
        raise ImageError(info.path, problem)


#: The integer sample types whose depth fixes the scale of a band's raw values.
_DEPTHS = {"uint8": "8-bit", "uint16": "16-bit"}
#: Where a variance beyond the largest 0-255 values allow counts as proof (rounding aside).
_RTOL = 1e-6


def _beyond_eight_bits(convention: Any) -> str | None:
    """In words, the band whose mean (above 255) or variance (above ``mean × (255 - mean)``)
    proves the training values went beyond 0-255, or None. A std of 1 (no variance) proves
    nothing."""
    for band, mean, std in zip(convention.bands, convention.mean, convention.std, strict=True):
        spread = std != 1.0 and std * std > max(mean * (255 - mean), 0.0) * (1 + _RTOL) + _RTOL
        if mean > 255 * (1 + _RTOL) or spread:
            return f"band {band}: mean {mean:.4g}, std {std:.4g}"
    return None


def sample_type_problem(dtype: Any, convention: Any) -> str | None:
    """Why a multi-band model of ``convention`` refuses samples of ``dtype``, or None: 8-bit
    input to a model trained on 16-bit images or the reverse; without recorded types, 8-bit
    input where the band statistics prove training went beyond 0-255. Floats are not judged."""
    have = np.dtype(dtype).name
    if convention.bands is None or have not in _DEPTHS:
        return None
    trained = convention.sample_types
    fix = (f"convert it to the training images' sample type on their scale, or segment it "
           f"with a model trained on {_DEPTHS[have]} images")
    if trained is not None:
        if have in trained or not trained or not all(t in _DEPTHS for t in trained):
            return None
        kinds = " and ".join(f"{_DEPTHS[t]} ({t})" for t in dict.fromkeys(trained))
        return (f"{_DEPTHS[have]} samples ({have}), but the model was trained on {kinds} "
                f"images: their values lie on another scale and would be segmented "
                f"wrongly; {fix}")
    proof = _beyond_eight_bits(convention) if have == "uint8" else None
    if proof is None:
        return None
    return (f"8-bit samples (uint8), but the model was trained on values beyond 8 bits "
            f"({proof}): its values lie on another scale and would be segmented wrongly; {fix}")


#: The bands drawn as a picture's red, green and blue, where the model has all three.
COLOUR_BANDS = ("red", "green", "blue")


def picture_bands(bands: Sequence[str]) -> tuple[str, ...] | None:
    """The bands drawn as red, green and blue (by name), or None (the first band in grey)."""
    have = {b.lower() for b in bands}
    return COLOUR_BANDS if all(b in have for b in COLOUR_BANDS) else None


def read_model_bands(segmenter: Any, source: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A multi-band model's input as its H×W×N raw band values and the H×W mask of its pixels
    without data (or None), from a raster file (the model's bands by name where the file names
    them), a :class:`RasterReader` or an H×W×N array (H×W for one band). Another band count or
    depth (:func:`sample_type_problem`) is one line naming the file (or ``<array>``)."""
    bands = segmenter.input_convention.bands
    if isinstance(source, np.ndarray):
        if source.ndim == 2 and len(bands) == 1:  # H×W, as tifffile.imread gives one band
            source = source[..., None]
        if source.ndim != 3 or source.shape[0] == 0 or source.shape[1] == 0:
            raise ImageError("<array>", f"expected an H×W×{len(bands)} array of the bands "
                                        f"{', '.join(bands)}, got shape {source.shape}")
        source = held_raster(source)
    if isinstance(source, RasterReader):
        info = source.info
        _check_model_input(segmenter, info, len(source.band_index))
        image = source.read_all()
    elif isinstance(source, str | os.PathLike):
        with open_raster(source, max_pixels=segmenter.max_pixels) as reader:
            info = reader.info
            _check_model_input(segmenter, info)
        picked = model_bands(segmenter, info)
        with open_raster(source, bands=picked, max_pixels=segmenter.max_pixels) as reader:
            image = reader.read_all()
    else:
        raise ImageError(f"<{type(source).__name__}>",
                         f"a model of the bands {', '.join(bands)} takes a raster file path "
                         f"or an H×W×{len(bands)} array")
    return image, nodata_mask(image, _nodata(segmenter, info))


def read_colour_raster(segmenter: Any, path: PathLike
                       ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A raster file that ``fcnseg predict`` tiles (:func:`needs_tiling`) as a colour model's
    8-bit RGB (:func:`colour_pixels`) and its mask of pixels without data; None for others."""
    tile = segmenter.tiles.tile if segmenter.tiles is not None else None
    if (reader := tiling_reader(path, segmenter.max_pixels, tile)) is None:
        return None
    with reader:
        info = reader.info
        check_pixels(info.path, info.width, info.height, segmenter.max_pixels, BY_WINDOWS)
        if colour_model_problem(info) is not None:
            return None
        image = reader.read_all()
    scale = float_scale(float(np.nanmax(image, initial=0.0))) if info.dtype.kind == "f" else 1.0
    return colour_pixels(image, info, scale), nodata_mask(image, _nodata(segmenter, info))


def _nodata(segmenter: Any, info: RasterInfo) -> float | None:
    """The value of pixels without data: the file's own, else the model's."""
    return info.nodata if info.nodata is not None else segmenter.input_convention.nodata


def colour_pixels(values: np.ndarray, info: RasterInfo, scale: float = 1.0) -> np.ndarray:
    """Pixels of a raster described by ``info`` (as read) as a colour model's 8-bit RGB, by the
    image reader's rules (floats scaled by ``scale``, :func:`raster_float_scale`; a palette
    TIFF's indices as its colours)."""
    if info.dtype.kind == "f":
        return floats_to_rgb(values, scale)
    if info.palette is not None and values.shape[-1] == 1:  # indices: their colours
        return info.palette[np.minimum(values[..., 0], len(info.palette) - 1).astype(np.intp)]
    if values.dtype.kind == "f":  # 32-bit or signed integers, which the reader reads as float32
        limits = np.iinfo(info.dtype)
        values = np.clip(values.astype(np.float64), int(limits.min), int(limits.max))
        values = values.astype(info.dtype)
    return integers_to_rgb(values, info.alpha, premultiplied=info.premultiplied,
                           cmyk=info.cmyk)


#: Pixels read at a time when a float raster is scanned for its largest value.
_SCAN_PIXELS = 1 << 22


def raster_float_scale(path: str) -> float:
    """:func:`~fcnseg.data.images.float_scale` of a float raster's largest value (NaN aside),
    read by rows: its tiles are scaled as the image reader scales the whole file."""
    with open_raster(path) as reader:
        h, w = reader.info.height, reader.info.width
        rows = max(1, _SCAN_PIXELS // max(w, 1))
        peak = max((float(np.nanmax(reader.read(y, 0, min(rows, h - y), w), initial=0.0))
                    for y in range(0, h, rows)), default=0.0)
    return float_scale(peak)


def colour_model_problem(info: RasterInfo) -> str | None:
    """Why a colour model cannot take a raster by tiles, or None: the image reader's rule
    (:func:`~fcnseg.data.images.colour_bands_problem`)."""
    return colour_bands_problem(info.bands, info.dtype, info.alpha, info.cmyk)


def segmenter_tile_fn(segmenter: Any, info: RasterInfo) -> TileFn:
    """:meth:`Segmenter.logits` on raster tiles: 8-bit RGB for a colour model (as training reads
    them, :func:`colour_pixels`), raw band values for a multi-band one; pixels without data
    as the model's mean pixel (:func:`~fcnseg.data.rasters.fill_nodata`, as in training). A
    raster of other bands is one line naming it."""
    bands = segmenter.input_convention.bands
    scale = 1.0
    if bands is not None:
        _check_model_input(segmenter, info)
    elif (problem := colour_model_problem(info)) is not None:
        raise ImageError(info.path, problem)
    elif info.dtype.kind == "f":  # scaled as the whole file is scaled (a file: not in memory)
        scale = raster_float_scale(info.path)
    nodata = _nodata(segmenter, info)
    neutral = segmenter.input_convention.mean_pixel()

    def run(batch: np.ndarray) -> torch.Tensor:
        missing = nodata_mask(batch, nodata)  # as read, before any scaling
        if bands is not None:  # a multi-band model takes the raw values
            batch = batch.astype(np.float32, copy=False)
        elif batch.dtype.kind in "ui" or info.dtype not in (np.uint8, np.uint16):
            batch = colour_pixels(batch, info, scale)  # as the image reader reads the file
        # (float tiles of an 8-bit raster are RGB 0-255 already: Segmenter's, filled)
        batch = fill_nodata(batch, missing, neutral)
        return first_of(segmenter.logits(segmenter.preprocess(batch)))  # the first head's
    return run


def model_identity(segmenter: Any, *, as_loaded: bool = False) -> str:
    """What names a segmenter's predictions in a raster's record: a SHA-256 of the weights it
    runs (of its file for an export) and of the settings that change its outputs. With
    ``as_loaded`` (it runs its checkpoint as loaded, ``fcnseg predict``) the file is hashed
    instead, faster, while it is the file that was read."""
    digest = hashlib.sha256()
    model, path = segmenter.model, segmenter.checkpoint_path
    signature = getattr(segmenter, "checkpoint_signature", None)
    checkpoint = None
    if as_loaded and not segmenter.runtime and path is not None and signature is not None:
        checkpoint = digest_if_unchanged(path, signature)
    # An exported model's weights live in its runtime, not in torch tensors: its file then.
    weights = model.state_dict() if isinstance(model, nn.Module) and not segmenter.runtime \
        and checkpoint is None else {}
    if checkpoint is not None:
        digest.update(f"checkpoint:{checkpoint};".encode())
    elif not weights and path is None:
        raise ValueError(f"cannot identify the model {type(model).__name__}: it has no "
                         f"torch weights and was not loaded from a file")
    elif not weights:
        digest.update(file_checksum(path, "sha256").encode())
    for name, value in weights.items():
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        for piece in _row_major_bytes(value.detach().cpu()):
            digest.update(piece)
    described = {k: v for k, v in segmenter.describe().items()
                 if k not in ("optimizations", "palette", "ignore_color")}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return "sha256=" + digest.hexdigest()


def _row_major_bytes(value: torch.Tensor, chunk: int = 1 << 24) -> Iterator[np.ndarray]:
    """The bytes of ``value`` in row-major order, about ``chunk`` at a time: a channels-last
    weight (a VGG fc6 is 400 MB) is copied a few rows at a time."""
    if value.dim() == 0 or value.is_contiguous():
        yield value.reshape(-1).view(torch.uint8).numpy()
        return
    rows = max(1, chunk // max(1, value[0].numel() * value.element_size()))
    for start in range(0, value.shape[0], rows):
        yield value[start:start + rows].contiguous().reshape(-1).view(torch.uint8).numpy()


#: The longest side of the picture written beside a label raster.
PREVIEW_SIDE = 2048
#: The side of the windows the picture is read by, about (whole blocks; memory: a window).
_PREVIEW_WINDOW = 512


def write_raster_preview(source: PathLike, label_path: PathLike, out: PathLike,
                         palette: np.ndarray, class_names: Sequence[str] = (), *,
                         bands: Sequence[str] | None = None,
                         band_names: Sequence[str] | None = None,
                         style: PictureStyle | None = None) -> Path:
    """``out``: a PNG of the raster at ``source`` (:func:`~fcnseg.data.rasters.display_rgb` of
    the bands named red, green and blue; ``bands`` selects them by the file's names,
    ``band_names`` names those read) with the labels of ``label_path`` over it as ``style``
    draws overlays (nodata left as the picture), at most :data:`PREVIEW_SIDE` (or
    ``style.max_side``) a side. Read by
    windows of whole blocks: memory is set by the preview and a window."""
    import rasterio
    from PIL import Image

    style = style or PictureStyle()
    # GDAL would keep every block read in its cache; each is read once, so none needs keeping.
    with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_BYTES):
        image, info, step = _picture_pixels(source, bands, None)
        label = _picture_pixels(label_path, None, step)[0][..., 0]
    names = list(band_names or bands or info.band_names or [])
    picture = display_rgb(image, names or None, picture_bands(names))
    stretched = not (image.dtype == np.uint8 and image.shape[-1] in (3, 4))
    size = picture_size(*label.shape[:2], style.max_side)
    picture, label = shrunk(picture, size), shrunk(label, size, nearest=True)
    picture = labelled_overlay(picture, label, palette, class_names, style,
                               exclude=[*style.unblended, NODATA_LABEL], grey_under=stretched)
    path = Path(out)
    with atomic_write(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return path


def _picture_pixels(path: PathLike, bands: Sequence[str] | None, step: int | None
                    ) -> tuple[np.ndarray, RasterInfo, int]:
    """Every ``step``-th pixel of the raster at ``path`` (None: the step that makes its longest
    side at most :data:`PREVIEW_SIDE`), its info and the step, read by windows of whole blocks
    about :data:`_PREVIEW_WINDOW` a side, each window's pixels copied (a view would keep it)."""
    with open_raster(path, bands=bands) as reader:
        info = reader.info
        height, width = info.height, info.width
        step = step or max(1, -(-max(height, width) // PREVIEW_SIDE))
        block_rows, block_cols = reader.block_shape() or (_PREVIEW_WINDOW, _PREVIEW_WINDOW)
        rows = min(block_rows * max(1, _PREVIEW_WINDOW // block_rows), height)
        cols = min(block_cols * max(1, _PREVIEW_WINDOW // block_cols), width)
        picture: np.ndarray | None = None
        for r, c in itertools.product(range(0, height, rows), range(0, width, cols)):
            r0, c0 = -r % step, -c % step  # the window's first pixel on the picture's grid
            h, w = min(rows, height - r), min(cols, width - c)
            if r0 >= h or c0 >= w:
                continue
            piece = reader.read(r, c, h, w)[r0::step, c0::step]
            if picture is None:  # the first window, (0, 0): the samples' type
                picture = np.empty((-(-height // step), -(-width // step), piece.shape[2]),
                                   piece.dtype)
            y, x = (r + r0) // step, (c + c0) // step
            picture[y:y + piece.shape[0], x:x + piece.shape[1]] = piece
    assert picture is not None  # the window at (0, 0) always has pixel (0, 0)
    return picture, info, step
