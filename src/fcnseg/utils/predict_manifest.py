"""This module defines the list of files ``fcnseg predict`` wrote into a folder.
Its name (``.fcnseg-outputs.txt``), line format and parser serve the writer
(:mod:`fcnseg.inference.files`) and the readers below it (annotation import, ``fcnseg info``).

One line per event: ``PATH`` or ``PATH<TAB>DIGEST`` when a file is listed, before it is (re)
written; ``<TAB>written<TAB>JOB<TAB>PATH<TAB>PATH...`` once a run wrote those files whole. The
empty first field makes earlier fcnseg versions (which skip lines without a path) ignore it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path

#: The manifest's file name, in each output folder.
MANIFEST_NAME = ".fcnseg-outputs.txt"
#: The second field of a line recording files written whole.
WRITTEN = "written"


def content_digest(data: bytes) -> str:
    """How the manifest records a file's content: ``sha256=HEX``."""
    return "sha256=" + hashlib.sha256(data).hexdigest()


def read_manifest(folder: Path, key: Callable[[Path], Path] = Path
                  ) -> tuple[dict[Path, str | None], dict[Path, str | None]]:
    """Each path in ``folder``'s manifest (none where it has none or cannot be read), as
    ``key(folder / name)``, with its latest digest, and with the job of its latest ``written``
    line (None where never recorded, or listed since)."""
    digests: dict[Path, str | None] = {}
    writers: dict[Path, str | None] = {}
    with contextlib.suppress(OSError):
        text = (folder / MANIFEST_NAME).read_text(encoding="utf-8", errors="replace")
        for name, _, rest in (line.partition("\t") for line in text.splitlines()):
            fields = rest.split("\t")
            if name:  # PATH or PATH<TAB>DIGEST: listed, about to be (re)written
                path = key(folder / name)
                digests[path] = rest or digests.get(path)
                writers[path] = None
            elif len(fields) > 2 and fields[0] == WRITTEN:
                writers.update((key(folder / n), fields[1]) for n in fields[2:] if n)
    return digests, writers
