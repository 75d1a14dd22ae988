"""End-to-end training on tiny synthetic data: learning, run folder, signals, NaN, atomicity."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from _train_helpers import tiny_recipe, write_folder_dataset

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.cli.main import main
from fcnseg.engine import TrainingDiverged, load_config, train
from fcnseg.models import fcn8s

pytestmark = pytest.mark.usefixtures("one_thread")


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
    with pytest.raises(ValueError, match=r"--resume, or train\(\.\.\., resume=True\)"):
        train(config)  # a finished or stopped run is never overwritten silently
    config.train.iterations = result.iteration + 2
    resumed = train(config, resume=True)
    assert resumed.status == "completed" and resumed.iteration == result.iteration + 2


def test_resume_needs_neither_the_init_checkpoint_nor_the_backbone_file(tmp_path: Path) -> None:
    from fcnseg.conventions import CAFFE_BGR

    stage = fcn8s(num_classes=7, geometry="same", width=0.0625, fc_channels=16)
    stage.input_convention = CAFFE_BGR
    init = save_checkpoint(tmp_path / "init.pt", stage, class_names=list("abcdefg"),
                           palette=[[i, i, i] for i in range(7)])
    config = load_config(tiny_recipe(train={"iterations": 3}), [f"init={init}"],
                         out=str(tmp_path / "run"))
    train(config)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["model"]["input_convention"] == \
        CAFFE_BGR.to_dict()
    init.unlink()  # the earlier stage's run folder was cleaned up
    config.train.iterations = 5
    config.model.backbone_weights = str(tmp_path / "moved" / "vgg16_from_caffe.pth")
    resumed = train(config, resume=True)
    assert resumed.status == "completed" and resumed.iteration == 5
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["model"]["input_convention"] == CAFFE_BGR.to_dict()


def test_resuming_with_another_model_names_the_checkpoint_and_keeps_it(tmp_path: Path) -> None:
    config = load_config(tiny_recipe(train={"iterations": 3}), out=str(tmp_path / "run"))
    train(config)
    last = tmp_path / "run" / "last.pt"
    before = last.read_bytes()
    other = load_config(tiny_recipe(model={"arch": "fcn16s"}, train={"iterations": 6}),
                        out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"resume: .*fcn16s.*last\.pt.*unexpected keys "
                                         r"\[score_pool3\.bias"):
        train(other, resume=True)
    assert last.read_bytes() == before


@pytest.mark.parametrize("resume", [False, True])
def test_a_best_pt_put_in_the_run_folder_is_never_replaced(tmp_path: Path, resume) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(b"a checkpoint of mine")
    config = load_config(tiny_recipe(train={"iterations": 2}), out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"holds best\.pt but no last\.pt to resume from"):
        train(config, resume=resume)
    assert (tmp_path / "run" / "best.pt").read_bytes() == b"a checkpoint of mine"


def test_failed_rewrite_of_the_metrics_log_on_resume_keeps_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fcnseg.engine.trainer import _RunLog

    log = tmp_path / "metrics.jsonl"
    text = "".join(json.dumps({"iteration": i, "loss": 1.0}) + "\n" for i in range(1, 6))
    log.write_text(text)

    def no_space(fd: int) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="no space"):
        _RunLog(tmp_path, enabled=True, loggers=[], resume_at=3)
    assert log.read_text() == text
    monkeypatch.undo()
    _RunLog(tmp_path, enabled=True, loggers=[], resume_at=3).close()
    assert [json.loads(line)["iteration"] for line in log.read_text().splitlines()] == [1, 2, 3]


def test_skip_bad_leaves_bad_validation_samples_out_instead_of_scoring_others_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, thing]\n")
    for n in range(4):
        Image.fromarray(np.full((32, 32, 3), 60 * n, np.uint8)).save(root / "images" / f"{n}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 8:24] = 1
        Image.fromarray(mask).save(root / "masks" / f"{n}.png")
    (root / "masks" / "1.png").unlink()
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("0\n1\n2\n3\n")
    spec = {"name": "folder", "root": str(root)}
    config = load_config(tiny_recipe(data={"train": spec, "val": spec, "skip_bad": True},
                                     train={"iterations": 2, "eval_every": 2}),
                         out=str(tmp_path / "run"))
    result = train(config)
    assert result.metrics["num_images"] == 3  # four images, one bad: each good one once
    assert "1.png" in caplog.text and "missing mask" in caplog.text


def test_a_failed_rewrite_of_recipe_yaml_on_resume_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(tiny_recipe(train={"iterations": 2}), out=str(tmp_path / "run"))
    train(config)
    recipe = tmp_path / "run" / "recipe.yaml"
    before = recipe.read_text()

    def no_space(fd: int) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    config.train.iterations = 4
    with pytest.raises(OSError, match="no space"):
        train(config, resume=True)
    assert recipe.read_text() == before


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


def test_non_finite_weights_are_never_saved_over_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A step that overflows leaves inf weights behind a finite loss; the checkpoint written at
    # that iteration must not replace the good one.
    from fcnseg.engine import trainer

    real_build = trainer.build_optimizer

    def overflowing_optimizer(model: torch.nn.Module, config: object) -> torch.optim.Optimizer:
        opt = real_build(model, config)
        steps: list[int] = []

        def overflow_at_step_3(*_: object) -> None:
            steps.append(1)
            if len(steps) == 3:
                with torch.no_grad():
                    model.head.score_fr.weight.fill_(float("inf"))

        opt.register_step_post_hook(overflow_at_step_3)
        return opt

    monkeypatch.setattr(trainer, "build_optimizer", overflowing_optimizer)
    config = load_config(tiny_recipe(train={"iterations": 10, "checkpoint_every": 1,
                                            "eval_every": 100}), out=str(tmp_path / "run"))
    with pytest.raises(TrainingDiverged, match=r"by iteration 3 \(score_fr\.weight\)") as e:
        train(config)
    assert "(iteration 2) is kept" in str(e.value)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model_state_dict"].values())


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


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last_run_on_cpu(tmp_path: Path, precision: str) -> None:
    config = load_config(tiny_recipe(train={"iterations": 3, "eval_every": 3}), out=str(
        tmp_path / "run"), precision=precision, channels_last=True)
    result = train(config)
    assert result.status == "completed" and result.metrics["num_images"] == 4
    state = load_checkpoint(tmp_path / "run" / "last.pt")["state"]
    # fp16 keeps a gradient scaler (and its scale in the checkpoint); bf16 needs none.
    assert bool(state["scaler"]) == (precision == "fp16")
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


def test_without_a_terminal_progress_lines_are_printed_every_few_seconds(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Under pytest stderr is no terminal, so no bar is drawn: the lines must say it instead.
    recipe = tiny_recipe(train={"iterations": 6, "eval_every": 6, "checkpoint_every": 6,
                                "log_every": 100, "progress": True, "progress_every": 1e-6,
                                "tensorboard": False})
    train(load_config(recipe, out=str(tmp_path / "run")))
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("iteration ") and "images/s" in line]
    assert len(lines) >= 5, lines
    assert re.fullmatch(r"iteration \d+/6: loss [0-9.e+-]+, [0-9.]+ images/s, ETA \d+s", lines[0])


def test_progress_every_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train.progress_every"):
        load_config(tiny_recipe(train={"progress_every": 0}), out=str(tmp_path / "run"))


def test_validation_records_say_their_precision(tmp_path: Path) -> None:
    # The precision `fcnseg evaluate` then uses by default, so that it repeats these scores.
    recipe = tiny_recipe(train={"iterations": 2, "eval_every": 2, "checkpoint_every": 2,
                                "log_every": 1, "progress": False, "tensorboard": False})
    train(load_config(recipe, out=str(tmp_path / "run")))
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["precision"] for r in records if r.get("split") == "val"] == ["fp32"]


def _train_in(folder, monkeypatch) -> None:
    """Train a tiny model in ``folder`` as a user types it there: data/mine, runs/r1."""
    write_folder_dataset(folder / "data" / "mine", count=2)
    monkeypatch.chdir(folder)
    mine = {"name": "folder", "root": "data/mine"}
    recipe = tiny_recipe(data={"train": mine, "val": {**mine, "split": "val"}},
                         train={"iterations": 2, "eval_every": 2, "checkpoint_every": 2,
                                "progress": False, "tensorboard": False})
    train(load_config(recipe, out="runs/r1"))


def test_a_checkpoint_trained_on_a_relative_root_evaluates_from_another_folder(
        tmp_path, monkeypatch, capsys) -> None:
    _train_in(tmp_path, monkeypatch)
    ckpt = tmp_path / "runs" / "r1" / "best.pt"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", "eval"]) == 0
    assert f"'root': '{tmp_path / 'data' / 'mine'}'" in capsys.readouterr().out


def test_a_checkpoint_records_the_paths_as_typed_and_the_folder_it_was_trained_in(
        tmp_path, monkeypatch) -> None:
    _train_in(tmp_path, monkeypatch)
    ckpt = load_checkpoint(tmp_path / "runs" / "r1" / "best.pt")
    assert ckpt["recipe"]["data"]["val"]["root"] == "data/mine"
    assert ckpt["trained_in"] == str(tmp_path)
    saved = yaml.safe_load((tmp_path / "runs" / "r1" / "recipe.yaml").read_text())
    assert saved["data"]["train"]["root"] == "data/mine"


def test_a_project_moved_as_a_whole_evaluates_from_inside_it_and_from_elsewhere(
        tmp_path, monkeypatch) -> None:
    _train_in(tmp_path / "old", monkeypatch)
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    monkeypatch.chdir(tmp_path)
    shutil.rmtree(tmp_path / "old")
    monkeypatch.chdir(tmp_path / "new")
    assert main(["evaluate", "--checkpoint", "runs/r1/best.pt", "--out", "eval"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "new" / "runs" / "r1" / "best.pt"),
                 "--out", "eval"]) == 0


def test_a_checkpoint_copied_out_of_its_run_folder_evaluates_from_anywhere(
        tmp_path, monkeypatch, capsys) -> None:
    _train_in(tmp_path / "project", monkeypatch)
    copy = tmp_path / "shared" / "model.pt"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "project" / "runs" / "r1" / "best.pt", copy)
    assert load_checkpoint(copy)["recipe"]["data"]["val"]["root"] == "data/mine"
    monkeypatch.chdir(tmp_path / "shared")  # found where training ran, as recorded
    assert main(["evaluate", "--checkpoint", "model.pt", "--out", "eval"]) == 0
    assert f"'root': '{tmp_path / 'project' / 'data' / 'mine'}'" in capsys.readouterr().out


def test_a_moved_project_resumes_from_another_folder(tmp_path, monkeypatch) -> None:
    _train_in(tmp_path / "old", monkeypatch)
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    monkeypatch.chdir(tmp_path)
    shutil.rmtree(tmp_path / "old")
    run = tmp_path / "new" / "runs" / "r1"
    assert main(["train", "--resume", "--out", str(run),
                 "--set", "train.iterations=4", "train.eval_every=4"]) == 0
    last = load_checkpoint(run / "last.pt")
    assert last["iteration"] == 4 and last["recipe"]["data"]["train"]["root"] == "data/mine"
    assert last["trained_in"] == str(tmp_path / "new")


def test_an_export_records_the_validation_root_as_typed(tmp_path, monkeypatch) -> None:
    from fcnseg.export import read_torchscript_metadata

    _train_in(tmp_path, monkeypatch)
    assert main(["export", "--checkpoint", "runs/r1/best.pt", "--format", "torchscript",
                 "--out", "model.ts"]) == 0
    assert read_torchscript_metadata(tmp_path / "model.ts")["validation_data"]["root"] == \
        "data/mine"
