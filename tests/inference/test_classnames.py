"""Class names as users type them: case-insensitive when unambiguous, in predict and serve."""

from __future__ import annotations

import pytest

from fcnseg.inference.classnames import AmbiguousClassName, class_by_name
from fcnseg.inference.files import parse_classes
from fcnseg.serve.errors import RequestError
from fcnseg.serve.segment import parse_head_heatmap_classes, parse_heatmap_classes

STREET = ["Sky", "Building", "Car", "Road"]


def test_class_by_name_prefers_the_exact_name_then_ignores_case() -> None:
    assert class_by_name("Car", STREET) == 2
    assert class_by_name("car", STREET) == 2
    assert class_by_name("ROAD", STREET) == 3
    assert class_by_name("bus", STREET) is None


def test_class_by_name_refuses_a_name_that_matches_several_classes_ignoring_case() -> None:
    names = ["car", "Car", "road"]
    assert class_by_name("Car", names) == 1  # the exact spelling wins
    with pytest.raises(AmbiguousClassName, match="'car', 'Car'"):
        class_by_name("CAR", names)


def test_predict_heatmap_classes_match_names_ignoring_case() -> None:
    assert parse_classes(["car,sky"], STREET) == [2, 0]


def test_serve_heatmap_classes_match_names_ignoring_case() -> None:
    assert parse_heatmap_classes("car, road", STREET) == (2, 3)
    assert parse_head_heatmap_classes("car", {"semantic": STREET, "geometric": ["sky"]}) == {
        "semantic": (2,), "geometric": ()}


def test_serve_refuses_an_ambiguous_name_with_400() -> None:
    with pytest.raises(RequestError, match="CAR") as refused:
        parse_heatmap_classes("CAR", ["car", "Car"])
    assert refused.value.status_code == 400


def test_predict_and_serve_find_a_class_by_its_name_before_its_index() -> None:
    names = ["background", "3", "tree", "road"]  # a class named "3" is class 1
    assert parse_classes(["3"], names) == [1]
    assert parse_heatmap_classes("3", names) == (1,)
    assert parse_head_heatmap_classes("3", {"semantic": names, "geometric": ["sky"]}) == {
        "semantic": (1,), "geometric": ()}
