"""Validation batches in training are as large as memory allows (``data.val_batch_size: auto``).
Each holds images of one size, so that no image is padded and scores equal whole-image ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from fcnseg.data.cache import DecodedSamples, available_memory
from fcnseg.data.images import upright_size
from fcnseg.inference.runner import InferenceRunner
from fcnseg.utils.keyed import keyed

#: The most images an automatic validation batch holds (beyond it CPUs gain nothing).
AUTO_LIMIT = 16


def sample_sizes(dataset: Any) -> list[tuple[int, int]] | None:
    """Each sample's (height, width), read without decoding (from the data cache or the image
    headers); None where they cannot be known so."""
    load = getattr(dataset, "load", None)
    if isinstance(load, DecodedSamples) and load.eager:
        shapes = [load.shape(i) for i in range(len(dataset))]
        # None: a bad sample, which the evaluation reports
        return None if None in shapes else [shape[:2] for shape in shapes]  # type: ignore
    image_path = getattr(dataset, "image_path", None)
    if callable(image_path):
        try:
            return [tuple(reversed(upright_size(Path(image_path(i)))))  # type: ignore[misc]
                    for i in range(len(dataset))]
        except (OSError, ValueError):
            return None
    size = getattr(dataset, "size", None)  # generated scenes of one size
    if isinstance(size, int):
        size = (size, size)
    if isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return [size] * len(dataset)
    return None


def activation_bytes(model: nn.Module, sample: Any) -> int:
    """The bytes of every layer output for one input ``sample`` (a C×H×W tensor or a dict of
    them): an upper bound on what evaluating it holds at once."""
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        parts = [p for part in keyed(output).values()
                 for p in (part if isinstance(part, tuple | list) else (part,))]
        total += sum(p.numel() * p.element_size() for p in parts if isinstance(p, torch.Tensor))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    runner = InferenceRunner(model, device=next(model.parameters()).device, precision="fp32",
                             prepare=False)
    try:
        runner(default_collate([sample]))  # a batch of one, dict or tensor
    finally:
        for h in hooks:
            h.remove()
    return total


def auto_eval_batch(model: nn.Module, dataset: Any, sizes: Sequence[tuple[int, int]],
                    device: torch.device, limit: int = AUTO_LIMIT) -> tuple[int, str]:
    """The largest validation batch whose layer outputs for the largest image fit in a quarter
    of the available memory (half the GPU's free memory), at most ``limit``; and a line saying
    so."""
    largest = max(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])
    sample = dataset[largest][0]
    if device.type == "cuda":
        budget = torch.cuda.mem_get_info(device)[0] // 2
        where = "half the GPU's free memory"
    else:
        budget = available_memory() // 4
        where = "a quarter of the available memory"
    per_image = max(1, activation_bytes(model, sample))
    batch = int(max(1, min(limit, budget // per_image, len(sizes))))
    return batch, (f"evaluation: batches of up to {batch} images of one size "
                   f"({per_image / 2**20:.0f} MB of activations each at "
                   f"{sizes[largest][1]}×{sizes[largest][0]}; {where}, at most {limit})")
