"""A file's kind is told from its first bytes, for messages about a file in the wrong place.
They say "p0.png is an image (PNG), not a checkpoint" instead of calling it corrupt."""

from __future__ import annotations

import codecs
import string
import zipfile
from pathlib import Path

from fcnseg.utils.typing import PathLike

# First bytes of the files people hand fcnseg, and what to call them.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "an image (PNG)"), (b"\xff\xd8\xff", "an image (JPEG)"),
          (b"GIF87a", "an image (GIF)"), (b"GIF89a", "an image (GIF)"),
          (b"II*\x00", "an image or raster (TIFF)"), (b"MM\x00*", "an image or raster (TIFF)"),
          (b"II+\x00", "a raster (BigTIFF)"), (b"MM\x00+", "a raster (BigTIFF)"),
          (b"\x00\x00\x00\x0cjP  ", "a raster (JPEG 2000)"),
          (b"\xffO\xffQ", "a raster (JPEG 2000)"),
          (b"\x93NUMPY", "a NumPy array (.npy)"), (b"\x1f\x8b", "a gzip archive"),
          (b"%PDF", "a PDF document"), (b"BM", "an image (BMP)"))
_TEXT = frozenset(string.printable)
_HEAD_BYTES = 4096


def what_file_is(path: PathLike) -> str | None:
    """``"an image (PNG)"``, ``"a text file (JSON)"`` ... as a file's first bytes say; None
    when they do not (a pickle, a ``torch.save`` zip) or it cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return None
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "an image (WEBP)"
    named = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if named is not None:
        return named
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(Path(path))
    return _text_kind(head)


def _zip_kind(path: Path) -> str | None:
    """A NumPy ``.npz`` or another zip archive; None for what ``torch.save`` writes."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None  # a damaged zip may be a damaged checkpoint
    if any(name.endswith("data.pkl") for name in names):
        return None
    if names and all(name.endswith(".npy") for name in names):
        return "a NumPy archive (.npz)"
    return "a zip archive"


def _text_kind(head: bytes) -> str | None:
    """A text file (JSON, or other text) when the first bytes are UTF-8 text."""
    if not head or head[:1] == b"\x80":  # a pickle's protocol byte
        return None
    try:  # not final: a character cut at the end of the head is held back, not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 128 and c not in _TEXT for c in text):
        return None
    return "a text file (JSON)" if text.lstrip()[:1] in ("{", "[") else "a text file"


#: How many times its size the members of a TorchScript archive may declare: ``torch.jit.save``
#: deflates its code (a few times smaller), never the tensors that make up most of the file.
TORCHSCRIPT_EXPANSION = 16


def zip_expansion_problem(path: PathLike, expansion: int = 1) -> str | None:
    """Why a zip file (a ``torch.save`` checkpoint, or with ``expansion`` a TorchScript
    archive) must not be loaded, or None: members that declare more than ``expansion`` times
    the file's bytes. ``torch.load`` allocates each compressed member's declared size (which
    ``torch.save`` never writes). None for a file that is no zip."""
    try:
        size = Path(path).stat().st_size
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            declared = sum(info.file_size for info in z.infolist())
    except (OSError, zipfile.BadZipFile):
        return None
    if declared > expansion * size:
        if expansion == 1:
            return (f"its members declare {declared} bytes in a file of {size} bytes "
                    f"(compressed members, which torch.save never writes)")
        return (f"its members declare {declared} bytes in a file of {size} bytes, more than "
                f"{expansion} times what it holds (a decompression bomb?)")
    return None
