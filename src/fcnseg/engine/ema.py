"""An exponential moving average of the weights (``train.ema``) is evaluated and saved.
It stands for the model while the optimizer keeps training the raw weights."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """``average ← d·average + (1 − d)·weights`` after every optimisation step, over every
    floating-point parameter and buffer; integer buffers are copied. The decay ramps up as
    ``d = min(decay, (1 + n) / (10 + n))`` after n updates, so that short runs do not keep the
    random start. :attr:`module` is a full copy of the model, evaluated and saved like it.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema: the decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model)
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        n = self.updates + 1
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s weights (call after each optimizer step)."""
        d = self.current_decay()
        averaged, current = self.module.state_dict(), model.state_dict()
        for key, value in averaged.items():
            new = current[key].detach()
            if value.dtype.is_floating_point:
                value.mul_(d).add_(new.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(new)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The update count (the weights themselves are saved as the checkpoint's model)."""
        return {"decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any], weights: Mapping[str, Any]) -> None:
        """Restore the average's ``weights`` and its update count."""
        self.module.load_state_dict(weights)
        self.updates = int(state.get("updates", 0))
