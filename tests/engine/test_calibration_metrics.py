"""Calibration metrics on constructed logits whose expected calibration error is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fcnseg.metrics import (
    CalibrationBins,
    confusion_matrix,
    expected_calibration_error,
    scores,
)


def _logits_for(confidences: list[float], predicted: list[int]) -> torch.Tensor:
    """N=1, C=2, H=1, W=P logits whose softmax gives class ``predicted[i]`` probability
    ``confidences[i]``: the logit gap is log(p / (1 - p))."""
    gap = torch.tensor([math.log(p / (1 - p)) for p in confidences], dtype=torch.float64)
    logits = torch.zeros((1, 2, 1, len(confidences)), dtype=torch.float64)
    for i, c in enumerate(predicted):
        logits[0, c, 0, i] = gap[i]
    return logits


# Five scored pixels and one ignored one, in 10 bins (no confidence on a bin edge):
#   0.85 right, 0.85 wrong -> bin 8: accuracy 0.5, confidence 0.85, gap 0.35, weight 2/5
#   0.65 right, 0.65 right -> bin 6: accuracy 1.0, confidence 0.65, gap 0.35, weight 2/5
#   0.75 right             -> bin 7: accuracy 1.0, confidence 0.75, gap 0.25, weight 1/5
#   0.95 wrong, ignored    -> counts nowhere
# ECE = 0.4·0.35 + 0.4·0.35 + 0.2·0.25 = 0.33
CONFIDENCES = [0.85, 0.85, 0.65, 0.65, 0.75, 0.95]
PREDICTED = [0, 0, 1, 1, 0, 0]
LABELS = [0, 1, 1, 1, 0, 255]
KNOWN_ECE = 0.33


def test_expected_calibration_error_of_arrays_matches_the_hand_computed_value() -> None:
    conf = np.array(CONFIDENCES[:5])
    correct = np.array(PREDICTED[:5]) == np.array(LABELS[:5])
    assert expected_calibration_error(conf, correct, num_bins=10) == pytest.approx(KNOWN_ECE,
                                                                                   rel=1e-9)


def test_calibration_bins_from_logits_match_the_hand_computed_value() -> None:
    probs = _logits_for(CONFIDENCES, PREDICTED).softmax(1).float()
    labels = torch.tensor(LABELS).reshape(1, 1, -1)
    bins = CalibrationBins(2, ignore_index=255, num_bins=10)
    bins.update(labels, probs)
    result = bins.compute()
    assert result["pixels"] == 5
    assert result["ece"] == pytest.approx(KNOWN_ECE, rel=1e-5)
    by_bin = {b: result["bins"][b] for b in (6, 7, 8)}
    assert [by_bin[b]["count"] for b in (6, 7, 8)] == [2, 1, 2]
    assert by_bin[8]["accuracy"] == 0.5 and by_bin[6]["accuracy"] == 1.0
    assert by_bin[8]["confidence"] == pytest.approx(0.85, rel=1e-5)
    assert sum(b["count"] for b in result["bins"]) == 5
    assert result["accuracy"] == pytest.approx(0.8, rel=1e-9)
    assert result["mean_confidence"] == pytest.approx((0.85 * 2 + 0.65 * 2 + 0.75) / 5, rel=1e-5)


def test_a_perfectly_calibrated_model_has_zero_ece() -> None:
    # 4 pixels at confidence 0.75 of which 3 are right: accuracy equals confidence.
    conf = np.full(4, 0.75)
    assert expected_calibration_error(conf, np.array([1, 1, 1, 0]), num_bins=15) == \
        pytest.approx(0.0, abs=1e-12)


def test_batches_and_merges_add_up() -> None:
    probs = _logits_for(CONFIDENCES, PREDICTED).softmax(1).float()
    labels = torch.tensor(LABELS).reshape(1, 1, -1)
    one, two = CalibrationBins(2, num_bins=10), CalibrationBins(2, num_bins=10)
    one.update(labels[..., :3], probs[..., :3])
    two.update(labels[..., 3:], probs[..., 3:])
    assert one.merge(two).compute()["ece"] == pytest.approx(KNOWN_ECE, rel=1e-5)


def test_mean_iu_of_the_most_confident_pixels() -> None:
    # The confident half (p = 0.999) is all right; the unsure half (p = 0.6) all wrong.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=200)
    sure = np.arange(200) < 100
    pred = np.where(sure, labels, (labels + 1) % 3)
    conf = np.where(sure, 0.999, 0.6)
    probs = np.full((3, 200), 0.0)
    probs[pred, np.arange(200)] = conf
    for c in range(3):  # the rest of the mass on the other two classes
        probs[c, pred != c] = (1 - conf[pred != c]) / 2
    bins = CalibrationBins(3, num_bins=15)
    bins.update(torch.from_numpy(labels)[None], torch.from_numpy(probs)[None])
    half, everything = bins.compute(coverages=(0.5, 1.0))["coverage"]
    assert half["pixels_fraction"] == 0.5 and half["mean_iu"] == 1.0
    assert half["pixel_acc"] == 1.0 and 0.6 < half["min_confidence"] <= 0.999
    whole = scores(confusion_matrix(labels, pred, 3))
    assert everything["pixels_fraction"] == 1.0
    assert everything["mean_iu"] == pytest.approx(whole["mean_iu"], rel=1e-12)


def test_calibration_bins_refuse_bad_labels_and_shapes() -> None:
    bins = CalibrationBins(2)
    probs = torch.full((1, 2, 1, 2), 0.5)
    with pytest.raises(ValueError, match="outside"):
        bins.update(torch.tensor([[[0, 7]]]), probs)
    with pytest.raises(ValueError, match="do not fit"):
        bins.update(torch.tensor([[[0, 1, 1]]]), probs)


def test_confidences_that_round_to_one_in_float32_are_still_ranked() -> None:
    # Both halves have a largest probability of exactly 1.0 in float32; the other classes'
    # probabilities (1e-20 and 1e-10) still tell which half the model is surer of.
    labels = torch.tensor([0, 1, 0, 1] * 25)
    sure = torch.arange(100) < 50
    pred = torch.where(sure, labels, 1 - labels)
    other = torch.where(sure, 1e-20, 1e-10).float()
    probs = torch.stack([torch.where(pred == 0, 1.0, other), torch.where(pred == 1, 1.0, other)])
    assert (probs.max(0).values == 1.0).all()
    bins = CalibrationBins(2, num_bins=15)
    bins.update(labels[None, None], probs[None, :, None])
    (half,) = bins.compute(coverages=(0.5,))["coverage"]
    assert half["pixels_fraction"] == 0.5 and half["pixel_acc"] == 1.0
    assert 1e-20 <= half["max_doubt"] < 1e-10


def test_low_confidences_are_ranked_too() -> None:
    # An untrained many-class model is sure of nothing: confidences of 0.12 (right) and 0.08
    # (wrong) must still rank, not fall together as "confidence below 0.16".
    labels = torch.arange(200) % 19
    sure = torch.arange(200) < 100
    pred = torch.where(sure, labels, (labels + 1) % 19)
    conf = torch.where(sure, 0.12, 0.08).double()
    probs = ((1 - conf) / 18).repeat(19, 1)
    probs[pred, torch.arange(200)] = conf
    bins = CalibrationBins(19)
    bins.update(labels[None, None], probs[None, :, None])
    (half,) = bins.compute(coverages=(0.5,))["coverage"]
    assert half["pixels_fraction"] == 0.5 and half["pixel_acc"] == 1.0
    assert 0.08 < half["min_confidence"] <= 0.12


def _one_hot_probs(pred: np.ndarray, conf: np.ndarray, num_classes: int) -> np.ndarray:
    """C×P probabilities: ``conf`` on the predicted class, the rest spread evenly."""
    probs = np.repeat(((1 - conf) / (num_classes - 1))[None], num_classes, axis=0)
    probs[pred, np.arange(pred.size)] = conf
    return probs


def test_a_class_absent_from_the_confident_pixels_truth_is_left_out_of_their_mean_iu() -> None:
    # Confident (0.999): class 0 ×40 (2 predicted as class 3), classes 1 and 2 ×30, all right.
    # Unsure (0.6): class 3 ×100, half predicted as class 0. The confident half's truth holds
    # no class 3: its mean IU averages classes 0-2, (38/40 + 1 + 1) / 3, and not a class-3 IU
    # of 0 for its 2 stray pixels (which would give 0.7375); they still cost pixel accuracy.
    labels = np.array([0] * 40 + [1] * 30 + [2] * 30 + [3] * 100)
    pred = np.array([0] * 38 + [3] * 2 + [1] * 30 + [2] * 30 + [3] * 50 + [0] * 50)
    conf = np.where(np.arange(200) < 100, 0.999, 0.6)
    bins = CalibrationBins(4, num_bins=15)
    bins.update(torch.from_numpy(labels)[None],
                torch.from_numpy(_one_hot_probs(pred, conf, 4))[None])
    result = bins.compute(coverages=(0.5, 1.0))
    half, everything = result["coverage"]
    assert half["pixels_fraction"] == 0.5
    assert half["mean_iu"] == pytest.approx((38 / 40 + 1 + 1) / 3, rel=1e-12)
    assert half["pixel_acc"] == pytest.approx(98 / 100, rel=1e-12)
    assert half["mean_iu_classes"] == 3 and result["mean_iu_classes"] == 4
    whole = scores(confusion_matrix(labels, pred, 4))
    assert everything["mean_iu"] == pytest.approx(whole["mean_iu"], rel=1e-12)
    assert everything["mean_iu_classes"] == 4


def test_a_class_absent_from_all_the_truth_but_predicted_counts_as_in_the_headline() -> None:
    # Class 2 is in no ground truth yet predicted twice among the confident pixels: the
    # headline mean IU counts its IU 0, and so does every fraction's.
    labels = np.array([0] * 50 + [1] * 50)
    pred = np.array([0] * 48 + [2] * 2 + [1] * 50)
    conf = np.where(np.arange(100) < 50, 0.999, 0.6)
    bins = CalibrationBins(3, num_bins=15)
    bins.update(torch.from_numpy(labels)[None],
                torch.from_numpy(_one_hot_probs(pred, conf, 3))[None])
    (half,) = bins.compute(coverages=(0.5,))["coverage"]
    assert half["mean_iu"] == pytest.approx((48 / 50 + 0) / 2, rel=1e-12)
    assert half["mean_iu_classes"] == 2


def test_a_class_the_confident_pixels_never_predict_is_left_out_of_their_mean_iu() -> None:
    # Field (class 3) is predicted only where the model is unsure; the confident half holds
    # 5 field pixels, all predicted background. Its IU there would be 0/5 and bring the mean
    # IU of pixels 99.9% right down to about 75; left out, the mean averages classes 0-2,
    # background's IU paying for the 5 errors.
    labels = np.array([0] * 400 + [1] * 50 + [2] * 45 + [3] * 5 + [3] * 500)
    pred = np.array([0] * 400 + [1] * 50 + [2] * 45 + [0] * 5 + [3] * 500)
    conf = np.where(np.arange(1000) < 500, 0.999, 0.6)
    bins = CalibrationBins(4, num_bins=15)
    bins.update(torch.from_numpy(labels)[None],
                torch.from_numpy(_one_hot_probs(pred, conf, 4))[None])
    (half,) = bins.compute(coverages=(0.5,))["coverage"]
    assert half["mean_iu_classes"] == 3
    assert half["mean_iu"] == pytest.approx((400 / 405 + 1 + 1) / 3, rel=1e-12)
    assert half["pixel_acc"] == pytest.approx(495 / 500, rel=1e-12)


def test_a_class_never_predicted_anywhere_counts_as_in_the_headline() -> None:
    # Class 2 is in the ground truth but the model never predicts it: IU 0, in every mean.
    labels = np.array([0] * 50 + [1] * 45 + [2] * 5)
    pred = np.array([0] * 50 + [1] * 45 + [0] * 5)
    conf = np.full(100, 0.999)
    bins = CalibrationBins(3, num_bins=15)
    bins.update(torch.from_numpy(labels)[None],
                torch.from_numpy(_one_hot_probs(pred, conf, 3))[None])
    (everything,) = bins.compute(coverages=(1.0,))["coverage"]
    assert everything["mean_iu_classes"] == 3
    assert everything["mean_iu"] == pytest.approx(scores(
        confusion_matrix(labels, pred, 3))["mean_iu"], rel=1e-12)
