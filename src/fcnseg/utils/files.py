"""File writes here are atomic: a crash at any moment leaves either the old file or the new one.
Running out of space raises :class:`DiskFullError`, one line naming the file, the free space and
what was kept.

A process killed mid-write leaves its temporary beside the target (``.best.pt.<pid>_<random>
.tmp``). Each process's first atomic write into a folder removes those whose writer is gone:
its process id is no live process here and the file has not changed for :data:`STALE_AFTER_S`
seconds (writers on other machines of a shared file system have ids that mean nothing here);
those named without an id, by older versions, once unchanged for an hour.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from fcnseg.utils.typing import PathLike

#: Seconds a temporary whose writer's process is gone must have stayed unchanged to be removed.
STALE_AFTER_S = 60.0
# Temporaries without a process id (older versions) are removed after this long unchanged.
_UNNAMED_STALE_AFTER_S = 3600.0
# A temporary of atomic_write: ".<target>.<pid>_<random>.tmp", or ".<target>.<random>.tmp".
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.(?:(?P<pid>[0-9]+)_)?[A-Za-z0-9_]+\.tmp")


class DiskFullError(RuntimeError):
    """A write ran out of space (disk full or quota): a RuntimeError, which the command line
    prints as one line, naming the file, the free space left and what was kept."""

    def __init__(self, path: PathLike, kept: str) -> None:
        self.path = Path(path)
        free = free_space(self.path.parent)
        super().__init__(f"cannot write {self.path}: disk full ({free} free in "
                         f"{self.path.parent}); {kept}")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or one in its cause/context chain, is ENOSPC/EDQUOT (torch.save
    reports a full disk as a RuntimeError raised while handling the OSError)."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def free_space(folder: PathLike) -> str:
    """The free space in ``folder`` for a message (``"12.5 MB"``, or ``"unknown"``)."""
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return "unknown"
    units = ["B", "KB", "MB", "GB", "TB"]
    while free >= 1000 and len(units) > 1:
        free /= 1000
        units.pop(0)
    return f"{free:.0f} B" if units[0] == "B" else f"{free:.1f} {units[0]}"


def remove_stale_temporaries(folder: PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporaries :func:`atomic_write` left in ``folder`` for ``names``
    (``.last.pt.k3j2h1g0.tmp``), for a process that knows no other one writes them (a
    training run starting in its folder). Returns what was removed."""
    patterns = [re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp") for name in names]
    return _remove_where(folder, lambda entry: any(p.fullmatch(entry.name) for p in patterns)
                         and entry.is_file())


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):
        pass  # someone else's live process, or an id we cannot judge: keep its file
    return True


def remove_dead_writers_temporaries(folder: PathLike) -> list[Path]:
    """Delete the temporaries of :func:`atomic_write` in ``folder`` whose writer is gone (the
    rule is in the module doc); safe while other processes write there. Returns what went."""
    now = time.time()

    def dead_writers(entry: os.DirEntry) -> bool:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            return False
        age = now - entry.stat(follow_symlinks=False).st_mtime
        if match["pid"] is None:
            return age > _UNNAMED_STALE_AFTER_S
        return age > STALE_AFTER_S and not _process_alive(int(match["pid"]))

    return _remove_where(folder, dead_writers)


def _remove_where(folder: PathLike, remove: Callable[[os.DirEntry], bool]) -> list[Path]:
    """Delete the entries of ``folder`` that ``remove`` picks (one that goes meanwhile stays)."""
    removed: list[Path] = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if remove(entry):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


# Run at this process's first write into a folder (an absolute path; two threads may both clear
# it, which is harmless).
_clear_once = functools.cache(remove_dead_writers_temporaries)


