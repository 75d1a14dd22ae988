"""The worker processes of a ``torchrun`` launcher, found by rank (Linux: read in /proc)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

#: Whether workers can be found here: their parent and environment are read in /proc.
READABLE = Path("/proc/self/environ").is_file()


def worker_with_rank(launcher: subprocess.Popen, rank: int, timeout: float = 600.0) -> int:
    """The pid of the torchrun worker (a child of ``launcher``) whose RANK is ``rank``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                environ = (stat.parent / "environ").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue  # a process that ended meanwhile, or another user's
            if parent == launcher.pid and f"RANK={rank}".encode() in environ:
                return int(stat.parent.name)
        time.sleep(0.05)
    raise AssertionError(f"no torchrun worker of rank {rank}")


def exit_statuses(launcher_output: str) -> list[int]:
    """The exit status of each worker that failed, as the launcher's summary lists them."""
    return [int(code) for code in re.findall(r"exitcode\s+:\s*(-?\d+)", launcher_output)]
