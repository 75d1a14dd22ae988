"""The training loss: per-pixel softmax cross-entropy with an ignore index, summed or averaged,
optionally class-weighted, over the pixels that loss sampling keeps.

- **Summed** (the reference): ``Σ w[y]·CE`` over the valid pixels of the batch.
- **Averaged**: that sum divided by ``Σ w[y]`` over the same pixels (the number of valid pixels
  without class weights), which is the weighted mean ``F.cross_entropy(reduction="mean")``
  computes. With gradient accumulation and data parallelism the divisor is the total over every
  micro-batch of the step on every process (:func:`loss_normalizer`), so that N accumulated
  micro-batches on P processes give exactly the loss and gradient of one batch of all of them.
- **Loss sampling** (the paper's "patchwise training", §4.3): :class:`LossSampler` keeps each
  cell of the stride-32 score grid with probability p; the pixels of dropped cells are set to
  the ignore index, so they leave both the sum and the divisor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from fcnseg.data.class_frequencies import class_pixel_counts, class_weights

__all__ = [
    "LossSampler",
    "build_class_weights",
    "loss_normalizer",
    "score_grid",
    "segmentation_loss",
]


def segmentation_loss(
    logits: torch.Tensor | Mapping[str, torch.Tensor],
    target: torch.Tensor | Mapping[str, torch.Tensor],
    *,
    reduction: str = "sum",
    ignore_index: int = 255,
    normalizer: float | torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-pixel softmax cross-entropy over the valid (non-ignored) pixels.

    ``reduction="sum"`` is the reference FCN loss: summed over every valid pixel of the batch,
    so its gradient grows with image size (hence the tiny learning rates of the paper).
    ``"mean"`` divides that sum by the valid pixels' total class weight (their number without
    ``weight``), or by ``normalizer`` when given (the total over the micro-batches and processes
    of one step, from :func:`loss_normalizer`). A batch without valid pixels gives a zero loss,
    not NaN.

    A model with several heads (``logits`` a mapping, e.g. ``{"out": ..., "aux": ...}``) gets the
    sum of its heads' losses, each against ``target[head]`` when ``target`` is a mapping too
    (heads with their own labels) or against the one ``target``; ``normalizer`` may then be a
    mapping too (``{head: divisor}``, each head averaged over its own valid pixels).

    Args:
        weight: one weight per class (class balancing), or None for all ones.
    """
    if isinstance(logits, Mapping):
        return sum((segmentation_loss(
            head_logits, target[head] if isinstance(target, Mapping) else target,
            reduction=reduction, ignore_index=ignore_index,
            normalizer=normalizer[head] if isinstance(normalizer, Mapping) else normalizer,
            weight=weight)
            for head, head_logits in logits.items()), torch.zeros(()))
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=torch.float32)
    total = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index,
                            reduction="sum")
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise ValueError(f"loss reduction must be 'sum' or 'mean', got {reduction!r}")
    if normalizer is None:
        normalizer = loss_normalizer([target], ignore_index, weight)
    divisor = torch.as_tensor(normalizer, dtype=total.dtype, device=total.device)
    # Below any real total (a weight is ≥ 1e-12 per pixel), so only an empty batch is clamped.
    return total / torch.clamp(divisor, min=1e-12)


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


# -- loss sampling ---------------------------------------------------------------------------


def score_grid(model: nn.Module) -> tuple[int, float]:
    """``(cell, offset)``: the stride-32 score map's cells cover input pixels
    ``[offset + cell·i, offset + cell·(i+1))`` on each axis.

    Read from the model's stride-32 coordinate map where it has one (the FCNs: cell i is centred
    on ``scale·i + shift``); other models get the plain grid from pixel 0."""
    maps_of = getattr(model, "coord_maps", None)
    maps = maps_of() if callable(maps_of) else None
    if isinstance(maps, dict) and 32 in maps:
        m = maps[32]
        return int(round(m.scale)), float(m.shift - m.scale / 2)
    return 32, 0.0


def _sampler_seed(seed: int, rank: int) -> int:
    # Its own stream per process, apart from the model's (dropout) and the data's.
    return int(np.random.SeedSequence([seed, rank, 0x5A4D]).generate_state(1, np.uint64)[0]
               & ((1 << 63) - 1))


class LossSampler:
    """Drops cells of the score grid from the loss: each cell of each image is kept with
    probability ``rate``, independently per image and per call, and the pixels of dropped cells
    become ``ignore_index``.

    The draws come from :attr:`generator` (a CPU generator seeded from ``(seed, rank)``); its
    state is saved in checkpoints so that a resumed run draws the same cells. With
    ``rate == 1`` nothing is drawn and labels are returned unchanged.
    """

    def __init__(self, rate: float, *, ignore_index: int = 255, cell: int = 32,
                 offset: float = 0.0, seed: int = 0, rank: int = 0) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"loss.sample_rate: must be in (0, 1], got {rate!r}")
        self.rate, self.ignore_index = float(rate), ignore_index
        self.cell, self.offset = int(cell), float(offset)
        self.generator = torch.Generator().manual_seed(_sampler_seed(seed, rank))

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
        maps = labels if isinstance(labels, Mapping) else {None: labels}
        first = next(iter(maps.values()))
        keep = self.keep_mask(*first.shape).to(first.device)
        kept = {h: torch.where(keep, m, torch.full_like(m, self.ignore_index))
                for h, m in maps.items()}
        return kept if isinstance(labels, Mapping) else kept[None]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


# -- class balancing -------------------------------------------------------------------------


def build_class_weights(
    spec: str | Sequence[float], dataset: Any, *, max_weight: float | None = None,
    workers: int = 0, distributed: bool = False, is_main: bool = True,
) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """The loss's class weights for ``loss.class_weights`` and the pixel counts they came from.

    ``"none"`` gives ``(None, None)``; a list is taken as given (one weight per class of
    ``dataset``); a method counts the pixels of ``dataset`` (untransformed, cached, see
    :mod:`fcnseg.data.class_frequencies`). Under torchrun rank 0 counts and broadcasts the
    weights, so that every process trains with the very same numbers (an error on rank 0 is
    raised on every process)."""
    num_classes = dataset.num_classes
    if isinstance(spec, str) and spec == "none":
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
