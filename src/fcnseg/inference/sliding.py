"""Sliding-window inference and test-time augmentation are ``predict_fn``-shaped functions.
They take a model and an N×3×H×W batch of raw pixels (or ``{modality: N×c×H×W}``, alike) to
N×C×H×W logits at the input's size (or ``{head: logits}``), for evaluation and the Segmenter."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.utils.keyed import first_of, keyed, unkeyed
from fcnseg.utils.windows import window_starts

#: A batch: N×3×H×W, or ``{modality: N×c×H×W}`` for a model with several inputs.
Batch = torch.Tensor | Mapping[str, torch.Tensor]
#: Logits: N×C×H×W, or ``{head: N×C×H×W}`` for a model with several heads.
Logits = torch.Tensor | Mapping[str, torch.Tensor]
#: ``predict_fn(model, images) -> logits``: a batch (raw pixels) to scores at its size.
PredictFn = Callable[[nn.Module, Any], Any]


def _pair(v: int | Sequence[int], what: str) -> tuple[int, int]:
    pair = (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return pair  # type: ignore[return-value]


def forward_logits(model: nn.Module, x: Batch) -> Logits:
    """The plain whole-image forward pass (the default ``predict_fn``): a torchvision-style
    ``{"out": logits, "aux": ...}`` gives its ``"out"``, a model with several heads its dict."""
    out = model(x)
    return keyed(out).get("out", out)


def sliding_window_logits(model: nn.Module, x: Batch, window: int | Sequence[int],
                          stride: int | Sequence[int] | None = None, *,
                          predict_fn: PredictFn | None = None) -> Logits:
    """N×C×H×W float32 logits (or ``{head: logits}``) of a batch computed window by window by
    ``predict_fn`` (default: ``model(window)``), each pixel the mean of the windows over it.
    ``window``: height and width (an int: square), cut to the image; ``stride``: the step
    between windows, at most the window (default: two thirds of it)."""
    inputs = keyed(x)
    shape = tuple(first_of(inputs).shape)
    if len(shape) != 4:
        raise ValueError(f"expected an N×3×H×W batch, got shape {shape}")
    n, _, h, w = shape
    (wh, ww), (sh, sw) = _window_and_stride(window, stride)
    run = predict_fn or forward_logits
    wh, ww = min(wh, h), min(ww, w)
    ys, xs = window_starts(h, wh, sh), window_starts(w, ww, sw)
    if len(ys) == 1 and len(xs) == 1:
        return run(model, x)
    total: dict[str | None, torch.Tensor] = {}
    count = torch.zeros(1, 1, h, w, dtype=torch.float32, device=first_of(inputs).device)
    for y0, x0 in itertools.product(ys, xs):
        cut = (slice(None), slice(None), slice(y0, y0 + wh), slice(x0, x0 + ww))
        out = keyed(run(model, unkeyed({k: t[cut] for k, t in inputs.items()})))
        if (got := tuple(first_of(out).shape[-2:])) != (wh, ww):
            raise ValueError(f"the model returned {got} logits for "
                             f"a {(wh, ww)} window; sliding windows need same-size outputs")
        for head, logits in out.items():
            if head not in total:
                total[head] = torch.zeros(n, logits.shape[1], h, w, dtype=torch.float32,
                                          device=count.device)
            total[head][cut] += logits.float()
        count[cut] += 1.0  # the weight map: windows over each pixel
    for t in total.values():  # in place: no second output-sized tensor per head
        t /= count
    return unkeyed(total)


def _window_and_stride(window: int | Sequence[int], stride: int | Sequence[int] | None
                       ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Window and stride as (height, width) pairs (the stride checked, 2/3 window by default)."""
    wh, ww = _pair(window, "window")
    if stride is None:
        stride = (max(1, wh * 2 // 3), max(1, ww * 2 // 3))
    sh, sw = _pair(stride, "stride")
    if sh > wh or sw > ww:
        raise ValueError(f"stride {stride} larger than the window {window} would skip pixels")
    return (wh, ww), (sh, sw)


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(t.shape[-2:]) == size:
        return t
    # Raw uint8 pixels are resized as floats: rounding them back would change the input.
    t = t if t.is_floating_point() else t.float()
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def _add_pass(total: dict[str | None, torch.Tensor], out: dict[str | None, torch.Tensor],
              size: tuple[int, int], mirrored: bool, probs: bool) -> None:
    """Each head of one pass's ``out`` brought back (as probabilities) and added into its sum
    in ``total`` in place, let go once added: one output-sized sum per head, one pass's
    outputs at a time (the model's own outputs are not written into)."""
    for head in list(out):  # in the model's order of heads
        raw = out.pop(head)
        t = _resize((raw.flip(-1) if mirrored else raw).float(), size)
        t = t.softmax(1) if probs else t
        if head in total:
            total[head] += t
        else:
            total[head] = t.clone() if t is raw else t


def tta_logits(model: nn.Module, x: Batch, scales: Sequence[float] = (1.0,), flip: bool = False,
               predict_fn: PredictFn | None = None, *, average: str = "logits") -> Logits:
    """Test-time augmentation: N×C×H×W float32 logits (or ``{head: logits}``) averaged over the
    input resized bilinearly by each of ``scales`` (and mirrored, with ``flip``), each run by
    ``predict_fn`` (default: forward) and brought back. ``average="probs"`` averages softmax
    probabilities and returns their logarithm."""
    scales = TTA(tuple(scales), flip, average).scales  # checked as the settings are
    run = predict_fn or forward_logits
    inputs = keyed(x)
    size = (int(first_of(inputs).shape[-2]), int(first_of(inputs).shape[-1]))
    total: dict[str | None, torch.Tensor] = {}
    for s in scales:
        scaled_size = (max(1, round(size[0] * s)), max(1, round(size[1] * s)))
        xs = {k: _resize(t, scaled_size) for k, t in inputs.items()}
        for mirrored in (False, True) if flip else (False,):
            _add_pass(total, keyed(run(model, unkeyed(
                {k: t.flip(-1) for k, t in xs.items()} if mirrored else xs))), size,
                mirrored, average == "probs")
    for t in total.values():
        t /= len(scales) * (2 if flip else 1)
        if average == "probs":
            t.clamp_min_(1e-12).log_()
    return unkeyed(total)


@dataclass(frozen=True)
class SlidingWindow:
    """Sliding-window settings: window size and stride in pixels (stride default: 2/3 window)."""

    window: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _window_and_stride(self.window, self.stride)

    def predict_fn(self) -> PredictFn:
        """This setting as a ``predict_fn(model, images) -> logits``."""
        return lambda model, x: sliding_window_logits(model, x, self.window, self.stride)

    @classmethod
    def coerce(cls, v: Any) -> SlidingWindow | None:
        """None, an int (window), a (window, stride) mapping or an instance."""
        if isinstance(v, int):
            return cls(window=v)
        return _coerce(cls, v, "sliding_window must be None, an int or a dict of window and "
                               "stride")


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation settings (see :func:`tta_logits`)."""

    scales: tuple[float, ...] = field(default=(1.0,))
    flip: bool = False
    average: str = "logits"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"TTA scales must be positive numbers, got {self.scales}")
        if self.average not in ("logits", "probs"):
            raise ValueError(f"TTA average must be 'logits' or 'probs', got {self.average!r}")

    @property
    def is_identity(self) -> bool:
        return self.scales == (1.0,) and not self.flip

    def predict_fn(self, inner: PredictFn | None = None) -> PredictFn:
        """This setting as a ``predict_fn``, each pass run by ``inner`` (default: forward)."""
        return lambda model, x: tta_logits(model, x, self.scales, self.flip, inner,
                                           average=self.average)

    @classmethod
    def coerce(cls, v: Any) -> TTA | None:
        """None, a mapping of the fields, or an instance."""
        return _coerce(cls, v, "tta must be None, a TTA or a dict of scales, flip and average")


def _coerce(cls: Any, v: Any, expected: str) -> Any:
    """``v`` as ``cls``: None and instances as they are, a mapping as its fields."""
    if v is None or isinstance(v, cls):
        return v
    try:
        return cls(**v)
    except TypeError:
        raise ValueError(f"{expected}, got {v!r}") from None
