"""Evaluation of models with several heads, and classes excluded from the class means."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fcnseg.engine.evaluation import evaluate_model, format_report, scores_excluding

SEMANTIC_LABEL = [[0, 0, 1], [1, 255, 2]]
SEMANTIC_PRED = [[0, 1, 1], [1, 0, 10]]  # 10 (desert) predicted on a class-2 pixel
GEOMETRIC_LABEL = [[0, 1, 2], [255, 2, 2]]
GEOMETRIC_PRED = [[0, 1, 1], [0, 2, 0]]


class PredictionsInTheImage(nn.Module):
    """A fake two-head model: channel 0 of the input is the semantic prediction, channel 1 the
    geometric one."""

    def forward(self, x):
        return {"semantic": nn.functional.one_hot(x[:, 0].long(), 33).permute(0, 3, 1, 2).float(),
                "geometric": nn.functional.one_hot(x[:, 1].long(), 3).permute(0, 3, 1, 2).float()}


def one_batch():
    images = torch.tensor([SEMANTIC_PRED, GEOMETRIC_PRED], dtype=torch.float32)[None]
    labels = {"semantic": torch.tensor([SEMANTIC_LABEL]),
              "geometric": torch.tensor([GEOMETRIC_LABEL])}
    return [(images, labels)]


def evaluate(exclude=()):
    return evaluate_model(PredictionsInTheImage(), one_batch(),
                          num_classes={"semantic": 33, "geometric": 3}, exclude_classes=exclude)


def test_each_head_gets_its_own_confusion_matrix():
    heads = evaluate()["heads"]
    semantic = np.zeros((33, 33), np.int64)
    for gt, pred in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 10)]:
        semantic[gt, pred] += 1
    np.testing.assert_array_equal(heads["semantic"]["confusion"], semantic)
    np.testing.assert_array_equal(heads["geometric"]["confusion"],
                                  [[1, 0, 0], [0, 1, 0], [1, 1, 1]])


def test_geometric_pixel_accuracy_is_the_share_of_right_pixels():
    result = evaluate()
    assert result["heads"]["geometric"]["pixel_acc"] == pytest.approx(3 / 5, rel=1e-6)
    assert result["num_images"] == 1


def test_excluded_classes_leave_the_means_but_keep_their_scores():
    plain = evaluate()["heads"]["semantic"]
    excluded = evaluate({"semantic": (8, 10, 15)})["heads"]["semantic"]
    # Desert was predicted once and never present: IU 0, counted unless excluded.
    assert plain["mean_iu"] == pytest.approx((1 / 2 + 2 / 3 + 0 + 0) / 4, rel=1e-6)
    assert excluded["mean_iu"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3, rel=1e-6)
    assert excluded["iu"][10] == 0.0 and excluded["excluded_classes"] == [8, 10, 15]
    assert excluded["mean_acc"] == pytest.approx((1 / 2 + 1 + 0) / 3, rel=1e-6)
    assert excluded["pixel_acc"] == pytest.approx(3 / 5, rel=1e-6)
    assert excluded["fw_iu"] == pytest.approx(2 / 5 * 1 / 2 + 2 / 5 * 2 / 3, rel=1e-6)


def test_exclusion_applies_to_the_named_head_only():
    geometric = evaluate({"semantic": (0,)})["heads"]["geometric"]
    assert geometric["excluded_classes"] == []
    assert geometric["mean_iu"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 3) / 3, rel=1e-6)


def test_single_head_exclusion_and_report():
    logits = nn.functional.one_hot(torch.tensor([[[0, 1, 2]]]), 3).permute(0, 3, 1, 2).float()

    class Fixed(nn.Module):
        def forward(self, x):
            return logits

    result = evaluate_model(Fixed(), [(torch.zeros(1, 3, 1, 3), torch.tensor([[[0, 1, 1]]]))],
                            num_classes=3, exclude_classes=[2])
    assert result["mean_iu"] == pytest.approx((1 + 1 / 2) / 2, rel=1e-6)
    assert "(excluded from the means)" in format_report(result, ["a", "b", "c"]).splitlines()[-1]


def test_a_tensor_output_for_dict_labels_is_an_error():
    class OneHead(nn.Module):
        def forward(self, x):
            return torch.zeros(1, 33, 2, 3)

    with pytest.raises(ValueError, match="must return a dict with the heads"):
        evaluate_model(OneHead(), one_batch(), num_classes={"semantic": 33, "geometric": 3})


def test_out_of_range_exclusion_is_an_error():
    with pytest.raises(ValueError, match=r"excluded classes \[5\] are outside \[0, 3\)"):
        scores_excluding(np.eye(3), [5])


def test_excluding_everything_gives_undefined_means():
    result = scores_excluding(np.eye(2, dtype=np.int64), [0, 1])
    assert math.isnan(result["mean_iu"]) and result["pixel_acc"] == 1.0
