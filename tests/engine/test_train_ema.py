"""The moving average of the weights (train.ema) and early stopping (train.early_stop)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _train_helpers import tiny_recipe
from torch import nn

from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine import TrainSetup, TrainState, build_setup, load_config
from fcnseg.engine.config import ConfigError, TrainConfig
from fcnseg.engine.distributed import setup_distributed
from fcnseg.engine.ema import WeightAverage
from fcnseg.engine.evaluation import evaluate_model
from fcnseg.engine.state import seed_everything
from fcnseg.engine.trainer import step, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_average_moves_by_the_ramped_decay() -> None:
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    average = WeightAverage(model, 0.9)
    model.weight.data.fill_(1.0)
    average.update(model)  # d = min(0.9, 2/11): 0·2/11 + 1·9/11
    assert float(average.module.weight) == pytest.approx(9 / 11, rel=1e-6)
    average.update(model)  # d = min(0.9, 3/12)
    assert float(average.module.weight) == pytest.approx(0.25 * 9 / 11 + 0.75, rel=1e-6)
    for _ in range(100):
        average.update(model)
    assert average.current_decay() == 0.9


def _setup(config: TrainConfig, ckpt: dict | None = None) -> TrainSetup:
    seed_everything(config.seed)
    return build_setup(config, setup_distributed("cpu"), ckpt)


def _steps(setup: TrainSetup, state: TrainState, count: int) -> None:
    setup.sampler.set_epoch(state.epoch, start=state.position * setup.config.data.batch_size)
    batches = iter(setup.loader)
    for _ in range(count):
        images, labels = next(batches)
        step(setup, images, labels, float((labels != setup.ignore_index).sum()))
        state.iteration += 1
        state.position += 1


def test_each_step_updates_the_average_that_checkpoints_hold_as_the_model(
        tmp_path: Path) -> None:
    config = load_config(tiny_recipe(train={"ema": 0.5}), out=str(tmp_path / "run"))
    setup = _setup(config)
    state = TrainState.start(setup)
    before = {k: v.clone() for k, v in setup.eval_model.state_dict().items()}
    _steps(setup, state, 1)
    weights = setup.model.state_dict()
    decay = 2 / 11  # the first update's ramped decay
    for key, value in setup.eval_model.state_dict().items():
        if value.dtype.is_floating_point:
            expected = decay * before[key] + (1 - decay) * weights[key]
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)
    state.save(setup, tmp_path / "last.pt")
    saved = load_checkpoint(tmp_path / "last.pt")
    key = next(k for k, v in weights.items() if v.dim() == 4 and not torch.equal(v, before[k]))
    assert torch.equal(saved["model_state_dict"][key], setup.eval_model.state_dict()[key])
    assert torch.equal(saved["state"]["train_weights"][key], weights[key])
    assert not torch.equal(saved["model_state_dict"][key], weights[key])


def test_a_state_restored_with_the_average_continues_bit_for_bit(tmp_path: Path) -> None:
    config = load_config(tiny_recipe(model={"dropout": 0.5}, train={"ema": 0.9}),
                         out=str(tmp_path / "run"))
    first = _setup(config)
    state = TrainState.start(first)
    _steps(first, state, 2)
    state.save(first, tmp_path / "mid.pt")
    _steps(first, state, 2)

    ckpt = load_checkpoint(tmp_path / "mid.pt")
    second = _setup(config, ckpt)
    restored = TrainState.restore(ckpt, second, lambda _: None)
    _steps(second, restored, 2)
    assert first.ema is not None and second.ema is not None
    assert first.ema.updates == second.ema.updates == 4
    for a, b in ((first.model, second.model), (first.ema.module, second.ema.module)):
        theirs = b.state_dict()
        for key, value in a.state_dict().items():
            assert torch.equal(value, theirs[key]), key


def test_a_run_with_the_average_scores_and_saves_the_average(tmp_path: Path) -> None:
    recipe = tiny_recipe(train={"ema": 0.9, "iterations": 4, "eval_every": 4})
    result = train(load_config(recipe), out=tmp_path / "run")
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["state"]["ema"]["updates"] == 4
    for key, value in last["model_state_dict"].items():
        assert torch.equal(value, best["model_state_dict"][key]), key
    # the scores recorded are the average's own
    setup = _setup(load_config(recipe, out=str(tmp_path / "other")))
    setup.model.load_state_dict(last["model_state_dict"])
    scores = evaluate_model(setup.model, setup.val_loader, num_classes=setup.num_classes)
    assert scores["mean_iu"] == pytest.approx(result.metrics["mean_iu"], abs=1e-12)


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path: Path) -> None:
    # A learning rate this small leaves mean IU where it started: after the first evaluation
    # sets the best, two more without a rise of 0.01 end the run at iteration 6 of 40.
    recipe = tiny_recipe(optim={"lr": 1e-12}, model={"dropout": 0.0},
                         train={"iterations": 40, "eval_every": 2,
                                "early_stop": {"patience": 2, "min_delta": 0.01}})
    result = train(load_config(recipe), out=tmp_path / "run")
    assert (result.status, result.iteration) == ("stopped_early", 6)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (saved["iteration"], saved["state"]["stale_evals"]) == (6, 2)
    evaluations = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl")
                                  .read_text().splitlines()) if r.get("split") == "val"]
    assert [r["iteration"] for r in evaluations] == [2, 4, 6]
    # resuming the stopped run does not train on
    again = train(load_config(recipe), out=tmp_path / "run", resume=True)
    assert (again.status, again.iteration) == ("stopped_early", 6)


@pytest.mark.parametrize(("section", "message"), [
    ({"ema": 1.5}, "train.ema"),
    ({"early_stop": {"patience": 0}}, "train.early_stop.patience"),
    ({"early_stop": {"patience": 2, "min_delta": -1}}, "train.early_stop.min_delta"),
    ({"early_stop": {"wait": 2}}, "train.early_stop"),
])
def test_bad_settings_are_refused_naming_the_field(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_recipe(train=section))
