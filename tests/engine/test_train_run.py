"""End-to-end training on tiny synthetic data: learning, run folder, signals, NaN, atomicity."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from _train_helpers import tiny_recipe

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.engine import TrainingDiverged, load_config, train
from fcnseg.models import fcn8s


@pytest.fixture(autouse=True)
def _one_thread():
    # Two threads fighting other processes for two cores are many times slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_short_synthetic_run_learns_far_above_chance(tmp_path: Path) -> None:
    recipe = tiny_recipe(
        model={"width": 0.125, "fc_channels": 64},
        data={"train": {"name": "synthetic", "num_images": 40, "size": 64, "seed": 0},
              "val": {"name": "synthetic", "num_images": 8, "size": 64, "seed": 0,
                      "split": "val"},
              "batch_size": 4},
        train={"iterations": 300, "eval_every": 150, "checkpoint_every": 150, "log_every": 10},
    )
    result = train(load_config(recipe, out=str(tmp_path / "run")))
    # Predicting background everywhere scores about 0.11 mean IU on these scenes (1 of 7
    # classes right); random guessing scores less.
    assert result.status == "completed" and result.iteration == 300
    assert result.best_mean_iu is not None and result.best_mean_iu > 0.3
    run = tmp_path / "run"
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert best["metrics"]["mean_iu"] == pytest.approx(result.best_mean_iu)
    assert last["iteration"] == 300 and last["classes"]["names"][0] == "background"
    assert last["model"]["arch"] == "fcn8s" and last["state"]["optimizer"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])
    assert [r["iteration"] for r in records if r.get("split") == "val"] == [150, 300]
    assert {"lr", "images_per_s"} <= set(records[0])
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert saved["optim"]["lr"] == 0.05 and saved["out"] == str(run)


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path: Path) -> None:
    config = load_config(tiny_recipe(train={"iterations": 400, "checkpoint_every": 2,
                                            "eval_every": 1000}), out=str(tmp_path / "run"))
    last = tmp_path / "run" / "last.pt"

    def send_sigterm_once_a_checkpoint_exists() -> None:
        deadline = time.monotonic() + 60
        while not last.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_sigterm_once_a_checkpoint_exists, daemon=True).start()
    result = train(config)
    assert result.status == "interrupted" and result.signal == signal.SIGTERM
    assert 2 <= result.iteration < 400
    assert load_checkpoint(last)["iteration"] == result.iteration
    with pytest.raises(ValueError, match="--resume"):
        train(config)  # a finished or stopped run is never overwritten silently
    config.train.iterations = result.iteration + 2
    resumed = train(config, resume=True)
    assert resumed.status == "completed" and resumed.iteration == result.iteration + 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    # A learning rate this large blows the weights up after the first step.
    config = load_config(tiny_recipe(optim={"lr": 1e30, "momentum": 0.0},
                                     loss={"reduction": "sum"}, schedule={"name": "fixed"},
                                     train={"iterations": 10, "checkpoint_every": 1}),
                         out=str(tmp_path / "run"))
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at iteration (\d+)") as e:
        train(config)
    failed_at = int(str(e.value).split("at iteration ")[1].split(";")[0])
    assert failed_at >= 2
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["iteration"] == failed_at - 1
    assert f"iteration {failed_at - 1}" in str(e.value)
    assert str(tmp_path / "run" / "last.pt") in str(e.value)


def test_checkpoint_write_that_fails_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fcn8s(num_classes=2, geometry="same", width=0.0625, fc_channels=8)
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, class_names=["a", "b"], palette=[[0, 0, 0], [1, 1, 1]],
                    iteration=1)
    before = path.read_bytes()

    def failing_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, class_names=["a", "b"], palette=[[0, 0, 0], [1, 1, 1]],
                        iteration=2)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last_run_on_cpu(tmp_path: Path, amp: str) -> None:
    config = load_config(tiny_recipe(train={"iterations": 3, "eval_every": 3}), out=str(
        tmp_path / "run"), amp=amp, channels_last=True)
    result = train(config)
    assert result.status == "completed" and result.metrics["num_images"] == 4
    state = load_checkpoint(tmp_path / "run" / "last.pt")["state"]
    # fp16 keeps a gradient scaler (and its scale in the checkpoint); bf16 needs none.
    assert bool(state["scaler"]) == (amp == "fp16")
    assert all(torch.isfinite(v).all() for v in
               load_checkpoint(tmp_path / "run" / "last.pt")["model_state_dict"].values())


def test_tensorboard_events_are_written_when_it_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    config = load_config(tiny_recipe(train={"iterations": 2, "eval_every": 2, "log_every": 1,
                                            "tensorboard": True}), out=str(tmp_path / "run"))
    train(config)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/images_per_s", "val/mean_iu"} <= scalars
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
