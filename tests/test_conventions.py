"""Input conventions: Caffe BGR and torchvision RGB preprocessing."""

from __future__ import annotations

import importlib

import pytest
import torch

from fcnseg.conventions import (
    CAFFE_BGR,
    TORCHVISION_RGB,
    InputConvention,
    band_convention,
    get_convention,
    refuse_other_bands,
)
from fcnseg.models.preprocess import ChannelNormalize


def test_caffe_convention_is_bgr_with_mean_subtracted_and_no_scaling() -> None:
    rgb = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    out = ChannelNormalize(CAFFE_BGR)(rgb).flatten()
    expected = torch.tensor([30 - 104.00698793, 20 - 116.66876762, 10 - 122.67891434])
    assert torch.allclose(out, expected)


def test_torchvision_convention_is_rgb_scaled_and_standardised() -> None:
    rgb = torch.full((1, 3, 1, 1), 255.0)
    out = ChannelNormalize(TORCHVISION_RGB)(rgb).flatten()
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("conv", [CAFFE_BGR, TORCHVISION_RGB])
def test_the_mean_pixel_normalises_to_zero(conv: InputConvention) -> None:
    pixel = torch.tensor(conv.mean_pixel()).view(1, 3, 1, 1)
    assert ChannelNormalize(conv)(pixel).abs().max() < 1e-6


def test_conventions_round_trip_through_dicts_and_names() -> None:
    assert get_convention(CAFFE_BGR.to_dict()) == CAFFE_BGR
    assert get_convention("torchvision_rgb") is TORCHVISION_RGB
    with pytest.raises(ValueError, match="unknown input convention 'bgr'"):
        get_convention("bgr")
    with pytest.raises(ValueError, match="missing field 'scale'"):
        InputConvention.from_dict({"name": "x", "channel_order": "RGB", "mean": [0] * 3,
                                   "std": [1] * 3})


def test_a_band_conventions_nodata_round_trips_and_an_old_record_has_none() -> None:
    conv = band_convention(["red", "nir"], [10.0, 20.0], [1.0, 2.0], nodata=0)
    assert get_convention(conv.to_dict()) == conv and conv.to_dict()["nodata"] == 0.0
    old = {k: v for k, v in conv.to_dict().items() if k != "nodata"}  # recorded before nodata
    assert get_convention(old).nodata is None
    assert "nodata" not in band_convention(["red"], [1.0], [1.0]).to_dict()


def test_a_band_conventions_sample_types_round_trip_and_an_old_record_has_none() -> None:
    conv = band_convention(["intensity"], [250.0], [330.0], sample_types=["uint16"])
    assert get_convention(conv.to_dict()) == conv
    assert conv.to_dict()["sample_types"] == ["uint16"]
    old = {k: v for k, v in conv.to_dict().items() if k != "sample_types"}
    assert get_convention(old).sample_types is None
    assert "sample_types" not in band_convention(["red"], [1.0], [1.0]).to_dict()


def test_one_sample_type_given_as_a_string_is_the_type_of_every_band() -> None:
    conv = band_convention(["b", "g"], [400.0] * 2, [100.0] * 2, sample_types="uint16")
    assert conv.sample_types == ("uint16",)
    assert band_convention(["b"], [1.0], [1.0], sample_types=["uint16"] * 2).sample_types \
        == ("uint16",)


def test_sample_types_split_into_letters_by_an_earlier_release_load_as_not_recorded() -> None:
    saved = band_convention(["b"], [400.0], [100.0]).to_dict()
    saved["sample_types"] = ["1", "6", "i", "n", "t", "u"]
    assert get_convention(saved).sample_types is None


def test_an_empty_set_of_sample_types_stays_empty_when_saved_and_loaded() -> None:
    conv = band_convention(["a", "b"], [300.0, 2.0], [10.0, 1.0], sample_types=[])
    assert get_convention(conv.to_dict()) == conv and conv.sample_types == ()


def test_a_dataset_of_one_band_against_a_colour_model_says_1_band() -> None:
    with pytest.raises(ValueError, match=r"declares 1 band \(intensity\) but checkpoint "
                                         r"m\.pt takes RGB colour"):
        refuse_other_bands(CAFFE_BGR, ["intensity"], "cells", "m.pt")


@pytest.mark.parametrize("name, module, constant", [
    ("nyud_bgr", "fcnseg.data.nyud", "NYUD_BGR"),
    ("siftflow_bgr", "fcnseg.data.siftflow", "SIFTFLOW_BGR"),
    ("pascal_context_bgr", "fcnseg.data.pascal_context", "PASCAL_CONTEXT_BGR"),
])
def test_dataset_conventions_are_registered_by_name(name, module, constant):
    registered = get_convention(name)
    assert registered.name == name and registered.channel_order == "BGR"
    assert registered is getattr(importlib.import_module(module), constant)


def test_a_dataset_that_cannot_declare_bands_is_told_which_can() -> None:
    model = band_convention(["intensity"], [1000.0], [300.0])
    with pytest.raises(ValueError, match=r"^dataset voc declares no bands, so its images are "
                                         r"read as RGB colour .* declare the checkpoint's bands "
                                         r"in a dataset that takes them \(a folder dataset's "
                                         r"dataset.yaml"):
        refuse_other_bands(model, None, "voc", "m.pt")


def test_a_band_conventions_repr_names_its_bands_not_an_rgb_order() -> None:
    from fcnseg.conventions import band_convention

    text = repr(band_convention(["blue", "nir"], [900.0, 2000.0], [200.0, 600.0], nodata=0))
    assert "RGB" not in text and "channel_order" not in text
    assert text.startswith("InputConvention(name='bands', scale=1.0, mean=(900.0, 2000.0)")
    assert "bands=('blue', 'nir'), nodata=0.0" in text
    assert "channel_order='BGR'" in repr(get_convention("caffe_bgr"))


@pytest.mark.parametrize("convention", [
    TORCHVISION_RGB, CAFFE_BGR, band_convention(["blue", "nir"], [900.0, 2000.0], [200.0, 600.0],
                                                nodata=0, sample_types=["uint16"])],
    ids=["rgb", "caffe_bgr", "bands"])
def test_a_conventions_repr_evaluates_to_the_same_convention(convention) -> None:
    assert eval(repr(convention), {"InputConvention": InputConvention}) == convention


def test_a_convention_is_built_from_positional_arguments_in_its_field_order() -> None:
    mine = InputConvention("mine", "BGR", 1 / 255, (0.5,) * 3, (0.2,) * 3)
    assert (mine.channel_order, mine.scale, mine.mean, mine.std) == ("BGR", 1 / 255, (0.5,) * 3,
                                                                     (0.2,) * 3)
