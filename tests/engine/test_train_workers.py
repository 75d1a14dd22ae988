"""DataLoader worker processes in training: kept between epochs and evaluations (persistent),
and ended when the run ends or a bad sample stops it, so that the process exits at once."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _train_helpers import (
    fcnseg_command,
    subprocess_env,
    tiny_recipe,
    write_folder_dataset,
    write_recipe,
)
from PIL import Image

import fcnseg.engine.setup as engine_setup
from fcnseg.engine import BadSampleError, load_config, train
from fcnseg.engine.signals import ignore_stop_signals

pytestmark = pytest.mark.usefixtures("one_thread")


def _record_worker_starts(monkeypatch: pytest.MonkeyPatch, record: Path) -> None:
    """Each loader worker process appends its pid to ``record`` when it starts."""

    def init(worker_id: int) -> None:
        ignore_stop_signals(worker_id)
        with record.open("a") as f:
            f.write(f"{os.getpid()}\n")

    monkeypatch.setattr(engine_setup, "ignore_stop_signals", init)


def test_workers_are_started_once_for_the_whole_run_and_ended_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = tmp_path / "worker_starts.txt"
    _record_worker_starts(monkeypatch, starts)
    # 10 images in batches of 2: 12 iterations are 2.4 epochs, with 2 evaluations.
    config = load_config(tiny_recipe(data={"num_workers": 1}), out=str(tmp_path / "run"))
    result = train(config)
    assert result.status == "completed" and result.iteration == 12
    # one worker for the training loader and one for the validation loader, not one per
    # epoch and per evaluation (3 + 2)
    assert len(starts.read_text().split()) == 2
    assert multiprocessing.active_children() == []


def test_no_worker_is_left_running_after_a_bad_sample_stops_the_run(tmp_path: Path) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    (tmp_path / "data" / "masks" / "4.png").unlink()
    config = load_config(tiny_recipe(data={"train": spec, "val": None, "num_workers": 1},
                                     train={"iterations": 20, "checkpoint_every": 100}),
                         out=str(tmp_path / "run"))
    with pytest.raises(BadSampleError, match="4.png") as raised:
        train(config)
    # the traceback (held here) reaches the loader: its workers must be gone all the same
    assert raised.value.__traceback__ is not None
    assert multiprocessing.active_children() == []


def _bad_training_sample(root: Path) -> Path:
    spec = write_folder_dataset(root / "data")
    (root / "data" / "masks" / "4.png").unlink()
    return write_recipe(root / "r.yaml", tiny_recipe(
        data={"train": spec, "val": None, "num_workers": 2},
        train={"iterations": 20, "checkpoint_every": 100}))


def _bad_validation_sample(root: Path) -> Path:
    # Only a full decode finds a label value that is no class: the evaluation (in a worker of
    # the validation loader) meets it, after the training loader's workers have run.
    spec = write_folder_dataset(root / "data")
    mask = np.zeros((32, 32), np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(root / "data" / "masks" / "4.png")
    (root / "data" / "train.txt").write_text("".join(f"{n}\n" for n in range(6) if n != 4))
    return write_recipe(root / "r.yaml", tiny_recipe(
        data={"train": spec, "val": spec, "num_workers": 2},
        train={"iterations": 8, "eval_every": 4, "checkpoint_every": 100}))


@pytest.mark.parametrize("make_recipe", [_bad_training_sample, _bad_validation_sample],
                         ids=["training", "validation"])
def test_a_bad_sample_in_a_persistent_worker_exits_with_one_line(tmp_path: Path,
                                                                 make_recipe) -> None:
    recipe = make_recipe(tmp_path)
    # A worker that outlives the error would hold the exit forever: the timeout is the test
    # (generous for a busy machine; the run itself takes seconds).
    proc = subprocess.run(
        fcnseg_command("train", "--recipe", str(recipe), "--out", str(tmp_path / "run")),
        env=subprocess_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "4.png" in proc.stderr and "fcnseg check-data" in proc.stderr
    assert "Traceback" not in proc.stderr and "DataLoader worker" not in proc.stderr
