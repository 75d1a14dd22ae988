"""Predictions back into the labelling tool, and which images to label next.

:class:`PreAnnotations` collects each prediction's polygons (labelme, COCO, CVAT or Label
Studio) and
uncertainty (:func:`image_uncertainty`), then writes ``ranking.csv`` (most uncertain first: the
images whose labels would teach the model most) and the polygons of all images, or of the
``top`` most uncertain ones.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import numpy as np

from fcnseg.data.annotations.contours import ring_area
from fcnseg.data.annotations.export import (
    BRUSH,
    DEFAULT_TOLERANCE,
    EXPORT_FORMATS,
    coco_annotations,
    coco_document,
    cvat_document,
    cvat_image_element,
    implicit_background,
    labelme_document,
    labelstudio_config,
    labelstudio_results,
    relative_path,
)
from fcnseg.data.annotations.labelstudio import upload_name, without_upload_prefix
from fcnseg.inference.calibration import entropy
from fcnseg.inference.files import OwnOutputs, content_digest, record_outputs
from fcnseg.inference.segmenter import Prediction
from fcnseg.utils.files import atomic_write_bytes

RANKING_NAME = "ranking.csv"
#: A pixel is uncertain when its largest class probability is below this.
UNCERTAIN_BELOW = 0.5
#: The single files of the formats that hold every image in one.
COCO_NAME, CVAT_NAME = "annotations.coco.json", "annotations.xml"
#: Label Studio's tasks with their predictions, and the labeling config they need.
LABELSTUDIO_NAME, LABELSTUDIO_CONFIG_NAME = "tasks.labelstudio.json", "labelstudio-config.xml"
#: Polygons of fewer pixels are specks (one line suggests ``min_area`` when most are).
SPECK_AREA = 20


def image_uncertainty(probs: np.ndarray) -> tuple[float, float]:
    """(mean entropy in nats, share of pixels whose largest probability is below
    :data:`UNCERTAIN_BELOW`) of C×H×W class probabilities."""
    share = (np.asarray(probs).max(0) < UNCERTAIN_BELOW).mean()
    return float(entropy(probs).mean(dtype=np.float64)), float(share)


def _lattice_pixels(points: np.ndarray) -> float:
    """The pixel centres inside or on a polygon through pixel centres (Pick's theorem)."""
    step = np.abs(np.roll(points, -1, axis=0) - points).astype(np.int64)
    return abs(ring_area(points)) + float(np.gcd(step[:, 0], step[:, 1]).sum()) / 2 + 1


def _common_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many last parts ``a`` and ``b`` have in common."""
    pairs = zip(reversed(a), reversed(b), strict=False)  # up to the shorter one's first part
    return len(list(itertools.takewhile(lambda pair: pair[0] == pair[1], pairs)))


def exported_pictures(paths: list[Path], urls: Mapping[str, str]
                      ) -> tuple[dict[Path, str], set[Path]]:
    """Which picture of a Label Studio export (``urls``: its task's ``data`` by the picture's
    path) each of ``paths`` is, and the paths that more than one could be. Of the export's
    pictures of its file name (or of the name Label Studio cleans an upload's to, prefix
    aside), a path takes the one whose folders end as most of its own do, unless another
    matches as well; a picture another path matches better is not its own."""
    by_name: dict[str, list[str]] = {}
    for named in urls:
        if (parts := PurePosixPath(named).parts):
            by_name.setdefault(without_upload_prefix(parts[-1]), []).append(named)
    ambiguous: set[Path] = set()
    claims: dict[str, list[tuple[int, Path]]] = {}
    for path in paths:
        found = by_name.get(path.name) or by_name.get(upload_name(path.name)) or []
        depths = {n: _common_tail(path.absolute().parts[:-1], PurePosixPath(n).parts[:-1])
                  for n in found}
        best = [n for n, d in depths.items() if d == max(depths.values())]
        if len(best) > 1:
            ambiguous.add(path)
        elif best:
            claims.setdefault(best[0], []).append((depths[best[0]], path))
    chosen: dict[Path, str] = {}
    for named, claimants in claims.items():
        top = max(d for d, _ in claimants)
        winners = [p for d, p in claimants if d == top]
        if len(winners) == 1:
            chosen[winners[0]] = urls[named]
        else:
            ambiguous.update(winners)
    return chosen, ambiguous


@dataclass
class _Entry:
    path: Path
    name: str
    mean_entropy: float | None = None
    uncertain_share: float | None = None
    document: Any = None


@dataclass
class PreAnnotations:
    """Polygons and uncertainty of each prediction, gathered while ``fcnseg predict`` runs.

    In ``out_dir`` (image paths relative to it), polygons in ``fmt`` (``labelme``, ``coco``,
    ``cvat``, ``labelstudio`` or None) of ``class_names`` but ``ignore_index``, simplified
    within ``tolerance`` pixels (Label Studio's :data:`BRUSH`: exact masks), none under
    ``min_area`` pixels (0: all); with ``rank``, for the ``top`` most uncertain images only;
    CVAT's and Label Studio's labels coloured by ``palette``. Label Studio tasks name their
    picture as ``image_urls`` (a Label Studio export's, by :func:`exported_pictures`) does,
    else ``image_url`` followed by its path below the first of ``image_folders`` (the folders
    given as input) holding it, or by its file name (None: by its path relative to
    ``out_dir``); their predictions by ``model_version``.
    COCO categories take the ids ``coco_categories`` records (:func:`coco_document`).
    Entries, recorded as writer threads finish, are put back in input ``order`` (names not in
    it after, as recorded).
    """

    out_dir: Path
    fmt: str | None
    rank: bool = False
    top: int | None = None
    tolerance: float | str = DEFAULT_TOLERANCE
    min_area: int = 0
    class_names: tuple[str, ...] = ()
    palette: np.ndarray | None = None
    ignore_index: int | None = 255
    order: tuple[str, ...] = ()
    image_url: str | None = None
    image_urls: dict[str, str] = field(default_factory=dict)
    image_folders: tuple[Path, ...] = ()
    model_version: str = "fcnseg"
    coco_categories: Mapping[str, Any] = field(default_factory=dict)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: (polygons under :data:`SPECK_AREA` pixels, polygons) written without ``min_area``.
    specks: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, path: Path, name: str, pred: Prediction) -> None:
        """Record one prediction (thread-safe; called by the writer threads)."""
        entry = _Entry(path, name)
        if self.rank:
            if pred.probs is None:
                raise ValueError("ranking by uncertainty needs the class probabilities")
            entry.mean_entropy, entry.uncertain_share = image_uncertainty(pred.probs)
        if self.fmt is not None:
            entry.document = self._document(path, pred.label)
            if self.fmt == "labelstudio" and pred.probs is not None:  # the mean top probability
                entry.document += (float(np.asarray(pred.probs).max(0).mean(dtype=np.float64)),)
        areas = self._polygon_pixels(entry.document) if self.min_area == 0 else []
        with self._lock:
            self.specks[0] += sum(a < SPECK_AREA for a in areas)
            self.specks[1] += len(areas)
            self._entries.pop(name, None)  # a name recorded again goes last, as it came
            self._entries[name] = entry

    def _document(self, path: Path, label: np.ndarray) -> Any:
        names, where = self.class_names, relative_path(path, self.out_dir)
        outlines = {"tolerance": self.tolerance, "ignore_index": self.ignore_index,
                    "min_area": self.min_area}
        if self.fmt == "labelme":
            # Flat, by the picture's own name: labelme opens OUT/<basename>.json.
            return labelme_document(label, names, where, **outlines)
        if self.fmt == "cvat":
            return cvat_image_element(label, names, path.name, 0, path=where, **outlines)
        if self.fmt == "coco":
            return label.shape[:2], coco_annotations(
                label, 0, 1, background=implicit_background(names), **outlines)
        if self.fmt == "labelstudio":
            return (labelstudio_results(label, names, **outlines),)
        raise ValueError(f"--format: unknown {self.fmt!r}; known: {', '.join(EXPORT_FORMATS)}")

    def _polygon_pixels(self, document: Any) -> list[float]:
        """The pixels each polygon of one image's ``document`` draws."""
        if self.fmt == "coco":
            return [float(ann["area"]) for ann in document[1]]
        if self.fmt == "cvat":  # corner polygons: their area is their pixels
            return [abs(ring_area(np.array([p.split(",") for p in el.get("points").split(";")],
                                           float))) for el in document.iter("polygon")]
        if self.fmt == "labelstudio":  # corner polygons, in percent of the image's size
            return [abs(ring_area(np.asarray(r["value"]["points"], float)
                                  * [r["original_width"] / 100, r["original_height"] / 100]))
                    for r in document[0] if r["type"] == "polygonlabels"]
        if self.fmt == "labelme":  # through pixel centres: the pixels inside and on it
            return [_lattice_pixels(np.asarray(s["points"], float)) for s in document["shapes"]]
        return []

    def speck_line(self) -> str | None:
        """One line when most polygons written are specks and ``min_area`` was not given."""
        specks, polygons = self.specks
        if not specks or 2 * specks < polygons:
            return None
        return (f"{specks} of the {polygons} polygons outlined cover under {SPECK_AREA} pixels "
                f"each: --min-area {SPECK_AREA} leaves out regions and outline patches of fewer "
                f"pixels, filling them into the class around them")

    def ranked(self) -> list[_Entry]:
        """Entries most uncertain first (input order without ranking, and among ties)."""
        position = {name: k for k, name in enumerate(self.order)}
        entries = sorted(self._entries.values(),
                         key=lambda e: position.get(e.name, len(position)))
        if self.rank:
            entries.sort(key=lambda e: (-(e.mean_entropy or 0.0), -(e.uncertain_share or 0.0)))
        return entries

    def write(self) -> tuple[list[Path], list[str]]:
        """Write ranking.csv and the polygons (nothing without a prediction): the files written
        and one line per file that was not. A file ``fcnseg predict`` did not write, or edited
        since it did (noted in ``kept``), is never replaced."""
        entries = self.ranked()
        written: list[Path] = []
        self._problems: list[str] = []
        self.kept: list[str] = []
        self.notes: list[str] = []
        self._own = OwnOutputs()  # the manifests as the images' writes left them: read once
        if not entries:  # no image segmented: an empty file would read as "nothing found"
            return written, self._problems
        if self.rank:
            written.append(self._write_ranking(entries))
        chosen = entries[: self.top] if self.rank and self.top is not None else entries
        # abspath, not Path.absolute: ../x/a.jpg beside b.jpg is x/a.jpg below their parent.
        self._shared = Path(os.path.commonpath([os.path.abspath(e.path.parent) for e in entries]))
        if self.fmt in ("labelme", "cvat"):  # COCO and Label Studio name pictures by path
            chosen = self._unique_stems(chosen)
        if self.fmt == "labelme":
            written += [self._save(f"{e.path.stem}.json", json.dumps(
                e.document, indent=1, ensure_ascii=False).encode("utf-8")) for e in chosen]
        elif self.fmt == "cvat":
            document = cvat_document([e.document for e in chosen], self.class_names,
                                     colours=self.palette)
            written.append(self._save(CVAT_NAME, document))
        elif self.fmt == "coco":
            written.append(self._save(COCO_NAME, self._coco_bytes(chosen)))
        elif self.fmt == "labelstudio":
            written.append(self._save(LABELSTUDIO_NAME, self._labelstudio_bytes(chosen)))
            written.append(self._save(LABELSTUDIO_CONFIG_NAME, labelstudio_config(
                self.class_names, self.palette, self.tolerance == BRUSH).encode("utf-8")))
        return [p for p in written if p is not None], self._problems

    def _unique_stems(self, entries: list[_Entry]) -> list[_Entry]:
        """The entries whose picture's stem no earlier entry has: annotations name images by it."""
        first: dict[str, _Entry] = {}
        for e in entries:
            if e.path.stem in first:
                self._problems.append(
                    f"{e.path}: has the name {e.path.stem!r} of {first[e.path.stem].path} too; "
                    f"no {self.fmt} annotations written for it (rename one of them)")
            else:
                first[e.path.stem] = e
        return list(first.values())

    def _save(self, relative: str, data: bytes) -> Path | None:
        path = self.out_dir / relative
        if path.exists() and path not in self._own:
            self._problems.append(f"{path}: exists and was not written by fcnseg predict; "
                                  f"not replaced (choose another --out)")
            return None
        if path.exists() and self._own.edited(path):
            self.kept.append(f"{path}: edited since fcnseg predict wrote it; kept, not "
                             f"replaced by the new prediction")
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            record_outputs(self.out_dir, [path])
            atomic_write_bytes(path, data)
            record_outputs(self.out_dir, [path], [content_digest(data)])
        except OSError as e:
            self._problems.append(f"{path}: cannot write it ({e})")
            return None
        return path

    def _write_ranking(self, entries: list[_Entry]) -> Path | None:
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        rows.writerow(["rank", "name", "image", "mean_entropy", "uncertain_share"])
        for k, e in enumerate(entries, start=1):
            rows.writerow([k, e.name, relative_path(e.path, self.out_dir),
                           f"{e.mean_entropy:.6f}", f"{e.uncertain_share:.6f}"])
        return self._save(RANKING_NAME, text.getvalue().encode("utf-8"))

    def _coco_bytes(self, entries: list[_Entry]) -> bytes:
        images, annotations = [], []
        for image_id, e in enumerate(entries, start=1):
            (height, width), anns = e.document
            # file_name: its path below the input folder, as a COCO export's below its images
            # folder; path: the picture relative to this file.
            images.append({"id": image_id, "file_name": self._below_input(e.path),
                           "path": relative_path(e.path, self.out_dir),
                           "height": int(height), "width": int(width)})
            for ann in anns:
                annotations.append({**ann, "id": len(annotations) + 1, "image_id": image_id})
        doc = coco_document(images, annotations, self.class_names,
                            background=implicit_background(self.class_names),
                            sources=self.coco_categories)
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")

    def _labelstudio_bytes(self, entries: list[_Entry]) -> bytes:
        """Label Studio tasks, one per picture, each with the model's prediction."""
        tasks, unlisted, ambiguous = [], [], []
        exported, tied = exported_pictures([e.path for e in entries], self.image_urls)
        for e in entries:
            below = self._below_input(e.path)
            image = exported.get(e.path)
            if image is None:
                if self.image_urls:
                    (ambiguous if e.path in tied else unlisted).append(below)
                image = (relative_path(e.path, self.out_dir) if self.image_url is None
                         else self.image_url + quote(below))
            prediction: dict[str, Any] = {"model_version": self.model_version,
                                          "result": e.document[0]}
            if len(e.document) > 1:
                prediction["score"] = round(e.document[1], 6)
            tasks.append({"data": {"image": image}, "predictions": [prediction]})
        how = "by their path from here" if self.image_url is None else \
            f"as {self.image_url}PATH, PATH below the folder given"
        export = "the Label Studio export of --image-urls-from"
        if ambiguous:
            self.notes.append(f"{len(ambiguous)} picture(s) match several pictures of {export} "
                              f"as well, by name and folders (the first: {ambiguous[0]}): "
                              f"their tasks name them {how}")
        if unlisted:
            self.notes.append(f"{len(unlisted)} picture(s) not in {export} (the first: "
                              f"{unlisted[0]}): their tasks name them {how}")
        indent = None if self.tolerance == BRUSH else 1  # a brush's bytes: not one a line
        return json.dumps(tasks, indent=indent, ensure_ascii=False).encode("utf-8")

    def _below_input(self, path: Path) -> str:
        """``path`` below the first of ``image_folders`` holding it, else below the folder all
        the pictures written share (their file name, where they are in one folder)."""
        folder = next((f for f in self.image_folders if path.is_relative_to(f)), None)
        if folder is None:
            return Path(os.path.abspath(path)).relative_to(self._shared).as_posix()
        return path.relative_to(folder).as_posix()
