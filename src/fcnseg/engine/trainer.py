"""The training loop: recipes in, checkpoints and metrics out, resumable bit for bit.

:func:`train` runs a recipe on one process or under ``torchrun``. The run folder holds
``recipe.yaml`` (the resolved config), ``metrics.jsonl`` (one record per log step and per
evaluation), ``last.pt`` (all a resume needs), ``best.pt`` (the highest mean IU; with labels per
head, SIFT Flow's, the first head's) and the records of ``train.loggers`` (TensorBoard by default).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Number
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm.auto import tqdm

from fcnseg.checkpoint import load_checkpoint
from fcnseg.data.class_frequencies import format_class_table
from fcnseg.engine.budget import TIMED_EVAL_BATCHES, TimeBudget, format_duration, parse_duration
from fcnseg.engine.config import TrainConfig, load_config
from fcnseg.engine.distributed import (
    DistInfo,
    first_to_report_loss,
    setup_distributed,
    share_main_buffers,
    teardown_distributed,
)
from fcnseg.engine.errors import (
    CONTINUE_RUN,
    ProcessLost,
    TrainingDiverged,
    bad_sample,
    data_error_message,
    is_process_lost,
    process_lost_message,
)
from fcnseg.engine.evaluation import evaluate_model
from fcnseg.engine.loggers import (
    check_loggers,
    check_tracking_store,
    open_loggers,
    prediction_previews,
)
from fcnseg.engine.loss import loss_normalizer, segmentation_loss
from fcnseg.engine.optim import build_optimizer, stretch_schedule
from fcnseg.engine.preflight import eta_warning
from fcnseg.engine.setup import TrainSetup, build_setup, shutdown_workers, wrap_model
from fcnseg.engine.signals import StopRequest, restore_handlers, start_batches, stop_handlers
from fcnseg.engine.state import TrainState, kept_checkpoint, seed_everything
from fcnseg.inference.runner import InferenceRunner
from fcnseg.metrics import other_heads_text
from fcnseg.utils.batches import to_device
from fcnseg.utils.files import DiskFullError, atomic_write, is_disk_full, remove_stale_temporaries
from fcnseg.utils.jsonable import json_safe
from fcnseg.utils.keyed import first_of, keyed, unkeyed
from fcnseg.utils.precision import autocast
from fcnseg.utils.typing import PathLike

#: The files a run writes; start-up removes temporaries of theirs that a kill left behind.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "recipe.yaml")


@dataclass
class TrainResult:
    """What a run ended with."""

    out: Path
    iteration: int
    #: "completed", "stopped_early" (``train.early_stop``) or "interrupted" (a signal stopped it
    #: after saving ``last.pt``, or before the first step: at the ``last.pt`` resumed, or 0).
    status: str
    best_mean_iu: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Signal number that stopped the run, if any.
    signal: int | None = None


def train(config: TrainConfig | dict[str, Any] | str, *, resume: bool = False,
          out: PathLike | None = None, started: float | None = None) -> TrainResult:
    """Run a training recipe; see the module docstring for what lands in the run folder.

    Args:
        config: a :class:`TrainConfig`, a mapping, or a recipe name / YAML path.
        resume: continue from ``<out>/last.pt`` (exactly where it stopped) when it exists.
        out: the run folder (overrides ``config.out``).
        started: when ``train.time_budget`` starts counting (``time.time()``; default: now;
            the command line passes the start of its process).

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the last good checkpoint is kept).
        BadSampleError: a sample could not be read (``last.pt`` is saved first).
        ProcessLost: under torchrun, another process ended; says what was saved and the
            command that resumes the run.
    """
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    if out is not None:
        config.out = str(out)
    config.validate()
    check_loggers(_logger_names(config))  # before anything is written
    if not config.out:
        raise ValueError("out: the run folder is not set (fcnseg train --out DIR, or "
                         "train(..., out=DIR))")
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.time() if started is None else started
    info = setup_distributed(config.device)
    finished, handlers = False, stop_handlers()
    try:
        if info.is_main:  # in seconds, before the data is set up
            check_tracking_store(_logger_names(config))
        result = _train(config, info, resume, started)
        finished = True
        return result
    except RuntimeError as e:
        if not (info.distributed and is_process_lost(e)):
            raise
        # after _train's clean-up: the checkpoint written in the background has landed
        out_dir = Path(config.out)
        raise ProcessLost(process_lost_message(
            e, info.rank, info.world_size, kept_checkpoint(out_dir / "last.pt"), out_dir),
            reported_elsewhere=not first_to_report_loss(info)) from None
    finally:
        # Signals, ignored once a process was lost, come back before the group is left: NCCL's
        # teardown can hang after a lost peer, and SIGTERM must still end the process then.
        restore_handlers(handlers)
        teardown_distributed(info, finished=finished)


def _announce(config: TrainConfig, setup: TrainSetup, say: Callable[[str], None]) -> None:
    """What the set-up chose and what it warns about, said once before training."""
    for message in setup.notes:
        say(message)
    for message in setup.warnings:
        say(f"warning: {message}")
    if setup.class_weights is not None:
        method = config.loss.class_weights
        origin = f"{method}, max {config.loss.max_weight}" if isinstance(method, str) \
            else "as given"
        say(f"class weights ({origin}):\n"
            f"{format_class_table(setup.class_names, setup.class_pixels, setup.class_weights)}")


def _train(config: TrainConfig, info: DistInfo, resume: bool, started: float) -> TrainResult:
    run_dir = Path(config.out)
    say: Callable[[str], None] = print if info.is_main else lambda message: None
    # A signal while the run starts (model, checkpoint, data) stops one process at once; under
    # torchrun it waits for the first step, where the processes agree to stop together.
    with StopRequest(is_process_lost if info.distributed else None,
                     at_once=not info.distributed) as stop:
        resumed: dict[str, Any] | None = None  # last.pt once read: a stop is at its iteration
        try:
            resumed = _checkpoint_to_resume(run_dir, resume, say)
            setup, state, budget, log, progress = _start(config, info, resumed, started, say)
        except KeyboardInterrupt:
            if stop.signum is None:
                raise
            say(f"stopped by signal {stop.signum} before the first step; "
                + (f"{run_dir / 'last.pt'} (iteration {resumed['iteration']}) kept; run the same "
                   f"command to resume from it" if resumed else
                   "no checkpoint saved; run the same command to start again"))
            return TrainResult(out=run_dir, iteration=resumed["iteration"] if resumed else 0,
                               status="interrupted", signal=stop.signum)
        stop.at_once = False
        try:
            stop_signal = _loop(setup, state, log, progress, stop, budget)
            if stop_signal is not None:
                state.save(setup, setup.last_path)
                say(f"\nstopped by signal {stop_signal} at iteration {state.iteration}; saved "
                    f"{setup.last_path}; {CONTINUE_RUN}.")
        finally:
            # now rather than when the loaders are collected (an error's traceback keeps them)
            shutdown_workers(setup.loader, setup.val_loader)
            progress.bar.close()
            log.close()
            written = setup.checkpoint_writer.finish()
    if written is not None:
        raise written
    stopped_early = stop_signal is None and patience_exhausted(setup, state)
    if stopped_early:
        say(f"stopped early: mean IU has not risen by more than "
            f"{setup.config.train.early_stop.get('min_delta', 0.0)} for {state.stale_evals} "
            f"evaluations (train.early_stop)")
    if stop_signal is None:
        heads = other_heads_text({"heads": state.best_heads})
        say(f"done: {state.iteration} iterations; best mean IU {_pct(state.best_mean_iu)}"
            f"{f' ({heads})' if heads else ''}; checkpoints in {run_dir}")
    return TrainResult(out=run_dir, iteration=state.iteration,
                       status=("interrupted" if stop_signal is not None else
                               "stopped_early" if stopped_early else "completed"),
                       best_mean_iu=state.best_mean_iu, metrics=state.metrics,
                       signal=stop_signal)


def _start(config: TrainConfig, info: DistInfo, resume_ckpt: dict[str, Any] | None,
           started: float, say: Callable[[str], None]
           ) -> tuple[TrainSetup, TrainState, TimeBudget | None, _RunLog, _Progress]:
    """Everything before the first step: the set-up, the state (resumed from ``resume_ckpt``,
    or new), the time budget, the run's records (``recipe.yaml`` written) and the progress bar."""
    run_dir = Path(config.out)
    # files a kill cut short while being written (up to a checkpoint's size each)
    if info.is_main and remove_stale_temporaries(run_dir, RUN_FILES):
        say("removed temporary files left by an interrupted write")
    seed_everything(config.seed)  # the same on every process for the model (DDP broadcasts)
    # build_optimizer is looked up here, so that it can be substituted (tests do)
    setup = build_setup(config, info, resume_ckpt, make_optimizer=build_optimizer)
    _announce(config, setup, say)
    state = (TrainState.start(setup) if resume_ckpt is None
             else TrainState.restore(resume_ckpt, setup, say))
    budget = _time_budget(setup, state, started)
    wrap_model(setup)
    log = _RunLog(run_dir, info.is_main, _logger_names(config),
                  state.iteration if resume_ckpt is not None else None,
                  eval_pending=state.eval_pending, classes=setup.class_names,
                  recipe=setup.recipe)
    if info.is_main:  # once the loggers have started: one that refuses leaves the run as it was
        # atomically: `--resume` without `--recipe` reads this file back
        with atomic_write(run_dir / "recipe.yaml", "w") as f:
            f.write(yaml.safe_dump(setup.recipe, sort_keys=False))
    return setup, state, budget, log, _Progress(setup, state.iteration, started)


