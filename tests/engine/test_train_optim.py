"""Loss reductions, parameter groups and learning-rate schedules."""

from __future__ import annotations

import pytest
import torch

from fcnseg.engine.config import OptimConfig, ScheduleConfig
from fcnseg.engine.optim import build_optimizer, lr_factor, parameter_groups, segmentation_loss
from fcnseg.models import fcn8s


def _logits_and_target() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, :2] = 255  # 12 ignored pixels
    return logits, target


def test_summed_loss_is_the_averaged_loss_times_the_valid_pixel_count() -> None:
    logits, target = _logits_and_target()
    valid = int((target != 255).sum())
    assert valid == 2 * 5 * 6 - 12
    summed = segmentation_loss(logits, target, reduction="sum")
    mean = segmentation_loss(logits, target, reduction="mean")
    by_hand = -torch.log_softmax(logits, 1).gather(1, target.clamp(max=3)[:, None])[:, 0]
    assert summed.item() == pytest.approx(by_hand[target != 255].sum().item(), rel=1e-5)
    assert summed.item() == pytest.approx(mean.item() * valid, rel=1e-5)
    # ... and so are its gradients: the reason the reference learning rates are so small.
    (g_sum,) = torch.autograd.grad(summed, logits)
    (g_mean,) = torch.autograd.grad(mean, logits)
    torch.testing.assert_close(g_sum, g_mean * valid)


def test_averaged_loss_uses_a_given_normalizer_and_survives_all_ignored() -> None:
    logits, target = _logits_and_target()
    summed = segmentation_loss(logits, target, reduction="sum")
    assert segmentation_loss(logits, target, reduction="mean", normalizer=100.0).item() == \
        pytest.approx(summed.item() / 100.0, rel=1e-5)
    empty = segmentation_loss(logits, torch.full_like(target, 255), reduction="mean")
    assert empty.item() == 0.0


def _model() -> torch.nn.Module:
    return fcn8s(num_classes=4, geometry="same", width=0.0625, fc_channels=16)


def test_biases_get_twice_the_learning_rate_and_no_weight_decay() -> None:
    model = _model()
    opt = build_optimizer(model, OptimConfig(name="sgd", lr=1e-10, momentum=0.99,
                                             weight_decay=5e-4, bias_lr_mult=2.0))
    weights, biases = opt.param_groups
    assert weights["lr"] == 1e-10 and weights["weight_decay"] == 5e-4
    assert biases["lr"] == 2e-10 and biases["weight_decay"] == 0.0
    named = {id(p): n for n, p in model.named_parameters()}
    assert all(named[id(p)].endswith(".weight") for p in weights["params"])
    assert all(named[id(p)].endswith(".bias") for p in biases["params"])
    assert opt.defaults["momentum"] == 0.99


def test_batchnorm_scales_keep_the_plain_learning_rate_without_decay() -> None:
    model = fcn8s(num_classes=3, width=0.0625, fc_channels=8, batch_norm=True)
    groups = {g["name"]: g for g in parameter_groups(
        model, OptimConfig(name="sgd", lr=1e-3, weight_decay=5e-4, bias_lr_mult=2.0))}
    # the reference names (as saved in checkpoints), not the submodule paths
    named = {id(p): model.key_map.to_reference(n) for n, p in model.named_parameters()}
    norm_names = {named[id(p)] for p in groups["norms"]["params"]}
    assert "bn1_1.weight" in norm_names and all(n.startswith("bn") for n in norm_names)
    assert groups["norms"]["lr"] == 1e-3 and groups["norms"]["weight_decay"] == 0.0
    assert "bn1_1.bias" in {named[id(p)] for p in groups["biases"]["params"]}


def test_frozen_upsampling_is_left_out_of_the_optimizer() -> None:
    model = _model()
    upsampling = {id(layer.weight) for layer in model.upsampling_layers()}
    assert len(upsampling) == 3
    in_opt = {id(p) for g in parameter_groups(model, OptimConfig()) for p in g["params"]}
    assert not upsampling & in_opt
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_opt == trainable
    for layer in model.upsampling_layers():
        layer.weight.requires_grad_(True)
    in_opt = {id(p) for g in parameter_groups(model, OptimConfig()) for p in g["params"]}
    assert upsampling <= in_opt


def test_poly_schedule_with_linear_warmup() -> None:
    cfg = ScheduleConfig(name="poly", power=0.9, warmup_iters=10, warmup_factor=0.1)
    assert lr_factor(0, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(5, 100, cfg) == pytest.approx(0.55 * (1 - 0.05) ** 0.9)
    assert lr_factor(10, 100, cfg) == pytest.approx(0.9 ** 0.9)
    assert lr_factor(100, 100, cfg) == 0.0
    fixed = ScheduleConfig(name="fixed")
    assert {lr_factor(i, 100, fixed) for i in (0, 50, 99)} == {1.0}
