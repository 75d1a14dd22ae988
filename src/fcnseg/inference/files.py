"""The files of ``fcnseg predict``: finding the inputs and writing every output.

For an input ``NAME``: ``NAME_label.png`` (class indices, the model's palette),
``NAME_overlay.png``, and when asked ``NAME_heatmap_CLASS.png``, ``NAME_uncertainty_KIND.png``
and ``NAME_probs.npz``. Each file is listed in the folder's manifest (:data:`MANIFEST_NAME`)
before it is written, so that a later run never takes it for an input, and once written with
the model and settings that wrote it (:func:`record_written`, :func:`written_by`).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from fcnseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS
from fcnseg.data.images import CAMERA_RAW_SUFFIXES, IMAGE_FORMATS, upright_size
from fcnseg.data.palette import distinct_palette
from fcnseg.data.rasters import raster_info
from fcnseg.inference.calibration import uncertainty_maps
from fcnseg.inference.classnames import parse_classes as parse_classes  # re-exported
from fcnseg.inference.images import ImageError
from fcnseg.inference.prefetch import background_pool, default_workers, in_order, until
from fcnseg.inference.prefetch import segment_files as segment_files  # its earlier home
from fcnseg.inference.rasters import NODATA_LABEL
from fcnseg.inference.segmenter import Prediction
from fcnseg.inference.visualize import (
    HeatmapStyle,
    PictureStyle,
    heatmap_picture,
    labelled_overlay,
    picture_size,
    save_label_png,
    save_png,
    shrunk,
)
from fcnseg.utils.files import atomic_write
from fcnseg.utils.predict_manifest import MANIFEST_NAME, WRITTEN, read_manifest
from fcnseg.utils.predict_manifest import content_digest as content_digest  # re-exported
from fcnseg.utils.typing import PathLike

#: The files of a folder given as INPUT that are segmented: the formats read, and photos
#: (HEIC) and rasters (JPEG 2000) that get one line saying why they are not, where not.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm", ".avif", ".heic", ".heif", ".hif",
                              ".jp2", ".j2k"})

#: Picture files of a folder that are never read (some would be misread: camera raw files
#: start as TIFFs): each named in one line, never skipped unsaid; other files are not inputs.
UNREAD_PICTURES = {".jxl": "JPEG XL", ".psd": "Photoshop", ".svg": "SVG drawing",
                   ".eps": "EPS", ".ico": "icon", ".tga": "Targa",
                   **dict.fromkeys(CAMERA_RAW_SUFFIXES, "camera raw")}
#: The files of a folder that are inputs or named as never read.
_FOLDER_PICTURES = IMAGE_EXTENSIONS | frozenset(UNREAD_PICTURES)


def record_outputs(out_dir: PathLike, paths: Iterable[PathLike],
                   digests: Iterable[str] | None = None) -> None:
    """Append ``paths`` (inside ``out_dir``) to the folder's manifest, before they are written;
    with ``digests`` (after), each path's content digest (see :meth:`OwnOutputs.edited`)."""
    names = _names_in(out_dir, paths)
    if digests is not None:
        names = [f"{n}\t{d}" for n, d in zip(names, digests, strict=True)]
    _append_to_manifest(out_dir, names)


def record_written(out_dir: PathLike, job: str, paths: Iterable[PathLike]) -> None:
    """Record in the folder's manifest that ``paths`` (inside ``out_dir``), listed before, are
    now written whole by the run ``job`` (:func:`outputs_job`)."""
    _append_to_manifest(out_dir, ["\t".join(["", WRITTEN, job, *_names_in(out_dir, paths)])])


def _names_in(out_dir: PathLike, paths: Iterable[PathLike]) -> list[str]:
    return [Path(p).relative_to(out_dir).as_posix() for p in paths]


def _append_to_manifest(out_dir: PathLike, lines: list[str]) -> None:
    # Flushed on close; losing the tail to a power cut only costs a re-segmented file.
    with open(Path(out_dir) / MANIFEST_NAME, "a", encoding="utf-8") as f:
        f.writelines(f"{line}\n" for line in lines)


def written_by(out_dir: PathLike) -> dict[Path, str | None]:
    """Which run wrote each output listed in the manifest of ``out_dir``: the job of its latest
    :func:`record_written`; None where never recorded, or listed again since."""
    return read_manifest(Path(out_dir))[1]


