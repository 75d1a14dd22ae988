"""How a training run stops on bad numbers or bad data: the errors and their one-line texts."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from fcnseg.data import DataError

#: What to do about a sample that cannot be read.
FIX_DATA = "find every bad sample with `fcnseg check-data`, or set data.skip_bad: true"
#: How to go on with a stopped run, from the command line and from Python.
CONTINUE_RUN = "continue it with --resume (train(..., resume=True) from Python)"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class BadSampleError(ValueError):
    """A training or validation sample could not be read; the message names the file, says
    what was saved and how to go on."""


class ProcessLost(RuntimeError):
    """Another process of a torchrun run ended; the message says which, what was saved and the
    command that continues the run. ``reported_elsewhere``: another process left reports it
    (``fcnseg train`` then prints nothing here, so the user reads the line once)."""

    def __init__(self, message: str, reported_elsewhere: bool = False) -> None:
        super().__init__(message)
        self.reported_elsewhere = reported_elsewhere


#: How gloo and NCCL describe a peer whose connection went away (to the end of the sentence or
#: line: C++ stack traces may follow).
_PEER_GONE = re.compile(r"(?:Read|Write) error \[[^\]]*\](?::\d+)?: [^.\n]*"
                        r"|Connection (?:reset|closed) by peer"
                        r"|NCCL communicator was aborted[^.\n]*")


def is_process_lost(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process is gone."""
    import torch.distributed as dist  # only where a run is distributed

    return isinstance(error, dist.DistError) or bool(_PEER_GONE.search(str(error)))


def process_lost_message(error: BaseException, rank: int, world_size: int, kept: str,
                         out: Path) -> str:
    """One line: which process was lost (gloo's words for it), ``kept`` (what the run saved)
    and the command that resumes it."""
    found = _PEER_GONE.search(str(error))
    why = found.group(0) if found else " ".join(str(error).split())[:200]
    peer = f"rank {1 - rank}" if world_size == 2 else "another"
    return (f"lost {peer} of {world_size} training processes ({why.strip()}); {kept}; "
            f"continue the run with: {resume_command(out, world_size)}")


def resume_command(out: Path, world_size: int) -> str:
    """The torchrun command line that resumes the run in ``out`` on ``world_size`` processes
    (each node's for a run over several nodes)."""
    script = (shlex.quote(sys.argv[0]) if Path(sys.argv[0]).name == "fcnseg"
              else "$(which fcnseg)")
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    launch = (f"torchrun --standalone --nproc_per_node {per_node}" if per_node >= world_size
              else f"torchrun --nnodes {world_size // max(per_node, 1)} --nproc_per_node "
                   f"{per_node} --node_rank N (your rendezvous options)")
    return f"{launch} {script} train --out {shlex.quote(str(out))} --resume"


def data_error_message(error: BaseException) -> str | None:
    """``"<file>: <problem>"`` when ``error`` is a sample that could not be read, here or in a
    DataLoader worker (a RuntimeError holding its traceback as text); None otherwise."""
    if isinstance(error, DataError):
        return str(error)
    text = str(error)
    if isinstance(error, RuntimeError) and text.startswith("Caught DataError"):
        found = re.search(r"^\S*DataError: (.*)", text, re.MULTILINE | re.DOTALL)
        if found:
            return " ".join(found.group(1).split())
    return None


def bad_sample(message: str, when: str, saved: str) -> BadSampleError:
    """One line: the file and its problem, how to find and skip bad samples, when the run
    stopped and what it saved."""
    fix = "" if "check-data" in message else f"; {FIX_DATA}"
    return BadSampleError(f"{message.rstrip('.')}{fix}. {when}; {saved}")
