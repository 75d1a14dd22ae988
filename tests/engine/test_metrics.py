"""fcnseg.metrics against matrices worked out by hand, including every undefined (NaN) case."""

import math

import numpy as np
import pytest
import torch

from fcnseg.metrics import (
    CalibrationBins,
    ConfusionMatrix,
    _counts,
    confusion_matrix,
    confusion_matrix_torch,
    scores,
)

# 3 classes, six pixels: rows = ground truth, columns = prediction.
LABEL = np.array([[0, 0, 1], [1, 2, 2]])
PRED = np.array([[0, 1, 1], [1, 2, 0]])
MATRIX = np.array([[1, 1, 0],
                   [0, 2, 0],
                   [1, 0, 1]])


def test_confusion_matrix_rows_are_ground_truth():
    cm = confusion_matrix(LABEL, PRED, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, MATRIX)


def test_confusion_matrix_accepts_tensors_of_any_integer_dtype():
    cm = confusion_matrix(torch.from_numpy(LABEL).to(torch.uint8),
                          torch.from_numpy(PRED).to(torch.int32), 3)
    assert isinstance(cm, np.ndarray)
    np.testing.assert_array_equal(cm, MATRIX)


def test_torch_version_stays_on_the_inputs_device():
    label, pred = torch.from_numpy(LABEL), torch.from_numpy(PRED)
    cm = confusion_matrix_torch(label, pred, 3)
    assert isinstance(cm, torch.Tensor)
    assert cm.dtype == torch.int64 and cm.device == label.device
    np.testing.assert_array_equal(cm.numpy(), MATRIX)


def test_ignore_index_pixels_count_nowhere():
    label = np.array([0, 255, 1, 255])
    pred = np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(confusion_matrix(label, pred, 2), [[1, 0], [0, 1]])
    # A negative ignore value works the same way.
    np.testing.assert_array_equal(confusion_matrix(np.where(label == 255, -1, label), pred, 2,
                                                   ignore_index=-1), [[1, 0], [0, 1]])


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_label_outside_the_classes_is_an_error_naming_the_values(to):
    label = to(np.array([0, 7, 1, 300, 255, -2]))
    pred = to(np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 3\).*-2, 7, 300"):
        confusion_matrix(label, pred, 3)


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_float_labels_are_refused_in_one_line_not_truncated(to):
    label = to(np.array([0.7, 1.9, 2.5]))
    with pytest.raises(ValueError, match="label: expected integer class indices, got float64") \
            as e:
        confusion_matrix(label, to(np.array([0, 1, 2])), 3)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="prediction: expected integer"):
        confusion_matrix(to(np.array([0, 1, 2])), to(np.array([0.0, 1.0, 2.0])), 3)


def test_float_labels_are_refused_by_the_accumulators():
    with pytest.raises(ValueError, match="label: expected integer class indices"):
        ConfusionMatrix(3).update(torch.tensor([0.7, 1.9]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="label: expected integer class indices"):
        CalibrationBins(2).update(torch.tensor([0.7, 1.0]),
                                  torch.tensor([[0.9, 0.2], [0.1, 0.8]]))


def test_prediction_outside_the_classes_is_an_error():
    with pytest.raises(ValueError, match="predicted values.*: 5"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), 3)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(np.zeros((2, 3)), np.zeros((3, 2)), 3)


