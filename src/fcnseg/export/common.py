"""What both exporters share: model metadata, verification samples and the comparison."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg import __version__
from fcnseg.conventions import CAFFE_BGR, InputConvention
from fcnseg.inference.sliding import forward_logits

__all__ = [
    "DEFAULT_ATOL",
    "ExportError",
    "SampleCheck",
    "LogitsOnly",
    "check_samples",
    "logits_model",
    "metadata_strings",
    "sample_batches",
]

#: Largest absolute difference to PyTorch accepted when verifying an export (float32).
DEFAULT_ATOL = 1e-4


class ExportError(RuntimeError):
    """An export failed or did not reproduce the PyTorch model's outputs."""


@dataclass(frozen=True)
class SampleCheck:
    """One verification run: the input shape and how far the export is from PyTorch."""

    shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_logit: float

    def __str__(self) -> str:
        return (f"input {'×'.join(map(str, self.shape))}: max |export − PyTorch| = "
                f"{self.max_abs_diff:.3g} (logits up to {self.max_abs_logit:.3g})")


class LogitsOnly(nn.Module):
    """Wraps a model that answers torchvision-style ``{"out": logits, "aux": ...}`` so that it
    returns the logits tensor alone: what an export's single output holds."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_logits(self.model, x)


def logits_model(model: nn.Module) -> nn.Module:
    """``model`` itself, or wrapped in :class:`LogitsOnly` when its forward returns a dict."""
    if getattr(model, "output", "tensor") != "dict":
        return model
    return LogitsOnly(model).train(model.training)  # a new module starts in training mode


def metadata_strings(description: Mapping[str, Any]) -> dict[str, str]:
    """A model description as string metadata: each value JSON-encoded under its key."""
    meta = {str(k): json.dumps(v) for k, v in description.items()}
    meta["fcnseg_version"] = json.dumps(__version__)
    meta["input"] = json.dumps("N×3×H×W float32, RGB 0-255 normalised per input_convention "
                               "(channel order, scale, mean, std)")
    meta["output"] = json.dumps("N×C×H×W float32 logits at the input's size; argmax over C is "
                                "the label")
    return meta


def sample_batches(
    size: tuple[int, int],
    convention: InputConvention = CAFFE_BGR,
    *,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Two normalised random images batches: 1×3×H×W at ``size``, and 2×3×H'×W' at a different
    size (odd offsets, so that rounding in pools and crops differs) to prove dynamic axes."""
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"sample size must be positive, got {size}")
    second = (h + 37, max(1, w - 19) if w > 40 else w + 23)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n, (hh, ww) in ((1, (h, w)), (2, second)):
        rgb = torch.randint(0, 256, (n, 3, hh, ww), generator=gen, dtype=torch.uint8)
        out.append(convention.normalize(rgb).contiguous())
    return out


def check_samples(
    model: nn.Module,
    run_export: Callable[[torch.Tensor], np.ndarray],
    samples: Sequence[torch.Tensor],
    atol: float = DEFAULT_ATOL,
) -> list[SampleCheck]:
    """Run each sample through PyTorch and the export; raise :class:`ExportError` if a shape
    differs or the largest absolute difference reaches ``atol``."""
    checks = []
    for x in samples:
        with torch.inference_mode():
            ref = model(x).float().numpy()
        got = np.asarray(run_export(x))
        if got.shape != ref.shape:
            raise ExportError(f"input {tuple(x.shape)}: the export returned shape {got.shape}, "
                              f"PyTorch {ref.shape} (sizes did not stay dynamic)")
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        check = SampleCheck(tuple(x.shape), diff, float(np.abs(ref).max()))
        checks.append(check)
        if not diff < atol:
            raise ExportError(f"{check}: not below the tolerance {atol:g}"
                              f"{_float32_noise(model, x, ref)}")
    return checks


def _float32_noise(model: nn.Module, x: torch.Tensor, ref: np.ndarray) -> str:
    """Explain a failed check: how far PyTorch's own float32 result is from float64."""
    try:
        with torch.inference_mode():
            exact = copy.deepcopy(model).double()(x.double()).numpy()
    except Exception:  # noqa: BLE001 - only a hint; never hide the real failure
        return ""
    noise = float(np.abs(ref.astype(np.float64) - exact).max())
    return (f"; PyTorch's own float32 result differs from float64 by {noise:.3g} here, so with "
            f"logits this large the tolerance may need raising (--atol)")
