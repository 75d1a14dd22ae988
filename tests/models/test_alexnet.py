"""FCN-AlexNet: the reference's layers and names, its crop at every input size, an independent
functional forward, torchvision's and Caffe's ImageNet files, checkpoints and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import export_description

from fcnseg.checkpoint import build_model_from_checkpoint, save_checkpoint
from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB
from fcnseg.data.palette import voc_palette
from fcnseg.models import build_model, fcn_alexnet, optimize
from fcnseg.models.geometry import output_size

# The Caffe net's weighted layers, full size (voc-fcn-alexnet: conv2/4/5 in two groups).
CAFFE_SHAPES = {
    "conv1.weight": (96, 3, 11, 11), "conv1.bias": (96,),
    "conv2.weight": (256, 48, 5, 5), "conv2.bias": (256,),
    "conv3.weight": (384, 256, 3, 3), "conv3.bias": (384,),
    "conv4.weight": (384, 192, 3, 3), "conv4.bias": (384,),
    "conv5.weight": (256, 192, 3, 3), "conv5.bias": (256,),
    "fc6.weight": (4096, 256, 6, 6), "fc6.bias": (4096,),
    "fc7.weight": (4096, 4096, 1, 1), "fc7.bias": (4096,),
    "score_fr.weight": (21, 4096, 1, 1), "score_fr.bias": (21,),
    "upscore.weight": (21, 21, 63, 63),
}

# torchvision's alexnet state dict, as documented by its architecture (AlexNet "one weird
# trick" variant): features = [Conv(3,64,11,4,2), ReLU, MaxPool(3,2), Conv(64,192,5,p2), ReLU,
# MaxPool, Conv(192,384,3,p1), ReLU, Conv(384,256,3,p1), ReLU, Conv(256,256,3,p1), ReLU, MaxPool],
# avgpool (6, 6), classifier = [Dropout, Linear(9216,4096), ReLU, Dropout, Linear(4096,4096),
# ReLU, Linear(4096,1000)].
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}

SMALL = {"width": 0.125, "fc_channels": 32}  # conv channels 12/32/48/48/32


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere but the upsampling (zero scorers would hide every mistake)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "upscore" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 / max(1, p[0].numel()) ** 0.5))
    return model.eval()


def test_state_dict_has_the_reference_layers_with_their_shapes() -> None:
    with torch.device("meta"):
        model = fcn_alexnet(21)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == CAFFE_SHAPES


def test_torchvision_variant_has_torchvision_names_and_shapes() -> None:
    with torch.device("meta"):
        model = fcn_alexnet(21, variant="torchvision")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {f"backbone.{k}": v for k, v in TORCHVISION_ALEXNET.items()
                if k.startswith("features.")}
    expected.update({"backbone.fc6.weight": (4096, 256, 6, 6), "backbone.fc6.bias": (4096,),
                     "backbone.fc7.weight": (4096, 4096, 1, 1), "backbone.fc7.bias": (4096,),
                     "score_fr.weight": (21, 4096, 1, 1), "score_fr.bias": (21,),
                     "upscore.weight": (21, 21, 63, 63)})
    assert got == expected
    assert model.input_convention == TORCHVISION_RGB


def test_crop_is_the_reference_offset_and_upscore_is_63_by_32() -> None:
    model = fcn_alexnet(21, **SMALL)
    # conv1 pad 100 → x = 4y − 95; pools x = 2y + 1 (scales 8, 16, 32); fc6 (6×6) → 32z + 13;
    # the 63/32 deconvolution maps u ↦ (u + 18)·1: the output starts 18 pixels before the input.
    assert model.offsets == {"final": 18}
    upscore = model.head.upscore.up
    assert upscore.kernel_size == (63, 63) and upscore.stride == (32, 32)
    assert not model.head.upscore.up.weight.requires_grad


@pytest.mark.parametrize("variant", ["caffe", "torchvision"])
def test_crop_stays_in_bounds_for_every_input_size_1_to_512(variant: str) -> None:
    model = fcn_alexnet(21, variant=variant, **SMALL)
    layers = model.trunk.spatial_layers()
    offset = model.head.upscore.offset
    for n in range(1, 513):
        score = output_size(n, layers)
        assert score >= 1, n
        upsampled = output_size(score, [model.head.upscore.up])
        assert offset >= 0 and offset + n <= upsampled, (n, score, upsampled)


@pytest.mark.parametrize("variant", ["caffe", "torchvision"])
def test_forward_gives_the_input_size(variant: str) -> None:
    model = _randomize(fcn_alexnet(5, variant=variant, **SMALL))
    with torch.no_grad():
        for h, w in ((1, 1), (2, 7), (31, 32), (33, 64), (97, 130), (227, 200), (512, 17)):
            assert model(torch.randn(1, 3, h, w)).shape == (1, 5, h, w)


def _bilinear(size: int) -> torch.Tensor:
    f = (size + 1) // 2
    c = f - 1 if size % 2 == 1 else f - 0.5
    axis = 1 - (torch.arange(size, dtype=torch.float64) - c).abs() / f
    return torch.outer(axis, axis).float()


def _lrn(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75) -> torch.Tensor:
    # Caffe's ACROSS_CHANNELS LRN: x / (1 + alpha/size · Σ x² over `size` neighbouring channels)^β.
    sq = F.pad(x * x, (0, 0, 0, 0, size // 2, size // 2))
    total = sum(sq[:, i : i + x.shape[1]] for i in range(size))
    return x / (1 + alpha / size * total) ** beta


def _functional_fcn_alexnet(sd: dict[str, torch.Tensor], x: torch.Tensor, caffe: bool
                            ) -> torch.Tensor:
    names = ["conv1", "conv2", "conv3", "conv4", "conv5"] if caffe else \
        [f"backbone.features.{i}" for i in (0, 3, 6, 8, 10)]
    fc = "" if caffe else "backbone."
    groups = [1, 2, 1, 2, 2] if caffe else [1] * 5
    w = [sd[f"{n}.weight"] for n in names]
    b = [sd[f"{n}.bias"] for n in names]
    pool = lambda t: F.max_pool2d(t, 3, 2, ceil_mode=True)  # noqa: E731
    y = F.relu(F.conv2d(x, w[0], b[0], stride=4, padding=100, groups=groups[0]))
    y = _lrn(pool(y)) if caffe else pool(y)
    y = F.relu(F.conv2d(y, w[1], b[1], padding=2, groups=groups[1]))
    y = _lrn(pool(y)) if caffe else pool(y)
    y = F.relu(F.conv2d(y, w[2], b[2], padding=1, groups=groups[2]))
    y = F.relu(F.conv2d(y, w[3], b[3], padding=1, groups=groups[3]))
    y = pool(F.relu(F.conv2d(y, w[4], b[4], padding=1, groups=groups[4])))
    y = F.relu(F.conv2d(y, sd[f"{fc}fc6.weight"], sd[f"{fc}fc6.bias"]))
    y = F.relu(F.conv2d(y, sd[f"{fc}fc7.weight"], sd[f"{fc}fc7.bias"]))
    y = F.conv2d(y, sd["score_fr.weight"], sd["score_fr.bias"])
    classes = y.shape[1]
    up = torch.zeros(classes, classes, 63, 63)
    up[range(classes), range(classes)] = _bilinear(63)
    y = F.conv_transpose2d(y, up, stride=32)
    h, w_ = x.shape[-2:]
    return y[..., 18 : 18 + h, 18 : 18 + w_]  # the reference's crop


@pytest.mark.parametrize("variant", ["caffe", "torchvision"])
def test_forward_agrees_with_an_independent_functional_implementation(variant: str) -> None:
    model = _randomize(fcn_alexnet(4, variant=variant, **SMALL), seed=1)
    model.preprocess = torch.nn.Identity()  # the bare network, as the functional one
    x = torch.randn(2, 3, 75, 90) * 50
    with torch.no_grad():
        got = model(x)
        expected = _functional_fcn_alexnet(model.state_dict(), x, variant == "caffe")
    scale = expected.abs().max()
    assert scale > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(scale))


def test_optimized_forward_agrees_with_the_plain_one() -> None:
    model = _randomize(fcn_alexnet(4, **SMALL), seed=2)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        plain = model(x)
        fast = optimize(model, "inference")(x)
    assert any("fc6" in o for o in model.optimizations)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * float(plain.abs().max()))


def test_build_model_by_name_records_the_arguments() -> None:
    model = build_model("fcn-alexnet", num_classes=3, variant="torchvision", **SMALL)
    assert model.arch == "fcn_alexnet"
    assert model.build_kwargs == {"num_classes": 3, "variant": "torchvision", "dropout": 0.5,
                                  **SMALL}
    assert build_model("fcn_alexnet", num_classes=3, **SMALL).input_convention == CAFFE_BGR


def test_odd_channels_in_a_grouped_layer_are_refused() -> None:
    with pytest.raises(ValueError, match="groups"):
        fcn_alexnet(3, width=0.01)


@pytest.mark.parametrize("variant", ["caffe", "torchvision"])
def test_checkpoint_round_trip(tmp_path: Path, variant: str) -> None:
    model = _randomize(fcn_alexnet(3, variant=variant, **SMALL), seed=3)
    path = save_checkpoint(tmp_path / "alexnet.pt", model, class_names=["a", "b", "c"],
                           palette=voc_palette()[:3].tolist())
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.arch == "fcn_alexnet" and rebuilt.build_kwargs["variant"] == variant
    assert rebuilt.input_convention == model.input_convention
    x = torch.randn(1, 3, 40, 50)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def _torchvision_file(path: Path, width: float, fc: int, seed: int = 0) -> dict:
    """torchvision's alexnet layout at ``width`` (channels scaled, names and structure kept)."""
    g = torch.Generator().manual_seed(seed)
    chans = {"features.0": 64, "features.3": 192, "features.6": 384, "features.8": 256,
             "features.10": 256}
    sd = {}
    in_ch = 3
    for name, ch in chans.items():
        ch = round(ch * width)
        k = TORCHVISION_ALEXNET[f"{name}.weight"][-1]
        sd[f"{name}.weight"] = torch.randn(ch, in_ch, k, k, generator=g)
        sd[f"{name}.bias"] = torch.randn(ch, generator=g)
        in_ch = ch
    for name, n_in, n_out in (("classifier.1", in_ch * 36, fc), ("classifier.4", fc, fc),
                              ("classifier.6", fc, 1000)):
        sd[f"{name}.weight"] = torch.randn(n_out, n_in, generator=g)
        sd[f"{name}.bias"] = torch.randn(n_out, generator=g)
    torch.save(sd, path)
    return sd


