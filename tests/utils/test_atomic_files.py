"""Atomic writes: temporaries of killed writes are found again, a full disk is named."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fcnseg.utils.files import (
    STALE_AFTER_S,
    DiskFullError,
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    free_space,
    proc_value,
    remove_dead_writers_temporaries,
    remove_stale_temporaries,
)

# A process that dies (SIGKILL) in the middle of an atomic write of its first argument.
_KILLED_WRITER = """
import os, signal, sys
from fcnseg.utils.files import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"half a checkpoint")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_the_named_files_are_removed_and_nothing_else(
    tmp_path: Path,
) -> None:
    stale = [tmp_path / ".last.pt.k3j2_1g0.tmp", tmp_path / ".metrics.jsonl.abcdefgh.tmp"]
    kept = [tmp_path / "last.pt", tmp_path / ".other.pt.k3j2h1g0.tmp",
            tmp_path / ".last.pt.k3j2h1g0.tmp.bak", tmp_path / "x.last.pt.k3j2h1g0.tmp"]
    for path in stale + kept:
        path.write_text("x")
    removed = remove_stale_temporaries(tmp_path, ["last.pt", "metrics.jsonl"])
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


def test_a_stale_temporary_that_cannot_be_removed_is_left_and_the_others_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    locked, stale = tmp_path / ".last.pt.aaaa.tmp", tmp_path / ".metrics.jsonl.bbbb.tmp"
    for path in (locked, stale):
        path.write_text("x")
    unlink = os.unlink

    def refuse_locked(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse_locked)
    assert remove_stale_temporaries(tmp_path, ["last.pt", "metrics.jsonl"]) == [stale]
    assert locked.exists() and not stale.exists()


def test_a_full_disk_during_an_atomic_write_names_the_file_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("old")
    expected = (rf"^cannot write {path}: disk full \(.* free in .*\); "
                rf"the previous recipe\.yaml is intact$")
    with pytest.raises(DiskFullError, match=expected), atomic_write(path, "w") as f:
        f.write("new")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["recipe.yaml"]


def test_other_write_errors_are_not_called_a_full_disk(tmp_path: Path) -> None:
    with pytest.raises(PermissionError), atomic_write(tmp_path / "a.txt", "w"):
        raise PermissionError(errno.EACCES, "denied")


def test_free_space_reads_as_a_size() -> None:
    assert free_space("/").split()[1] in ("B", "KB", "MB", "GB", "TB")
    assert free_space("/no/such/folder") == "unknown"


def test_a_temporary_left_by_a_killed_write_is_removed_by_a_later_write(tmp_path: Path) -> None:
    target = tmp_path / "model_calibrated.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], env=env)
    assert killed.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".model_calibrated.pt.")]
    assert len(left) == 1 and left[0].name.endswith(".tmp") and not target.exists()
    _age(left[0], STALE_AFTER_S + 5)  # a later run
    atomic_write_bytes(target, b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_calibrated.pt"]
    assert target.read_bytes() == b"whole"


def test_temporaries_of_live_or_recent_writers_are_kept(tmp_path: Path) -> None:
    old = STALE_AFTER_S + 5
    dead = _dead_pid()
    gone = [(tmp_path / f".a.pt.{dead}_k3j2h1g0.tmp", old),
            (tmp_path / ".b.pt.k3j2h1g0.tmp", 2 * 3600)]  # an older version's, hours old
    kept = [(tmp_path / f".c.pt.{os.getpid()}_k3j2h1g0.tmp", old),  # this live process
            (tmp_path / f".d.pt.{dead}_k3j2h1g0.tmp", 1),  # maybe another machine's, writing
            (tmp_path / ".e.pt.k3j2h1g0.tmp", old),
            (tmp_path / f"f.pt.{dead}_k3j2h1g0.tmp", old),  # not a temporary's name
            (tmp_path / f".g.pt.{dead}_k3j2h1g0.tmp.bak", old)]
    for path, age in gone + kept:
        path.write_text("x")
        _age(path, age)
    assert sorted(remove_dead_writers_temporaries(tmp_path)) == sorted(p for p, _ in gone)
    assert all(p.exists() for p, _ in kept)


def test_atomic_path_renames_a_whole_file_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "w.safetensors"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".w.safetensors.")
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_proc_value_is_the_first_word_after_its_key_and_none_without_it(tmp_path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nUmask:\t0022\nVmHWM:\t  123456 kB\n")
    assert proc_value(str(status), "VmHWM") == "123456"
    assert proc_value(str(status), "Umask") == "0022"
    assert proc_value(str(status), "MemAvailable") is None
    assert proc_value(str(tmp_path / "absent"), "VmHWM") is None
