"""Sliding-window inference and test-time augmentation."""

from __future__ import annotations

import pytest
import torch
from floats import assert_close_to_scale
from torch import nn

from fcnseg.checkpoint import build_model_from_checkpoint
from fcnseg.inference import sliding_window_logits, tta_logits
from fcnseg.inference.sliding import window_starts


@pytest.fixture(scope="module")
def fcn(make_checkpoint) -> nn.Module:
    return build_model_from_checkpoint(make_checkpoint("same"))


def _batch(n: int = 2, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 50


def _pointwise() -> nn.Module:
    """A model whose receptive field is one pixel: windows cannot change its output."""
    torch.manual_seed(1)
    return nn.Conv2d(3, 5, 1).eval()


@pytest.mark.parametrize(("size", "window", "stride"), [(40, 16, 10), (57, 20, 20), (7, 7, 3),
                                                        (100, 33, 1)])
def test_window_starts_cover_the_image_within_the_border(size, window, stride) -> None:
    starts = window_starts(size, window, stride)
    assert starts[0] == 0 and starts[-1] + window == size
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_one_window_covering_the_image_is_the_whole_image_forward(fcn) -> None:
    x = _batch()
    with torch.no_grad():
        whole = fcn(x)
        for window in ((40, 56), (64, 64), 500):
            torch.testing.assert_close(sliding_window_logits(fcn, x, window), whole,
                                       rtol=0, atol=0)


def test_overlapping_windows_average_to_the_exact_output_of_a_pointwise_model() -> None:
    model, x = _pointwise(), _batch(h=45, w=61)
    with torch.no_grad():
        # Each window's convolution runs at another size, so its kernels may round differently.
        assert_close_to_scale(sliding_window_logits(model, x, 16, 11), model(x), rtol=1e-5)
        assert_close_to_scale(sliding_window_logits(model, x, (20, 16), (7, 9)), model(x),
                              rtol=1e-5)


def test_small_receptive_field_model_is_close_with_small_windows() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    x = _batch(h=48, w=48)
    with torch.no_grad():
        whole = model(x)
        windowed = sliding_window_logits(model, x, 24, 12)
    assert windowed.shape == whole.shape
    # Only pixels within the receptive field (2 px) of an inner window border can differ.
    inner = (slice(None), slice(None), slice(3, 9), slice(3, 9))
    assert_close_to_scale(windowed[inner], whole[inner], rtol=1e-5)
    assert (windowed - whole).abs().mean() < 0.1 * whole.abs().mean()


def test_fcn_with_windows_smaller_than_the_image_keeps_the_shape(fcn) -> None:
    x = _batch(h=50, w=70)
    with torch.no_grad():
        out = sliding_window_logits(fcn, x, 32)
    assert out.shape == (2, 4, 50, 70)
    assert torch.isfinite(out).all()


def test_stride_larger_than_window_is_refused(fcn) -> None:
    with pytest.raises(ValueError, match="would skip pixels"):
        sliding_window_logits(fcn, _batch(), 16, 20)


def test_tta_without_augmentation_is_the_forward(fcn) -> None:
    x = _batch()
    with torch.no_grad():
        torch.testing.assert_close(tta_logits(fcn, x), fcn(x), rtol=0, atol=0)


def test_flip_tta_of_a_mirror_symmetric_model_equals_the_forward() -> None:
    torch.manual_seed(3)
    model = nn.Conv2d(3, 4, 3, padding=1).eval()
    with torch.no_grad():
        model.weight.copy_((model.weight + model.weight.flip(-1)) / 2)
        x = _batch()
        assert_close_to_scale(tta_logits(model, x, flip=True), model(x), rtol=1e-5)


def test_flip_tta_commutes_with_mirroring_the_input(fcn) -> None:
    x = _batch()
    with torch.no_grad():
        a = tta_logits(fcn, x.flip(-1), flip=True)
        b = tta_logits(fcn, x, flip=True).flip(-1)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_multiscale_tta_returns_input_size_logits(fcn) -> None:
    x = _batch(h=41, w=53)
    with torch.no_grad():
        out = tta_logits(fcn, x, scales=(0.5, 1.0, 1.5), flip=True)
    assert out.shape == (2, 4, 41, 53)


def test_tta_probability_averaging_returns_log_mean_probabilities(fcn) -> None:
    x = _batch()
    with torch.no_grad():
        out = tta_logits(fcn, x, flip=True, average="probs")
        expected = (fcn(x).softmax(1) + fcn(x.flip(-1)).flip(-1).softmax(1)) / 2
    torch.testing.assert_close(out.softmax(1), expected, rtol=1e-5, atol=1e-6)


def test_tta_runs_each_pass_through_predict_fn(fcn) -> None:
    x = _batch(h=48, w=64)
    sizes = []

    def windowed(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        sizes.append(tuple(images.shape[-2:]))
        return sliding_window_logits(model, images, 32)

    with torch.no_grad():
        out = tta_logits(fcn, x, scales=(1.0, 0.5), flip=True, predict_fn=windowed)
    assert out.shape == (2, 4, 48, 64)
    assert sizes == [(48, 64), (48, 64), (24, 32), (24, 32)]
