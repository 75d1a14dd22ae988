"""Pre-annotations nobody saved since ``fcnseg predict`` wrote them are guesses, not labels.
A file listed in its folder's ``.fcnseg-outputs.txt`` with the digest of its content now is not
reviewed; saving it, or importing the tool's own export, makes it a label."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from fcnseg.data.annotations.shapes import Annotations, printable
from fcnseg.utils.predict_manifest import MANIFEST_NAME, content_digest, read_manifest

#: The list of files ``fcnseg predict`` wrote into a folder (no images to annotate).
PREDICT_MANIFEST = MANIFEST_NAME

#: How each format's files are named in the line that leaves them out, and become labels.
_ACCEPT = {
    "labelme": ("labelme", "correct them in labelme and save (saving one unchanged accepts it)"),
    "cvat": ("CVAT XML", "upload it to the CVAT task as pre-annotations, correct them there and "
                         "import the task's export ('CVAT for images 1.1')"),
    "coco": ("COCO JSON", "correct them in the annotation tool and import its COCO export"),
    "labelstudio": ("Label Studio tasks", "import it into the Label Studio project (labeling "
                                          "config: labelstudio-config.xml beside it), correct "
                                          "the predictions there and import the project's JSON "
                                          "export"),
}


def predict_outputs(folder: Path) -> dict[Path, str | None]:
    """The files (resolved) fcnseg predict listed in ``folder``'s manifest, with their last
    content digest (None where it recorded none)."""
    return read_manifest(folder, key=Path.resolve)[0]


def unreviewed_files(files: Iterable[Path]) -> set[Path]:
    """The files among ``files`` (as given) that fcnseg predict wrote and nobody saved since."""
    manifest = functools.cache(predict_outputs)  # read once a folder
    found = set()
    for file in set(files):
        digest = manifest(Path(os.path.abspath(file)).parent).get(file.resolve())
        if digest is None:
            continue
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if content_digest(data) == digest:
            found.add(file)
    return found


def left_out_unreviewed(found: Annotations, fmt: str, src: Path) -> Annotations:
    """``found`` less the images whose annotation file is a prediction nobody reviewed: their
    pictures (those no other image uses) unannotated and unreviewed, one problem saying so."""
    sources = [i.source for i in [*found.items, *found.listed_empty]]
    pending = unreviewed_files(sources)
    if not pending:
        return found
    items = [i for i in found.items if i.source not in pending]
    left = [i for i in [*found.items, *found.listed_empty] if i.source in pending]
    used = {p.resolve() for p in [*(i.image_path for i in items), *found.unreviewed]
            if p is not None}
    pictures = list({i.image_path.resolve(): i.image_path for i in left
                     if i.image_path is not None and i.image_path.resolve() not in used}.values())
    listed = {p.resolve() for p in found.unannotated}
    kind, accept = _ACCEPT.get(fmt, (fmt, "correct them in the annotation tool and import its "
                                          "export"))
    first = left[0].source
    # A file imported by its own path is named once.
    named = "" if first == src else f" (the first: {printable(first)})"
    line = (f"{printable(src)}: {len(pending)} {kind} file(s) fcnseg predict wrote and nobody "
            f"saved since left out as not reviewed{named}: {accept}")
    return replace(found, items=items,
                   listed_empty=[i for i in found.listed_empty if i.source not in pending],
                   unannotated=[*found.unannotated,
                                *(p for p in pictures if p.resolve() not in listed)],
                   unreviewed=[*found.unreviewed, *pictures],
                   problems=[*found.problems, line])
