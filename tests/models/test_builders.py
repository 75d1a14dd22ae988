"""The builders: the paper's four functions and the table of named models."""

from __future__ import annotations

import inspect

import pytest

from fcnseg.models import (
    ARCHITECTURES,
    build_model,
    fcn8s,
    fcn8s_vgg16_bn,
)

TINY_VGG = {"width": 1 / 64, "fc_channels": 4}


@pytest.mark.parametrize("name", ["fcn8s", "fcn8s_resnet18", "nyud_fcn32s_color_hha"])
def test_a_misspelt_argument_is_one_line_naming_the_model_and_the_argument(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name}: .*'colour'$"):
        build_model(name, colour="red")


def test_the_paper_functions_take_the_same_arguments_as_their_names() -> None:
    by_function = fcn8s(3, geometry="same", **TINY_VGG)
    by_name = build_model("fcn8s", num_classes=3, geometry="same", **TINY_VGG)
    assert by_function.identity == by_name.identity


def test_a_row_shows_its_own_defaults() -> None:
    siftflow = inspect.signature(ARCHITECTURES["siftflow_fcn8s"]).parameters
    assert siftflow["num_classes"].default == 33
    assert siftflow["input_convention"].default == "siftflow_bgr"
    assert inspect.signature(fcn8s_vgg16_bn).parameters["batch_norm"].default is True
    assert fcn8s_vgg16_bn(3, **TINY_VGG).batch_norm

