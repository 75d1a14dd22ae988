"""The work of ``fcnseg predict``, from its inputs to the files it writes.
Inputs are planned (:func:`plan_inputs`, :func:`left_to_do`); images read ahead, segmented in
batches and written behind in threads, byte for byte as one file after another
(:func:`predict_files`); rasters by tiles into label GeoTIFFs (:func:`segment_rasters`)."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

from fcnseg.data.images import DEFAULT_MAX_PIXELS, ImageError, upright_size
from fcnseg.data.rasters import RasterInfo
from fcnseg.inference import rasters
from fcnseg.inference.files import (
    FileOutcome,
    OutputFiles,
    OutputOptions,
    foreign_files,
    outputs_complete,
    write_predictions,
    written_by,
)
from fcnseg.inference.modalities import given_modality, is_companion_file, segment_modalities
from fcnseg.inference.prefetch import segment_files as segment_files  # re-exported
from fcnseg.inference.segmenter import IgnoreMaskSizeError, Segmenter
from fcnseg.inference.visualize import PictureStyle
from fcnseg.utils.download import file_checksum
from fcnseg.utils.files import OutputFolderError, atomic_write_bytes
from fcnseg.utils.predict_manifest import MANIFEST_NAME

#: ``report(line)``: where a run's one-line messages go.
Report = Callable[[str], None]
#: ``gather(obj)``: every process's ``obj`` of a run under torchrun, in rank order.
Gather = Callable[[Any], list[Any]]
Inputs = list[tuple[Path, str]]
#: The images whose outputs could not be written, one path a line, in the output folder.
FAILED_NAME = "failed.txt"


@dataclass
class Plan:
    """What process ``rank`` of a run's ``world_size`` segments: ``images`` and ``rasters`` (file,
    output name), its other modalities' folders (None: colour alone), the inputs no output
    replaces, its ``share`` of each raster's tile rows where shared; ``gather`` among them;
    each raster's header as planning read it (``infos``)."""

    images: Inputs
    rasters: Inputs
    input_dirs: dict[str, Path] | None
    protected: frozenset[Path]
    share: tuple[int, int] | None
    rank: int
    world_size: int
    gather: Gather
    infos: Mapping[Path, RasterInfo] = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def plan_inputs(seg: Segmenter, inputs: Inputs, *, max_pixels: int | None,
                input_dirs: Sequence[str], rank: int, world_size: int, gather: Gather) -> Plan:
    """Process ``rank``'s share of ``inputs``: images, and rasters by ``seg``'s raster tiles
    (``TILING_RULE``, one rule for every model); ``input_dirs``: ``--input-dir``'s items."""
    infos = {p: info for p, _ in inputs if (info := rasters.tiling_info(
        p, max_pixels or DEFAULT_MAX_PIXELS, seg.tiles.tile)) is not None}
    tiled = [(p, n) for p, n in inputs if p in infos]
    images = [item for item in inputs if item not in tiled]
    folders, given_as = _modality_folders(input_dirs, seg.input_names, images)
    if folders is not None:
        # a folder given as INPUT holds the companions (x_hha.png, hha/x.png) of its images
        beside = [m for m in seg.input_names if m != given_as and m not in folders]
        images = [(path, name) for path, name in images if not is_companion_file(path, beside)]
        if not images:
            raise FileNotFoundError(f"nothing to segment: every INPUT is another image's "
                                    f"{'/'.join(seg.input_names)} companion file")
    # An output must never replace an input (--out is the input folder, which holds a
    # ground-truth "x_label.png" next to "x.png"): such an input is refused, not overwritten.
    protected = frozenset(path.resolve() for path, _ in [*images, *tiled])
    # Fewer rasters than processes: every process takes a share of each raster's tile rows.
    share = (rank, world_size) if 0 < len(tiled) < world_size else None
    if world_size > 1:
        images = images[rank::world_size]
        tiled = tiled if share else tiled[rank::world_size]
    return Plan(images, tiled, folders, protected, share, rank, world_size, gather, infos)


