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
from fcnseg.models.builders import backbone_trunk, builder_parameters, model_names
from fcnseg.weightfiles.published import PRETRAINED, TRUNKS, backbones_fitting

TINY_VGG = {"width": 1 / 64, "fc_channels": 4}


@pytest.mark.parametrize("name", ["fcn8s", "fcn8s_resnet18", "nyud_fcn32s_color_hha"])
def test_a_misspelt_argument_is_one_line_naming_the_model_and_the_argument(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name}: .*'colour'$"):
        build_model(name, colour="red")


@pytest.mark.parametrize(("name", "argument", "value", "expected"), [
    ("fcn8s", "width", "0.25", "float"),
    ("fcn8s", "fc_channels", 8.0, "int"),
    ("fcn8s", "dropout", True, "float"),
    ("fcn8s_resnet18", "base_channels", "16", "int"),
])
def test_an_argument_of_the_wrong_type_is_one_line_naming_the_model_and_the_argument(
        name: str, argument: str, value: object, expected: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name}: {argument}: expected {expected}, "
                                        rf"got {value!r}$"):
        build_model(name, num_classes=3, **{argument: value})


def test_numpy_numbers_are_taken_and_recorded_as_plain_ones() -> None:
    np = pytest.importorskip("numpy")
    model = build_model("fcn8s", num_classes=np.int64(3), width=np.float32(1 / 64),
                        fc_channels=np.int64(4))
    assert model.build_kwargs["num_classes"] == 3 and model.build_kwargs["width"] == 1 / 64
    assert {type(model.build_kwargs[k]) for k in ("num_classes", "width", "fc_channels")} \
        == {int, float}


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


@pytest.mark.parametrize("name", ["fcn8s", "fcn8s_resnet18", "siftflow_fcn8s"])
def test_the_input_convention_a_builder_shows_is_the_one_it_builds(name) -> None:
    import inspect

    from fcnseg.models.builders import ARCHITECTURES, ModelOptions

    shown = inspect.signature(ARCHITECTURES[name]).parameters["input_convention"].default
    assert ARCHITECTURES[name].__call__.__doc__ is not None
    kwargs = {"width": 0.0625} if "resnet" not in name else {}
    assert build_model(name, **kwargs).input_convention.name == shown
    assert "torchvision_rgb by default" not in (ModelOptions.__doc__ or "")
    assert "architecture's own" in (ModelOptions.__doc__ or "")


def test_a_published_name_as_backbone_weights_says_how_to_fetch_it() -> None:
    from fcnseg.models import WeightsError

    with pytest.raises(WeightsError, match=r"'vgg16_caffe' is the name of published weights, "
                                           r"not a file.*fetch_pretrained\('vgg16_caffe'\)"
                       ) as e:
        build_model("fcn8s", num_classes=3, width=0.0625, backbone_weights="vgg16_caffe")
    assert "\n" not in str(e.value)


def test_model_names_lists_every_name_build_model_takes() -> None:
    from fcnseg.models import MODEL_BUILDERS, get_builder, model_names

    names = model_names()
    assert names == sorted(MODEL_BUILDERS)
    assert {"fcn8s", "fcn8s_resnet18", "fcn_alexnet", "fcn_custom_backbone"} <= set(names)
    assert all(get_builder(name) for name in names)


@pytest.mark.parametrize("builder", ["fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce"])
def test_the_paper_functions_show_their_arguments_to_help(builder: str) -> None:
    import pydoc

    import fcnseg.models

    function = getattr(fcnseg.models, builder)
    parameters = inspect.signature(function).parameters
    assert {"geometry", "width", "fc_channels", "dropout", "batch_norm",
            "backbone_weights"} <= set(parameters)
    assert parameters["input_convention"].default == "caffe_bgr"  # what it builds
    shown = pydoc.render_doc(function, renderer=pydoc.plaintext)
    assert "fc_channels" in shown and "**options" not in shown


@pytest.mark.parametrize("name, options, trunk", [
    ("fcn8s", {}, "VGG16"), ("fcn8s", {"batch_norm": True}, "VGG16-BN"),
    ("fcn32s_vgg16_bn", {}, "VGG16-BN"), ("siftflow_fcn8s", {}, "VGG16"),
    ("nyud_fcn32s_hha", {}, "VGG16"), ("fcn16s_resnet34", {}, "ResNet-34"),
    ("fcn_resnet101", {}, "ResNet-101"), ("fcn_alexnet", {}, "AlexNet (Caffe)"),
    ("fcn_alexnet", {"variant": "torchvision"}, "AlexNet (torchvision)"),
    ("fcn8s_googlenet", {}, "GoogLeNet"), ("nyud_fcn32s_color_hha", {}, None),
    ("fcn_custom_backbone", {}, None),
])
def test_backbone_trunk_names_the_family_of_weights_a_model_takes(name, options, trunk) -> None:
    assert backbone_trunk(name, options) == trunk


def test_every_published_backbone_names_a_trunk_some_model_takes() -> None:
    taken = {backbone_trunk(n, o) for n in model_names()
             for o in ({}, {"batch_norm": True}, {"variant": "torchvision"})
             if o.keys() <= set(builder_parameters(n))}
    backbones = [w for w in PRETRAINED.values() if w.kind == "backbone"]
    assert {w.trunk for w in backbones} <= taken & set(TRUNKS)
    assert all(backbones_fitting(w.trunk) for w in backbones)
    assert backbones_fitting("ResNet-50") == ["resnet50"]


#: Names of fcnseg.models.builders that the package has always exported too.
PACKAGE_NAMES = ("NOT_RECORDED", "ModelOptions", "VGGOptions", "ResNetOptions", "AlexNetOptions",
                 "GoogLeNetOptions", "NYUDOptions", "LateFusionOptions", "SiftFlowOptions",
                 "TorchvisionFCNOptions", "Architecture", "check_build_kwargs",
                 "builder_parameters")


@pytest.mark.parametrize("name", PACKAGE_NAMES)
def test_the_options_and_check_helpers_are_importable_from_the_models_package(name):
    import fcnseg.models
    from fcnseg.models import builders

    assert getattr(fcnseg.models, name) is getattr(builders, name)


def test_the_vgg16_bn_module_the_docs_named_still_gives_its_weight_loader():
    from fcnseg.models.vgg16_bn import load_vgg16_bn_weights
    from fcnseg.models.weights import load_vgg16_bn_weights as loader

    assert load_vgg16_bn_weights is loader


def test_the_vgg_options_docstring_explains_each_of_its_own_fields() -> None:
    from dataclasses import fields

    from fcnseg.models.builders import ModelOptions, VGGOptions

    own = {f.name for f in fields(VGGOptions)} - {f.name for f in fields(ModelOptions)}
    assert own == {"geometry", "width", "fc_channels", "dropout", "batch_norm",
                   "backbone_weights", "backbone_convention"}
    doc = VGGOptions.__doc__ or ""
    assert all(f"- ``{name}``: " in doc for name in own)


def test_the_models_package_exports_every_resnet_builder_model_names_lists() -> None:
    import fcnseg.models

    resnets = [n for n in model_names() if "_resnet" in n and not n.startswith("fcn_")]
    assert len(resnets) == 12
    assert all(getattr(fcnseg.models, n).name == n for n in resnets)
