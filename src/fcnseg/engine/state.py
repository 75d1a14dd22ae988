"""A run's state is saved into ``last.pt`` and restored from it bit for bit.
:class:`TrainState` and the RNG states are saved with the model, optimizer, schedule and scaler
(the data order is a function of ``(seed, epoch)``, augmentation is seeded per sample, and every
process's RNG states are saved at each checkpoint, written only between optimisation steps)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.checkpoint import checkpoint_payload
from fcnseg.engine.distributed import all_gather_objects
from fcnseg.engine.errors import TrainingDiverged
from fcnseg.engine.setup import TrainSetup
from fcnseg.models.weights import describe_mismatch

#: TrainState fields saved in ``state`` as they are (older checkpoints lack some: defaults).
_SAVED_COUNTERS = ("best_mean_iu", "best_heads", "eval_pending", "stale_evals",
                   "planned_iterations")


@dataclass
class TrainState:
    """The counters a run advances; with the setup's modules, all that ``last.pt`` holds."""

    #: Optimisation steps done.
    iteration: int = 0
    epoch: int = 0
    #: Batches of ``epoch`` already used (a resumed run skips them).
    position: int = 0
    best_mean_iu: float | None = None
    #: Each head's headline scores at the best evaluation (several heads only).
    best_heads: dict[str, Any] = field(default_factory=dict)
    #: The latest evaluation's scores (saved in checkpoints, returned in TrainResult).
    metrics: dict[str, Any] = field(default_factory=dict)
    #: The evaluation at ``iteration`` has not finished; a resumed run does it first.
    eval_pending: bool = False
    #: Evaluations in a row without a rise of ``train.early_stop.min_delta`` in mean IU.
    stale_evals: int = 0
    #: The run's length chosen for ``train.time_budget`` (None until chosen, or without one).
    planned_iterations: int | None = None

    @classmethod
    def start(cls, setup: TrainSetup) -> TrainState:
        """A new run. Each process gets its own model-side random stream (dropout) from here."""
        seed_everything(setup.config.seed + 7919 * setup.info.rank)
        return cls()

    @classmethod
    def restore(cls, ckpt: Mapping[str, Any], setup: TrainSetup,
                say: Callable[[str], None]) -> TrainState:
        """Load ``last.pt`` (read with :func:`fcnseg.checkpoint.load_checkpoint`) into the setup
        built from the same recipe, RNG states included; return the counters it holds."""
        path = Path(ckpt.get("path", setup.last_path))
        saved = ckpt["state"]
        if not saved or "optimizer" not in saved:
            raise ValueError(f"{path}: holds no training state to resume from")
        # with train.ema the checkpoint's model is the average, the trained weights beside it
        weights = saved.get("train_weights") or ckpt["model_state_dict"]
        problem = describe_mismatch(path, setup.model, weights)
        if problem:
            raise ValueError(f"resume: the recipe's model ({setup.config.model.arch}) is not the "
                             f"one this run trained; {problem}")
        setup.model.load_state_dict(weights)
        if setup.ema is not None:
            setup.ema.load_state_dict(saved.get("ema") or {}, ckpt["model_state_dict"])
        setup.optimizer.load_state_dict(saved["optimizer"])
        setup.scheduler.load_state_dict(saved["scheduler"])
        setup.scaler.load_state_dict(saved["scaler"])
        setup.loader_generator.set_state(saved["data"]["generator"])
        rngs, world = saved["rng"], setup.info.world_size
        if len(rngs) != world:
            say(f"resume: the run was saved by {len(rngs)} processes and continues on {world}; "
                f"the data order is kept but random streams will differ")
        set_rng_state(rngs[setup.info.rank % len(rngs)], setup.device)
        sampling = saved.get("loss_sampling")  # absent from checkpoints of older versions
        if sampling:
            setup.loss_sampler.load_state_dict(sampling[setup.info.rank % len(sampling)])
        state = cls(iteration=int(ckpt["iteration"]), epoch=int(saved["data"]["epoch"]),
                    position=int(saved["data"]["position"]),
                    metrics=dict(ckpt.get("metrics") or {}),
                    **{k: saved[k] for k in _SAVED_COUNTERS if saved.get(k) is not None})
        say(f"resumed {path} at iteration {state.iteration} (epoch {state.epoch}, batch "
            f"{state.position})")
        return state

    def save(self, setup: TrainSetup, path: Path, *, with_state: bool = True,
             background: bool = False) -> None:
        """Write a checkpoint of the model at this state (every process calls it; rank 0
        writes). ``with_state=False`` leaves out what only resuming needs (``best.pt``).
        ``background``: write a copy in a thread while training goes on. Raises
        :class:`TrainingDiverged` for NaN or infinite weights (the last good checkpoint kept).
        """
        # An overflowing step can leave NaN/inf weights behind a finite loss; every process
        # holds the same weights, so all stop here together.
        bad = non_finite_parameters(setup.model)
        if setup.ema is not None:
            bad += [f"average of {name}" for name in non_finite_parameters(setup.ema.module)]
        if bad:
            setup.checkpoint_writer.finish()  # the message names the checkpoint kept
            raise TrainingDiverged(
                f"weights became NaN or infinite by iteration {self.iteration} "
                f"({', '.join(bad[:5])}{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}); "
                f"not saving {path.name}: {kept_checkpoint(setup.last_path)}. Lower optim.lr, "
                f"use loss.reduction=mean, set optim.grad_clip, or precision=fp32.")
        rngs = all_gather_objects(rng_state(setup.device), setup.info) if with_state else None
        sampling = (all_gather_objects(setup.loss_sampler.state_dict(), setup.info)
                    if with_state else None)
        if not setup.info.is_main:
            return
        # best.pt too records the length a time budget chose (what `fcnseg info` shows)
        saved: dict[str, Any] = ({} if self.planned_iterations is None else
                                 {"planned_iterations": self.planned_iterations})
        if with_state:
            saved = {
                "optimizer": setup.optimizer.state_dict(),
                "scheduler": setup.scheduler.state_dict(),
                "scaler": setup.scaler.state_dict(),
                "rng": rngs,
                "loss_sampling": sampling,
                "data": {"epoch": self.epoch, "position": self.position,
                         "generator": setup.loader_generator.get_state()},
                "world_size": setup.info.world_size,
                **{k: getattr(self, k) for k in _SAVED_COUNTERS},
            }
            if setup.ema is not None:
                saved["ema"] = setup.ema.state_dict()
                saved["train_weights"] = {k: v.detach().cpu().clone()
                                          for k, v in setup.model.state_dict().items()}
        payload = checkpoint_payload(
            setup.eval_model, class_names=setup.class_names, palette=setup.palette,
            ignore_index=setup.ignore_index, recipe=setup.recipe,
            head_classes=setup.head_classes, background=setup.background_class,
            coco_categories=setup.coco_categories,
            trained_in=setup.trained_in, iteration=self.iteration, epoch=self.epoch,
            metrics=self.metrics, state=saved)
        setup.checkpoint_writer.write(path, payload, background=background)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every RNG state of this process as plain data (checkpoints are read weights-only)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def non_finite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters holding NaN or infinite values."""
    params = {id(p) for p in model.parameters()}
    return [name for name, t in model.state_dict(keep_vars=True).items()  # reference names
            if id(t) in params and not bool(torch.isfinite(t).all())]


def kept_checkpoint(last_path: Path) -> str:
    """"the last good checkpoint <path> (iteration N) is kept", or that none was written."""
    if not last_path.exists():
        return "no checkpoint was written"
    try:
        iteration = int(torch.load(last_path, map_location="cpu", weights_only=True)["iteration"])
    except Exception:  # only for a message: an unreadable file says "?"
        iteration = "?"
    return f"the last good checkpoint {last_path} (iteration {iteration}) is kept"