def outputs_job(model_id: str, palette: np.ndarray, style: PictureStyle) -> str:
    """What names a run's image outputs in the manifest (``sha256=HEX``): the model
    (:func:`fcnseg.inference.rasters.model_identity`), the colours and the style."""
    # Without the defaults of later options: as runs before them named the same outputs.
    drawn = {k: v for k, v in asdict(style).items()
             if (k, v) not in (("max_side", None), ("overlay", True))}
    described = {"model": model_id, "palette": np.asarray(palette).tolist(), "style": drawn}
    return content_digest(json.dumps(described, sort_keys=True, default=str).encode())


class OwnOutputs:
    """Recognises files that the prediction writer wrote: those listed in the manifest of their
    folder or of a folder above it."""

    def __init__(self) -> None:
        self._manifest: Callable[[Path], dict[Path, str | None]] = functools.cache(
            lambda folder: read_manifest(folder)[0])  # each folder's, read once

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        path = Path(path).resolve()
        return any(path in self._manifest(folder) for folder in path.parents)

    def edited(self, path: PathLike) -> bool:
        """Whether ``path``, listed with a digest, was edited since (it is someone's now)."""
        path = Path(path).resolve()
        for folder in path.parents:
            digest = self._manifest(folder).get(path)
            if digest is not None:
                try:
                    return content_digest(path.read_bytes()) != digest
                except OSError:
                    return False
        return False


#: The manifests read so far, for :func:`_refuse_inputs` (read again once written to since).
_OWN = OwnOutputs()


