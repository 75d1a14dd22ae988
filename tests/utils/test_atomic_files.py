"""Atomic writes: temporaries of killed writes are found again, a full disk is named."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fcnseg.utils.files import DiskFullError, atomic_write, free_space, remove_stale_temporaries


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
