"""The loss is per-pixel softmax cross-entropy, or focal, Dice, Lovász-softmax, or a sum of them.
It has an ignore index and is summed (the reference) or averaged, optionally class-weighted, over
the pixels that loss sampling keeps (:class:`LossSampler`: the paper's "patchwise training", §4.3).

With accumulation and data parallelism the averaged loss's divisor is the step's total over every
micro-batch and process (:func:`loss_normalizer`), so that loss and gradient are exactly those of
one batch of all of them. ``dice`` and ``lovasz`` score the batch's valid pixels as a whole (a
class-weighted mean over the classes present) and need the averaged reduction, each micro-batch
counting by its share of the step's valid pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fcnseg.data.class_frequencies import class_pixel_counts, class_weights
from fcnseg.utils.keyed import first_of, keyed, unkeyed

#: The loss terms ``loss.name`` may name (alone or summed, ``"ce+dice"``).
LOSS_TERMS = ("ce", "focal", "dice", "lovasz")
#: The terms that score the batch as a whole rather than summing per-pixel losses.
SET_TERMS = ("dice", "lovasz")


def parse_loss_name(name: str) -> list[tuple[float, str]]:
    """``[(scale, term), ...]`` of a loss name: ``"ce"``, ``"ce+dice"``, ``"ce+0.5*lovasz"``;
    a ValueError naming ``loss.name`` for an unknown term or a scale that is not positive."""
    terms: list[tuple[float, str]] = []
    for part in str(name).replace(" ", "").split("+"):
        scale_text, star, term = part.rpartition("*")
        try:
            scale = float(scale_text) if star else 1.0
        except ValueError:
            scale = -1.0
        if term not in LOSS_TERMS or not scale > 0:
            raise ValueError(f"loss.name: {name!r}: {part!r} is not one of "
                             f"{', '.join(LOSS_TERMS)} (optionally scaled, e.g. 0.5*dice); "
                             f"sum terms with +")
        terms.append((scale, term))
    return terms


def segmentation_loss(logits: torch.Tensor | Mapping[str, torch.Tensor],
                      target: torch.Tensor | Mapping[str, torch.Tensor], *,
                      reduction: str = "sum", ignore_index: int = 255,
                      normalizer: float | torch.Tensor | Mapping[str, Any] | None = None,
                      weight: torch.Tensor | None = None, name: str = "ce",
                      focal_gamma: float = 2.0) -> torch.Tensor:
    """The loss ``name`` (:func:`parse_loss_name`; default softmax cross-entropy) over the valid
    pixels, weighted per class by ``weight`` (None: all ones).

    ``reduction="sum"`` is the reference loss, whose gradient grows with image size (hence the
    paper's tiny learning rates); ``"mean"`` divides it by the valid pixels' total class weight,
    or by ``normalizer`` (the step's, :func:`loss_normalizer`); a batch without valid pixels gives
    zero, not NaN. ``focal`` is ``Σ w[y]·(1 - p_y)^γ·CE`` with γ = ``focal_gamma``; ``dice`` the
    class mean of ``1 - 2|P∩G| / (|P| + |G|)``; ``lovasz`` that of the Lovász extension of the
    Jaccard loss (Berman et al., 2018). Several heads (``logits`` a mapping) sum their losses,
    each against ``target[head]`` (or the one ``target``); ``normalizer`` may be per head.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"loss reduction must be 'sum' or 'mean', got {reduction!r}")
    terms = parse_loss_name(name)
    if reduction == "sum" and any(term in SET_TERMS for _, term in terms):
        raise ValueError(f"loss.name: {name!r}: dice and lovasz are means over classes; use "
                         f"loss.reduction=mean")
    loss = partial(_head_loss, terms=terms, reduction=reduction, ignore_index=ignore_index,
                   weight=weight, focal_gamma=focal_gamma)
    scores = keyed(logits)
    # One target (or divisor) is every head's; a dict gives each head its own.
    targets, divisors = keyed(target), keyed(normalizer)
    losses = [loss(head_scores, targets.get(head, targets.get(None)),
                   divisors.get(head, divisors.get(None)))
              for head, head_scores in scores.items()]
    return losses[0] if None in scores else sum(losses, torch.zeros(()))


def _head_loss(logits: torch.Tensor, target: torch.Tensor,
               normalizer: float | torch.Tensor | None, *, terms: list[tuple[float, str]],
               reduction: str, ignore_index: int, weight: torch.Tensor | None,
               focal_gamma: float) -> torch.Tensor:
    """One head's loss, with the settings :func:`segmentation_loss` checked."""
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=torch.float32)
    total = torch.zeros((), device=logits.device)
    pixel_sum: torch.Tensor | None = None
    for scale, term in terms:
        if term in SET_TERMS:
            value = (_dice if term == "dice" else _lovasz)(logits, target, ignore_index, weight)
            total = total + scale * value * _batch_share(target, ignore_index, weight, normalizer)
        else:
            summed = scale * _pixel_loss_sum(logits, target, ignore_index, weight,
                                             focal_gamma if term == "focal" else 0.0)
            pixel_sum = summed if pixel_sum is None else pixel_sum + summed
    if pixel_sum is None:
        return total
    if reduction == "sum":
        return total + pixel_sum
    if normalizer is None:
        normalizer = loss_normalizer([target], ignore_index, weight)
    divisor = torch.as_tensor(normalizer, dtype=pixel_sum.dtype, device=pixel_sum.device)
    # Below any real total (a weight is ≥ 1e-12 per pixel), so only an empty batch is clamped.
    return total + pixel_sum / torch.clamp(divisor, min=1e-12)