def test_scores_of_a_full_matrix():
    s = scores(MATRIX)
    assert s["pixel_acc"] == pytest.approx(4 / 6)
    assert s["acc"] == pytest.approx([1 / 2, 2 / 2, 1 / 2])
    assert s["mean_acc"] == pytest.approx(2 / 3)
    # IU = diag / (rowsum + colsum - diag)
    assert s["iu"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert s["mean_iu"] == pytest.approx(1 / 2)
    # Every class holds 2 of 6 ground-truth pixels.
    assert s["fw_iu"] == pytest.approx((2 / 6) * (1 / 3 + 2 / 3 + 1 / 2))


def test_class_absent_from_ground_truth_and_never_predicted_is_left_out():
    s = scores([[3, 1, 0],
                [0, 2, 0],
                [0, 0, 0]])
    assert math.isnan(s["acc"][2]) and math.isnan(s["iu"][2])
    assert s["mean_acc"] == pytest.approx((3 / 4 + 1) / 2)
    assert s["mean_iu"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert s["fw_iu"] == pytest.approx(4 / 6 * 3 / 4 + 2 / 6 * 2 / 3)
    assert s["pixel_acc"] == pytest.approx(5 / 6)


def test_class_absent_from_ground_truth_but_predicted_counts_as_zero_iu():
    s = scores([[3, 0, 1],
                [0, 2, 0],
                [0, 0, 0]])
    assert math.isnan(s["acc"][2])
    assert s["iu"][2] == 0.0
    assert s["mean_acc"] == pytest.approx((3 / 4 + 1) / 2)  # accuracy still leaves it out
    assert s["mean_iu"] == pytest.approx((3 / 4 + 1 + 0) / 3)
    # fw IU sums over classes with ground-truth pixels only.
    assert s["fw_iu"] == pytest.approx(4 / 6 * 3 / 4 + 2 / 6 * 1)


def test_empty_matrix_scores_are_all_undefined():
    s = scores(np.zeros((3, 3), dtype=np.int64))
    for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert math.isnan(s[key])
    assert all(math.isnan(v) for v in s["iu"] + s["acc"])


def test_scores_accepts_a_tensor_and_rejects_a_non_square_matrix():
    assert scores(torch.from_numpy(MATRIX))["mean_iu"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="square"):
        scores(np.zeros((2, 3)))


def test_one_matrix_over_batches_equals_one_over_all_pixels():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 5, size=(2, 7 + i, 9)) for i in range(4)]
    preds = [rng.integers(0, 5, size=lb.shape) for lb in labels]
    for lb in labels:
        lb[0, 0, :3] = 255
    acc = ConfusionMatrix(5)
    for lb, pr in zip(labels, preds, strict=True):
        acc.update(torch.from_numpy(lb), torch.from_numpy(pr))
    whole = confusion_matrix(np.concatenate([lb.ravel() for lb in labels]),
                             np.concatenate([pr.ravel() for pr in preds]), 5)
    np.testing.assert_array_equal(acc.numpy(), whole)
    assert acc.compute()["mean_iu"] == pytest.approx(scores(whole)["mean_iu"])
    # It is not the mean of per-batch scores.
    per_batch = np.nanmean([scores(confusion_matrix(lb, pr, 5))["mean_iu"]
                            for lb, pr in zip(labels, preds, strict=True)])
    assert per_batch != pytest.approx(scores(whole)["mean_iu"], abs=1e-12)


def test_merge_adds_counts_and_checks_the_size():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(LABEL[0], PRED[0])
    b.update(LABEL[1], PRED[1])
    np.testing.assert_array_equal(a.merge(b).numpy(), MATRIX)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(ConfusionMatrix(4))


def test_all_reduce_without_distributed_is_a_no_op():
    cm = ConfusionMatrix(3)
    cm.update(LABEL, PRED)
    np.testing.assert_array_equal(cm.all_reduce().numpy(), MATRIX)


@pytest.mark.parametrize("ignore_index", [255, None])
def test_accelerator_counting_path_matches_numpy(ignore_index):
    # Tensors on a GPU are counted by _counts in torch ops; run it on CPU tensors here to check it.
    rng = np.random.default_rng(1)
    label = rng.integers(0, 6, size=(3, 17, 19))
    if ignore_index is not None:
        label[:, 0] = ignore_index
    pred = rng.integers(0, 6, size=label.shape)
    counts = _counts(torch.from_numpy(label), torch.from_numpy(pred), 6, ignore_index)
    np.testing.assert_array_equal(counts.numpy(), confusion_matrix(label, pred, 6, ignore_index))
    with pytest.raises(ValueError, match="label values.*: 9"):
        _counts(torch.tensor([0, 9]), torch.tensor([0, 0]), 6, ignore_index)
    with pytest.raises(ValueError, match="predicted values.*: -1"):
        _counts(torch.tensor([0, 1]), torch.tensor([0, -1]), 6, ignore_index)


def test_excluded_classes_leave_the_class_means_but_not_the_pixel_accuracy():
    whole, left_out = scores(MATRIX), scores(MATRIX, exclude=[1])
    assert left_out["pixel_acc"] == whole["pixel_acc"] and left_out["iu"] == whole["iu"]
    assert left_out["mean_iu"] == pytest.approx(np.mean([whole["iu"][0], whole["iu"][2]]))
    assert left_out["mean_acc"] == pytest.approx(np.mean([whole["acc"][0], whole["acc"][2]]))
    assert left_out["fw_iu"] == pytest.approx((2 * whole["iu"][0] + 2 * whole["iu"][2]) / 6)