def _logger_names(config: TrainConfig) -> list[str]:
    """``train.loggers``, or TensorBoard alone when it is not set (``train.tensorboard``)."""
    if config.train.loggers is not None:
        return list(config.train.loggers)
    return ["tensorboard"] if config.train.tensorboard else []


def _checkpoint_to_resume(run_dir: Path, resume: bool,
                          say: Callable[[str], None]) -> dict[str, Any] | None:
    last_path = run_dir / "last.pt"
    if resume and last_path.exists():
        return load_checkpoint(last_path)
    if last_path.exists():
        raise ValueError(f"out: {run_dir} already holds a run ({last_path.name}); resume it "
                         f"(--resume, or train(..., resume=True)) or choose another out folder")
    if (run_dir / "best.pt").exists():  # a checkpoint put there, which a new run would replace
        raise ValueError(f"out: {run_dir} holds best.pt but no last.pt to resume from: a new "
                         f"run would replace it; move it away or choose another out folder")
    if resume:
        say(f"no checkpoint in {run_dir} yet: starting a new run")
    return None


def _loop(setup: TrainSetup, state: TrainState, log: _RunLog, progress: _Progress,
          stop: StopRequest, budget: TimeBudget | None = None) -> int | None:
    """Train until ``train.iterations`` (which a time budget sets after the first steps);
    return the signal that stopped it early, if any."""
    if state.eval_pending and maybe_evaluate(setup, state, log, progress):
        state.save(setup, setup.last_path)  # the evaluation a stop cut short, done now
    if state.iteration >= setup.config.train.iterations or patience_exhausted(setup, state):
        return None
    for batches, (epoch, position) in _step_batches(setup, state):
        sampler_before = setup.loss_sampler.state_dict()
        batches = [(images, setup.loss_sampler(labels)) for images, labels in batches]
        stop_now, normalizer = _agree(setup, stop.signum is not None, batches)
        if stop_now:
            setup.loss_sampler.load_state_dict(sampler_before)  # these draws were not used
            return stop.signum or signal.SIGTERM
        loss = accumulated_step(setup, batches, normalizer)
        if not math.isfinite(loss):
            setup.checkpoint_writer.finish()  # the message names the checkpoint kept: let it land
            log.write({"iteration": state.iteration + 1, "epoch": state.epoch, "loss": None,
                       "event": "diverged"})
            raise TrainingDiverged(
                f"loss is {loss} at iteration {state.iteration + 1}; stopping. "
                f"{kept_checkpoint(setup.last_path)}. Lower optim.lr, use loss.reduction=mean, "
                f"or precision=fp32.")
        state.iteration += 1
        state.epoch, state.position = epoch, position
        images_seen = sum(first_of(images).shape[0] for images, _ in batches)
        progress.advance(images_seen * setup.info.world_size)
        log_step(setup, state, log, progress, loss)
        evaluated = maybe_evaluate(setup, state, log, progress)
        if evaluated or _due(setup, state, setup.config.train.checkpoint_every):
            state.save(setup, setup.last_path, background=True)
        if budget is not None and _budget_decides(setup, state, log, progress, budget) \
                and state.iteration >= setup.config.train.iterations:
            # the budget is spent already: the final evaluation and checkpoint now
            maybe_evaluate(setup, state, log, progress)
            state.save(setup, setup.last_path)
        if state.iteration >= setup.config.train.iterations or patience_exhausted(setup, state):
            break
    return None


