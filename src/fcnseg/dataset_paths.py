"""Where the relative dataset paths of a checkpoint's recipe are found.

Training records the paths as typed (a project folder can move) and the folder it ran in
(:data:`TRAINED_IN`). Whatever rebuilds a checkpoint's datasets finds a relative path with
:func:`recipe_paths_found`: in the current folder, then where the checkpoint's run folder
lies, then in the recorded training folder (:func:`training_folders`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from fcnseg.data.build import relative_paths
from fcnseg.utils.validate import fields_of

#: The checkpoint key of the folder training ran in (absolute), where relative paths of its
#: recipe were taken from.
TRAINED_IN = "trained_in"

#: The dataset fields whose folder must exist before anything is read.
ROOT_FIELDS = ("root", "voc_root", "sbd_root")


def training_folder(ckpt: Mapping[str, Any], checkpoint: Any) -> Path | None:
    """Where a checkpoint's run folder (the recipe's relative ``out``, which holds it) lies;
    None where the checkpoint lies elsewhere."""
    out = fields_of(ckpt.get("recipe")).get("out")
    if not isinstance(out, str) or not out or Path(out).is_absolute() or checkpoint is None:
        return None
    parts = Path(os.path.normpath(out)).parts
    run = Path(os.path.abspath(checkpoint)).parent
    if ".." in parts or run.parts[-len(parts):] != parts:
        return None
    return Path(*run.parts[:-len(parts)])


def training_folders(ckpt: Mapping[str, Any], checkpoint: Any = None) -> list[Path]:
    """The folders, after the current one, a checkpoint's relative dataset paths are looked for
    in: :func:`training_folder` of ``checkpoint`` (default: the file it was loaded from), then
    the recorded :data:`TRAINED_IN`."""
    derived = training_folder(ckpt, checkpoint if checkpoint is not None else ckpt.get("path"))
    recorded = ckpt.get(TRAINED_IN)
    folders: list[Path] = []
    for folder in (derived, Path(recorded) if isinstance(recorded, str) else None):
        if folder is not None and folder.is_absolute() and folder not in folders:
            folders.append(folder)
    return folders


def recipe_paths_found(spec: Mapping[str, Any], folders: Sequence[Path], *, source: str,
                       option: str = "--data {key}=DIR",
                       kept: Collection[str] | None = None) -> dict[str, Any]:
    """``spec`` (a dataset of a checkpoint's recipe) with each relative path field (of
    ``kept``, default all) the current folder lacks taken from the first of ``folders`` that
    holds it. FileNotFoundError for a root found nowhere, in one line naming it, ``source``, the
    folders and ``option`` (formatted with ``key`` and the dataset's ``name``)."""
    spec = dict(spec)
    keys = set(spec) if kept is None else set(kept)
    for key, value in relative_paths(spec).items():
        if key not in keys or Path(value).expanduser().exists():
            continue
        found = next((f / value for f in folders if (f / value).exists()), None)
        if found is not None:
            spec[key] = os.path.normpath(found)
    for key in ROOT_FIELDS:
        value = spec.get(key)
        if key in keys and isinstance(value, str) and not Path(value).expanduser().exists():
            also = (f" (nor in {' or '.join(map(str, folders))}, where the checkpoint was "
                    f"trained)" if folders else "")
            problem = (f"{value} does not exist" if Path(value).expanduser().is_absolute() else
                       f"{value} is not in {Path.cwd()}, the folder relative paths are taken "
                       f"from{also}")
            hint = option.format(key=key, name=spec.get("name"))
            raise FileNotFoundError(f"{key} from {source}'s recipe: {problem}; pass {hint} with "
                                    f"the dataset's folder")
    return spec


def folder_holding(spec: Mapping[str, Any], folders: Sequence[Path]) -> Path | None:
    """The first of ``folders`` that holds every relative root (:data:`ROOT_FIELDS`) of
    ``spec``; None where none does."""
    roots = [v for k, v in relative_paths(spec).items() if k in ROOT_FIELDS]
    return next((f for f in folders if all((f / v).exists() for v in roots)), None)
