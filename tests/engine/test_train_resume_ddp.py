"""Exact resumption after a real SIGKILL, and data-parallel training on 2 gloo processes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from _train_helpers import (
    HANG_TIMEOUT_S,
    fcnseg_command,
    finish,
    start_ddp_training,
    start_training,
    subprocess_env,
    tiny_recipe,
    write_recipe,
)
from torchrun_workers import READABLE, exit_statuses, worker_with_rank

from fcnseg.checkpoint import load_checkpoint


def _wait_for(path: Path, proc: subprocess.Popen,
              timeout: float = HANG_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before writing {path}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {path} after {timeout} s")
        time.sleep(0.005)


def _iterations_logged(run: Path) -> list[tuple[int, str]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(r["iteration"], r.get("split", "train")) for r in map(json.loads, lines)]


# Two training runs at once, then a resumed one: on a loaded machine their torch start-ups alone
# outlast the suite's 300 s per test (a guard against a hang, like the waits above).
@pytest.mark.timeout(2 * HANG_TIMEOUT_S)
def test_sigkill_then_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    # Dropout, flips and shuffling all draw random numbers: every RNG must be restored exactly.
    total = 40
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(
        model={"dropout": 0.5},
        train={"iterations": total, "checkpoint_every": 4, "eval_every": 10, "log_every": 1}))
    straight = start_training(recipe, tmp_path / "straight")
    killed = start_training(recipe, tmp_path / "killed")
    _wait_for(tmp_path / "killed" / "last.pt", killed)
    time.sleep(0.05)  # somewhere in the middle of the next iterations
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    saved_at = load_checkpoint(tmp_path / "killed" / "last.pt")["iteration"]
    assert 4 <= saved_at < total

    # --resume without --recipe takes the run folder's recipe.yaml.
    resumed = subprocess.Popen(
        fcnseg_command("train", "--out", str(tmp_path / "killed"), "--resume"),
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert f"resumed {tmp_path / 'killed' / 'last.pt'} at iteration {saved_at}" in \
        finish(resumed)
    finish(straight)

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert a["iteration"] == b["iteration"] == total
    assert a["model_state_dict"].keys() == b["model_state_dict"].keys()
    for key, value in a["model_state_dict"].items():
        assert torch.equal(value, b["model_state_dict"][key]), key
    momentum_a = a["state"]["optimizer"]["state"]
    momentum_b = b["state"]["optimizer"]["state"]
    for i in momentum_a:
        assert torch.equal(momentum_a[i]["momentum_buffer"], momentum_b[i]["momentum_buffer"])
    assert torch.equal(a["state"]["rng"][0]["torch"], b["state"]["rng"][0]["torch"])
    # The log is continued, not duplicated, past the checkpoint.
    assert _iterations_logged(tmp_path / "killed") == _iterations_logged(tmp_path / "straight")


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    tmp_path: Path,
) -> None:
    base = {"train": {"iterations": 6, "checkpoint_every": 3, "eval_every": 3, "log_every": 1,
                      "progress": False, "tensorboard": False}}
    one = write_recipe(tmp_path / "one.yaml", tiny_recipe(data={"batch_size": 4}, **base))
    two = write_recipe(tmp_path / "two.yaml", tiny_recipe(data={"batch_size": 2}, **base))
    single = start_training(one, tmp_path / "single")
    ddp = start_ddp_training(two, tmp_path / "ddp")
    ddp_out = finish(ddp)
    finish(single)
    # Only rank 0 prints.
    assert ddp_out.count("done: 6 iterations") == 1, ddp_out

    a = load_checkpoint(tmp_path / "single" / "last.pt")
    b = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert b["state"]["world_size"] == 2 and len(b["state"]["rng"]) == 2
    for key, value in a["model_state_dict"].items():
        torch.testing.assert_close(b["model_state_dict"][key], value, rtol=1e-5, atol=1e-5,
                                   msg=key)
    # The scorers start at zero, so non-zero ones show that training really moved the weights.
    assert a["model_state_dict"]["score_pool3.weight"].abs().sum() > 0
    # Each process scored half the validation images; the confusion matrices were summed.
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").open()]
    assert [r["num_images"] for r in records if r.get("split") == "val"] == [4, 4]


def _signal_one_worker(tmp_path: Path, kill_option: str, rank: int,
                       processes: int = 2) -> tuple[subprocess.Popen, str]:
    """A long DDP training run into tmp_path/run whose process of ``rank`` gets ``kill
    kill_option`` once last.pt is saved: the launcher, once ended, and what it printed."""
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(
        train={"iterations": 100000, "checkpoint_every": 3, "eval_every": 100000,
               "log_every": 100000}))
    launcher = start_ddp_training(recipe, tmp_path / "run", processes=processes)
    _wait_for(tmp_path / "run" / "last.pt", launcher)
    subprocess.run(["kill", kill_option, str(worker_with_rank(launcher, rank))], check=True)
    out, _ = launcher.communicate(timeout=HANG_TIMEOUT_S)
    return launcher, out


@pytest.mark.skipif(not READABLE, reason="processes read in /proc")
def test_losing_a_process_says_what_was_saved_and_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    launcher, out = _signal_one_worker(tmp_path, "-9", rank=1)
    assert launcher.returncode != 0
    saved_at = load_checkpoint(run / "last.pt")["iteration"]
    lines = [line for line in out.splitlines() if line.startswith("fcnseg train: error:")]
    assert len(lines) == 1, out
    assert "lost rank 1 of 2 training processes" in lines[0]
    assert f"{run / 'last.pt'} (iteration {saved_at}) is kept" in lines[0]
    assert lines[0].endswith(f"train --out {run} --resume")
    assert "torchrun --standalone --nproc_per_node 2 " in lines[0]


# Three torch start-ups at once: on a loaded machine they alone can outlast the suite's 300 s.
@pytest.mark.timeout(HANG_TIMEOUT_S)
@pytest.mark.skipif(not READABLE, reason="processes read in /proc")
def test_a_lost_process_is_reported_once_by_the_processes_left(tmp_path: Path) -> None:
    # Rank 0 lost: the two processes left both see it, and one of them says it.
    run = tmp_path / "run"
    launcher, out = _signal_one_worker(tmp_path, "-9", rank=0, processes=3)
    assert launcher.returncode != 0
    lines = [line for line in out.splitlines() if line.startswith("fcnseg train: error:")]
    assert len(lines) == 1, out
    assert "lost another of 3 training processes" in lines[0]
    assert lines[0].endswith(f"train --out {run} --resume")
    assert "torchrun --standalone --nproc_per_node 3 " in lines[0]


@pytest.mark.skipif(not READABLE, reason="processes read in /proc")
def test_a_sigterm_to_one_process_stops_every_process_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _, out = _signal_one_worker(tmp_path, "-TERM", rank=1)
    saved_at = load_checkpoint(run / "last.pt")["iteration"]
    lines = [line for line in out.splitlines() if line.startswith("stopped by signal")]
    assert lines == [f"stopped by signal 15 at iteration {saved_at}; saved {run / 'last.pt'}; "
                     f"continue it with --resume (train(..., resume=True) from Python)."], out
    # 143, or ended by the launcher's own SIGTERM once the other process left (after the
    # processes met to leave the group: the checkpoint and the line are done by then)
    assert len(exit_statuses(out)) == 2 and set(exit_statuses(out)) <= {143, -15}, out
