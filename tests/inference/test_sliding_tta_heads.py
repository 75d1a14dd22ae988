"""Sliding windows and TTA for models with several heads (SIFT Flow) and several inputs (NYUDv2
RGB-HHA): every head is averaged, and every input cut, resized and mirrored, as one would be."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from floats import assert_close_to_scale
from tiny_models import tiny_task_model
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.palette import voc_palette
from fcnseg.inference import Segmenter, sliding_window_logits, tta_logits
from fcnseg.pretrained.reference import SIFT_FLOW_CLASSES

GEOMETRIC = ["sky", "horizontal", "vertical"]


class OneHead(nn.Module):
    """One head of a model with several, as a single-head model."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[self.head]


class StackedInputs(nn.Module):
    """A colour+HHA model taking its two inputs stacked as one 6-channel tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model({"color": x[:, :3], "hha": x[:, 3:]})


def _batch(channels: int = 3, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, channels, h, w, generator=torch.Generator().manual_seed(seed)) * 50


@pytest.fixture(scope="module")
def siftflow() -> nn.Module:
    return tiny_task_model("siftflow_fcn16s")


@pytest.mark.parametrize("head", ["semantic", "geometric"])
def test_sliding_windows_average_each_head_as_a_single_head(siftflow, head) -> None:
    x = _batch()
    with torch.no_grad():
        both = sliding_window_logits(siftflow, x, 24, 16)
        alone = sliding_window_logits(OneHead(siftflow, head), x, 24, 16)
    assert set(both) == {"semantic", "geometric"}
    assert_close_to_scale(both[head], alone, rtol=1e-5)


@pytest.mark.parametrize("average", ["logits", "probs"])
@pytest.mark.parametrize("head", ["semantic", "geometric"])
def test_tta_averages_each_head_as_a_single_head(siftflow, head, average) -> None:
    x = _batch(h=36, w=44)
    with torch.no_grad():
        both = tta_logits(siftflow, x, scales=(0.75, 1.0), flip=True, average=average)
        alone = tta_logits(OneHead(siftflow, head), x, scales=(0.75, 1.0), flip=True,
                           average=average)
    assert both[head].shape == alone.shape
    assert_close_to_scale(both[head], alone, rtol=1e-5)


def test_sliding_windows_cut_every_input_modality_alike() -> None:
    model = tiny_task_model("nyud_fcn32s_color_hha")
    color, hha = _batch(seed=1), _batch(seed=2)
    with torch.no_grad():
        fused = sliding_window_logits(model, {"color": color, "hha": hha}, 24, 16)
        stacked = sliding_window_logits(StackedInputs(model), torch.cat([color, hha], 1), 24, 16)
    assert_close_to_scale(fused, stacked, rtol=1e-5)


def test_tta_resizes_and_mirrors_every_input_modality_alike() -> None:
    model = tiny_task_model("nyud_fcn32s_color_hha")
    color, hha = _batch(seed=1), _batch(seed=2)
    with torch.no_grad():
        fused = tta_logits(model, {"color": color, "hha": hha}, scales=(0.5, 1.0), flip=True)
        stacked = tta_logits(StackedInputs(model), torch.cat([color, hha], 1),
                             scales=(0.5, 1.0), flip=True)
    assert_close_to_scale(fused, stacked, rtol=1e-5)


def test_segmenter_with_windows_and_tta_predicts_each_head(siftflow, tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "sift.pt", siftflow, class_names=list(SIFT_FLOW_CLASSES),
                           palette=voc_palette(),
                           head_classes={"semantic": SIFT_FLOW_CLASSES, "geometric": GEOMETRIC})
    seg = Segmenter.from_checkpoint(ckpt, sliding_window={"window": 24, "stride": 16},
                                    tta={"scales": [0.75, 1.0], "flip": True},
                                    precision="fp32", channels_last=False)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    pred = seg.predict(rgb, return_probs=True)
    x = seg.preprocess(rgb)
    for head in ("semantic", "geometric"):
        with torch.no_grad():
            expected = tta_logits(OneHead(seg.model, head), x, (0.75, 1.0), True,
                                  lambda m, t: sliding_window_logits(m, t, 24, 16))
        assert_close_to_scale(pred.heads[head].probs, expected[0].softmax(0), rtol=1e-5)


class _LiveBytes(TorchDispatchMode):
    """The most bytes held at once by the tensors operations create (in place: none)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {id(a) for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t) not in given | self.live.keys():
                self.live[id(t)] = t.numel() * t.element_size()
                weakref.finalize(t, self.live.pop, id(t), None)
        self.peak = max(self.peak, sum(self.live.values()))
        return out


class Heads(nn.Module):
    """``count`` heads of 16 classes at the input's size."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"h{k}": x[:, :1].expand(-1, 16, -1, -1) * (k + 1.0) for k in range(self.count)}


def _peak_outputs(heads: int, predict_fn) -> float:
    """The most memory ``predict_fn`` holds at once, in outputs of one head."""
    live = _LiveBytes()
    with torch.no_grad(), live:
        predict_fn(Heads(heads), torch.rand(1, 3, 64, 64))
    return live.peak / (16 * 64 * 64 * 4)


def test_tta_averaging_probabilities_holds_a_sum_and_an_output_per_extra_head() -> None:
    def tta(model, x):
        return tta_logits(model, x, scales=(1.0, 0.5), flip=True, average="probs")

    assert _peak_outputs(4, tta) - _peak_outputs(1, tta) <= 2 * 3


def test_sliding_windows_hold_a_sum_and_a_window_per_extra_head() -> None:
    def windows(model, x):
        return sliding_window_logits(model, x, 32, 16)

    assert _peak_outputs(4, windows) - _peak_outputs(1, windows) <= (1 + 0.5) * 3