def _time_budget(setup: TrainSetup, state: TrainState, started: float) -> TimeBudget | None:
    """The run's :class:`TimeBudget`, if any; a resumed run takes up the length it chose."""
    config = setup.config
    if config.train.time_budget is None:
        return None
    if state.planned_iterations is not None:
        _set_length(setup, state.planned_iterations)
        return None
    return TimeBudget(parse_duration(config.train.time_budget), started,
                      distributed=setup.info.distributed, device=setup.device)


def _set_length(setup: TrainSetup, iterations: int) -> None:
    """Run ``iterations`` in all, the schedule stretched from the recipe's cap to them."""
    cap = int(setup.recipe["train"]["iterations"])
    setup.config.train.iterations = iterations
    stretch_schedule(setup.scheduler, iterations, cap, setup.config.schedule)


def _budget_decides(setup: TrainSetup, state: TrainState, log: _RunLog, progress: _Progress,
                    budget: TimeBudget) -> bool:
    """After a step: once the first steps are timed, choose the run's length and say so;
    returns whether it was chosen now."""
    cap = int(setup.recipe["train"]["iterations"])
    plan = budget.after_step(
        done=state.iteration, cap=cap, eval_every=setup.config.train.eval_every,
        time_eval=(lambda: _time_evaluation(setup)) if setup.val_loader is not None else None,
        time_save=lambda: _time_save(setup, state))
    if plan is None:
        return False
    state.planned_iterations = plan.iterations
    _set_length(setup, plan.iterations)
    progress.bar.total = plan.iterations
    progress.bar.refresh()
    progress.write(plan.describe(cap, state.iteration))
    log.write({"iteration": state.iteration, "epoch": state.epoch, "event": "time_budget",
               "iterations": plan.iterations, "step_s": plan.step_s, "eval_s": plan.eval_s,
               "save_s": plan.save_s, "elapsed_s": plan.elapsed_s, "budget_s": plan.budget_s})
    return True


