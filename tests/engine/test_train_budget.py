"""train.time_budget: durations, the length chosen from measured times, and a budgeted run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _train_helpers import tiny_recipe

from fcnseg.checkpoint import load_checkpoint
from fcnseg.engine import load_config
from fcnseg.engine.budget import Timings, choose_iterations, parse_duration
from fcnseg.engine.config import ConfigError, ScheduleConfig
from fcnseg.engine.optim import lr_factor
from fcnseg.engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("text", "seconds"), [
    (300, 300.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
    ("2m 30s", 150.0)])
def test_durations_read_as_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "0", "-3m", "5m3"])
def test_bad_durations_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ConfigError, match="train.time_budget"):
        load_config(tiny_recipe(train={"time_budget": text}))


def _choose(**kw: float) -> int:
    args = {"budget_s": 100.0, "elapsed_s": 10.0, "done": 6, "eval_every": 1000,
            "cap": 100_000, "has_val": True, **kw}
    return choose_iterations(Timings(step_s=1.0, eval_s=5.0, save_s=1.0),
                             **args).iterations  # type: ignore[arg-type]


def test_the_length_fits_steps_evaluations_and_the_checkpoint_in_what_is_left() -> None:
    # left: 100·0.97 − 2 (margin) − 10 (gone) − 1 (checkpoint) = 84 s
    assert _choose() == 6 + 84 - 5  # one evaluation, at the end
    # an evaluation every 20 iterations: 70 = 6 + 64 steps, evaluations at 20, 40, 60 and 70
    assert _choose(eval_every=20) == 70
    assert _choose(cap=50) == 50  # train.iterations is the upper bound
    assert _choose(elapsed_s=99.0) == 6  # nothing left: stop where it stands
    assert _choose(has_val=False) == 6 + 84


def test_a_budgeted_run_chooses_its_length_stretches_the_schedule_and_evaluates_last(
        tmp_path: Path) -> None:
    recipe = tiny_recipe(train={"iterations": 100_000, "eval_every": 100_000, "log_every": 1,
                                "time_budget": "20s"},
                         schedule={"name": "poly", "warmup_iters": 0})
    start = time.time()
    result = train(load_config(recipe), out=tmp_path / "run", started=start)
    elapsed = time.time() - start
    records = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # the length chosen after the warm-up, shortened later if steps slowed down
    chosen = [r for r in records if r.get("event") == "time_budget"][-1]
    n = chosen["iterations"]
    assert 6 < n < 100_000 and result.iteration == n and result.status == "completed"
    assert [r["iteration"] for r in records if r.get("split") == "val"] == [n]
    # the poly schedule ran over the chosen length, not over the cap: step n ran under the
    # plan decided before it (a recheck after step n that ends the run there comes too late)
    in_effect = [r for r in records if r.get("event") == "time_budget" and r["iteration"] < n]
    planned = in_effect[-1]["iterations"]
    assert n <= planned < 100_000
    last_lr = next(r["lr"] for r in records if r.get("iteration") == n and "lr" in r)
    config = load_config(recipe)
    assert last_lr == pytest.approx(
        config.optim.lr * lr_factor(n, planned, ScheduleConfig("poly")), abs=1e-12)
    assert elapsed < 2 * 20  # loose: the machine is shared; benchmarks measure the fit
    # resuming keeps the chosen length
    assert load_checkpoint(tmp_path / "run" / "last.pt")["state"]["planned_iterations"] == n
    # best.pt too, for `fcnseg info` (nothing a resume needs)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["state"] == {"planned_iterations": n}
    again = train(load_config(recipe), out=tmp_path / "run", resume=True)
    assert again.iteration == n


def test_a_run_whose_steps_slow_down_ends_earlier_to_fit(monkeypatch) -> None:
    from fcnseg.engine import budget as budget_module

    clock = {"now": 0.0}
    monkeypatch.setattr(budget_module.time, "time", lambda: clock["now"])
    budget = budget_module.TimeBudget(100.0, started=0.0)
    plan = None
    for done in range(1, 7):  # 1 s per step while timing
        clock["now"] = float(done)
        plan = budget.after_step(done=done, cap=10_000, eval_every=10_000, time_eval=None,
                                 time_save=lambda: 0.0) or plan
    assert plan is not None and plan.iterations == 6 + int(100 * 0.97 - 2 - 6)
    for done in range(7, 21):  # then 3 s per step
        clock["now"] += 3.0
        shorter = budget.after_step(done=done, cap=10_000, eval_every=10_000, time_eval=None,
                                    time_save=lambda: 0.0)
        assert (shorter is not None) == (done == 10)  # 10: the first check after slowing
    # at 10: 18 s gone, 97 - 2 - 18 = 77 s left at 3 s/step: 25 more
    assert budget.plan is not None and budget.plan.iterations == 10 + 25


def _planned_budget(monkeypatch, clock: dict, eval_every: int, eval_s: float | None = None):
    """A 100 s budget planned after six steps of 1 s each (evaluations of ``eval_s``)."""
    from fcnseg.engine import budget as budget_module

    monkeypatch.setattr(budget_module.time, "time", lambda: clock["now"])
    budget = budget_module.TimeBudget(100.0, started=0.0)
    for done in range(1, 7):
        clock["now"] = float(done)
        budget.after_step(done=done, cap=10_000, eval_every=eval_every,
                          time_eval=None if eval_s is None else (lambda: eval_s),
                          time_save=lambda: 0.0)
    assert budget.plan is not None
    return budget


def test_steps_that_held_an_evaluation_are_not_taken_for_slow_steps(monkeypatch) -> None:
    clock = {"now": 0.0}
    budget = _planned_budget(monkeypatch, clock, eval_every=20, eval_s=5.0)
    planned = budget.plan.iterations
    for done in range(7, 41):  # 1 s per step, and the planned 5 s evaluation after step 20
        clock["now"] += 1.0 + (5.0 if done == 20 else 0.0)
        changed = budget.after_step(done=done, cap=10_000, eval_every=20,
                                    time_eval=lambda: 5.0, time_save=lambda: 0.0)
        assert changed is None, f"replanned at {done} from a stretch holding the evaluation"
    assert budget.plan.iterations == planned


def test_steps_that_speed_up_make_the_run_longer_up_to_the_cap(monkeypatch) -> None:
    clock = {"now": 0.0}
    budget = _planned_budget(monkeypatch, clock, eval_every=10_000)
    planned = budget.plan.iterations  # 95 at 1 s per step
    for done in range(7, 21):  # then 0.5 s per step
        clock["now"] += 0.5
        budget.after_step(done=done, cap=10_000, eval_every=10_000, time_eval=None,
                          time_save=lambda: 0.0)
    # at 20: 13 s gone, 97 - 2 - 13 = 82 s left at 0.5 s/step: 164 more
    assert budget.plan.iterations == 20 + 164 > planned
    for done in range(21, 81):  # 0.1 s per step: checked once they span 5 s, at 70
        clock["now"] += 0.1
        budget.after_step(done=done, cap=200, eval_every=10_000, time_eval=None,
                          time_save=lambda: 0.0)
    assert budget.plan.iterations == 200
