"""The models' fast paths (GEMM fc6/fc7, separable bilinear upsampling) match the plain modules."""

from __future__ import annotations

import pytest
import torch

from fcnseg.bench import trained_looking
from fcnseg.models import build_model
from fcnseg.models.fastpath import conv_gemm, fast_paths, optimize_for_inference
from fcnseg.models.upsample import bilinear_upsampling, upsample_crop

TINY = {"num_classes": 4, "width": 0.0625, "fc_channels": 16, "dropout": 0.0}


def _model(arch: str, geometry: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return trained_looking(build_model(arch, geometry=geometry, **TINY), std=0.5).eval()


@pytest.mark.parametrize("geometry", ["caffe", "same"])
@pytest.mark.parametrize("arch", ["fcn32s", "fcn16s", "fcn8s"])
def test_fast_and_plain_paths_give_the_same_logits(arch: str, geometry: str) -> None:
    model = _model(arch, geometry)
    x = torch.randn(2, 3, 45, 67)
    with torch.no_grad():
        fast = model(x)
        with fast_paths(False):
            plain = model(x)
    assert fast.shape == plain.shape == (2, 4, 45, 67)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


def test_fast_and_plain_paths_give_the_same_gradients() -> None:
    model = _model("fcn8s", "same").train()
    x = torch.randn(1, 3, 40, 52, requires_grad=True)
    grads = []
    for enabled in (True, False):
        model.zero_grad()
        x.grad = None
        with fast_paths(enabled):
            model(x).square().mean().backward()
        grads.append((x.grad.clone(), model.fc6.weight.grad.clone(), model.fc7.bias.grad.clone()))
    for fast, plain in zip(*grads, strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-6)


def test_trainable_upsampling_still_receives_gradients() -> None:
    model = _model("fcn8s", "same").train()
    model.upscore8.weight.requires_grad_(True)
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    assert model.upscore8.weight.grad is not None and model.upscore8.weight.grad.abs().sum() > 0


def test_a_changed_upsampling_kernel_is_not_taken_for_bilinear() -> None:
    layer = bilinear_upsampling(3, 4, 2, padding=1)
    x = torch.randn(1, 3, 5, 6)
    with torch.no_grad():
        upsample_crop(layer, x)  # caches "bilinear" for this weight version
        layer.weight[0, 1, 0, 0] = 0.5
        torch.testing.assert_close(upsample_crop(layer, x, 1, (7, 8)), layer(x)[..., 1:8, 1:9])


def test_separable_upsampling_equals_the_deconvolution_and_crop() -> None:
    layer = bilinear_upsampling(2, 16, 8)
    x = torch.randn(2, 2, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(upsample_crop(layer, x, 31, (40, 20)),
                                   layer(x)[..., 31:71, 31:51])


def test_gemm_convolution_equals_conv2d_with_padding_and_channels_last() -> None:
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    x = torch.randn(2, 5, 6, 9)
    with torch.no_grad():
        expected = conv(x)
        torch.testing.assert_close(conv_gemm(conv, x), expected, rtol=1e-5, atol=1e-5)
        conv.to(memory_format=torch.channels_last)
        torch.testing.assert_close(conv_gemm(conv, x), expected, rtol=1e-5, atol=1e-5)


def test_optimize_for_inference_keeps_the_outputs() -> None:
    model = _model("fcn16s", "same")
    x = torch.randn(1, 3, 50, 38)
    with torch.no_grad():
        before = model(x)
        after = optimize_for_inference(model)(x)
    assert not model.training
    assert model.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_fast_paths_replace_fc_convolutions_and_deconvolutions_by_matrix_products() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = _model("fcn8s", "same")
    ops = {}
    for enabled in (True, False):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), fast_paths(enabled), counter:
            model(torch.randn(1, 3, 64, 64))
        ops[enabled] = {str(op) for op in counter.get_flop_counts()["Global"]}
    assert "aten.addmm" in ops[True] and "aten.bmm" in ops[True]
    assert "aten.addmm" not in ops[False] and "aten.bmm" not in ops[False]
