"""Parameter groups, optimizer and learning-rate schedule (the loss is in ``loss``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from fcnseg.engine.config import OptimConfig, ScheduleConfig
from fcnseg.engine.loss import segmentation_loss as segmentation_loss  # its home was here


def parameter_groups(model: nn.Module, config: OptimConfig) -> list[dict[str, Any]]:
    """The reference's two groups: weights (lr, weight decay) and biases (``bias_lr_mult`` × lr,
    no decay unless ``bias_decay``); plus other 1-D parameters (BatchNorm scales) at the plain
    lr without decay. Frozen parameters (the bilinear upsampling) are left out."""
    weights, biases, norms = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("bias"):
            biases.append(p)
        elif p.dim() == 1:
            norms.append(p)
        else:
            weights.append(p)
    groups = [{"params": weights, "lr": config.lr, "weight_decay": config.weight_decay,
               "name": "weights"}]
    if biases:
        groups.append({"params": biases, "lr": config.lr * config.bias_lr_mult,
                       "weight_decay": config.weight_decay if config.bias_decay else 0.0,
                       "name": "biases"})
    if norms:
        groups.append({"params": norms, "lr": config.lr, "weight_decay": 0.0, "name": "norms"})
    return groups


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over :func:`parameter_groups`."""
    groups = parameter_groups(model, config)
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters")
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov)
    adam = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(config.name)
    if adam is not None:
        return adam(groups, lr=config.lr, betas=(float(config.betas[0]), float(config.betas[1])))
    raise ValueError(f"optim.name: unknown optimizer {config.name!r}; known: sgd, adam, adamw")


def lr_factor(iteration: int, total: int, config: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based) of ``total``."""
    if config.name == "fixed":
        factor = 1.0
    elif config.name == "poly":
        factor = (1.0 - min(iteration, total) / total) ** config.power
    elif config.name == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / total))
    else:
        raise ValueError(f"schedule.name: unknown schedule {config.name!r}; "
                         f"known: fixed, poly, cosine")
    if iteration < config.warmup_iters:
        alpha = iteration / config.warmup_iters
        factor *= config.warmup_factor * (1.0 - alpha) + alpha
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total: int,
                    config: ScheduleConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per iteration; its state is the iteration count alone."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, total, config))


def stretch_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR, total: int, cap: int,
                     config: ScheduleConfig) -> None:
    """Make ``scheduler`` (built for ``cap`` iterations) run over ``total`` instead, its warm-up
    scaled alike, and set the learning rates for the iteration it is at. (Its functions are
    not saved: a resumed run stretches it again.)"""
    warmup = round(config.warmup_iters * total / cap) if cap else config.warmup_iters
    stretched = dataclasses.replace(config, warmup_iters=min(config.warmup_iters, warmup))
    scheduler.lr_lambdas = [lambda it: lr_factor(it, total, stretched)
                            for _ in scheduler.optimizer.param_groups]
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs,
                               scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
