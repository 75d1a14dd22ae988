"""benchmarks/train_loop.py's pieces: its recipe, its per-round lines, its clean-up on a signal."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from fcnseg.engine.preflight import MachineFacts, preflight_warnings

train_loop = load_benchmark("train_loop")


@pytest.mark.parametrize("iterations", [1, 3, 60])
def test_its_recipe_draws_no_warm_up_warning_at_any_length(tmp_path: Path,
                                                           iterations: int) -> None:
    config = train_loop.fcnseg_config(train_loop.loop_overrides(iterations, []), iterations,
                                      tmp_path / "run")
    warnings = preflight_warnings(config, MachineFacts(cpu_count=2))
    assert not [w for w in warnings if "warmup_iters" in w]


def test_each_finished_round_prints_its_timings_at_once(capsys) -> None:
    log = train_loop.RoundLog({"a": lambda: None, "b": lambda: time.sleep(0.01)}, "wall")
    for fn in log.variants.values():
        fn()
    log.progress(1, 5)
    line = capsys.readouterr().out.strip()
    assert line.startswith("round 1/5: a ") and ", b 0.0" in line and line.count(" s") == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_removes_the_work_folder_and_exits_as_killed(tmp_path: Path,
                                                              signum: int) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "partial.pt").write_bytes(b"x")
    with pytest.raises(SystemExit) as stopped, train_loop.work_folder(work):
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler interrupts this
    assert stopped.value.code == 128 + signum
    assert not work.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