def _time_evaluation(setup: TrainSetup) -> float:
    """Seconds a whole evaluation should take, from its first few batches."""
    assert setup.val_loader is not None
    runner = InferenceRunner(setup.eval_model, device=setup.device, precision=setup.precision,
                             prepare=False)
    timed, start = 0, time.perf_counter()
    try:
        with runner.session():
            for images, _ in itertools.islice(setup.val_loader, TIMED_EVAL_BATCHES):
                runner.forward(images)
                timed += 1
    except (ValueError, RuntimeError) as e:
        if data_error_message(e) is None:
            raise  # a bad file is reported by the evaluation itself
    return (time.perf_counter() - start) / max(1, timed) * len(setup.val_loader) * 1.1


def _time_save(setup: TrainSetup, state: TrainState) -> float:
    start = time.perf_counter()
    state.save(setup, setup.last_path)
    return time.perf_counter() - start


def _step_batches(setup: TrainSetup,
                  state: TrainState) -> Iterator[tuple[list[Any], tuple[int, int]]]:
    """The ``optim.accumulate`` batches of each step (perhaps across an epoch's end), each group
    with the ``(epoch, position)`` after it: the state moves only once the step is done."""
    n = setup.config.optim.accumulate
    epoch, position = state.epoch, state.position
    group: list[Any] = []
    while True:
        for batch in _epoch_batches(setup, state, epoch, position):
            group.append(batch)
            position += 1
            if len(group) == n:
                yield group, (epoch, position)
                group = []
        epoch, position = epoch + 1, 0


