"""The first convolution for N input bands from a 3-channel ImageNet one."""

from __future__ import annotations

import torch
from floats import assert_close_to_scale

from fcnseg.models import widen_conv1

BANDS = ("blue", "nir", "red", "green", "swir1")


def test_colour_bands_keep_their_filters_in_the_weights_order_and_others_the_mean() -> None:
    w = torch.randn(16, 3, 3, 3)  # BGR weights, as Caffe's ImageNet VGG16
    wide = widen_conv1(w, BANDS, weight_order="BGR", keep_variance=False)
    assert wide.shape == (16, 5, 3, 3)
    assert torch.equal(wide[:, 0], w[:, 0]) and torch.equal(wide[:, 2], w[:, 2])
    assert torch.equal(wide[:, 3], w[:, 1])
    mean = (w[:, 0] + w[:, 1] + w[:, 2]) / 3
    assert_close_to_scale(wide[:, 1], mean)
    assert_close_to_scale(wide[:, 4], mean)


def test_scaled_weight_is_the_same_rule_times_one_factor_per_filter() -> None:
    w = torch.randn(16, 3, 3, 3)
    plain = widen_conv1(w, BANDS, weight_order="BGR", keep_variance=False)
    scaled = widen_conv1(w, BANDS, weight_order="BGR")
    factor = scaled[:, :1, :1, :1] / plain[:, :1, :1, :1]
    assert (factor < 1).all()
    assert_close_to_scale(scaled, plain * factor)


def test_output_variance_is_kept_for_standardised_bands() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 3, 3, 3, generator=g)
    wide = widen_conv1(w, BANDS, weight_order="BGR")
    x3 = torch.randn(64, 3, 24, 24, generator=g)
    x5 = torch.randn(64, 5, 24, 24, generator=g)
    var3 = torch.nn.functional.conv2d(x3, w).var(dim=(0, 2, 3))
    var5 = torch.nn.functional.conv2d(x5, wide).var(dim=(0, 2, 3))
    # Exactly: each filter's squared weights sum to the same; sampled: within a few per cent.
    assert_close_to_scale(wide.pow(2).sum(dim=(1, 2, 3)), w.pow(2).sum(dim=(1, 2, 3)))
    assert torch.allclose(var5, var3, rtol=0.06)


def test_three_colour_bands_leave_the_weight_unchanged() -> None:
    w = torch.randn(4, 3, 3, 3)
    assert_close_to_scale(widen_conv1(w, ("red", "green", "blue")), w)
    assert_close_to_scale(widen_conv1(w, ("blue", "green", "red"), weight_order="BGR"), w)
