"""The inference runner, batching of equal sizes, the move-to-device helper, and the options
dataclasses of the Segmenter and evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnseg.data.palette import voc_palette
from fcnseg.engine.evaluation import EvalOptions, evaluate_model
from fcnseg.inference import Segmenter
from fcnseg.inference.runner import InferenceRunner
from fcnseg.inference.segmenter import SegmenterOptions
from fcnseg.utils.batches import same_size_batches, to_device
from fcnseg.utils.keyed import first_of


class Doubler(nn.Module):
    """Echoes its input (×2) as logits, and records the mode and autocast it ran under."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_autocast_enabled("cpu")))
        return x.float() * self.scale


def test_a_runner_runs_in_eval_and_inference_mode_and_restores_training() -> None:
    model = Doubler().train()
    runner = InferenceRunner(model, device="cpu", precision="fp32", prepare=False)
    out = runner(torch.ones(1, 2, 3, 4))
    assert torch.equal(out, torch.full((1, 2, 3, 4), 2.0)) and out.is_inference()
    assert model.seen == [(False, False)] and model.training
    assert not runner.channels_last  # a model run as it is keeps its inputs' layout


def test_a_runner_autocasts_in_its_precision_and_lays_out_channels_last() -> None:
    model = Doubler()
    runner = InferenceRunner(model, device="cpu", precision="bf16", channels_last=True,
                             prepare=False)
    assert runner.precision == "bf16" and runner.reported_precision == "bf16"
    runner(torch.ones(1, 2, 3, 4))
    assert model.seen == [(False, True)]
    x = to_device(torch.ones(1, 2, 3, 4), "cpu", channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_an_exported_model_runs_in_its_own_precision() -> None:
    model = Doubler()
    model.runtime, model.precision = "onnxruntime", "int8"
    runner = InferenceRunner(model, device="cpu", precision="bf16", prepare=False)
    assert runner.precision == "fp32" and runner.reported_precision == "int8"
    assert not runner.channels_last


def test_an_unknown_precision_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="precision: expected one of auto, fp32, bf16, fp16"):
        InferenceRunner(Doubler(), precision="none", prepare=False)


def test_same_size_batches_group_by_size_in_order_of_first_appearance() -> None:
    sizes = [(2, 3), (4, 5), (2, 3), (2, 3), (4, 5)]
    assert same_size_batches(sizes, 2) == [[0, 2], [3], [1, 4]]
    assert same_size_batches(sizes, 8, indices=[4, 3, 1]) == [[4, 1], [3]]


def test_to_device_moves_a_tensor_or_each_tensor_of_a_dict() -> None:
    moved = to_device({"color": torch.zeros(1, 3, 2, 2), "depth": torch.zeros(1, 1, 2, 2)},
                      "cpu", channels_last=True)
    assert set(moved) == {"color", "depth"}
    assert moved["color"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(to_device(torch.arange(3), "cpu"), torch.arange(3))
    assert first_of(moved) is moved["color"]


def test_segmenter_options_come_as_a_dataclass_or_as_keywords() -> None:
    model = nn.Conv2d(3, 2, 1)
    options = SegmenterOptions(precision="fp32", input_convention="torchvision_rgb",
                               temperature=2.0)
    seg = Segmenter(model, class_names=["a", "b"], palette=voc_palette(), options=options,
                    channels_last=False)
    assert (seg.precision, seg.channels_last, seg.temperature) == ("fp32", False, 2.0)
    assert seg.runner.model is seg.model
    with pytest.raises(TypeError, match="windows"):
        Segmenter(model, class_names=["a", "b"], palette=voc_palette(), options=options,
                  windows=3)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_a_segmenter_refuses_a_temperature_as_calibration_does(temperature) -> None:
    with pytest.raises(ValueError) as e:
        Segmenter(nn.Conv2d(3, 2, 1), class_names=["a", "b"], palette=voc_palette(),
                  input_convention="torchvision_rgb", temperature=temperature)
    assert str(e.value) == f"temperature must be a positive number, got {temperature}"


def test_evaluate_model_takes_its_options_as_a_dataclass_or_as_keywords() -> None:
    class Echo(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.one_hot(x[:, 0].long(), 3).permute(0, 3, 1, 2).float()

    batch = (torch.tensor([[[[0, 1, 2]]]]), torch.tensor([[[0, 1, 1]]]))
    by_keywords = evaluate_model(Echo(), [batch], num_classes=3)
    by_options = evaluate_model(Echo(), [batch], EvalOptions(num_classes=5), num_classes=3)
    assert by_keywords["confusion"] == by_options["confusion"] == [[1, 0, 0], [0, 1, 1],
                                                                   [0, 0, 0]]


def test_a_runner_gives_a_bare_network_its_preprocessing_for_raw_pixels() -> None:
    """What calibration (collect_logits) and evaluation run models through."""
    from fcnseg.models import build_model
    from fcnseg.models.preprocess import BareInput

    options = {"num_classes": 3, "width": 0.0625, "fc_channels": 8}
    torch.manual_seed(0)
    full = build_model("fcn8s", **options).eval()
    with torch.no_grad():
        full.head.score_fr.weight.normal_(0.0, 0.5)  # zero scorers would give zero logits
    bare = build_model("fcn8s", preprocess=False, **options).eval()
    bare.load_state_dict(full.state_dict())
    raw = torch.randint(0, 256, (1, 3, 36, 40), generator=torch.Generator().manual_seed(0))
    got = InferenceRunner(bare, precision="fp32", prepare=False)(raw.float())
    with torch.no_grad():
        assert torch.equal(got, full(raw))
    assert isinstance(bare.preprocess, BareInput)