def _epoch_batches(setup: TrainSetup, state: TrainState, epoch: int,
                   start: int) -> Iterator[tuple[Any, Any]]:
    """The batches of ``epoch`` from batch ``start``. A sample that cannot be read saves
    ``last.pt`` (at ``state``, the last step done) and stops the run with one line naming it."""
    setup.sampler.set_epoch(epoch, start=start * setup.config.images_per_batch())
    batches = start_batches(setup.loader)
    while True:
        batch, problem = _unless_bad_sample(lambda: next(batches, None))
        if problem is not None:
            # Under torchrun the other processes wait in a collective: only a lone one saves.
            saved = "nothing saved (several processes)"
            if not setup.info.distributed:
                state.save(setup, setup.last_path)
                saved = f"saved {setup.last_path}; {CONTINUE_RUN}"
            raise bad_sample(problem, f"Training stopped at iteration {state.iteration}", saved)
        if batch is None:
            break
        yield batch


def _unless_bad_sample(read: Callable[[], Any], default: Any = None) -> tuple[Any, str | None]:
    """``(read(), None)``, or ``(default, "<file>: <problem>")`` for a sample that cannot be
    read. (Returned rather than raised from here, so that no reference cycle through the
    traceback keeps the loader's workers alive.)"""
    try:
        return read(), None
    except (ValueError, RuntimeError) as e:
        problem = data_error_message(e)
        if problem is None:
            raise
    return default, problem


def _agree(setup: TrainSetup, stopping: bool,
           batches: list[tuple[Any, Any]]) -> tuple[bool, float | dict[str, float]]:
    """Whether any process was asked to stop, and the averaged loss's divisor for the whole
    step: the valid pixels (their summed class weight) of every batch on every process; with
    labels per head, one divisor per head (``{head: divisor}``)."""
    labels = [keyed(labels) for _, labels in batches]
    heads = list(labels[0])
    local = [loss_normalizer([lb[head] for lb in labels], setup.ignore_index,
                             setup.class_weights) for head in heads]
    flags = torch.tensor([float(stopping), *local], dtype=torch.float64)
    if setup.info.distributed:
        flags = flags.to(setup.device)
        dist.all_reduce(flags)
        flags = flags.cpu()
    divisors = {h: float(v) for h, v in zip(heads, flags[1:], strict=True)}
    return bool(flags[0] > 0), unkeyed(divisors)


def step(setup: TrainSetup, images: Any, labels: Any,
         valid_pixels: float | dict[str, float]) -> float:
    """One optimisation step on one batch (see :func:`accumulated_step`)."""
    return accumulated_step(setup, [(images, labels)], valid_pixels)


