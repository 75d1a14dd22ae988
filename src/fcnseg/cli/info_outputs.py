"""``fcnseg info`` describes the other files fcnseg writes:
``predict --probs`` arrays (``.npz``), raster prediction records (``OUT.partial.json``
while running, ``OUT.done.json`` once finished), ``fcnseg import``'s ``dataset.yaml``, the
report of ``fcnseg bench --out``, predict's output manifest and TensorBoard event files."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fcnseg.cli.info_files import first_few
from fcnseg.data.folder import split_list_files
from fcnseg.data.rasters import raster_info
from fcnseg.inference.counts import NO_DATA
from fcnseg.inference.files import written_by
from fcnseg.inference.pipeline import FAILED_NAME
from fcnseg.inference.rasters import DONE_RECORD, PARTIAL_RECORD, named_by_path
from fcnseg.utils.predict_manifest import MANIFEST_NAME
from fcnseg.utils.validate import fields_of
from fcnseg.weightfiles.artifacts import protobuf_fields

# Class names are read from an .npz only when they are at most this many bytes.
_MAX_NAMES_BYTES = 1 << 20


def output_file_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    """The ``info`` record (``base`` and more) of an event file, predict's output list or an
    ``.npz``, told apart by name and contents; None for any other file."""
    if file.name.startswith("events.out.tfevents"):
        return {**base, "kind": "tensorboard_events", "logdir": str(file.parent),
                "empty": not _holds_summaries(file)}
    if file.name == MANIFEST_NAME:
        return _manifest_record(file, base)
    if file.suffix.lower() == ".npz":
        return _npz_record(file, base)
    return None


def output_document_record(file: Path, doc: dict[str, Any],
                           base: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a raster resume record, a bench report or a ``dataset.yaml`` from its
    top-level mapping ``doc``; None for another document."""
    if file.name.endswith((PARTIAL_RECORD, DONE_RECORD)) and fields_of(doc.get("job")):
        return _resume_record(doc, base)
    if file.suffix.lower() == ".json" and fields_of(doc.get("machine")) and (
            "inference" in doc or "config" in doc):
        return _bench_record(doc, base)
    if file.name == "dataset.yaml" and "classes" in doc:
        return _dataset_record(file, doc, base)
    return None


def _npz_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    """Shapes and dtypes from the headers alone (nothing unpickled), and any class names."""
    arrays: dict[str, dict[str, Any]] = {}
    classes = None
    try:
        with zipfile.ZipFile(file) as z:
            for entry in z.infolist():
                if not entry.filename.endswith(".npy"):
                    return None
                with z.open(entry) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(f)
                key = entry.filename[:-4]
                arrays[key] = {"shape": list(shape), "dtype": str(dtype)}
                if key == "class_names" and dtype.kind == "U" and (
                        entry.file_size <= _MAX_NAMES_BYTES):
                    with np.load(file, allow_pickle=False) as npz:
                        classes = [str(c) for c in npz[key]]
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return {**base, "kind": "arrays", "arrays": arrays, "classes": classes}