def _modality_folders(items: Sequence[str], input_names: tuple[str, ...], inputs: Inputs
                      ) -> tuple[dict[str, Path] | None, str]:
    """``{modality: folder}`` (None: colour alone) and the INPUTs' modality; a shared folder
    is refused: each image would silently be its own other input."""
    dirs: dict[str, Path] = {}
    for item in items:
        modality, sep, folder = item.partition("=")
        if not sep or not modality or not folder:
            raise ValueError(f"--input-dir: expected MODALITY=DIR, got {item!r}")
        if modality not in input_names:
            raise ValueError(f"--input-dir: the model takes the inputs {list(input_names)}, not "
                             f"{modality!r}")
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--input-dir {item}: {folder} is not a folder")
        dirs[modality] = Path(folder)
    if not dirs and input_names == ("color",):
        return None, "color"
    try:
        given = given_modality(input_names, dirs)
    except ValueError as e:
        raise ValueError(f"--input-dir: {e}") from None
    owner: dict[Path, str] = {}
    for modality, folder in dirs.items():
        real = folder.resolve()
        if real in owner:
            raise ValueError(f"--input-dir {modality}={folder}: the same folder as --input-dir "
                             f"{owner[real]}={dirs[owner[real]]}; each input needs its own")
        owner[real] = modality
    for path, _ in inputs:
        modality = owner.get(path.parent.resolve())
        if modality is not None:
            raise ValueError(f"--input-dir {modality}={dirs[modality]}: the same folder as the "
                             f"{given} images given ({path.name} is in it), so each image would be "
                             f"its own {modality} input; give the folder of the {modality} images")
    return dirs, given


def first_size(inputs: Inputs) -> tuple[int, int]:
    """(height, width) of the first readable input: compiled models warm up at that size."""
    for path, _ in inputs[:8]:
        try:
            return upright_size(path)[::-1]  # (height, width)
        except (OSError, ValueError):
            continue
    return 256, 256


@dataclass
class Tally:
    """What a run did to its inputs: written, failed (each said as it fails; ``known``: of
    those, the ones that failed as :class:`FailedList` knows) or skipped as complete; and the
    annotations not written (the inputs' own outputs are)."""

    written: int = 0
    failed: int = 0
    skipped: int = 0
    annotation_problems: int = 0
    known: int = 0

    def count(self, problem: str | None, report: Report, *, complete: bool = False,
              known: bool = False) -> None:
        """One input's outcome: written (or complete already: skipped), or ``problem`` said
        (``known``: a failure listed already)."""
        if problem is not None:
            report(problem)
            self.failed += 1
            self.known += known
        elif complete:
            self.skipped += 1
        else:
            self.written += 1

    def gathered(self, plan: Plan) -> Tally:
        """Every process's counts summed."""
        shares = [astuple(share) for share in plan.gather(self)]
        return Tally(*map(sum, zip(*shares, strict=True)))


class FailedList:
    """``OUT/failed.txt``: the images whose outputs could not be written when last tried,
    one path a line; an image written since leaves it, one not tried stays on it."""

    def __init__(self, out_dir: Path, *, known: bool) -> None:
        self.path, self._known = out_dir / FAILED_NAME, known
        self.earlier: list[str] = []
        with contextlib.suppress(OSError):  # none yet
            self.earlier = self.path.read_text(errors="surrogateescape").splitlines()
        self.failed: list[str] = []
        self.written: set[str] = set()

    def note(self, outcome: FileOutcome) -> bool:
        """Record one image's outcome; whether it failed as listed already (``known``)."""
        if outcome.problem is None:
            self.written.add(str(outcome.path))
            return False
        self.failed.append(str(outcome.path))
        return self._known and str(outcome.path) in self.earlier

    def write(self, plan: Plan) -> None:
        """The list of every process's images (rank 0 writes it; removed once empty)."""
        shares = plan.gather((self.failed, self.written))
        tried = set().union(*(set(failed) | written for failed, written in shares))
        listed = dict.fromkeys([p for p in self.earlier if p not in tried]
                               + [p for failed, _ in shares for p in failed if "\n" not in p])
        if plan.is_main and listed:
            atomic_write_bytes(self.path, "".join(f"{p}\n" for p in listed).encode(
                errors="surrogateescape"))
        elif plan.is_main and self.earlier:
            self.path.unlink(missing_ok=True)