def collect_inputs(specs: Sequence[str], out_dir: PathLike | None = None,
                   notes: list[str] | None = None
                   ) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand files, folders and globs into (file, output name) pairs, and (spec, problem)
    pairs for specs that give nothing to segment. Files an earlier run wrote
    (:class:`OwnOutputs`) are never inputs, nor is ``out_dir`` inside a folder given. Output
    names are the file stem, or the path relative to the folder given, made unique. Pictures
    of a folder that are never read (camera raw files beside their JPEGs, ``.psd``, ...) are
    one line per folder and kind: in ``notes`` where given, else among the problems."""
    out_dir = None if out_dir is None else Path(out_dir)
    own = OwnOutputs()
    found: dict[Path, tuple[Path, str]] = {}  # by resolved path: a file found twice is one input
    problems: list[tuple[str, str]] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            # An output folder below this one is not scanned (the folder itself is).
            skip = out_dir is not None and path.resolve() in out_dir.resolve().parents
            # Pictures by name first: the folder's other files are never resolved nor looked up;
            # hidden ones (macOS's ._IMG_0001.JPG beside each photo copied from a Mac) neither.
            pictures = [f for f in sorted(path.rglob("*")) if f.suffix.lower() in _FOLDER_PICTURES
                        and not any(p.startswith(".") for p in f.relative_to(path).parts)]
            files = [f for f in pictures if f.is_file() and f not in own
                     and not (skip and out_dir.resolve() in f.resolve().parents)]
            hits = [(f, f.relative_to(path).with_suffix("").as_posix()) for f in files
                    if f.suffix.lower() in IMAGE_EXTENSIONS]
            unread = _unread_pictures(path, files) + [
                (str(f), "not segmented: a link to no file, or a loop of links")
                for f in pictures if f.is_symlink() and not f.exists()]
            if notes is None:
                problems += unread
            else:
                notes += [f"{spec}: {text}" for spec, text in unread]
            empty = "folder holds no images"
        elif path.is_file() and path in own:
            problems.append((spec, "written by an earlier fcnseg predict (listed in "
                                   f"{MANIFEST_NAME}); not segmented again"))
            continue
        elif path.is_file():
            hits, empty = [(path, path.stem)], ""
        elif glob.has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            hits = [(m, m.stem) for m in matches if m.is_file() and m not in own]
            empty = "pattern matches no files"
        else:
            problems.append((spec, "no such file or folder"))
            continue
        if not hits:
            problems.append((spec, empty))
        for f, name in hits:
            found.setdefault(f.resolve(), (f, name))
    return _unique_names([(f, _utf8_name(name)) for f, name in found.values()]), problems


def input_folders(specs: Sequence[str]) -> tuple[Path, ...]:
    """The folders that INPUT ``specs`` name: each folder given, and the folder part of each
    glob pattern (``photos`` of ``photos/*/*.jpg``); the pictures found are below them."""
    folders = []
    for spec in specs:
        if Path(spec).is_dir():
            folders.append(Path(spec))
        elif glob.has_magic(spec):
            parts = Path(spec).parts
            fixed = next(k for k, part in enumerate(parts) if glob.has_magic(part))
            folders.append(Path(*parts[:fixed]))
    return tuple(folders)


def _unread_pictures(folder: Path, files: list[Path]) -> list[tuple[str, str]]:
    """(folder, line) for each kind of picture in ``files`` that is never read: a shoot's
    hundreds of raw files are one line, not hundreds."""
    by_kind: dict[str, list[Path]] = {}
    for f in files:
        if f.suffix.lower() in UNREAD_PICTURES:
            by_kind.setdefault(UNREAD_PICTURES[f.suffix.lower()], []).append(f)
    lines = []
    for kind, found in by_kind.items():
        suffixes = ", ".join(sorted({f.suffix for f in found}))
        count = "1 file" if len(found) == 1 else f"{len(found)} files"
        lines.append((str(folder), f"{count} not segmented, {kind} ({suffixes}; the first: "
                                   f"{found[0].relative_to(folder)}): not read (accepted: "
                                   f"{', '.join(IMAGE_FORMATS)}); convert to PNG or JPEG "
                                   f"what is to be segmented"))
    return lines


def _utf8_name(name: str) -> str:
    """A name whose undecodable bytes (``caf\udce9``) are ``%XX`` (``caf%E9``): valid UTF-8."""
    return "".join(f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c
                   for c in name)


def _unique_names(found: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Disambiguate colliding output names: add the extension (``x_png``, ``x_jpg``), then the
    parent folder (``in/x_png``, ``sub/x_png``), then a counter."""

    def qualify(name: str, path: Path, level: int) -> str:
        if path.suffix:
            name = f"{name}_{path.suffix.lstrip('.').lower()}"
        # The resolved parent: "../x.png" must not give "../x", which would write outside --out.
        parent = path.resolve().parent.name
        if level == 2 and parent:
            name = f"{parent}/{name}"
        return name

    names = [name for _, name in found]
    for level in (1, 2):
        counts = Counter(names)
        names = [qualify(base, path, level) if counts[name] > 1 else name
                 for (path, base), name in zip(found, names, strict=True)]
    used: set[str] = set()
    out = []
    for (path, _), name in zip(found, names, strict=True):
        base, k = name, 2
        while name in used:
            name = f"{base}_{k}"
            k += 1
        used.add(name)
        out.append((path, name))
    return out


@dataclass(frozen=True)
class OutputFiles:
    """The files written for one input (``probs`` is None unless asked for)."""

    label: Path
    overlay: Path | None  # None: labels only (--no-overlay)
    heatmaps: dict[int, Path] = field(default_factory=dict)
    uncertainty: dict[str, Path] = field(default_factory=dict)
    probs: Path | None = None
    label_ids: Path | None = None  # a benchmark's label ids (--label-ids)

    def all(self) -> list[Path]:
        """Every file, in the order they are written."""
        return [p for p in (self.label, self.overlay, *self.heatmaps.values(),
                            *self.uncertainty.values(), self.probs, self.label_ids)
                if p is not None]


#: ``--label-ids``: the benchmarks whose label ids predictions are written in, as their
#: evaluation scripts and servers take them (``label_ids/NAME.png``): the classes the model
#: must have, in order, and the label id of each.
BENCHMARK_LABEL_IDS = {"cityscapes": (CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS)}


#: Names of the raw uncertainty maps in ``NAME_probs.npz``.
_NPZ_NAMES = {"entropy": "entropy", "maxprob": "maxprob_uncertainty"}


def benchmark_label_ids(benchmark: str, class_names: Sequence[str],
                        source: object) -> tuple[int, ...]:
    """Each class's label id in ``benchmark`` (:data:`BENCHMARK_LABEL_IDS`), refused in one
    line naming the model's ``source`` where its classes are not the benchmark's."""
    classes, ids = BENCHMARK_LABEL_IDS[benchmark]
    if tuple(class_names) != classes:
        raise ValueError(f"--label-ids {benchmark}: {source} has other classes "
                         f"({', '.join(class_names[:3])} ...) than {benchmark}'s "
                         f"{len(classes)} ({', '.join(classes[:3])} ...)")
    return ids


def output_files(out_dir: PathLike, name: str, class_names: Sequence[str],
                 heatmap_classes: Iterable[int] = (), probs: bool = False,
                 uncertainty: Iterable[str] = (), overlay: bool = True,
                 label_ids: bool = False) -> OutputFiles:
    """Where the outputs of the input called ``name`` go (``name`` may hold subfolders), heatmaps
    by class name (``potted plant`` → ``NAME_heatmap_potted_plant.png``), label ids in
    ``label_ids/NAME.png``."""
    stem = Path(out_dir) / name
    parts = {c: re.sub(r"[^A-Za-z0-9._-]+", "_", class_names[c]) or "class"
             for c in heatmap_classes}
    return OutputFiles(
        label=Path(f"{stem}_label.png"),
        overlay=Path(f"{stem}_overlay.png") if overlay else None,
        heatmaps={c: Path(f"{stem}_heatmap_{part}.png") for c, part in parts.items()},
        uncertainty={k: Path(f"{stem}_uncertainty_{k}.png") for k in uncertainty},
        probs=Path(f"{stem}_probs.npz") if probs else None,
        label_ids=Path(out_dir, "label_ids", f"{name}.png") if label_ids else None,
    )


@dataclass(frozen=True)
class OutputOptions:
    """What :func:`write_prediction` and :func:`write_predictions` write for each prediction:
    heatmaps of ``heatmap_classes`` (or of the classes present, ``heatmaps_present``),
    ``uncertainty`` maps, ``NAME_probs.npz`` (``probs``), drawn as ``style`` says, never over
    the ``protected`` resolved paths (the inputs). ``observe(input path, output name,
    prediction)`` is called in a writer thread after its files are written (with
    probabilities: ``observe_needs_probs``); ``job`` (:func:`outputs_job`) is recorded for
    each in the manifest (empty: not recorded); ``label_ids``: each class's label id in a
    benchmark (:data:`BENCHMARK_LABEL_IDS`), written in ``label_ids/NAME.png`` (empty: none)."""

    heatmap_classes: tuple[int, ...] = ()
    heatmaps_present: bool = False
    uncertainty: tuple[str, ...] = ()
    probs: bool = False
    style: PictureStyle = field(default_factory=PictureStyle)
    protected: frozenset[Path] = field(default_factory=frozenset)
    observe: Callable[[Path, str, Prediction], None] | None = None
    observe_needs_probs: bool = False
    job: str = ""
    label_ids: tuple[int, ...] = ()
    stop: Callable[[], bool] | None = None  # see write_predictions

    def heatmaps_for(self, pred: Prediction) -> tuple[int, ...]:
        """The classes whose heatmaps are written for ``pred``."""
        return tuple(pred.present_classes()) if self.heatmaps_present else self.heatmap_classes

    @property
    def needs_probs(self) -> bool:
        """Whether the predictions must carry probabilities."""
        return bool(self.probs or self.heatmap_classes or self.heatmaps_present
                    or self.uncertainty or self.observe_needs_probs)

    @property
    def probs_wanted(self) -> bool | tuple[int, ...]:
        """``return_probs`` for the predictions: the heatmaps' classes where nothing else
        (nor ``observe``) reads probabilities, else :attr:`needs_probs`."""
        alone = not (self.probs or self.heatmaps_present or self.uncertainty or self.observe)
        return self.heatmap_classes if alone and self.heatmap_classes else self.needs_probs


def write_prediction(out_dir: PathLike, name: str, pred: Prediction, palette: np.ndarray,
                     options: OutputOptions = OutputOptions()) -> OutputFiles:
    """Write the outputs of one prediction (its first head's) into ``out_dir`` as ``options``
    say (:func:`reserve_outputs`, :func:`write_outputs`; no ``observe``): where they went."""
    files = reserve_outputs(out_dir, name, pred, heatmap_classes=options.heatmaps_for(pred),
                            uncertainty=options.uncertainty, probs=options.probs,
                            protected=options.protected, overlay=options.style.overlay)
    write_outputs(files, pred, palette, options.style)
    if options.job:
        record_written(out_dir, options.job, files.all())
    return files


def reserve_outputs(out_dir: PathLike, name: str, pred: Prediction, *,
                    heatmap_classes: Iterable[int] = (), uncertainty: Sequence[str] = (),
                    probs: bool = False, protected: Collection[Path] = frozenset(),
                    overlay: bool = True) -> OutputFiles:
    """The first half of :func:`write_prediction`: check that the outputs of ``pred`` may be
    written (a :class:`FileExistsError` where one would replace a ``protected`` path, the
    probabilities present where needed), create their folder and list them in the manifest."""
    heatmap_classes = list(heatmap_classes)
    if (heatmap_classes or uncertainty or probs) and pred.probs is None:
        raise ValueError("heatmaps, uncertainty maps and probabilities need a prediction made "
                         "with return_probs=True")
    files = output_files(out_dir, name, pred.class_names, heatmap_classes, probs, uncertainty,
                         overlay)
    _refuse_inputs(files.all(), protected)
    files.label.parent.mkdir(parents=True, exist_ok=True)
    record_outputs(out_dir, files.all())
    return files


def foreign_files(paths: Iterable[Path], protected: Collection[Path] = frozenset()) -> list[Path]:
    """Those of ``paths`` there that no manifest lists (not written by predict), ``protected``
    paths aside; the manifests read before are read again before saying so."""
    global _OWN
    there = [p for p in paths if p.exists() and p.resolve() not in protected]
    if any(p not in _OWN for p in there):  # or listed since they were read
        _OWN = OwnOutputs()
    return [p for p in there if p not in _OWN]


def _refuse_inputs(paths: list[Path], protected: Collection[Path]) -> None:
    """A :class:`FileExistsError` where one of the output ``paths`` would replace a
    ``protected`` path (an input), or a file no manifest lists (:func:`foreign_files`)."""
    if clash := [path for path in paths if path.resolve() in protected]:
        raise FileExistsError(f"its output would overwrite the input {clash[0]}")
    if clash := foreign_files(paths):
        raise FileExistsError(f"its output {clash[0]} is there, not written by fcnseg predict "
                              f"(not in {MANIFEST_NAME}): not replaced (move it away)")


def write_outputs(files: OutputFiles, pred: Prediction, palette: np.ndarray,
                  style: PictureStyle = PictureStyle(), label_ids: Sequence[int] = ()) -> None:
    """The second half of :func:`write_prediction`: draw and write the files
    :func:`reserve_outputs` listed (thread-safe beside others writing other files); the
    ``label_ids`` of the classes in ``files.label_ids``, pixels without data 0 (unlabeled)."""
    save_label_png(files.label, pred.label, palette)
    if files.label_ids is not None:
        table = np.array([*label_ids, *[0] * (256 - len(label_ids))], np.uint8)  # no data: 0
        save_png(files.label_ids, table[pred.label])  # its folder made as it is written
    size = picture_size(*pred.label.shape[:2], style.max_side)
    photo = shrunk(pred.image, size)
    if files.overlay is not None:
        save_png(files.overlay, overlay_picture(replace(
            pred, image=photo, label=shrunk(pred.label, size, nearest=True)), palette, style))
    uncertainty = list(files.uncertainty)
    doubt = uncertainty_maps(pred.probs, uncertainty) if uncertainty else {}
    maps = [(path, pred.class_probs(c), 1.0, f"P({pred.class_names[c]})")
            for c, path in files.heatmaps.items()]
    maps += [(path, *doubt[kind]) for kind, path in files.uncertainty.items()]
    for path, values, top, title in maps:
        look = HeatmapStyle(colormap=style.colormap, vmin=0.0, vmax=top, alpha=style.alpha,
                            annotate=style.legend)
        save_png(path, heatmap_picture(shrunk(values, size), title=title, style=look,
                                       image=photo if style.heatmap_over_photo else None))
    if files.probs is not None:
        raw = {_NPZ_NAMES[k]: values for k, (values, _, _) in doubt.items()}
        with atomic_write(files.probs) as f:
            np.savez_compressed(f, probs=np.asarray(pred.probs, np.float32), label=pred.label,
                                class_names=np.array(pred.class_names), **raw)


def overlay_picture(pred: Prediction, palette: np.ndarray, style: PictureStyle) -> np.ndarray:
    """The photo with its label colours over it (and a legend when ``style.legend``); pixels
    without data (255, where it is no class) keep the photo's, as rasters' overlays do."""
    nodata = [NODATA_LABEL] if len(pred.class_names) <= NODATA_LABEL else []
    return labelled_overlay(pred.image, pred.label, palette, pred.class_names, style,
                            [*style.unblended, *nodata], grey_under=pred.stretched_picture)


def outputs_complete(source: PathLike, files: OutputFiles) -> bool:
    """Whether every output in ``files`` of the input ``source`` is written: each present (they
    are written whole) and the label PNG of the input's upright size."""
    if not all(Path(p).is_file() for p in files.all()):
        return False
    try:
        with Image.open(files.label) as label:
            size = label.size
    except (OSError, ValueError):
        return False
    with contextlib.suppress(OSError, ValueError):
        return size == upright_size(source)
    try:
        info = raster_info(source)
    except (OSError, ValueError):
        return False
    return size == (info.width, info.height)


@dataclass(frozen=True)
class FileOutcome:
    """What became of one input: ``problem``, None when its outputs were written, else one line
    naming the file and what went wrong; ``written``, the files written whole (every head's)."""

    path: Path
    name: str
    problem: str | None = None
    written: tuple[Path, ...] = ()


def write_predictions(predictions: Iterable[tuple[Path, str, Prediction | Exception]],
                      out_dir: Path, palette: np.ndarray, options: OutputOptions = OutputOptions(),
                      *, workers: int | None = None, pending: int = 8) -> Iterator[FileOutcome]:
    """Write the outputs of each prediction into ``out_dir`` in ``workers`` threads (0: in the
    calling thread), at most ``pending`` waiting; yield one :class:`FileOutcome` per item, in
    order (a failure reported, the rest still written), recorded as ``options.job``'s; once
    ``options.stop()`` is true, no more are taken: those begun are handed back."""
    jobs = (_write_job(path, name, pred, out_dir, palette, options)
            for path, name, pred in until(options.stop, iter(predictions)))
    count = workers or default_workers()
    pool = background_pool(count, "fcnseg-write") if workers != 0 else None
    with pool or contextlib.nullcontext():
        outcomes = ((run() for run in jobs) if pool is None
                    else in_order(jobs, pool, max(pending, 2 * count)))
        for outcome in outcomes:
            if options.job and outcome.written:
                record_written(out_dir, options.job, outcome.written)
            yield outcome


def _write_job(path: Path, name: str, pred: Prediction | Exception, out_dir: Path,
               palette: np.ndarray, options: OutputOptions) -> Callable[[], FileOutcome]:
    """What a writer thread runs for one item; each head's files are listed in the manifest
    here, in input order (an error doing so is reported after those listed are written)."""
    if isinstance(pred, ImageError):  # its message names the file
        return lambda: FileOutcome(path, name, f"skipped {pred}")
    if isinstance(pred, Exception):
        return lambda: FileOutcome(path, name, f"skipped {path}: prediction failed "
                                               f"({type(pred).__name__}: {pred})")
    style = options.style
    plain = PictureStyle(alpha=style.alpha, legend=style.legend, outlines=style.outlines,
                         max_side=style.max_side)
    todo: list[tuple[OutputFiles, Prediction, np.ndarray, PictureStyle]] = []
    stopped: Exception | None = None
    try:
        files = reserve_outputs(out_dir, name, pred, heatmap_classes=options.heatmaps_for(pred),
                                uncertainty=options.uncertainty, probs=options.probs,
                                protected=options.protected, overlay=options.style.overlay)
        if options.label_ids:
            files = replace(files, label_ids=output_files(out_dir, name, (),
                                                          label_ids=True).label_ids)
            _refuse_inputs([files.label_ids], options.protected)
            record_outputs(out_dir, [files.label_ids])
        todo.append((files, pred, palette, style))
        # Each further head (SIFT Flow): NAME_<head>_label.png, overlay, NAME_<head>_probs.npz
        for head, head_pred in list(pred.heads.items())[1:]:
            files = reserve_outputs(out_dir, f"{name}_{head}", head_pred,
                                    probs=options.probs and head_pred.probs is not None,
                                    protected=options.protected, overlay=style.overlay)
            todo.append((files, head_pred, distinct_palette(head_pred.class_names), plain))
    except (OSError, ValueError) as e:
        stopped = e

    def write() -> FileOutcome:
        try:
            for files, p, colours, how in todo:
                write_outputs(files, p, colours, how, options.label_ids)
            if stopped is not None:
                raise stopped
        except (OSError, ValueError) as e:
            hint = "; choose another --out" if isinstance(e, FileExistsError) else ""
            return FileOutcome(path, name, f"{path}: cannot write outputs ({e}{hint})")
        written = tuple(p for files, *_ in todo for p in files.all())
        if options.observe is not None:
            try:
                options.observe(path, name, pred)
            except (OSError, ValueError) as e:
                return FileOutcome(path, name, f"{path}: {e}", written)
        return FileOutcome(path, name, written=written)
    return write