def _resume_record(doc: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    job = fields_of(doc.get("job"))
    return {**base, "kind": "raster_resume", "input": job.get("input"),
            "input_rows": _raster_rows(job.get("input")),
            "model": doc.get("model_name") or job.get("model"), "classes": job.get("classes"),
            "settings": job.get("settings"), "part": job.get("part"),
            "rows_done": doc.get("rows_done"), "complete": bool(doc.get("complete")),
            "model_by_path": named_by_path(job.get("model"))}


def _raster_rows(path: Any) -> int | None:
    """The height of the raster at ``path`` (its header alone), or None when it is gone."""
    try:
        return int(raster_info(str(path)).height) if path else None
    except Exception:  # moved, deleted or unreadable since: the record still says how far
        return None


def _dataset_record(file: Path, doc: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The classes, bands and nodata value, and the split lists present beside it."""
    root = file.parent
    declared = {str(k): str(v) for k, v in fields_of(doc.get("splits")).items()}
    splits = {s: declared.get(s) or str(p.relative_to(root))
              for s, p in split_list_files(root, declared).items()}
    classes = doc.get("classes")
    return {**base, "kind": "dataset_config",
            "classes": list(classes) if isinstance(classes, (list, tuple)) else classes,
            "ignore_index": doc.get("ignore_index", 255), "bands": doc.get("bands"),
            "nodata": doc.get("nodata"), "splits": splits,
            "images": (root / "images").is_dir(), "masks": (root / "masks").is_dir()}


def _bench_record(doc: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The machine, the fastest inference per model (Caffe geometry first), rows, targets."""
    rows = [fields_of(r) for r in doc.get("inference") or []]
    if any(r.get("geometry") == "caffe" for r in rows):
        rows = [r for r in rows if r.get("geometry") == "caffe"]
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        rate = row.get("images_per_s")
        key = f"{row.get('model')} {row.get('device')}"
        if isinstance(rate, (int, float)) and rate > best.get(key, {}).get("images_per_s", -1):
            best[key] = row
    targets = [fields_of(t) for t in doc.get("targets") or []]
    return {**base, "kind": "bench_report", "machine": fields_of(doc.get("machine")),
            "fastest_inference": list(best.values()),
            "rows": {s: len(doc.get(s) or []) for s in ("inference", "training", "evaluation",
                                                         "options")},
            "targets": len(targets),
            "targets_met": sum(1 for t in targets if t.get("met")),
            # reports from before these fields existed were written only when complete
            "complete": doc.get("complete", True) is not False,
            "finished_sections": doc.get("finished_sections"),
            "stopped_by_signal": doc.get("stopped_by_signal")}


def _manifest_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    try:
        file.read_bytes()
    except OSError:
        return None
    writers = written_by(file.parent)
    recorded = [job for job in writers.values() if job is not None]
    return {**base, "kind": "output_manifest", "folder": str(file.parent),
            "outputs": len(writers),
            "first": [p.relative_to(file.parent).as_posix() for p in list(writers)[:3]],
            "recorded": len(recorded), "jobs": len(set(recorded))}


def output_folder_record(folder: Path) -> dict[str, Any] | None:
    """The record of a folder ``fcnseg predict`` wrote into (its manifest tells, or for rasters
    alone a label GeoTIFF's record), by what it left there; None for another folder."""
    rec = _manifest_record(folder / MANIFEST_NAME, {"path": str(folder)})
    ends = tuple(f".tif{end}" for end in (DONE_RECORD, PARTIAL_RECORD))
    if rec is None and folder.is_dir() and any(p.name.endswith(ends) for p in folder.iterdir()):
        rec = {"path": str(folder), "folder": str(folder), "outputs": 0, "first": [],
               "recorded": 0, "jobs": 0}
    if rec is None:  # none there, or unreadable
        return None
    listed = [p for p in written_by(folder) if p.is_file()]
    failed: list[str] = []
    with contextlib.suppress(OSError):
        failed = (folder / FAILED_NAME).read_text(errors="replace").splitlines()
    counts = {}
    for table in sorted(folder.glob("*.csv")):
        with contextlib.suppress(OSError), table.open(errors="replace") as f:
            header = f.readline().rstrip("\r\n").split(",")
            if header[0] == "path" and header[-1] == NO_DATA:
                counts[table.name] = sum(1 for line in f if line.strip())
    done, stopped = ([p.with_name(p.name.removesuffix(end)) for p in folder.rglob(f"*.tif{end}")]
                     for end in (DONE_RECORD, PARTIAL_RECORD))  # label GeoTIFFs, not listed
    return {**rec, "kind": "predict_output",
            "file_bytes": sum(p.stat().st_size for p in [*listed, *done, *stopped] if p.is_file()),
            "label_pngs": sum(p.name.endswith("_label.png") for p in listed),
            "finished_rasters": len(done),
            "stopped_rasters": sorted(p.relative_to(folder).as_posix() for p in stopped),
            "failed": len(failed), "counts": counts}


def _output_folder_summary(rec: dict[str, Any]) -> list[str]:
    rasters = rec["finished_rasters"]
    lines = [f"contents:    fcnseg predict's output folder: {rec['label_pngs']} label PNG(s), "
             + (f"{rasters} finished label GeoTIFF(s), " if rasters else "")
             + f"{rec['outputs']} files listed in {MANIFEST_NAME}",
             *(_manifest_summary(rec)[1:] if rec["outputs"] else [])]
    if rec["stopped_rasters"]:
        lines.append(f"stopped:     {len(rec['stopped_rasters'])} raster(s) part way: "
                     f"{first_few(rec['stopped_rasters'], 3)}")
    if rec["failed"]:
        lines.append(f"failed:      {rec['failed']} image(s) in {FAILED_NAME} (tried again "
                     f"with --skip-complete)")
    lines += [f"counts:      {name}: {rows} row(s)" for name, rows in rec["counts"].items()]
    return lines


def _arrays_summary(rec: dict[str, Any]) -> list[str]:
    arrays = "; ".join(f"{k} {'x'.join(map(str, a['shape'])) or 'scalar'} {a['dtype']}"
                       for k, a in rec["arrays"].items())
    lines = [f"contents:    NumPy arrays (.npz, e.g. fcnseg predict --probs): {arrays}"]
    if rec.get("classes"):
        lines.append(f"classes:     {len(rec['classes'])}: {', '.join(rec['classes'][:8])}"
                     + (", ..." if len(rec["classes"]) > 8 else ""))
    return lines


def _resume_summary(rec: dict[str, Any]) -> list[str]:
    of = f" of {rec['input_rows']}" if rec.get("input_rows") else ""
    state = ("finished" if rec["complete"] else f"{rec['rows_done']}{of} rows written; " + (
        "recorded by an earlier fcnseg by the checkpoint's path, so the same command predicts "
        "it again from the start" if rec["model_by_path"] else "the same command resumes there"))
    what = "record of a finished" if rec["complete"] else "resume record of a"
    return [f"contents:    {what} tiled raster prediction of {rec['input']}",
            f"progress:    {state}",
            f"model:       {rec['model']}, classes {', '.join(map(str, rec['classes'] or []))}"]


def _dataset_summary(rec: dict[str, Any]) -> list[str]:
    classes = rec["classes"] if isinstance(rec["classes"], list) else []
    bands = rec["bands"]
    splits = ", ".join(f"{k} ({v})" for k, v in rec["splits"].items()) or (
        "none (every image in images/)")
    return [f"contents:    configuration of the dataset folder {Path(rec['path']).parent}",
            f"classes:     {len(classes)}: {', '.join(map(str, classes[:8]))}"
            + (", ..." if len(classes) > 8 else "") + f"; ignore value {rec['ignore_index']}",
            f"bands:       {', '.join(map(str, bands)) if bands else 'RGB images'}; nodata "
            f"{rec['nodata'] if rec['nodata'] is not None else 'none'}",
            f"splits:      {splits}"]


def _bench_summary(rec: dict[str, Any]) -> list[str]:
    m = rec["machine"]
    lines = [f"contents:    fcnseg bench report; machine {m.get('cpu', '?')}, "
             f"{m.get('threads', '?')} threads, torch {m.get('torch', '?')}"]
    for row in rec["fastest_inference"]:
        size = "x".join(map(str, row.get("size") or [])) or "?"
        geometry = f"{row['geometry']} geometry, " if row.get("geometry") else ""
        lines.append(f"inference:   {row.get('model')} on {row.get('device')}: "
                     f"{row['images_per_s']:.3g} images/s ({geometry}{size}, batch "
                     f"{row.get('batch')}, {row.get('dtype')})")
    rows = ", ".join(f"{n} {s}" for s, n in rec["rows"].items())
    lines.append(f"rows:        {rows}; targets met {rec['targets_met']} of {rec['targets']}")
    if not rec["complete"]:
        signum = rec.get("stopped_by_signal")
        finished = rec.get("finished_sections")
        lines.append("partial:     the run was "
                     + (f"stopped by signal {signum}" if signum else "not finished")
                     + "; finished sections: "
                     + (", ".join(map(str, finished)) if isinstance(finished, list) and finished
                        else "none"))
    return lines


def _manifest_summary(rec: dict[str, Any]) -> list[str]:
    return [f"contents:    fcnseg predict's list of the outputs it wrote in {rec['folder']}: "
            f"{rec['outputs']} files (a later run does not take them as inputs)",
            f"written by:  {rec['recorded']} of them recorded as written whole by "
            f"{rec['jobs']} model/settings combination(s) (what predict --skip-complete "
            f"checks)" + ("" if rec["recorded"] == rec["outputs"] else
                          "; the others by an older fcnseg or not finished")]


def _holds_summaries(file: Path) -> bool:
    """Whether it holds a summary, not only a writer's bookkeeping (version, session start)."""
    with file.open("rb") as f:
        while len(header := f.read(12)) == 12:  # uint64 length, uint32 its checksum
            length = int.from_bytes(header[:8], "little")
            if length > _MAX_EVENT_READ:
                return True  # bookkeeping events are a few bytes: only summaries are large
            with contextlib.suppress(ValueError):  # not an event as TensorBoard writes it
                if any(n == _SUMMARY_FIELD for n, _ in protobuf_fields(f.read(length))):
                    return True
            f.seek(4, 1)  # the data's checksum
    return False


#: tensorflow.Event's field ``summary``; bookkeeping events are read up to this many bytes.
_SUMMARY_FIELD, _MAX_EVENT_READ = 5, 1 << 16


def _tensorboard_summary(rec: dict[str, Any]) -> list[str]:
    if rec.get("empty"):
        return ["contents:    TensorBoard event file that holds no records (no curve or "
                "image: written by a run that stopped before logging anything)"]
    return ["contents:    TensorBoard event file (training curves fcnseg train logs)",
            f"view:        tensorboard --logdir {rec['logdir']}  (pip install tensorboard)"]


#: The summary lines (after ``file:``) of each kind of record this module makes.
OUTPUT_SUMMARIES = {"arrays": _arrays_summary, "raster_resume": _resume_summary,
                    "dataset_config": _dataset_summary, "bench_report": _bench_summary,
                    "output_manifest": _manifest_summary,
                    "predict_output": _output_folder_summary,
                    "tensorboard_events": _tensorboard_summary}