def accumulated_step(setup: TrainSetup, batches: list[tuple[Any, Any]],
                     normalizer: float | dict[str, float]) -> float:
    """One optimisation step on the gradients of ``batches`` together, equal to one step on
    their concatenation (``normalizer``: the step's divisor, :func:`_agree`); returns the loss
    over all of them on all processes, a non-finite one with no update made."""
    config, world, device = setup.config, setup.info.world_size, setup.device
    setup.train_model.train()
    setup.optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float32, device=device)
    for k, (images, labels) in enumerate(batches):
        with _no_sync(setup.train_model, inner=k < len(batches) - 1):
            with autocast(device, setup.precision):
                logits = setup.train_model(
                    to_device(images, device, channels_last=setup.channels_last))
            # dict labels (one map per head) sum the heads' losses
            loss = segmentation_loss(logits, to_device(labels, device),
                                     reduction=config.loss.reduction,
                                     ignore_index=setup.ignore_index, normalizer=normalizer,
                                     weight=setup.class_weights, name=config.loss.name,
                                     focal_gamma=config.loss.focal_gamma)
            # DDP averages gradients over processes; scaled, they add up: N processes × batch b
            # equal one process × batch N·b.
            setup.scaler.scale(loss * world if setup.info.distributed else loss).backward()
        total += loss.detach()
    if setup.info.distributed:
        dist.all_reduce(total)
    if not math.isfinite(float(total)):
        setup.optimizer.zero_grad(set_to_none=True)
        return float(total)
    if config.optim.grad_clip:
        setup.scaler.unscale_(setup.optimizer)
        nn.utils.clip_grad_norm_(setup.model.parameters(), config.optim.grad_clip)
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    with warnings.catch_warnings():
        # fp16's scaler skips steps with inf gradients; the schedule still follows the
        # iteration count, which is what we want.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_sch")
        setup.scheduler.step()
    if setup.ema is not None:
        setup.ema.update(setup.model)
    return float(total)