def refuse_foreign_outputs(plan: Plan, expected: Callable[..., OutputFiles],
                           out_dir: Path) -> None:
    """Before anything is segmented, an :class:`OutputFolderError` where files predict did not
    write have the names of ``plan``'s outputs: an image's (``expected(name=)``) no manifest
    lists (:func:`foreign_files`), a raster's label GeoTIFF without its record."""
    taken = foreign_files((p for _, name in plan.images for p in expected(name=name).all()),
                          plan.protected)
    tifs = [out_dir / f"{name}.tif" for _, name in plan.rasters] if plan.is_main else []
    records = (rasters.DONE_RECORD, rasters.PARTIAL_RECORD)
    taken += [p for p in tifs if p.is_file() and p.resolve() not in plan.protected
              and not any(p.with_name(p.name + end).is_file() for end in records)]
    shares = plan.gather((len(taken), taken[:1]))
    if taken := [first for _, firsts in shares for first in firsts]:
        raise OutputFolderError(
            f"--out: {sum(n for n, _ in shares)} file(s) named as its outputs, the first "
            f"{taken[0]}, were not written by fcnseg predict (not in its {MANIFEST_NAME}: files "
            f"of yours, or outputs of an earlier fcnseg that kept no such list); none is "
            f"replaced: move them away or choose another --out")


def left_to_do(plan: Plan, expected: Callable[..., OutputFiles], out_dir: Path,
               jobs_now: tuple[str, Callable[[], str]], report: Report) -> tuple[Inputs, int]:
    """``--skip-complete``: the images whose outputs this job (``jobs_now``: its name, and as
    earlier versions named it) has not all written, and how many are skipped; one line says
    why the others are predicted again."""
    job, earlier = jobs_now
    writers = written_by(out_dir)
    todo, skipped, other, unrecorded = [], 0, 0, 0
    for path, name in plan.images:
        files = expected(name=name)
        if not outputs_complete(path, files):
            todo.append((path, name))
            continue
        jobs = {writers.get(p) for p in files.all()}
        if jobs == {job} or (None not in jobs and jobs <= {job, earlier()}):
            skipped += 1
            continue
        todo.append((path, name))
        if jobs - {job, None}:  # (not the earlier name of this job: that was skipped)
            other += 1
        else:
            unrecorded += 1
    other, unrecorded = map(sum, zip(*plan.gather((other, unrecorded)), strict=True))
    reasons = []
    if other:
        reasons.append(f"the outputs of {other} image(s) were written by another model or "
                       f"with other settings")
    if unrecorded:
        reasons.append(f"{'those' if other else 'the outputs'} of {unrecorded} image(s) have "
                       f"no record of the model that wrote them (an older fcnseg, or a run "
                       f"stopped while writing them)")
    if reasons and plan.is_main:
        report(f"{out_dir}: {' and '.join(reasons)}; predicted again")
    return todo, skipped


def predict_files(segmenter: Segmenter, inputs: Sequence[tuple[Path, str]], out_dir: Path,
                  options: OutputOptions = OutputOptions(), *, batch_size: int = 4,
                  workers: int | None = None, warn: Callable[[str], None] | None = None,
                  input_dirs: Mapping[str, Path] | None = None) -> Iterator[FileOutcome]:
    """Read, segment and write ``inputs`` (file, output name) into ``out_dir`` as ``fcnseg
    predict`` does, reading and writing in ``workers`` threads each (0: all in the calling
    thread); one :class:`FileOutcome` per input, in order. ``warn`` is told the first
    :meth:`Segmenter.dim_image_warning`; ``input_dirs``: :func:`segment_modalities`' folders."""
    if input_dirs is not None:
        predictions = segment_modalities(segmenter, inputs, input_dirs,
                                         return_probs=options.needs_probs)
    else:
        predictions = segment_files(segmenter, inputs, batch_size=batch_size,
                                    return_probs=options.probs_wanted, read_workers=workers)
        if warn is not None:
            predictions = _with_warnings(predictions, segmenter, warn)
    yield from write_predictions(_refusing_an_unfit_mask(predictions), out_dir,
                                 segmenter.palette, options, workers=workers,
                                 pending=2 * batch_size)


