"""A dataset's class names against a model's: same order, another order, other classes."""

from __future__ import annotations

import pytest

from fcnseg.data.ade20k import ADE20K_CLASSES
from fcnseg.data.cityscapes import CITYSCAPES_CLASSES
from fcnseg.inference.class_match import match_classes


def test_other_classes_of_a_long_list_are_refused_in_a_short_line() -> None:
    with pytest.raises(ValueError) as info:
        match_classes(ADE20K_CLASSES, CITYSCAPES_CLASSES, dataset="data/ade", model="city.pt")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert "dataset data/ade has 150 classes [wall, building, sky, floor, tree, ceiling, " \
           "... 144 more]" in message
    assert "city.pt predicts 19 [road, sidewalk, building, wall, fence, pole, ... 13 more]" \
        in message


def test_short_lists_are_named_in_full() -> None:
    with pytest.raises(ValueError, match=r"3 classes \[a, b, c\] but m\.pt predicts 2 \[a, b\]"):
        match_classes(["a", "b", "c"], ["a", "b"], dataset="d", model="m.pt")