def _no_sync(model: nn.Module, *, inner: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` for the inner batches of an accumulation (the last syncs them all)."""
    ddp = getattr(model, "_orig_mod", model)  # torch.compile wraps the DDP module
    if inner and isinstance(ddp, nn.parallel.DistributedDataParallel):
        return ddp.no_sync()
    return contextlib.nullcontext()


def _due(setup: TrainSetup, state: TrainState, every: int) -> bool:
    """Whether a task of every ``every`` iterations falls now (each is also due at the last)."""
    return state.iteration % every == 0 or state.iteration == setup.config.train.iterations


def log_step(setup: TrainSetup, state: TrainState, log: _RunLog, progress: _Progress,
             loss: float) -> None:
    """Every ``train.log_every`` iterations (and at the last): a metrics.jsonl record."""
    progress.line(state.iteration, loss)
    if not _due(setup, state, setup.config.train.log_every):
        return
    lr = setup.optimizer.param_groups[0]["lr"]
    speed = progress.images_per_second()
    log.write({"iteration": state.iteration, "epoch": state.epoch, "loss": loss, "lr": lr,
               "images_per_s": round(speed, 3)})
    progress.bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.3g}", img_s=f"{speed:.1f}")
    if progress.eta_pending and speed > 0:  # the first logged speed, judged once
        progress.eta_pending = False
        images = setup.config.data.batch_size * setup.info.world_size
        if too_slow := eta_warning(setup.config, setup.device.type, images / speed,
                                   setup.config.train.iterations - state.iteration):
            progress.write(f"warning: {too_slow}")


def maybe_evaluate(setup: TrainSetup, state: TrainState, log: _RunLog,
                   progress: _Progress) -> bool:
    """Every ``train.eval_every`` iterations (and at the last), score the validation set,
    log it and save ``best.pt`` on a new best mean IU; returns whether it evaluated.

    ``last.pt`` is saved first, marked as awaiting this evaluation, so that a sample that
    cannot be read (or a kill) costs no training: a resumed run evaluates first. (Evaluation
    draws from no RNG, so the state saved before it is also the one after it.)"""
    due = state.eval_pending or _due(setup, state, setup.config.train.eval_every)
    if setup.val_loader is None or not due:
        return False
    state.eval_pending = True
    state.save(setup, setup.last_path, background=True)  # written while evaluating
    share_main_buffers(setup.eval_model, setup.info)  # score what the checkpoints hold
    result, problem = _unless_bad_sample(lambda: evaluate_model(
        setup.eval_model, setup.val_loader, num_classes=setup.eval_num_classes,
        ignore_index=setup.ignore_index, device=setup.device, precision=setup.precision,
        exclude_classes=setup.eval_exclude_classes), {})
    if problem is not None:
        raise bad_sample(problem, f"The evaluation at iteration {state.iteration} stopped",
                         f"saved {setup.last_path}; {CONTINUE_RUN}")
    state.eval_pending = False
    state.metrics = _saved_metrics(result)
    precision = setup.precision  # the validation's, which `fcnseg evaluate` uses too
    log.write({"iteration": state.iteration, "epoch": state.epoch, "split": "val",
               **_scalar_metrics(state.metrics), "precision": precision,
               "class_iu": {str(n): None if v is None else float(v) for n, v in
                            zip(setup.class_names, state.metrics.get("iu") or [], strict=False)}})
    if viewers := [logger for logger in log.loggers if hasattr(logger, "images")]:
        strips = prediction_previews(setup.eval_model, setup.val_loader.dataset, setup.palette,
                                     device=setup.device)
        for viewer in viewers:
            viewer.images(state.iteration, strips)
    miu = state.metrics.get("mean_iu")
    if (stop := setup.config.train.early_stop) is not None and miu is not None:
        # count the evaluations in a row without progress
        rose = state.best_mean_iu is None or \
            float(miu) > state.best_mean_iu + float(stop.get("min_delta", 0.0))
        state.stale_evals = 0 if rose else state.stale_evals + 1
    heads = other_heads_text(state.metrics)  # SIFT Flow's geometric pixel acc
    progress.write(f"iteration {state.iteration}: mean IU {_pct(miu)}, pixel acc "
                   f"{_pct(state.metrics.get('pixel_acc'))}{'; ' + heads if heads else ''} "
                   f"({precision})")
    if miu is not None and (state.best_mean_iu is None or miu > state.best_mean_iu):
        state.best_mean_iu = float(miu)
        state.best_heads = {h: {k: v for k, v in scores.items() if k in ("pixel_acc", "mean_iu")}
                            for h, scores in (state.metrics.get("heads") or {}).items()}
        state.save(setup, setup.best_path, with_state=False, background=True)
    return True


def patience_exhausted(setup: TrainSetup, state: TrainState) -> bool:
    """Whether ``train.early_stop`` ends the run: ``patience`` evaluations without progress."""
    stop = setup.config.train.early_stop
    return stop is not None and state.stale_evals >= int(stop["patience"])


def _saved_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The scores kept in checkpoints (no confusion matrices); with several heads, the first
    head's also at the top level, whose ``mean_iu`` chooses ``best.pt``."""
    def kept(scores: dict[str, Any]) -> dict[str, Any]:
        return {k: json_safe(v) for k, v in scores.items() if k != "confusion"}

    if "heads" not in result:
        return kept(result)
    heads = {h: kept(scores) for h, scores in result["heads"].items()}
    return {**first_of(heads), "heads": heads, "num_images": result["num_images"]}


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a validation record, ``<head>/mean_iu`` ... per head (null kept)."""
    def numbers(scores: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        return {f"{prefix}{k}": v for k, v in scores.items()
                if v is None or isinstance(v, Number)}

    flat = numbers(metrics)
    for head, scores in (metrics.get("heads") or {}).items():
        flat.update(numbers(scores, f"{head}/"))
    return flat


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f}"


class _Progress:
    """The progress bar (rank 0, on a terminal) and the images/s since the last record."""

    def __init__(self, setup: TrainSetup, start: int, started: float | None = None) -> None:
        self.is_main = setup.info.is_main
        self.started, self.loop_started = started, time.time()
        show = self.is_main and setup.config.train.progress
        # disable=None: tqdm draws only on a terminal
        self.bar = tqdm(total=setup.config.train.iterations, initial=start,
                        disable=None if show else True, dynamic_ncols=True, unit="it",
                        desc=setup.config.name)
        self.window_start, self.window_images = time.perf_counter(), 0
        # Without a terminal the bar is not drawn: a plain line every progress_every seconds.
        self.lines = show and bool(self.bar.disable)
        self.line_every = float(setup.config.train.progress_every)
        self.line_at, self.line_images, self.line_iteration = time.perf_counter(), 0, start
        # a time budget sets the length: no ETA to warn about
        self.eta_pending = setup.config.train.time_budget is None

    def advance(self, images: int) -> None:
        self.window_images += images
        self.line_images += images
        self.bar.update(1)
        if self.started is not None:  # the first step: say what start-up cost
            now = time.time()
            self.write(f"time to first step: {now - self.started:.1f} s (start-up "
                       f"{self.loop_started - self.started:.1f} s, first step "
                       f"{now - self.loop_started:.1f} s)")
            self.started = None

    def line(self, iteration: int, loss: float) -> None:
        """Without a terminal, every ``train.progress_every`` seconds: iteration, loss,
        images/s and the time left."""
        now = time.perf_counter()
        elapsed = now - self.line_at
        if not self.lines or elapsed < self.line_every:
            return
        done = max(iteration - self.line_iteration, 1)
        left = max((self.bar.total or iteration) - iteration, 0)
        eta = format_duration(left * elapsed / done)
        print(f"iteration {iteration}/{self.bar.total}: loss {loss:.4g}, "
              f"{self.line_images / elapsed:.1f} images/s, ETA {eta}", flush=True)
        self.line_at, self.line_images, self.line_iteration = now, 0, iteration

    def images_per_second(self) -> float:
        """Images per second since the last call (all processes together)."""
        now = time.perf_counter()
        speed = self.window_images / max(now - self.window_start, 1e-9)
        self.window_start, self.window_images = now, 0
        return speed

    def write(self, line: str) -> None:
        if self.is_main:
            self.bar.write(line)


class _RunLog:
    """metrics.jsonl (always) and the loggers of ``train.loggers``, written by rank 0 only.
    ``resume_at``: the iteration a resumed run continues from (later records, and with
    ``eval_pending`` its evaluation, are dropped: they are redone); None starts a new log."""

    def __init__(self, out: Path, enabled: bool, loggers: Sequence[str], resume_at: int | None,
                 eval_pending: bool = False, *, classes: Sequence[str] = (),
                 recipe: Mapping[str, Any] | None = None):
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.loggers: list[Any] = []
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if resume_at is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if _kept(line, resume_at, eval_pending)]
        # before metrics.jsonl changes: a logger that cannot start (a tracking store that
        # refuses) leaves the log as it was
        self.loggers = open_loggers(loggers, out, classes=classes,
                                    kept=[json.loads(line) for line in kept],
                                    recipe=recipe or {}, resume_at=resume_at,
                                    eval_pending=eval_pending)
        if resume_at is None:
            # A log left by an earlier attempt killed before its first checkpoint would
            # otherwise repeat its iterations.
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            # atomically: a crash here must not cost the log of the iterations already run
            with atomic_write(self.path, "w") as f:
                f.write("".join(line + "\n" for line in kept))
        self.file = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            self.file.write(json.dumps(json_safe(record), default=str) + "\n")
            self.file.flush()
        except OSError as e:
            if is_disk_full(e):
                raise DiskFullError(self.path, "the records already written are kept") from e
            raise
        for logger in self.loggers:
            logger.write(record)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
        for logger in self.loggers:
            logger.close()


def _kept(line: str, resume_at: int, eval_pending: bool) -> bool:
    """Whether a metrics.jsonl line stays when a run resumes at ``resume_at`` (not one cut
    short by a crash)."""
    try:
        record = json.loads(line)
        iteration = float(record.get("iteration", 0))
    except (ValueError, AttributeError):
        return False
    if iteration == resume_at and eval_pending and record.get("split") == "val":
        return False  # the evaluation is about to be redone
    return iteration <= resume_at
