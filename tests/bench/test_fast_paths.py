"""``fcnseg.models.optimize``: fast layers (GEMM fc6/fc7, separable bilinear upsampling) that
give the plain modules' outputs and gradients, with the same state-dict keys."""

from __future__ import annotations

import pytest
import torch

from fcnseg.bench import trained_looking
from fcnseg.models import build_model, optimize, plain_copy
from fcnseg.models.fastpath import (
    GemmConv2d,
    PackedConv2d,
    SeparableBilinearUpsampling,
    conv_gemm,
)
from fcnseg.models.upsample import BilinearUpsampling, bilinear_upsampling

TINY = {"num_classes": 4, "width": 0.0625, "fc_channels": 16, "dropout": 0.0}


def _model(arch: str, geometry: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return trained_looking(build_model(arch, geometry=geometry, **TINY), std=0.5).eval()


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize("geometry", ["caffe", "same"])
@pytest.mark.parametrize("arch", ["fcn32s", "fcn16s", "fcn8s"])
def test_optimized_and_plain_models_give_the_same_logits(arch: str, geometry: str) -> None:
    plain = _model(arch, geometry)
    fast = optimize(plain_copy(plain))
    x = torch.randn(2, 3, 45, 67)
    with torch.no_grad():
        want, got = plain(x), fast(x)
    assert got.shape == want.shape == (2, 4, 45, 67)
    _close(got, want)


def test_optimize_keeps_the_state_dict_and_records_what_it_changed() -> None:
    model = _model("fcn8s", "same")
    keys = list(model.state_dict())
    optimize(model, channels_last=True)
    assert list(model.state_dict()) == keys
    assert type(model.trunk.fc6) is GemmConv2d
    assert type(model.head.upscore.up) is SeparableBilinearUpsampling
    assert model.optimizations == ["fc6: GEMM", "fc7: GEMM", "upscore2: separable bilinear",
                                   "upscore_pool4: separable bilinear",
                                   "upscore8: separable bilinear",
                                   "convolutions: oneDNN prepacked (13)", "channels_last"]
    assert type(model.trunk.conv3_2) is PackedConv2d
    assert not model.training
    assert model.trunk.conv1_1.weight.is_contiguous(memory_format=torch.channels_last)


def test_plain_copy_restores_the_plain_modules() -> None:
    model = optimize(_model("fcn16s", "caffe"))
    plain = plain_copy(model)
    assert type(plain.trunk.fc7) is torch.nn.Conv2d
    assert type(plain.head.upscore.up) is BilinearUpsampling
    assert type(plain.trunk.conv1_1) is torch.nn.Conv2d
    assert type(model.trunk.fc7) is GemmConv2d  # the original keeps its fast layers
    x = torch.randn(1, 3, 30, 41)
    with torch.no_grad():
        _close(model(x), plain(x))


def test_optimized_and_plain_models_give_the_same_gradients() -> None:
    plain = _model("fcn8s", "same").train()
    fast = optimize(plain_copy(plain), "training")
    assert fast.training
    x = torch.randn(1, 3, 40, 52)
    grads = []
    for model in (fast, plain):
        xi = x.clone().requires_grad_(True)
        model(xi).square().mean().backward()
        grads.append((xi.grad, model.trunk.fc6.weight.grad, model.trunk.fc7.bias.grad))
    for got, want in zip(*grads, strict=True):
        _close(got, want)


def test_trainable_upsampling_still_receives_gradients() -> None:
    model = optimize(_model("fcn8s", "same"), "training")
    model.head.upscore.up.weight.requires_grad_(True)
    model(torch.randn(1, 3, 32, 32)).sum().backward()
    assert model.head.upscore.up.weight.grad is not None
    assert model.head.upscore.up.weight.grad.abs().sum() > 0


def test_loading_a_non_bilinear_kernel_makes_the_fast_layer_compute_plainly() -> None:
    model = optimize(_model("fcn32s", "same"))
    state = model.state_dict()
    state["upscore.weight"] = state["upscore.weight"] * 0.5
    model.load_state_dict(state)
    fast = model.head.upscore.up
    plain = plain_copy(model).head.upscore.up
    assert type(plain) is BilinearUpsampling
    x = torch.randn(1, fast.in_channels, 5, 6)
    with torch.no_grad():
        assert torch.equal(fast.forward_window(x, 16, (100, 120)),
                           plain.forward_window(x, 16, (100, 120)))
    assert "upscore: separable bilinear" in model.optimizations  # the record of what was done


@pytest.mark.parametrize(("offset", "size"), [(31, (40, 20)), (-5, (90, 70)), (0, (72, 56))])
def test_separable_window_equals_the_deconvolution_window(offset: int, size: tuple) -> None:
    layer = bilinear_upsampling(2, 16, 8)
    x = torch.randn(2, 2, 9, 7)
    fast = SeparableBilinearUpsampling.like(layer)
    with torch.no_grad():
        _close(fast.forward_window(x, offset, size), layer.forward_window(x, offset, size))


def test_window_before_the_output_is_zero() -> None:
    layer = bilinear_upsampling(1, 4, 2)
    x = torch.ones(1, 1, 3, 3)
    with torch.no_grad():
        window = layer.forward_window(x, -2, (12, 12))
    assert window.shape == (1, 1, 12, 12)
    assert torch.equal(window[..., :2, :], torch.zeros(1, 1, 2, 12))
    _close(window[..., 2:10, 2:10], layer(x))


def test_gemm_convolution_equals_conv2d_with_padding_and_channels_last() -> None:
    conv = torch.nn.Conv2d(5, 7, 3, padding=1)
    x = torch.randn(2, 5, 6, 9)
    with torch.no_grad():
        expected = conv(x)
        _close(conv_gemm(conv, x), expected)
        conv.to(memory_format=torch.channels_last)
        _close(conv_gemm(conv, x), expected)


def test_fast_layers_replace_fc_convolutions_and_deconvolutions_by_matrix_products() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    plain = _model("fcn8s", "same")
    fast = optimize(plain_copy(plain))
    ops = {}
    for name, model in (("fast", fast), ("plain", plain)):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.randn(1, 3, 64, 64))
        ops[name] = {str(op) for op in counter.get_flop_counts()["Global"]}
    assert "aten.addmm" in ops["fast"] and "aten.bmm" in ops["fast"]
    assert "aten.convolution" in ops["fast"]  # prepacked convolutions count as plain ones
    assert "aten.addmm" not in ops["plain"] and "aten.bmm" not in ops["plain"]