def _pixel_loss_sum(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                    weight: torch.Tensor | None, gamma: float) -> torch.Tensor:
    """``Σ w[y]·(1 - p_y)^γ·CE`` over the valid pixels (γ = 0: cross-entropy)."""
    if gamma == 0.0:
        return F.cross_entropy(logits.float(), target, weight=weight,
                               ignore_index=ignore_index, reduction="sum")
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    log_p = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    per_pixel = -(1.0 - log_p.exp()).clamp(min=0.0).pow(gamma) * log_p
    if weight is not None:
        per_pixel = per_pixel * weight[safe]
    return torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum()


def _valid_probabilities(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probabilities, one-hot labels)`` of the valid pixels, each (pixels, classes)."""
    classes = logits.shape[1]
    probs = F.softmax(logits.float(), dim=1).movedim(1, -1).reshape(-1, classes)
    labels = target.reshape(-1)
    valid = labels != ignore_index
    return probs[valid], F.one_hot(labels[valid].long(), classes).to(probs.dtype)


def _class_mean(per_class: torch.Tensor, present: torch.Tensor,
                weight: torch.Tensor | None) -> torch.Tensor:
    """The class-weighted mean of ``per_class`` over the ``present`` classes (0 if none)."""
    w = present.to(per_class.dtype)
    if weight is not None:
        w = w * weight
    return (per_class * w).sum() / torch.clamp(w.sum(), min=1e-12)


def _dice(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
          weight: torch.Tensor | None) -> torch.Tensor:
    """Soft Dice loss: mean over present classes of ``1 - 2 Σ p·g / (Σ p + Σ g)``."""
    probs, onehot = _valid_probabilities(logits, target, ignore_index)
    inter = (probs * onehot).sum(0)
    sizes = probs.sum(0) + onehot.sum(0)
    per_class = 1.0 - 2.0 * inter / torch.clamp(sizes, min=1e-12)
    return _class_mean(per_class, onehot.sum(0) > 0, weight)


def _lovasz(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
            weight: torch.Tensor | None) -> torch.Tensor:
    """Lovász-softmax: mean over present classes of the Lovász extension of the Jaccard loss
    at the errors ``|g - p|`` (sorted descending)."""
    probs, onehot = _valid_probabilities(logits, target, ignore_index)
    present = onehot.sum(0) > 0
    per_class = torch.zeros(probs.shape[1], device=probs.device)
    for c in torch.nonzero(present).flatten().tolist():
        errors = (onehot[:, c] - probs[:, c]).abs()
        errors, order = torch.sort(errors, descending=True)
        per_class[c] = torch.dot(errors, _lovasz_gradient(onehot[order, c]))
    return _class_mean(per_class, present, weight)


def _lovasz_gradient(fg_sorted: torch.Tensor) -> torch.Tensor:
    """The Jaccard loss's increments along the sorted errors (Berman et al., Algorithm 1)."""
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def _batch_share(target: torch.Tensor, ignore_index: int, weight: torch.Tensor | None,
                 normalizer: Any) -> float:
    """This batch's share of the step's divisor (1 without ``normalizer``)."""
    if normalizer is None:
        return 1.0
    total = float(normalizer)
    return loss_normalizer([target], ignore_index, weight) / total if total > 0 else 0.0


def loss_normalizer(targets: Sequence[torch.Tensor], ignore_index: int = 255,
                    weight: torch.Tensor | None = None) -> float:
    """The averaged loss's divisor for these label maps together: the number of valid pixels,
    or their summed class weight ``Σ w[y]`` with ``weight``. Sum it over processes for DDP."""
    total = 0.0
    for target in targets:
        valid = target != ignore_index
        if weight is None:
            total += float(valid.sum())
        else:
            w = weight.to(target.device, torch.float64)
            total += float(w[target[valid].long()].sum())
    return total