def check_writable(path: PathLike, what: str = "--out") -> None:
    """Refuse an output file before the slow work that makes it: a ValueError naming ``what``
    and ``path`` when it is a folder, or its folder (made if missing) cannot be written in."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a folder; give the file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{what} {path}: cannot write a file in {path.parent} "
                         f"({e.strerror or type(e).__name__})") from None


class OutputFolderError(RuntimeError):
    """The output folder cannot be used (not a folder, or it cannot be created or written in)."""


def prepare_output_folder(out_dir: PathLike) -> Path:
    """Create ``out_dir`` (and its parents) if needed; an OutputFolderError naming it when it
    is no folder, cannot be created or cannot be written in (:func:`check_output_folder`)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file of that name: said as such
        check_output_folder(out_dir)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        where = f" ({e.filename})" if e.filename and Path(e.filename) != out_dir else ""
        raise OutputFolderError(f"output folder {out_dir}: cannot create it: {reason}{where}") \
            from None
    return check_output_folder(out_dir)


def check_output_folder(out_dir: PathLike) -> Path:
    """``out_dir``, nothing created, once it is a folder this process can write in or one it
    can create; else an OutputFolderError naming it, before the slow work that fills it."""
    out_dir = there = Path(out_dir)
    while not there.exists() and there.parent != there:
        there = there.parent
    if not there.is_dir():
        raise OutputFolderError(f"output folder {out_dir}: " + (
            "exists and is not a folder" if there == out_dir
            else f"cannot create it: {there} is not a folder"))
    if not os.access(there, os.W_OK | os.X_OK):
        what = "write in it" if there == out_dir else f"create it in {there}"
        raise OutputFolderError(f"output folder {out_dir}: cannot {what} (read-only, or no "
                                f"write permission): give another folder")
    return out_dir


def files_fingerprint(header: Any, paths: Iterable[PathLike]) -> str:
    """A hex digest of ``header`` (JSON) and of each file's path, size and modification time:
    it changes when a file is edited, added or removed."""
    h = hashlib.sha256(json.dumps(header).encode())
    for path in map(Path, paths):
        try:
            st = path.stat()
            h.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()


#: A file as :func:`file_signature` sees it.
FileSignature = tuple[int, int, int, int, int]


def file_signature(path: PathLike) -> FileSignature | None:
    """What changes whenever a file's content may have (None when it cannot be read): device
    and inode, size, and modification and status-change times in ns (any write sets both; the
    status-change time cannot be set back)."""
    try:
        return _signature(os.stat(path))
    except OSError:
        return None


def _signature(st: os.stat_result) -> FileSignature:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def digest_if_unchanged(path: PathLike, signature: FileSignature,
                        algorithm: str = "sha256") -> str | None:
    """The hex digest of the file at ``path`` where it is the file ``signature`` describes
    before and after the read; None otherwise (written to, replaced, gone, not a file)."""
    h = hashlib.new(algorithm)
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    try:
        with open(path, "rb") as f:
            if _signature(os.fstat(f.fileno())) != signature:
                return None
            while n := f.readinto(buffer):
                h.update(view[:n])
            if _signature(os.fstat(f.fileno())) != signature:
                return None
    except OSError:
        return None
    return h.hexdigest()


def fsync_dir(path: PathLike) -> None:
    """fsync a directory so that a rename inside it is durable (no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def proc_value(path: str, key: str) -> str | None:
    """The first word after ``key:`` in a Linux /proc file of ``Key: value`` lines
    (``/proc/self/status``, ``/proc/meminfo``); None without /proc or the key."""
    with contextlib.suppress(OSError), open(path, encoding="ascii", errors="replace") as f:
        return next((line.split()[1] for line in f if line.startswith(f"{key}:")), None)
    return None


def _umask() -> int:
    """The process umask, read without setting it (which would affect other threads' files)."""
    if (umask := proc_value("/proc/self/status", "Umask")) is not None:
        return int(umask, 8)
    mask = os.umask(0o077)  # no /proc: set a strict mask for the instant it takes to read it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """:func:`atomic_write` for writers that take a file name (``safetensors.save_file``): the
    path of a new temporary beside ``path``, fsynced and renamed over it on success, removed
    on any exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_once(os.path.abspath(path.parent))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}_", suffix=".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        # mkstemp creates the file 0600; give it the mode an ordinary open() would (umask applies)
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e):
            kept = (f"the previous {path.name} is intact" if path.exists()
                    else f"{path.name} was not written")
            raise DiskFullError(path, kept) from e
        raise


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``,
    on any exception remove it (``path`` untouched; a full disk is :class:`DiskFullError`)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)
