"""A run can be given a time budget (``train.time_budget: 5m``, ``--budget 5m``).
It counts from the start of the process: after the first step (often slow) :class:`TimeBudget`
times :data:`TIMED_STEPS` steps, an evaluation and a checkpoint write, and sets the run's length
(at most ``train.iterations``) so that the run, its final evaluation and checkpoint fit. The
schedule is stretched to that length, which ``last.pt`` saves for a resumed run."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.distributed as dist

#: Steps timed after the first before the length is chosen.
TIMED_STEPS = 5
#: Validation batches timed to estimate an evaluation.
TIMED_EVAL_BATCHES = 2
#: Once the length is chosen, steps are timed again every this many: slower steps (a shared
#: machine) end the run earlier, faster ones run it longer.
RECHECK_EVERY = 10
#: A longer plan is taken only when it adds more than this share (not at every bit of noise).
GROW_MARGIN = 0.05

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, where: str = "train.time_budget") -> float:
    """Seconds in ``300``, ``"300s"``, ``"5m"``, ``"1h30m"`` or ``"1.5h"``; anything else is a
    ValueError naming ``where``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).replace(" ", "").lower()
        parts = re.findall(r"(\d+(?:\.\d*)?)([smhd]?)", text)
        if not text or "".join(n + u for n, u in parts) != text or \
                (len(parts) > 1 and any(not u for _, u in parts)):
            raise ValueError(f"{where}: {value!r} is not a duration like 300, 90s, 5m or 1h30m")
        seconds = sum(float(n) * _UNITS[u or "s"] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{where}: must be a positive duration, got {value!r}")
    return seconds


def process_start_time() -> float:
    """When this process started (``time.time()`` scale), or now where that cannot be read."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - (uptime - started_after_boot)
    except (OSError, ValueError, IndexError):
        return time.time()


@dataclass(frozen=True)
class Timings:
    """Seconds measured for one training step, one evaluation and one checkpoint."""

    step_s: float
    eval_s: float
    save_s: float


@dataclass(frozen=True)
class BudgetPlan(Timings):
    """The chosen length and the timings it came from."""

    iterations: int
    elapsed_s: float
    budget_s: float
    evaluations: int

    def describe(self, cap: int, done: int) -> str:
        capped = " (the cap, train.iterations)" if self.iterations >= cap else ""
        return (f"time budget {format_duration(self.budget_s)}: "
                f"{format_duration(self.elapsed_s)} gone by iteration {done}; "
                f"{self.step_s:.3g} s/step measured, evaluation ~{self.eval_s:.1f} s "
                f"(x{self.evaluations}), checkpoint ~{self.save_s:.1f} s: "
                f"{self.iterations} iterations{capped}, schedule stretched to them")


def choose_iterations(timings: Timings, *, budget_s: float, elapsed_s: float, done: int,
                      eval_every: int, cap: int, has_val: bool) -> BudgetPlan:
    """The most iterations (≥ ``done``, ≤ ``cap``) whose remaining steps, evaluations (every
    ``eval_every`` and one at the end) and final checkpoint fit in what is left of the budget,
    less 3 % + 2 s for what is not measured."""
    step_s, eval_s, save_s = timings.step_s, timings.eval_s, timings.save_s
    left = budget_s * 0.97 - 2.0 - elapsed_s - save_s

    def evaluations(n: int) -> int:
        if not has_val:
            return 0
        return (n // eval_every - done // eval_every) + (1 if n % eval_every else 0)

    n = done
    for _ in range(20):  # the count of evaluations depends on n: settle it
        steps = max(0.0, left - evaluations(n) * eval_s) / max(step_s, 1e-9)
        new = min(cap, max(done, done + int(steps)))
        if new == n:
            break
        n = new
    while n > done and (n - done) * step_s + evaluations(n) * eval_s > left:
        n -= 1
    return BudgetPlan(step_s, eval_s, save_s, iterations=n, elapsed_s=elapsed_s,
                      budget_s=budget_s, evaluations=evaluations(n))


def format_duration(seconds: float) -> str:
    """``1h05m``, ``3m20s`` or ``42s``."""
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class TimeBudget:
    """Times the first steps of a run and then chooses its length (see the module docstring):
    ``after_step()``, called after each step, returns the :class:`BudgetPlan` when the length
    has just been chosen (or changed), else None."""

    def __init__(self, budget_s: float, started: float, *, distributed: bool = False,
                 device: torch.device | None = None) -> None:
        self.budget_s = budget_s
        self.started = started
        self.distributed = distributed
        self.device = device or torch.device("cpu")
        self.first_step_end: float | None = None
        self.timed = 0
        self.plan: BudgetPlan | None = None  # None until the length is chosen
        self.has_val = False
        self.check_time, self.check_done = 0.0, 0

    def after_step(self, *, done: int, cap: int, eval_every: int,
                   time_eval: Callable[[], float] | None,
                   time_save: Callable[[], float]) -> BudgetPlan | None:
        if self.plan is not None:
            return self._recheck(self.plan, done, eval_every, cap)
        now = time.time()
        if self.first_step_end is None:
            self.first_step_end = now
            return None
        self.timed += 1
        ready = (self.timed >= TIMED_STEPS or now - self.first_step_end >= self.budget_s / 20
                 or done >= cap)
        if not self._slowest([float(ready)])[0]:  # all processes decide at the same step
            return None
        step_s = (now - self.first_step_end) / self.timed
        eval_s = time_eval() if time_eval is not None else 0.0
        save_s = time_save()
        # every process decides from the slowest one's figures, so that all agree
        figures = self._slowest([step_s, eval_s, save_s, time.time() - self.started])
        step_s, eval_s, save_s, elapsed = figures
        self.has_val = time_eval is not None
        self.plan = choose_iterations(Timings(step_s, eval_s, save_s), budget_s=self.budget_s,
                                      elapsed_s=elapsed, done=done, eval_every=eval_every,
                                      cap=cap, has_val=self.has_val)
        self.check_time, self.check_done = time.time(), done
        return self.plan

    def _recheck(self, plan: BudgetPlan, done: int, eval_every: int,
                 cap: int) -> BudgetPlan | None:
        """Every :data:`RECHECK_EVERY` steps over a twentieth of the budget (none that held an
        evaluation): a shorter plan when too slow, a longer one if :data:`GROW_MARGIN` more fit."""
        if done % RECHECK_EVERY or done >= plan.iterations:
            return None
        now = time.time()
        window_s, elapsed = self._slowest([now - self.check_time, now - self.started])
        if done // eval_every > self.check_done // eval_every:
            self.check_time, self.check_done = now, done
            return None
        if window_s < self.budget_s / 20:
            return None  # too short a stretch to tell the machine's speed from noise: go on
        step_s = window_s / max(1, done - self.check_done)
        self.check_time, self.check_done = now, done
        fits = choose_iterations(replace(plan, step_s=step_s),
                                 budget_s=self.budget_s, elapsed_s=elapsed, done=done,
                                 eval_every=eval_every, cap=cap, has_val=self.has_val)
        longer = fits.iterations > plan.iterations * (1 + GROW_MARGIN)
        if fits.iterations >= plan.iterations and not longer:
            return None
        self.plan = fits
        return fits

    def _slowest(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [float(v) for v in t.cpu()]
