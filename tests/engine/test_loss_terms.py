"""Focal, Dice and Lovász-softmax losses and their sums, each against a value computed by hand
on three valid pixels (and one ignored pixel that would change every value if it counted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _train_helpers import tiny_recipe

from fcnseg.engine.config import ConfigError, load_config
from fcnseg.engine.loss import parse_loss_name, segmentation_loss
from fcnseg.engine.trainer import train

LN2, LN3 = math.log(2.0), math.log(3.0)
WEIGHT = torch.tensor([1.0, 2.0, 3.0])


def _pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """Four pixels in a row, three classes:
    A: p = (0.6, 0.2, 0.2), label 0;  B: p = (0.25, 0.25, 0.5), label 2;
    C: p = (0.5, 0.25, 0.25), label 0;  D: confidently class 1, ignored (255)."""
    logits = torch.tensor([[LN3, 0.0, 0.0], [0.0, 0.0, LN2], [LN2, 0.0, 0.0], [0.0, 9.0, 0.0]])
    target = torch.tensor([0, 2, 0, 255])
    return logits.T.reshape(1, 3, 1, 4).contiguous(), target.reshape(1, 1, 4)


def _loss(name: str, weight: torch.Tensor | None = None, **kw) -> float:
    logits, target = _pixels()
    return float(segmentation_loss(logits, target, reduction=kw.pop("reduction", "mean"),
                                   weight=weight, name=name, **kw))


def test_focal_loss_matches_the_hand_computed_value_with_weights_and_ignore() -> None:
    # -w[y] (1 - p_y)^2 ln p_y: A: 1·0.4²·(-ln 0.6), B: 3·0.5²·ln 2, C: 1·0.5²·ln 2
    summed = 0.16 * -math.log(0.6) + 3 * 0.25 * LN2 + 0.25 * LN2
    assert _loss("focal", WEIGHT, reduction="sum") == pytest.approx(summed, rel=1e-6)
    # averaged over the valid pixels' weight: 1 + 3 + 1
    assert _loss("focal", WEIGHT) == pytest.approx(summed / 5, rel=1e-6)


def test_focal_loss_at_gamma_zero_is_cross_entropy() -> None:
    assert _loss("focal", WEIGHT, focal_gamma=0.0) == pytest.approx(_loss("ce", WEIGHT),
                                                                    rel=1e-6)


def test_dice_loss_matches_the_hand_computed_value_with_weights_and_ignore() -> None:
    # class 0: |P∩G| = 0.6 + 0.5, |P| = 0.6 + 0.25 + 0.5, |G| = 2
    # class 2: |P∩G| = 0.5, |P| = 0.2 + 0.5 + 0.25, |G| = 1; class 1 is absent from the labels
    dice0, dice2 = 1 - 2.2 / 3.35, 1 - 1.0 / 1.95
    assert _loss("dice") == pytest.approx((dice0 + dice2) / 2, rel=1e-6)
    assert _loss("dice", WEIGHT) == pytest.approx((1 * dice0 + 3 * dice2) / 4, rel=1e-6)


def test_lovasz_loss_matches_the_hand_computed_value_with_weights_and_ignore() -> None:
    # class 0: errors |g - p| = A 0.4, B 0.25, C 0.5; sorted C, A, B; the Jaccard loss of the
    #   growing set of errors is 1/2, 1, 1, so increments 1/2, 1/2, 0: 0.5·0.5 + 0.4·0.5 = 0.45
    # class 2: errors A 0.2, B 0.5, C 0.25; sorted B, C, A; Jaccard 1, 1, 1: 0.5·1 = 0.5
    assert _loss("lovasz") == pytest.approx((0.45 + 0.5) / 2, rel=1e-6)
    assert _loss("lovasz", WEIGHT) == pytest.approx((0.45 + 3 * 0.5) / 4, rel=1e-6)


def test_on_hard_predictions_lovasz_is_one_minus_iou_and_dice_one_minus_f1() -> None:
    # predicted 0 0 1 1 2 2, labelled 0 1 1 1 2 255
    logits = 40.0 * F.one_hot(torch.tensor([0, 0, 1, 1, 2, 2]), 3).T.float().reshape(1, 3, 1, 6)
    target = torch.tensor([0, 1, 1, 1, 2, 255]).reshape(1, 1, 6)
    iou = [1 / 2, 2 / 3, 1 / 1]  # class 0: {0} of {0,1}; class 1: {2,3} of {1,2,3}; class 2
    f1 = [2 * 1 / (2 + 1), 2 * 2 / (2 + 3), 2 * 1 / (1 + 1)]
    lovasz = segmentation_loss(logits, target, reduction="mean", name="lovasz")
    dice = segmentation_loss(logits, target, reduction="mean", name="dice")
    assert float(lovasz) == pytest.approx(sum(1 - v for v in iou) / 3, rel=1e-5)
    assert float(dice) == pytest.approx(sum(1 - v for v in f1) / 3, rel=1e-5)


def test_a_sum_of_terms_adds_each_term_at_its_scale() -> None:
    assert _loss("ce+0.5*dice", WEIGHT) == pytest.approx(
        _loss("ce", WEIGHT) + 0.5 * _loss("dice", WEIGHT), rel=1e-6)
    assert _loss("ce + lovasz") == pytest.approx(_loss("ce") + _loss("lovasz"), rel=1e-6)


def test_set_losses_count_by_the_batch_share_of_the_step() -> None:
    # A micro-batch holding half the step's valid pixels weighs half: the step's terms average.
    logits, target = _pixels()
    half = segmentation_loss(logits, target, reduction="mean", name="dice", normalizer=6.0)
    assert float(half) == pytest.approx(_loss("dice") / 2, rel=1e-6)


def test_a_batch_without_valid_pixels_gives_zero_for_every_term() -> None:
    logits, _ = _pixels()
    target = torch.full((1, 1, 4), 255)
    for name in ("focal", "dice", "lovasz", "ce+dice"):
        loss = segmentation_loss(logits.requires_grad_(), target, reduction="mean", name=name)
        assert float(loss.detach()) == 0.0, name


def test_set_losses_pass_gradients_to_the_logits() -> None:
    logits, target = _pixels()
    logits.requires_grad_()
    segmentation_loss(logits, target, reduction="mean", name="dice+lovasz").backward()
    assert logits.grad is not None and logits.grad[..., :3].abs().sum() > 0
    assert torch.all(logits.grad[..., 3] == 0)  # the ignored pixel gets none


def test_unknown_terms_and_summed_set_losses_are_refused_naming_the_field() -> None:
    assert parse_loss_name("ce+0.5*dice") == [(1.0, "ce"), (0.5, "dice")]
    with pytest.raises(ConfigError, match=r"loss.name: 'ce\+tversky'"):
        load_config(tiny_recipe(loss={"name": "ce+tversky", "reduction": "mean"}))
    with pytest.raises(ConfigError, match="loss.reduction=mean"):
        load_config(tiny_recipe(loss={"name": "dice", "reduction": "sum"}))


def test_a_run_trains_with_a_summed_loss(tmp_path: Path, one_thread: None) -> None:
    recipe = tiny_recipe(loss={"name": "ce+dice", "reduction": "mean",
                               "class_weights": "median_frequency"},
                         train={"iterations": 4, "eval_every": 4})
    result = train(load_config(recipe), out=tmp_path / "run")
    assert result.status == "completed" and result.metrics["mean_iu"] is not None