def test_torchvision_alexnet_file_loads_through_backbone_weights(tmp_path: Path) -> None:
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    sd = _torchvision_file(path, 0.25, 16)
    model = build_model("fcn_alexnet", num_classes=3, variant="torchvision", width=0.25,
                        fc_channels=16, backbone_weights=path)
    own = model.state_dict()
    assert torch.equal(own["backbone.features.6.weight"], sd["features.6.weight"])
    assert torch.equal(own["backbone.fc6.weight"], sd["classifier.1.weight"].view(16, 64, 6, 6))
    assert torch.equal(own["backbone.fc7.weight"], sd["classifier.4.weight"].view(16, 16, 1, 1))
    assert model.input_convention == TORCHVISION_RGB
    assert "backbone_weights" not in model.build_kwargs


def test_torchvision_file_into_the_caffe_variant_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alexnet.pth"
    _torchvision_file(path, 0.25, 16)
    with pytest.raises(ValueError, match="conv1"):
        build_model("fcn_alexnet", variant="caffe", width=0.25, fc_channels=16,
                    backbone_weights=path)


def test_onnx_export_at_small_width(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from fcnseg.export import export_onnx

    model = _randomize(fcn_alexnet(3, **SMALL), seed=4)
    export_onnx(model, tmp_path / "alexnet.onnx", description=export_description(model),
                sample_size=(48, 56))
    session = ort.InferenceSession(str(tmp_path / "alexnet.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 37, 70)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert got.shape == (1, 3, 37, 70)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