def _refusing_an_unfit_mask(predictions: Iterator[tuple[Path, str, Any]]
                            ) -> Iterator[tuple[Path, str, Any]]:
    """``predictions`` as they come; an ignore mask of another size than the first image
    segmented is raised in one line (it would fail on every frame of a video)."""
    fitted = False
    for path, name, pred in predictions:
        if isinstance(pred, IgnoreMaskSizeError) and not fitted:
            raise IgnoreMaskSizeError(f"{path}: {pred}") from None
        fitted = fitted or not isinstance(pred, Exception)
        yield path, name, pred


def _with_warnings(predictions: Iterable[tuple[Path, str, Any]], segmenter: Segmenter,
                         warn: Callable[[str], None]) -> Iterator[tuple[Path, str, Any]]:
    """``predictions`` as they come, the first :meth:`Segmenter.dim_image_warning` to ``warn``,
    at the end one line naming the images of a single pixel value (a black or blank frame)."""
    dim, uniform = None, []
    for path, name, pred in predictions:
        if not isinstance(pred, Exception):
            if dim is None and (dim := segmenter.dim_image_warning(path, pred.image)) is not None:
                warn(dim)
            if (pred.image == pred.image[:1, :1]).all():
                uniform.append(str(path))
        yield path, name, pred
    if uniform:
        more = f" and {len(uniform) - 5} more" if len(uniform) > 5 else ""
        warn(f"{len(uniform)} image(s) of one pixel value throughout (all black or a single "
             f"colour), whose labels say nothing of a scene: {', '.join(uniform[:5])}{more}")


@dataclass(frozen=True)
class RasterRun:
    """How :func:`segment_rasters` writes: by ``tiles``, the model by ``model_ids`` (now, and
    as earlier versions named it); lines to ``report``, a bar ``progress(tiles, desc=...)``;
    ``counted(input, label raster)`` once each label raster is complete (``--counts``);
    ``mask``: the pixels to leave out (``RasterJob.mask``, ``--ignore-mask``)."""

    tiles: rasters.TileSettings
    model_ids: tuple[str, Callable[[], str]]
    style: PictureStyle
    report: Report
    progress: Callable[..., AbstractContextManager[Any]]
    counted: Callable[[Path, Path], None] | None = None
    mask: Path | None = None


def segment_rasters(seg: Segmenter, plan: Plan, out_dir: Path, run: RasterRun,
                    tally: Tally) -> None:
    """Each raster of ``plan`` by tiles into ``NAME.tif`` and ``NAME_overlay.png``, resumed."""
    current, earlier = run.model_ids
    if run.mask is not None:  # pixels it leaves out are no data: another mask, another job
        current += f";ignore_mask=sha256:{file_checksum(run.mask, 'sha256')}"
    for path, name in plan.rasters:
        out = out_dir / f"{name}.tif"
        recorded = rasters.recorded_model_id(out)
        # a raster an earlier version (without masks) began or finished for this model goes
        # on under its id
        model_id = recorded if recorded not in (None, current) and run.mask is None \
            and recorded == earlier() else current
        job = rasters.RasterJob(model_id=model_id, model_name=seg.checkpoint_path or "",
                                palette=seg.palette, mask=run.mask)
        # from an earlier run of this same model and settings
        complete = rasters.output_complete(out, path, seg.class_names, run.tiles, model_id)
        if plan.share is None or complete:
            problem, bands = _segment_raster(seg, (path, out), job, run, plan)
        else:  # this process's share of its tile rows, which rank 0 joins
            problem, bands = _segment_raster(seg, (path, rasters.part_path(out, plan.share[0])),
                                             replace(job, part=plan.share), run, plan)
            problem = next((p for p in plan.gather(problem) if p is not None), None)
            if problem is None and plan.is_main:
                rasters.merge_parts(path, out, seg.class_names, run.tiles, plan.share[1],
                                    model_id=model_id, model_name=job.model_name,
                                    palette=seg.palette)
            plan.gather(None)  # the others wait for the merged output
        if plan.share is None or plan.is_main:  # rank 0 counts the raster it merged
            if problem is None and run.counted is not None:
                run.counted(path, out)
            if problem is None and run.style.overlay:
                problem = _raster_preview(seg, path, out, run.style, bands)
            tally.count(problem, run.report, complete=complete)