def test_tracing_an_optimized_model_sees_plain_layers() -> None:
    model = optimize(_model("fcn8s", "caffe"))
    x = torch.randn(1, 3, 33, 47)
    traced = torch.jit.trace(model, x, check_trace=False)
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph and "aten::mm" not in graph
    with torch.no_grad():
        _close(traced(x), plain_copy(model)(x))


# -- oneDNN with prepared weights (CPU inference, float32 and bfloat16) ---------------------------
def _bf16(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return model(x).float()


@pytest.mark.parametrize("channels_last", [False, True])
def test_prepared_layers_give_the_plain_logits_in_inference_mode(channels_last: bool) -> None:
    plain = _model("fcn8s", "same")
    fast = optimize(plain_copy(plain), channels_last=channels_last)
    x = torch.randn(2, 3, 45, 67)
    with torch.inference_mode():
        want = plain(x)
        for _ in range(2):  # the second call uses the weights prepared by the first
            _close(fast(x), want)


def test_weights_prepared_at_one_input_size_serve_other_sizes() -> None:
    # oneDNN lays the weights out for the first input's size; later sizes reuse that layout.
    plain = _model("fcn8s", "same")
    fast = optimize(plain_copy(plain), channels_last=True)
    with torch.inference_mode():
        for size in [(45, 67), (96, 40), (33, 33), (45, 67)]:
            x = torch.randn(1, 3, *size)
            _close(fast(x), plain(x))


def test_bf16_fast_path_agrees_with_plain_autocast() -> None:
    plain = _model("fcn8s", "same")
    fast = optimize(plain_copy(plain), channels_last=True)
    x = torch.randn(1, 3, 64, 80)
    want, got = _bf16(plain, x), _bf16(fast, x)
    # Both round every layer's output to bfloat16 (8 significant bits); kernels that sum in
    # another order may land one bfloat16 step apart, which later layers carry along.
    torch.testing.assert_close(got, want, rtol=0.03, atol=0.03 * float(want.abs().max()))
    with torch.inference_mode():
        fp32 = plain(x)
    top2 = fp32.sort(dim=1).values[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 0.05 * float(fp32.abs().max())
    assert clear.float().mean() > 0.5, "the model's logits are mostly near-ties"
    assert (got.argmax(1) == fp32.argmax(1))[clear].float().mean() >= 0.99


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_prepared_weights_follow_changed_parameters(precision: str) -> None:
    plain = _model("fcn8s", "same")
    fast = optimize(plain_copy(plain), channels_last=True)
    x = torch.randn(1, 3, 48, 48)
    run = (lambda m: _bf16(m, x)) if precision == "bf16" else (lambda m: m(x))
    with torch.inference_mode():
        run(fast)  # prepares the weights
    changed = {k: v * 1.5 if k.endswith("weight") and "upscore" not in k else v
               for k, v in plain.state_dict().items()}
    plain.load_state_dict(changed)
    fast.load_state_dict(changed)  # copies in place: same tensors, new versions
    with torch.inference_mode():
        want, got = run(plain), run(fast)
    rtol = 0.03 if precision == "bf16" else 1e-5
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * float(want.abs().max()))


def test_prepared_weights_follow_parameters_given_new_storage() -> None:
    plain = _model("fcn8s", "same")
    fast = optimize(plain_copy(plain), channels_last=True)
    x = torch.randn(1, 3, 40, 40)
    with torch.inference_mode():
        fast(x)  # prepares the weights
    for model in (plain, fast):  # `.data =` keeps the parameter and its version counter
        for name in ("conv2_1", "fc6"):
            layer = getattr(model.trunk, name)
            layer.weight.data = layer.weight.data * 1.5
    with torch.inference_mode():
        _close(fast(x), plain(x))


def test_prepared_weights_stay_out_of_state_dicts_and_copies() -> None:
    model = optimize(_model("fcn8s", "same"), channels_last=True)
    keys = list(model.state_dict())
    _bf16(model, torch.randn(1, 3, 32, 32))
    with torch.inference_mode():
        model(torch.randn(1, 3, 32, 32))
    assert list(model.state_dict()) == keys
    plain = plain_copy(model)
    assert all("_prepared" not in vars(m) for m in plain.modules())
    assert type(plain.trunk.conv2_1) is torch.nn.Conv2d and type(plain.trunk.fc6) is torch.nn.Conv2d


def test_training_through_prepared_layers_gives_plain_gradients() -> None:
    plain = _model("fcn8s", "same").train()
    fast = optimize(plain_copy(plain), "training", packed_convolutions=True)
    assert type(fast.trunk.conv1_2) is PackedConv2d
    x = torch.randn(1, 3, 36, 44)
    grads = []
    for model in (fast, plain):
        model(x).square().mean().backward()
        grads.append([model.trunk.conv1_2.weight.grad, model.trunk.conv5_3.bias.grad])
    for got, want in zip(*grads, strict=True):
        _close(got, want)


def test_prepared_convolution_refuses_mismatched_dtypes_like_the_plain_one() -> None:
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).to(torch.bfloat16)
    fast = optimize(torch.nn.Sequential(plain_copy(conv)))[0]
    assert type(fast) is PackedConv2d
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        with pytest.raises(RuntimeError):
            conv(x)
        with pytest.raises(RuntimeError):
            fast(x)
