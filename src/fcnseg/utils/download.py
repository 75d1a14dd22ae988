"""Downloads with a checksum, a cache directory, resume of partial files and atomic completion.

Built on torch.hub's conventions: the cache lives under ``torch.hub.get_dir()`` (override with
``$FCNSEG_HOME`` or ``cache_dir=``), files are verified before they are moved into place, and a
checksum mismatch never leaves a file that later calls would trust.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import torch.hub
from tqdm import tqdm

from fcnseg.utils.files import fsync_dir
from fcnseg.utils.typing import PathLike

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, or an HTML page where a file was expected)."""


class ConnectionFailed(DownloadError):
    """The server could not be reached: ``reason`` is the network's short answer (``"Name or
    service not known"``); ``dest`` where the file goes (the message says where to put a copy
    fetched elsewhere) or None."""

    def __init__(self, url: str, reason: str, dest: Path | None = None) -> None:
        self.url, self.reason, self.dest = url, reason, dest
        hint = ("If this machine has no internet access, download the file elsewhere and pass "
                "its local path.") if dest is None else (
            f"If this machine has no internet access, download {dest.name} elsewhere (from "
            f"{url}) and put it in {dest.parent}: it is used from there without network access.")
        super().__init__(f"downloading {url} failed: {reason}. {hint}")


class ChecksumError(DownloadError):
    """A downloaded or cached file does not have the published checksum."""


def cache_dir() -> Path:
    """Where downloads are cached: ``$FCNSEG_HOME`` or ``<torch.hub.get_dir()>/fcnseg``."""
    env = os.environ.get("FCNSEG_HOME")
    return Path(env) if env else Path(torch.hub.get_dir()) / "fcnseg"


def file_checksum(path: PathLike, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(path: Path, md5: str | None, sha256: str | None) -> tuple[str, str, str] | None:
    """Return (algorithm, expected, actual) on mismatch, else None. sha256 may be a prefix."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if not expected:
            continue
        expected, got = expected.lower(), file_checksum(path, algorithm)
        if got != expected and not (algorithm == "sha256" and got.startswith(expected)):
            return algorithm, expected, got
    return None


def download(url: str, *, filename: str | None = None, md5: str | None = None,
             sha256: str | None = None, directory: PathLike | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` into the cache and return the local path.

    - A cached file with the right checksum is returned without any network access.
    - A partial ``<name>.part`` from an interrupted download is resumed with an HTTP Range request
      (restarted from zero if the server ignores the range).
    - The file is verified (``md5`` and/or a ``sha256`` prefix) before it is renamed into place;
      on a mismatch the partial data is deleted and :class:`ChecksumError` names the URL, the file
      and both digests.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = filename or os.path.basename(urllib.parse.urlparse(url).path) or "download"
    dest = directory / name
    # A cached file that fails its checksum is not trusted: it is fetched again, and replaced
    # only once a verified copy has arrived, so a failed download does not delete it.
    stale = _check(dest, md5, sha256) if dest.exists() else None
    if dest.exists() and stale is None:
        return dest
    part = directory / (name + ".part")
    try:
        _fetch(url, part, dest, progress=progress, timeout=timeout)
    except DownloadError as e:
        if stale is None:
            raise
        # Offline, the copy already here is what the user meant: say why it was not used.
        algo, expected, got = stale
        raise ChecksumError(f"{dest}: checksum mismatch: {algo} is {got}, the published one is "
                            f"{expected} (a damaged, truncated or different file), and fetching "
                            f"a fresh copy failed ({e}). Replace it with the published file."
                            ) from e
    bad = _check(part, md5, sha256)
    if bad is not None:
        algo, expected, got = bad
        part.unlink(missing_ok=True)
        raise ChecksumError(f"checksum mismatch for {url} (saved as {dest}): {algo} expected "
                            f"{expected}, got {got}. The partial file was deleted; try again, or "
                            f"download it by hand and check it.")
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    fsync_dir(directory)
    return dest


def _fetch(url: str, part: Path, dest: Path, *, progress: bool, timeout: float) -> None:
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "fcnseg"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # range past the end: the partial file is already complete
            return
        raise DownloadError(f"downloading {url} failed: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        reason = getattr(reason, "strerror", None) or reason  # not "[Errno -2] ..."
        raise ConnectionFailed(url, str(reason), dest) from None
    with resp:
        ctype = resp.headers.get("Content-Type", "")
        if ctype.startswith("text/html"):
            raise DownloadError(f"downloading {url} returned an HTML page instead of the file (a "
                                f"login or confirmation page, or a dead link). Download it in a "
                                f"browser and save it as {dest}.")
        if start and resp.status != 206:
            start = 0  # server ignored the Range header: start over
        total = resp.headers.get("Content-Length")
        total_bytes = int(total) + start if total is not None else None
        with tqdm.wrapattr(resp, "read", total=total_bytes, initial=start, unit="B",
                           unit_scale=True, desc=dest.name, leave=False,
                           disable=not progress) as source, \
                open(part, "ab" if start else "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
    if total_bytes is not None and part.stat().st_size < total_bytes:
        raise DownloadError(f"downloading {url} stopped after {part.stat().st_size} of "
                            f"{total_bytes} bytes; run again to resume from {part}")


def extract_archive(archive: PathLike, into: PathLike) -> Path:
    """Extract a .tar, .tar.gz/.tgz or .zip archive into ``into``, refusing unsafe member paths,
    through a temporary folder (an interrupted extraction leaves no tree that looks complete)."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".extract-{archive.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    info.filename = zip_member_name(info)
                _extract_all(archive, [(i.filename, stat.S_ISLNK(i.external_attr >> 16),
                                        functools.partial(zf.extract, i, tmp))
                                       for i in zf.infolist()])
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                # (before Python 3.11.4 there is no filter: the checks of _extract_all stand in)
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                _extract_all(archive, [(m.name, m.issym() or m.islnk(),
                                        functools.partial(tf.extract, m, tmp, **safe))
                                       for m in tf.getmembers()])
        else:
            raise DownloadError(f"{archive} is not a tar or zip archive (corrupt or truncated?)")
        _merge(tmp, into)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise DownloadError(f"{archive} could not be extracted: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return into


def zip_member_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as ``unzip`` writes it: UTF-8 where its bytes are UTF-8 without the
    flag that says so (macOS's Archive Utility, Info-ZIP on Linux), which Python reads as
    cp437 (``café`` as ``caf├⌐``); else Python's."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _extract_all(archive: Path, members: list[tuple[str, bool, Callable[[], object]]]) -> None:
    """Check every member (name, is a link, extract) before extracting any; one that clashes
    with an earlier one (a file ``a`` then ``a/b``) is one error naming archive and member."""
    for name, is_link, _ in members:
        if not name.strip():
            raise DownloadError(f"{archive}: refusing a member with an empty name")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DownloadError(f"{archive}: refusing unsafe member path {name!r}")
        if is_link:
            raise DownloadError(f"{archive}: refusing link member {name!r}")
    for name, _, extract in members:
        try:
            extract()
        except OSError as e:
            reason = {errno.ENOTDIR: "a file earlier in the archive has the name of one of its "
                                     "folders",
                      errno.EISDIR: "a folder earlier in the archive has its name",
                      errno.EEXIST: "an entry earlier in the archive has its name"}.get(
                          e.errno, e.strerror or str(e))
            raise DownloadError(f"{archive}: cannot extract member {name!r}: {reason}") from e


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, merging folders that exist on both sides."""
    if not (src.is_dir() and dst.is_dir()):
        os.replace(src, dst)
        return
    for child in src.iterdir():
        _merge(child, dst / child.name)
