"""Leaving the process group: every path out takes it down, threads and all, before exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fcnseg.engine import distributed
from fcnseg.engine.distributed import DistInfo, teardown_distributed

SRC = Path(__file__).resolve().parents[2] / "src"

# In a fresh interpreter: what matters is which torch modules exist when the group is joined.
# torch.distributed.nn is what DistributedDataParallel's first use imports (through
# torch._dynamo); importing it directly keeps the test fast.
_JOIN_IMPORT_TEARDOWN = textwrap.dedent("""
    import os
    import torch
    from fcnseg.engine.distributed import DistInfo, join_process_group, teardown_distributed

    def gloo_threads():
        names = []
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/comm") as f:
                    names.append(f.read().strip())
            except OSError:  # a thread that ended meanwhile
                pass
        return sorted(n for n in names if "gloo" in n)

    join_process_group(torch.device("cpu"))
    import torch.distributed.nn  # noqa: F401
    torch.distributed.barrier()
    print("joined:", gloo_threads())
    teardown_distributed(DistInfo(0, 1, 0, torch.device("cpu"), owns_group=True), finished=True)
    print("left:", gloo_threads())
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads listed by /proc")
def test_leaving_the_group_ends_gloo_threads_even_with_torch_distributed_nn_imported_after_join(
) -> None:
    env = dict(os.environ, PYTHONPATH=str(SRC), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _JOIN_IMPORT_TEARDOWN], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["joined"] != "[]", done.stdout  # the group's threads, as torch names them
    assert lines["left"] == "[]", done.stdout


class _Calls:
    """Stands in for torch.distributed's barrier and destroy_process_group, in call order."""

    def __init__(self, barrier_error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.barrier_error = barrier_error

    def barrier(self) -> None:
        self.calls.append("barrier")
        if self.barrier_error is not None:
            raise self.barrier_error

    def destroy_process_group(self) -> None:
        self.calls.append("destroy")


def _joined() -> DistInfo:
    return DistInfo(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"),
                    owns_group=True)


def test_a_finished_process_waits_for_the_others_before_taking_the_group_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls()
    monkeypatch.setattr(distributed, "dist", calls)
    teardown_distributed(_joined(), finished=True)
    assert calls.calls == ["barrier", "destroy"]


def test_after_an_error_the_group_goes_without_waiting_for_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls()
    monkeypatch.setattr(distributed, "dist", calls)
    teardown_distributed(_joined(), finished=False)
    assert calls.calls == ["destroy"]


def test_a_failed_final_barrier_still_takes_the_group_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _Calls(barrier_error=RuntimeError("Connection closed by peer"))
    monkeypatch.setattr(distributed, "dist", calls)
    with pytest.raises(RuntimeError, match="Connection closed"):
        teardown_distributed(_joined(), finished=True)
    assert calls.calls == ["barrier", "destroy"]


def test_a_group_joined_by_someone_else_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls()
    monkeypatch.setattr(distributed, "dist", calls)
    teardown_distributed(DistInfo(0, 2, 0, torch.device("cpu"), owns_group=False),
                         finished=True)
    assert calls.calls == []


def test_training_that_fails_leaves_the_group_without_the_final_barrier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from _train_helpers import tiny_recipe

    from fcnseg.engine import trainer

    left: list[bool] = []

    def fail(*args: object) -> None:
        raise ValueError("data.train: broken")

    monkeypatch.setattr(trainer, "setup_distributed", lambda device: _joined())
    monkeypatch.setattr(trainer, "_train", fail)
    monkeypatch.setattr(trainer, "teardown_distributed",
                        lambda info, *, finished: left.append(finished))
    with pytest.raises(ValueError, match="broken"):
        trainer.train(tiny_recipe(), out=tmp_path / "run")
    assert left == [False]
