"""DataLoader workers and stop signals: a SIGTERM sent to the whole process group is left to
the main process, while the main process can still end its workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from _train_helpers import tiny_recipe, write_recipe
from torch.utils.data import DataLoader

from fcnseg.engine.signals import ignore_stop_signals, start_batches
from fcnseg.engine.trainer import TrainResult


def test_a_worker_outlives_sigterm_from_another_process_and_ends_on_its_parents() -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    loader = DataLoader(list(range(64)), batch_size=1, num_workers=1,
                        worker_init_fn=ignore_stop_signals)
    batches = start_batches(loader)
    next(batches)  # the worker has run its init function
    (worker,) = [p for p in multiprocessing.active_children() if p.pid not in before]
    try:
        # as `timeout` or Slurm would: the sender is not the worker's parent
        subprocess.run(["kill", "-TERM", str(worker.pid)], check=True)
        time.sleep(0.5)  # ample time for the signal to act
        assert worker.is_alive()
        # as DataLoader's shutdown and multiprocessing's exit do for a worker still running
        worker.terminate()
        worker.join(timeout=20)
        assert worker.exitcode == 0
    finally:
        if worker.is_alive():
            worker.kill()
        del batches


def test_stop_signals_come_back_when_leaving_the_group_fails_after_a_lost_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    # A lost process leaves SIGINT/SIGTERM ignored while the survivor reports it; taking the
    # broken group down may raise too, and the handlers must come back all the same.
    from fcnseg.engine import trainer
    from fcnseg.engine.config import load_config
    from fcnseg.engine.distributed import DistInfo
    from fcnseg.engine.errors import is_process_lost
    from fcnseg.engine.signals import StopRequest

    def lose_a_process(*args: object) -> None:
        with StopRequest(is_process_lost):
            raise RuntimeError("Connection reset by peer")

    def broken_teardown(info: DistInfo, *, finished: bool) -> None:
        raise RuntimeError("NCCL communicator was aborted")

    two = DistInfo(0, 2, 0, torch.device("cpu"), owns_group=True)
    monkeypatch.setattr(trainer, "setup_distributed", lambda device: two)
    monkeypatch.setattr(trainer, "_train", lose_a_process)
    monkeypatch.setattr(trainer, "teardown_distributed", broken_teardown)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(RuntimeError):
            trainer.train(load_config(tiny_recipe()), out=tmp_path / "run")
        after = {sig: signal.getsignal(sig) for sig in before}
    finally:
        for sig, handler in before.items():  # this test process keeps its own either way
            signal.signal(sig, handler)
    assert after == before


def test_a_stuck_teardown_after_a_lost_process_can_still_be_ended_by_sigterm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    # Taking NCCL down after a peer is lost can hang in the library; SIGTERM must end the
    # process then, so the handlers are back before the group is left.
    from fcnseg.engine import trainer
    from fcnseg.engine.config import load_config
    from fcnseg.engine.distributed import DistInfo
    from fcnseg.engine.errors import ProcessLost, is_process_lost
    from fcnseg.engine.signals import StopRequest

    def lose_a_process(*args: object) -> None:
        with StopRequest(is_process_lost):
            raise RuntimeError("Connection reset by peer")

    during_teardown = []
    two = DistInfo(0, 2, 0, torch.device("cpu"), owns_group=True)
    monkeypatch.setattr(trainer, "setup_distributed", lambda device: two)
    monkeypatch.setattr(trainer, "_train", lose_a_process)
    monkeypatch.setattr(trainer, "teardown_distributed", lambda info, *, finished:
                        during_teardown.append(signal.getsignal(signal.SIGTERM)))
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(ProcessLost):
            trainer.train(load_config(tiny_recipe()), out=tmp_path / "run")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert during_teardown == [before]


def test_a_sigterm_while_the_model_is_built_says_so_and_exits_by_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from fcnseg.cli.main import main
    from fcnseg.engine import trainer

    def slow_set_up(*args: object, **kwargs: object) -> None:  # as a model is built or read
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler acts before this returns
        raise AssertionError("the set-up ran to its end")

    def unhandled(signum: int, frame: object) -> None:
        raise RuntimeError("SIGTERM not handled: the process would end silently")

    monkeypatch.setattr(trainer, "build_setup", slow_set_up)
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe())
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        rc = main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")])
    finally:
        signal.signal(signal.SIGTERM, previous)
    said = capsys.readouterr().out.strip().splitlines()
    assert (rc, said[-1]) == (128 + signal.SIGTERM, "stopped by signal 15 before the first "
                              "step; no checkpoint saved; run the same command to start again")
    assert not (tmp_path / "run" / "last.pt").exists()


def _resume_stopped_while_it_starts(monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> TrainResult:
    """A 3-iteration run, resumed with a SIGTERM while its model is built again: the result."""
    from fcnseg.engine import trainer
    from fcnseg.engine.config import load_config

    trainer.train(load_config(tiny_recipe(train={"iterations": 3})), out=tmp_path / "run")

    def slow_set_up(*args: object, **kwargs: object) -> None:  # as the model is built again
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler acts before this returns
        raise AssertionError("the set-up ran to its end")

    monkeypatch.setattr(trainer, "build_setup", slow_set_up)
    return trainer.train(load_config(tiny_recipe()), resume=True, out=tmp_path / "run")


def test_a_resumed_run_stopped_while_it_starts_reports_its_checkpoints_iteration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    result = _resume_stopped_while_it_starts(monkeypatch, tmp_path)
    assert (result.status, result.iteration) == ("interrupted", 3)


def test_a_resumed_run_stopped_while_it_starts_says_its_last_pt_is_kept_to_resume(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _resume_stopped_while_it_starts(monkeypatch, tmp_path)
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"stopped by signal 15 before the first step; {tmp_path / 'run' / 'last.pt'} "
        f"(iteration 3) kept; run the same command to resume from it")