def score_grid(model: nn.Module) -> tuple[int, float]:
    """``(cell, offset)``: the stride-32 score map's cells cover input pixels
    ``[offset + cell·i, offset + cell·(i+1))`` on each axis, from the model's stride-32
    coordinate map where it has one (else the plain grid from pixel 0)."""
    maps_of = getattr(model, "coord_maps", None)
    maps = maps_of() if callable(maps_of) else None
    if maps and 32 in maps:
        m = maps[32]
        return int(round(m.scale)), float(m.shift - m.scale / 2)
    return 32, 0.0


class LossSampler:
    """Drops cells of the score grid from the loss: each cell of each image is kept with
    probability ``rate`` (drawn anew per call), the pixels of dropped ones set to
    ``ignore_index``. :attr:`generator` (seeded from ``(seed, rank)``) is saved in checkpoints;
    with ``rate == 1`` nothing is drawn."""

    def __init__(self, rate: float, *, ignore_index: int = 255, cell: int = 32,
                 offset: float = 0.0, seed: int = 0, rank: int = 0) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"loss.sample_rate: must be in (0, 1], got {rate!r}")
        self.rate, self.ignore_index = float(rate), ignore_index
        self.cell, self.offset = int(cell), float(offset)
        # its own stream per process, apart from the model's (dropout) and the data's
        mixed = np.random.SeedSequence([seed, rank, 0x5A4D]).generate_state(1, np.uint64)[0]
        self.generator = torch.Generator().manual_seed(int(mixed & ((1 << 63) - 1)))

    def _cell_index(self, n: int) -> tuple[torch.Tensor, int]:
        """Each pixel's cell along an axis of length ``n`` (from 0), and the number of cells."""
        first = math.floor(-self.offset / self.cell)  # the cell holding pixel 0
        index = torch.div(torch.arange(n, dtype=torch.float64) - self.offset, self.cell,
                          rounding_mode="floor").long() - first
        return index, int(index[-1]) + 1 if n else 0

    def keep_mask(self, batch: int, height: int, width: int) -> torch.Tensor:
        """A (batch, height, width) boolean mask of the kept pixels; draws one number per cell."""
        rows, n_rows = self._cell_index(height)
        cols, n_cols = self._cell_index(width)
        cells = torch.rand((batch, n_rows, n_cols), generator=self.generator) < self.rate
        return cells[:, rows][:, :, cols]

    def __call__(self, labels: torch.Tensor | Mapping[str, torch.Tensor]) -> Any:
        """``labels`` (N, H, W) with the pixels of dropped cells set to the ignore index; a
        dict of label maps (one per head, all the same size) loses the same cells in each."""
        if self.rate >= 1.0:
            return labels
        maps, first = keyed(labels), first_of(labels)
        keep = self.keep_mask(*first.shape).to(first.device)
        kept = {h: torch.where(keep, m, torch.full_like(m, self.ignore_index))
                for h, m in maps.items()}
        return unkeyed(kept)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def build_class_weights(
    spec: str | Sequence[float], dataset: Any, *, max_weight: float | None = None,
    workers: int = 0, distributed: bool = False, is_main: bool = True,
) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """The loss's class weights for ``loss.class_weights`` and the pixel counts they came from:
    ``(None, None)`` for ``"none"``, a list as given, a method from the pixels of ``dataset``
    (:mod:`fcnseg.data.class_frequencies`). Under torchrun rank 0 counts and broadcasts them
    (and its error)."""
    num_classes = dataset.num_classes
    if isinstance(spec, str) and spec == "none":  # not ==: a NumPy array compares per item
        return None, None
    if not isinstance(spec, str):
        if len(spec) != num_classes:
            raise ValueError(f"loss.class_weights: {len(spec)} weights given but the training "
                             f"data has {num_classes} classes")
        return torch.tensor([float(w) for w in spec], dtype=torch.float32), None
    result: list[Any] = [None]
    if is_main:
        try:
            counts = class_pixel_counts(dataset, workers=workers)
            weights = class_weights(counts, spec, max_weight, class_names=list(dataset.classes))
            result = [(weights.tolist(), counts.tolist())]
        except ValueError as e:
            result = [str(e)]
            if not distributed:
                raise
    if distributed:
        dist.broadcast_object_list(result, src=0)
    if isinstance(result[0], str):
        raise ValueError(result[0])
    weights_list, counts_list = result[0]
    return (torch.tensor(weights_list, dtype=torch.float32),
            np.asarray(counts_list, dtype=np.int64))