def _segment_raster(seg: Segmenter, files: tuple[Path, Path], job: rasters.RasterJob,
                    run: RasterRun, plan: Plan) -> tuple[str | None, tuple[str, ...] | None]:
    """A raster of ``plan`` (or a share of its rows, ``job.part``) by tiles into ``out``; a
    problem line and the bands read."""
    path, out = files
    info = plan.infos[path]  # as planning read it
    if out.resolve() in plan.protected:
        return f"{path}: its output {out} would replace an input; not segmented", None
    if importlib.util.find_spec("rasterio") is None:  # label GeoTIFFs are written with it
        return (f"{path}: segmenting a raster by tiles into a GeoTIFF needs rasterio "
                f"(pip install 'fcnseg[geo]')"), None
    bars: list[Any] = []  # the tiles' bar, begun when predict_raster says how many
    by_path = rasters.named_by_path(rasters.recorded_model_id(out))

    def start(count: int, total: int, resumed_from_row: int) -> None:
        if resumed_from_row:
            run.report(f"{out}: resuming at row {resumed_from_row:,} ({count:,} of {total:,} "
                       f"tiles left)")
        bars.append(stack.enter_context(run.progress(count, desc=f"predict {path.name}")))

    try:
        job = replace(job, bands=rasters.model_bands(seg, info), started=start,
                      progress=lambda count: bars[0].update(count),  # after start
                      nodata=seg.input_convention.nodata)
        with contextlib.ExitStack() as stack:
            try:
                outcome = rasters.predict_raster(rasters.segmenter_tile_fn(seg, info), path,
                                                 out, seg.class_names, run.tiles, job)
            except KeyboardInterrupt:
                rows = rasters.rows_written(out)
                run.report(f"{out}: stopped before its first rows were written; run the same "
                           f"command again" if rows <= 0 else f"{out}: stopped with {rows:,} of "
                           f"{info.height:,} rows written, which are kept; run the same "
                           f"command again to continue from there")
                raise
    except ImageError as e:
        return str(e), None
    if outcome.skipped:
        run.report(f"{out} is complete already; skipped")
    elif by_path:
        run.report(f"{out}: begun or written by an earlier fcnseg, whose record names the "
                   f"checkpoint's path, not its weights; predicted again from the start")
    elif outcome.replaced:
        run.report(f"{out}: written by another model or with other settings; predicted again")
    elif outcome.restarted:
        run.report(f"{out}: begun by another model or with other settings, so not resumed; "
                   f"predicted again from the start")
    if outcome.removed:
        run.report(f"{out}: removed the earlier run's "
                   f"{' and '.join(p.name for p in outcome.removed)} (not written with these "
                   f"settings)")
    return None, job.bands


def _raster_preview(seg: Segmenter, path: Path, out: Path, style: PictureStyle,
                    bands: tuple[str, ...] | None) -> str | None:
    """``NAME_overlay.png`` beside a label raster, of ``bands`` (a problem as one line)."""
    preview = out.with_name(f"{out.stem}_overlay.png")
    if preview.is_file() and preview.stat().st_mtime >= out.stat().st_mtime:
        return None  # written with this label raster
    try:
        rasters.write_raster_preview(path, out, preview, seg.palette, seg.class_names, bands=bands,
                                     band_names=seg.input_convention.bands, style=style)
    except ImageError as e:
        return str(e)
    return None
