"""The training loss: ignore index, summed and averaged, class weights, loss sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fcnseg.engine.loss import LossSampler, loss_normalizer, score_grid, segmentation_loss
from fcnseg.models import build_model


def _batch(seed: int = 0, classes: int = 4, size: tuple[int, int] = (70, 90)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, *size, generator=g)
    target = torch.randint(0, classes, (2, *size), generator=g)
    target[:, :5] = 255  # an ignored band
    return logits, target


def test_averaged_loss_with_weights_is_the_weighted_mean_of_cross_entropy() -> None:
    logits, target = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 4.0])
    ours = segmentation_loss(logits, target, reduction="mean", weight=weight)
    torch.testing.assert_close(ours, F.cross_entropy(logits, target, weight=weight,
                                                     ignore_index=255), rtol=1e-5, atol=0)


def test_summed_loss_with_weights_sums_the_weighted_pixel_losses() -> None:
    logits, target = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 4.0])
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    expected = (per_pixel * weight[target.clamp(max=3)] * (target != 255)).sum()
    torch.testing.assert_close(segmentation_loss(logits, target, reduction="sum", weight=weight),
                               expected, rtol=1e-5, atol=0)


def test_normalizer_is_the_valid_pixels_summed_class_weight() -> None:
    target = torch.tensor([[[0, 1], [255, 1]]])
    assert loss_normalizer([target, target], 255) == 6.0
    assert loss_normalizer([target], 255, torch.tensor([2.0, 0.5])) == 3.0


def test_sampler_at_rate_one_keeps_every_pixel_and_the_loss() -> None:
    logits, target = _batch()
    sampler = LossSampler(1.0)
    state = sampler.generator.get_state()
    assert torch.equal(sampler(target), target)
    assert torch.equal(sampler.generator.get_state(), state)  # nothing drawn
    assert segmentation_loss(logits, sampler(target)) == segmentation_loss(logits, target)


def test_sampler_drops_whole_cells_aligned_to_the_score_grid() -> None:
    # "caffe" geometry: score cell i is centred on input pixel 32 i + 12.5, so covers
    # [32 i - 3.5, 32 i + 28.5): pixels 0..28 are cell 0, 29..60 cell 1, and so on.
    sampler = LossSampler(0.5, cell=32, offset=-3.5, seed=3)
    keep = sampler.keep_mask(8, 70, 90)
    for edges, axis in (([0, 29, 61, 70], 1), ([0, 29, 61, 90], 2)):
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            block = keep.narrow(axis, lo, hi - lo)
            first = block.narrow(axis, 0, 1)
            assert torch.equal(block, first.expand_as(block)), (axis, lo, hi)
    # per image: the 8 images do not share one pattern
    assert len({tuple(k[::29, ::29].flatten().tolist()) for k in keep}) > 1


def test_score_grid_follows_the_models_coordinate_map() -> None:
    caffe = build_model("fcn32s", num_classes=3, geometry="caffe", width=0.0625, fc_channels=8)
    same = build_model("fcn8s", num_classes=3, geometry="same", width=0.0625, fc_channels=8)
    assert score_grid(caffe) == (32, -3.5)
    assert score_grid(same) == (32, -0.5)  # cell 0 is pixels 0..31
    assert score_grid(torch.nn.Conv2d(3, 3, 1)) == (32, 0.0)


def test_averaged_sampled_loss_averages_over_the_kept_pixels() -> None:
    logits, target = _batch()
    sampled = LossSampler(0.5, seed=1)(target)
    kept = (sampled != 255)
    assert 0 < int(kept.sum()) < int((target != 255).sum())
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    torch.testing.assert_close(segmentation_loss(logits, sampled, reduction="mean"),
                               per_pixel[kept].mean(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("rate", [0.5, 0.25])
def test_summed_sampled_loss_is_p_times_the_full_loss_in_expectation(rate: float) -> None:
    logits, target = _batch(classes=3, size=(64, 96))
    sampler = LossSampler(rate, seed=11)
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    full = float(per_pixel.sum())
    draws = 2000
    values = torch.tensor([float(segmentation_loss(logits, sampler(target))) for _ in
                           range(draws)], dtype=torch.float64)
    # Each cell's summed loss L_c is kept by an independent Bernoulli(p): the sampled loss has
    # mean p·ΣL_c and variance p(1-p)·ΣL_c²; the mean of `draws` samples is within 4 standard
    # errors with probability > 0.9999.
    cell_losses = per_pixel.double().reshape(2, 2, 32, 3, 32).sum(dim=(2, 4))
    std_error = math.sqrt(rate * (1 - rate) * float((cell_losses ** 2).sum()) / draws)
    assert abs(float(values.mean()) - rate * full) < 4 * std_error
    # and the draws really vary (the tolerance is not trivially met)
    assert float(values.std()) > 0.5 * math.sqrt(draws) * std_error


def test_sampler_state_round_trips_to_the_same_draws() -> None:
    a = LossSampler(0.5, seed=5, rank=1)
    a.keep_mask(2, 64, 64)
    saved = a.state_dict()
    first = a.keep_mask(2, 64, 64)
    b = LossSampler(0.5, seed=5, rank=1)
    b.load_state_dict(saved)
    assert torch.equal(b.keep_mask(2, 64, 64), first)


def test_processes_draw_from_different_streams() -> None:
    r0, r1 = LossSampler(0.5, seed=5, rank=0), LossSampler(0.5, seed=5, rank=1)
    assert not torch.equal(r0.keep_mask(4, 128, 128), r1.keep_mask(4, 128, 128))


def test_sample_rate_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="loss.sample_rate"):
        LossSampler(0.0)


def test_several_heads_sum_their_losses() -> None:
    logits, target = _batch()
    aux_logits, other_target = _batch(seed=1)
    heads = {"out": logits, "aux": aux_logits}
    expected = segmentation_loss(logits, target) + segmentation_loss(aux_logits, target)
    torch.testing.assert_close(segmentation_loss(heads, target), expected, rtol=1e-6, atol=0)
    own = segmentation_loss(heads, {"out": target, "aux": other_target}, reduction="mean")
    torch.testing.assert_close(own, segmentation_loss(logits, target, reduction="mean") +
                               segmentation_loss(aux_logits, other_target, reduction="mean"),
                               rtol=1e-6, atol=0)
