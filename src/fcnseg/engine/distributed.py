"""This module sets up torch.distributed for ``torchrun`` (NCCL on GPUs, gloo on CPUs).
A process started without torchrun's environment (or with ``WORLD_SIZE=1``) trains alone. A run
joins the group with :func:`setup_distributed` and leaves it with :func:`teardown_distributed` on
every path out, so that the group (and gloo's threads) is gone before the interpreter exits."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from fcnseg.utils.hardware import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    #: Whether this process initialised the group (and so destroys it).
    owns_group: bool

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and prints."""
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment, if any."""
    joined = dist.is_available() and dist.is_initialized()
    world = dist.get_world_size() if joined else int(os.environ.get("WORLD_SIZE", "1"))
    if not joined and world <= 1:
        return DistInfo(0, 1, 0, resolve_device(device, 0), owns_group=False)
    rank = dist.get_rank() if joined else int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local)
    if not joined:
        join_process_group(dev)
    return DistInfo(rank, world, local, dev, owns_group=not joined)


def join_process_group(device: torch.device) -> None:
    """Initialise the default group from torchrun's environment: NCCL for a GPU, gloo else."""
    # torch.distributed.nn.functional takes ``group.WORLD`` as its functions' default group
    # when it is first imported. Imported after the group exists (torch._dynamo imports it, and
    # DistributedDataParallel imports torch._dynamo), it keeps the group alive past
    # destroy_process_group: gloo's threads then run on until the interpreter's finalization
    # destroys the group, after the other processes have gone. Imported now, it takes None.
    import torch.distributed.nn.functional  # noqa: F401

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            device_id=device if device.type == "cuda" else None)


def teardown_distributed(info: DistInfo, *, finished: bool) -> None:
    """Leave the group that :func:`setup_distributed` joined. ``finished`` (the work is done):
    a barrier first lets every process finish its last collective; after an error the group
    goes at once, as a barrier would wait for processes that may never come."""
    if not info.owns_group:
        return
    try:
        if finished:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def share_main_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Give every process rank 0's buffers of ``module`` (BatchNorm's running statistics, which
    each process updates from its own batch): checkpoints save rank 0's, and a validation
    shared by all processes must score what is saved."""
    if not info.distributed:
        return
    with torch.no_grad():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order (just ``[obj]`` on one process)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def stop_board(distributed: bool) -> Callable[[int | None], int | None]:
    """Where the processes of a run under torchrun tell one another of a stop signal, through
    the run's store rather than a collective (a process with more work left never waits):
    ``board(signum)`` posts this process's signal, if given, and returns the one any process
    posted, if any. One process, or a store that cannot be reached (tried once, as each try
    may wait :data:`STORE_WAIT_S`) or fails: ``signum`` back."""
    store = None
    with contextlib.suppress(Exception):  # a store not reached is not tried again
        store = run_store() if distributed else None
    if store is None:
        return lambda signum: signum
    key = f"fcnseg/stop/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"

    def board(signum: int | None) -> int | None:
        with contextlib.suppress(Exception):  # then this process's own signal alone
            if signum is not None:
                store.set(key, str(signum))
            elif store.check([key]):
                return int(store.get(key))
        return signum
    return board


#: How long a process left waits for the store before reporting anyway (a store on a machine
#: that is gone may not answer at all).
STORE_WAIT_S = 5.0


def first_to_report_loss(info: DistInfo) -> bool:
    """Whether this process, left after another of the run was lost, is the one that tells the
    user: the first of those left to count itself in the run's store (torchrun's launcher
    holds it). Call it before leaving the group. Where the store is gone or does not answer,
    every process left reports: a line repeated rather than none."""
    if not (info.distributed and dist.is_available() and dist.is_initialized()):
        return True
    counts: list[int] = []
    # a launcher that restarts its workers may keep its store: each attempt counts afresh
    key = f"fcnseg/process_lost_reports/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"

    def count() -> None:
        with contextlib.suppress(Exception):  # however the store fails: this process reports
            counts.append(int(run_store().add(key, 1)))

    counter = threading.Thread(target=count, daemon=True, name="fcnseg-loss-report")
    counter.start()
    counter.join(STORE_WAIT_S)
    return counts in ([], [1])


def run_store() -> dist.Store:
    """A new client of the store at ``MASTER_ADDR:MASTER_PORT`` that the group was set up
    through: torchrun's launcher holds it (``TORCHELASTIC_USE_AGENT_STORE``), else rank 0."""
    return dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                         is_master=False, timeout=timedelta(seconds=STORE_WAIT_S))
