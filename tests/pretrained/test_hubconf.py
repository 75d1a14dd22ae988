"""hubconf.py through torch.hub.load from this checkout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _caffe_files import FC, WIDTH, random_fcn_state_dict, write_reference_fcn

from fcnseg.data.palette import VOC_CLASSES
from fcnseg.pretrained import fetch as fetch_mod
from fcnseg.pretrained.fetch import Source
from fcnseg.pretrained.reference import REFERENCE_MODELS

REPO = Path(__file__).resolve().parents[2]


def test_torch_hub_builds_an_untrained_model() -> None:
    model = torch.hub.load(str(REPO), "fcn16s", source="local", num_classes=5, width=WIDTH,
                           fc_channels=FC)
    assert model.arch == "fcn16s" and model.num_classes == 5


def test_torch_hub_gives_an_untrained_model_class_names_and_a_palette() -> None:
    model = torch.hub.load(str(REPO), "fcn8s", source="local", width=WIDTH, fc_channels=FC)
    assert model.class_names == list(VOC_CLASSES) and model.palette[15] == [192, 128, 128]
    five = torch.hub.load(str(REPO), "fcn16s", source="local", num_classes=5, width=WIDTH,
                          fc_channels=FC)
    assert five.class_names == [f"class_{i}" for i in range(5)] and len(five.palette) == 256


@pytest.mark.parametrize("count, classes", [(40, "NYUD_CLASSES"),
                                            (33, "SIFTFLOW_SEMANTIC_CLASSES"),
                                            (60, "PASCAL_CONTEXT_CLASSES")])
def test_torch_hub_gives_an_untrained_model_of_a_datasets_class_count_its_names(
        count: int, classes: str) -> None:
    import fcnseg.data

    model = torch.hub.load(str(REPO), "fcn32s", source="local", num_classes=count, width=WIDTH,
                           fc_channels=FC)
    assert model.class_names == list(getattr(fcnseg.data, classes))


def test_torch_hub_pretrained_uses_the_cached_reference_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_fcn_state_dict("fcn8s", 21)
    cache = tmp_path / "cache"
    cache.mkdir()
    write_reference_fcn(cache / "fcn8s-heavy-pascal.caffemodel",
                        REFERENCE_MODELS["fcn8s-heavy-pascal"], sd)
    monkeypatch.setenv("FCNSEG_HOME", str(cache))
    entry = replace(fetch_mod.PRETRAINED["fcn8s_caffe"], build_kwargs={"width": WIDTH,
                                                                       "fc_channels": FC},
                    sources=(Source("http://127.0.0.1:9/fcn8s-heavy-pascal.caffemodel",
                                    "fcn8s-heavy-pascal.caffemodel", format="caffemodel"),))
    monkeypatch.setitem(fetch_mod.PRETRAINED, "fcn8s_caffe", entry)
    model = torch.hub.load(str(REPO), "fcn8s", source="local", pretrained=True, progress=False)
    assert model.class_names == list(VOC_CLASSES)
    assert model.input_convention.channel_order == "BGR"
    assert torch.equal(model.head.score_fr.weight, sd["score_fr.weight"])
