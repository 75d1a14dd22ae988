"""Prediction files in a folder: finding the inputs, naming and writing the outputs.

For an input named ``NAME`` the writer puts into the output folder ``NAME_label.png`` (class
indices with the model's palette), ``NAME_overlay.png``, ``NAME_heatmap_CLASS.png`` for the
classes asked for and, when asked, ``NAME_probs.npz``. Every file it writes is listed first in
the folder's manifest (:data:`MANIFEST_NAME`), so that a later run reading that folder, or a
folder above it, never takes them for inputs.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from fcnseg.utils.typing import PathLike

__all__ = [
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "OutputFolderError",
    "OwnOutputs",
    "collect_inputs",
    "prepare_output_folder",
    "record_outputs",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm"})

# One relative path a line, appended before the files are written: a run that is killed
# mid-way leaves no output the next run would mistake for an input.
MANIFEST_NAME = ".fcnseg-outputs.txt"


class OutputFolderError(RuntimeError):
    """The output folder cannot be used (not a folder, or it cannot be created)."""


def prepare_output_folder(out_dir: PathLike) -> Path:
    """Create ``out_dir`` (and its parents) if needed; a clear error when that is impossible."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"output folder {out_dir}: exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        where = f" ({e.filename})" if e.filename and Path(e.filename) != out_dir else ""
        raise OutputFolderError(f"output folder {out_dir}: cannot create it: {reason}{where}") \
            from None
    return out_dir


def record_outputs(out_dir: PathLike, paths: Iterable[PathLike]) -> None:
    """Append ``paths`` (inside ``out_dir``) to the folder's manifest, before they are written."""
    out_dir = Path(out_dir)
    lines = [Path(p).relative_to(out_dir).as_posix() + "\n" for p in paths]
    # Flushed on close; losing the tail to a power cut only costs a re-segmented file.
    with open(out_dir / MANIFEST_NAME, "a", encoding="utf-8") as f:
        f.writelines(lines)


class OwnOutputs:
    """Recognises files that the prediction writer wrote: those listed in the manifest of their
    folder or of a folder above it."""

    def __init__(self) -> None:
        self._listed: dict[Path, frozenset[Path]] = {}

    def _manifest(self, folder: Path) -> frozenset[Path]:
        if folder not in self._listed:
            try:
                text = (folder / MANIFEST_NAME).read_text(encoding="utf-8", errors="replace")
            except OSError:  # no manifest (the usual case) or unreadable: nothing listed
                text = ""
            self._listed[folder] = frozenset(folder / line for line in text.splitlines() if line)
        return self._listed[folder]

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        path = Path(path).resolve()
        return any(path in self._manifest(folder) for folder in path.parents)


def collect_inputs(
    specs: Sequence[str], out_dir: PathLike | None = None
) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
    """Expand files, folders and globs into (file, output name) pairs, and (spec, problem)
    pairs for specs that give nothing to segment.

    Files that an earlier run wrote (see :class:`OwnOutputs`) are never inputs. A folder that
    contains ``out_dir`` below it is scanned without ``out_dir``.

    Output names are the file stem, or the path relative to the folder given (without its
    suffix) for files found in a folder; colliding names are made unique (see
    :func:`_unique_names`), so no two inputs write the same outputs.
    """
    out_dir = None if out_dir is None else Path(out_dir)
    own = OwnOutputs()
    found: list[tuple[Path, str]] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, name: str) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append((path, name))

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            skip = _strictly_inside(out_dir, path)
            files = sorted(f for f in path.rglob("*")
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                           and not (skip and out_dir.resolve() in f.resolve().parents)
                           and f not in own)
            if not files:
                problems.append((spec, "folder holds no images"))
            for f in files:
                add(f, f.relative_to(path).with_suffix("").as_posix())
        elif path.is_file():
            if path in own:
                problems.append((spec, "written by an earlier fcnseg predict (listed in "
                                       f"{MANIFEST_NAME}); not segmented again"))
            else:
                add(path, path.stem)
        elif glob.has_magic(spec):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            files = [m for m in matches if m.is_file() and m not in own]
            if not files:
                problems.append((spec, "pattern matches no files"))
            for f in files:
                add(f, f.stem)
        else:
            problems.append((spec, "no such file or folder"))
    return _unique_names(found), problems


def _strictly_inside(inner: Path | None, folder: Path) -> bool:
    """Whether ``inner`` is a folder below ``folder`` (not ``folder`` itself)."""
    return inner is not None and folder.resolve() in inner.resolve().parents


def _unique_names(found: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Disambiguate colliding output names: add the extension (``x_png``, ``x_jpg``), then the
    parent folder (``in/x_png``, ``sub/x_png``), then a counter."""

    def qualify(name: str, path: Path, level: int) -> str:
        if level >= 1 and path.suffix:
            name = f"{name}_{path.suffix.lstrip('.').lower()}"
        # The resolved parent: "../x.png" must not give "../x", which would write outside --out.
        parent = path.resolve().parent.name
        if level >= 2 and parent:
            name = f"{parent}/{name}"
        return name

    names = [name for _, name in found]
    for level in (1, 2):
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
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
