"""FCN-GoogLeNet: torchvision's GoogLeNet names and shapes, placement of the skips, every input
size, an independent functional forward, the ImageNet file, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fcnseg.checkpoint import build_model_from_checkpoint, save_checkpoint
from fcnseg.conventions import TORCHVISION_RGB
from fcnseg.data.palette import voc_palette
from fcnseg.models import build_model, fcn8s_googlenet, fcn32s_googlenet, optimize
from fcnseg.models.geometry import CoordMap, output_size

# torchvision's GoogLeNet, as its architecture documents it: Inception(in, ch1x1, ch3x3red,
# ch3x3, ch5x5red, ch5x5, pool_proj) blocks, branch3 with a 3×3 convolution.
BLOCKS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


def _basic(prefix: str, c_in: int, c_out: int, k: int) -> dict[str, tuple[int, ...]]:
    """BasicConv2d: conv (no bias) + bn."""
    return {f"{prefix}.conv.weight": (c_out, c_in, k, k), f"{prefix}.bn.weight": (c_out,),
            f"{prefix}.bn.bias": (c_out,), f"{prefix}.bn.running_mean": (c_out,),
            f"{prefix}.bn.running_var": (c_out,), f"{prefix}.bn.num_batches_tracked": ()}


def torchvision_googlenet_shapes(with_aux_and_fc: bool = True) -> dict[str, tuple[int, ...]]:
    shapes = {**_basic("conv1", 3, 64, 7), **_basic("conv2", 64, 64, 1),
              **_basic("conv3", 64, 192, 3)}
    for name, (c_in, b1, b2r, b2, b3r, b3, b4) in BLOCKS.items():
        shapes.update(_basic(f"{name}.branch1", c_in, b1, 1))
        shapes.update(_basic(f"{name}.branch2.0", c_in, b2r, 1))
        shapes.update(_basic(f"{name}.branch2.1", b2r, b2, 3))
        shapes.update(_basic(f"{name}.branch3.0", c_in, b3r, 1))
        shapes.update(_basic(f"{name}.branch3.1", b3r, b3, 3))
        shapes.update(_basic(f"{name}.branch4.1", c_in, b4, 1))
    if with_aux_and_fc:
        for aux, c_in in (("aux1", 512), ("aux2", 528)):
            shapes.update(_basic(f"{aux}.conv", c_in, 128, 1))
            shapes.update({f"{aux}.fc1.weight": (1024, 2048), f"{aux}.fc1.bias": (1024,),
                           f"{aux}.fc2.weight": (1000, 1024), f"{aux}.fc2.bias": (1000,)})
        shapes.update({"fc.weight": (1000, 1024), "fc.bias": (1000,)})
    return shapes


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BatchNorm statistics; upsampling kept bilinear."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "upscore" in name or name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(("bn.weight", "running_mean", "bn.bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2 + (1.0 if "weight" in name else 0))
            else:
                fan = max(1, t[0].numel()) if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) * (1.5 / fan) ** 0.5)
    return model.eval()


def test_trunk_keys_and_shapes_are_torchvisions_without_aux_and_fc() -> None:
    with torch.device("meta"):
        model = fcn32s_googlenet(21)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = torchvision_googlenet_shapes(with_aux_and_fc=False)
    expected.update({"score_fr.weight": (21, 1024, 1, 1), "score_fr.bias": (21,),
                     "upscore.weight": (21, 21, 63, 63)})
    assert got == expected


def test_fcn8s_adds_zero_scorers_on_inception4e_and_inception3b() -> None:
    model = fcn8s_googlenet(21, width=0.25)
    head = {k: tuple(v.shape) for k, v in model.state_dict().items()
            if k.startswith(("score", "upscore"))}
    assert head == {"score_fr.weight": (21, 256, 1, 1), "score_fr.bias": (21,),
                    "score_inception4e.weight": (21, 208, 1, 1), "score_inception4e.bias": (21,),
                    "score_inception3b.weight": (21, 120, 1, 1), "score_inception3b.bias": (21,),
                    "upscore2.weight": (21, 21, 4, 4),
                    "upscore_inception4e.weight": (21, 21, 3, 3),
                    "upscore8.weight": (21, 21, 15, 15)}
    for name in ("score_fr", "score_pool4", "score_pool3"):  # score_inception4e, ...3b
        assert not getattr(model.head, name).weight.any()
    assert all(not u.weight.requires_grad for u in model.upsampling_layers())


def test_coordinate_maps_follow_the_strided_layers() -> None:
    # conv1 7×7/2 pad 3: x = 2y; 3×3/2 pools: x = 2y + 1 (in the previous scale); 2×2/2: 2y + ½.
    model = fcn8s_googlenet(3, width=0.125)
    assert model.coord_maps() == {8: CoordMap(8, 6), 16: CoordMap(16, 14), 32: CoordMap(32, 22)}


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_every_window_stays_inside_its_upsampling_for_sizes_1_to_512(variant: str) -> None:
    model = build_model(f"fcn{variant}_googlenet", num_classes=3, width=0.125)
    trunk, head = model.trunk, model.head
    for n in range(1, 513):
        padded = max(n, trunk.min_input)
        sizes = {s: output_size(padded, trunk.strided_layers(s)) for s in (8, 16, 32)}
        assert min(sizes.values()) >= 1, n
        chain = [(head.upscore2, 32, sizes[16]), (head.upscore_pool4, 16, sizes[8])]
        current = 32
        for up, src, target in chain:
            if up is None:
                continue
            length = output_size(sizes[src] + 2 * up.edge_pad, [up.up])
            assert up.offset >= 0 and up.offset + target <= length, (n, src)
            current = src // 2
        final = head.upscore
        length = output_size(sizes[current] + 2 * final.edge_pad, [final.up])
        assert final.offset >= 0 and final.offset + n <= length, n


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_forward_gives_the_input_size(variant: str) -> None:
    model = _randomize(build_model(f"fcn{variant}_googlenet", num_classes=4, width=0.125))
    with torch.no_grad():
        for h, w in ((1, 1), (3, 14), (15, 15), (16, 33), (64, 97), (130, 47)):
            assert model(torch.randn(1, 3, h, w)).shape == (1, 4, h, w)


# -- an independent functional GoogLeNet FCN ---------------------------------------------------
def _basic_f(sd: dict, prefix: str, x: torch.Tensor, stride: int = 1, padding: int = 0
             ) -> torch.Tensor:
    x = F.conv2d(x, sd[f"{prefix}.conv.weight"], stride=stride, padding=padding)
    x = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"],
                     sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 0.001)
    return F.relu(x)


def _inception_f(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    b1 = _basic_f(sd, f"{name}.branch1", x)
    b2 = _basic_f(sd, f"{name}.branch2.1", _basic_f(sd, f"{name}.branch2.0", x), padding=1)
    b3 = _basic_f(sd, f"{name}.branch3.1", _basic_f(sd, f"{name}.branch3.0", x), padding=1)
    b4 = _basic_f(sd, f"{name}.branch4.1", F.max_pool2d(x, 3, 1, 1, ceil_mode=True))
    return torch.cat([b1, b2, b3, b4], 1)


def _bilinear_up(x: torch.Tensor, kernel: int, stride: int, offset: int, size) -> torch.Tensor:
    """Edge-pad by one, bilinear deconvolution, window at ``offset``."""
    f = (kernel + 1) // 2
    c = f - 1 if kernel % 2 == 1 else f - 0.5
    axis = 1 - (torch.arange(kernel, dtype=torch.float64) - c).abs() / f
    n = x.shape[1]
    w = torch.zeros(n, n, kernel, kernel)
    w[range(n), range(n)] = torch.outer(axis, axis).float()
    y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w, stride=stride)
    return y[..., offset : offset + size[0], offset : offset + size[1]]


def _functional_fcn_googlenet(sd: dict, x: torch.Tensor, variant: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = x * (std / 0.5).view(1, 3, 1, 1) + ((mean - 0.5) / 0.5).view(1, 3, 1, 1)
    y = _basic_f(sd, "conv1", x, stride=2, padding=3)
    y = F.max_pool2d(y, 3, 2, ceil_mode=True)
    y = _basic_f(sd, "conv3", _basic_f(sd, "conv2", y), padding=1)
    y = F.max_pool2d(y, 3, 2, ceil_mode=True)
    s8 = _inception_f(sd, "inception3b", _inception_f(sd, "inception3a", y))
    y = F.max_pool2d(s8, 3, 2, ceil_mode=True)
    for name in ("4a", "4b", "4c", "4d", "4e"):
        y = _inception_f(sd, f"inception{name}", y)
    s16 = y
    y = F.max_pool2d(s16, 2, 2, ceil_mode=True)
    s32 = _inception_f(sd, "inception5b", _inception_f(sd, "inception5a", y))
    score = F.conv2d(s32, sd["score_fr.weight"], sd["score_fr.bias"])
    # Maps: inception5b 32i + 22, 4e 16i + 14, 3b 8i + 6. Edge padding moves a map's origin
    # back one element; a (k, s) deconvolution maps u ↦ (u − (k−1)/2)/s. 32 → 1: kernel 63
    # (whole-pixel offset), output origin 22 − 32 − 31 = −41 → window at 41.
    if variant == "32s":
        return _bilinear_up(score, 63, 32, 41, (h, w))
    # 32 → 16: half-pixel offset, kernel 4: origin (22 − 32) − 32·1.5/2 = −34, (14 + 34)/16 = 3.
    score = _bilinear_up(score, 4, 2, 3, s16.shape[-2:]) + F.conv2d(
        s16, sd["score_inception4e.weight"], sd["score_inception4e.bias"])
    if variant == "16s":  # 16 → 1: kernel 31, origin (14 − 16) − 15 = −17
        return _bilinear_up(score, 31, 16, 17, (h, w))
    # 16 → 8: kernel 3, origin (14 − 16) − 16·1/2 = −10, (6 + 10)/8 = 2; 8 → 1: kernel 15,
    # origin (6 − 8) − 7 = −9.
    score = _bilinear_up(score, 3, 2, 2, s8.shape[-2:]) + F.conv2d(
        s8, sd["score_inception3b.weight"], sd["score_inception3b.bias"])
    return _bilinear_up(score, 15, 8, 9, (h, w))


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_forward_agrees_with_an_independent_functional_implementation(variant: str) -> None:
    model = _randomize(build_model(f"fcn{variant}_googlenet", num_classes=3, width=0.125,
                                   preprocess=False), 1)
    x = torch.rand(2, 3, 70, 53) * 2 - 0.5
    with torch.no_grad():
        got = model(x)
        expected = _functional_fcn_googlenet(model.state_dict(), x, variant)
    scale = float(expected.abs().max())
    assert scale > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * scale)


def test_optimized_forward_agrees_with_the_plain_one() -> None:
    model = _randomize(fcn8s_googlenet(3, width=0.125), 4)
    x = torch.rand(1, 3, 61, 77)
    with torch.no_grad():
        plain = model(x)
        fast = optimize(model, "inference")(x)
    assert any("separable" in o for o in model.optimizations)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * float(plain.abs().max()))


def test_transform_input_off_feeds_the_input_unchanged() -> None:
    on = _randomize(fcn32s_googlenet(3, width=0.125), 2)
    off = fcn32s_googlenet(3, width=0.125, transform_input=False).eval()
    off.load_state_dict(on.state_dict())
    on.preprocess = off.preprocess = torch.nn.Identity()  # the networks on normalised input
    x = torch.rand(1, 3, 40, 40)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    scaled = x * (std / 0.5).view(1, 3, 1, 1) + ((mean - 0.5) / 0.5).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = on(x)
        torch.testing.assert_close(off(scaled), expected, rtol=1e-5,
                                   atol=1e-5 * float(expected.abs().max()))


def _torchvision_file(path: Path, width: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A googlenet file in torchvision's layout (aux1, aux2, fc included) at ``width``."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in torchvision_googlenet_shapes().items():
        if key.startswith(("aux", "fc")):
            sd[key] = torch.randn(shape, generator=g)  # dropped: full size is fine
            continue
        shape = tuple(max(1, round(d * width)) if i < 2 and d != 3 else d
                      for i, d in enumerate(shape))
        sd[key] = torch.tensor(7) if not shape else torch.randn(shape, generator=g).abs() + 0.1
    torch.save(sd, path)
    return sd


def test_torchvision_googlenet_file_loads_without_aux_and_fc(tmp_path: Path) -> None:
    path = tmp_path / "googlenet-1378be20.pth"
    sd = _torchvision_file(path, 0.125)
    model = build_model("fcn8s_googlenet", num_classes=5, width=0.125, backbone_weights=path)
    own = model.state_dict()
    for key in ("conv1.conv.weight", "inception4e.branch3.1.bn.running_var",
                "inception5b.branch4.1.conv.weight"):
        assert torch.equal(own[key], sd[key]), key
    assert not any(k.startswith(("aux", "fc.")) for k in own)
    assert model.input_convention == TORCHVISION_RGB


def test_a_file_of_another_net_is_refused_with_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
        build_model("fcn32s_googlenet", width=0.125, backbone_weights=path)


@pytest.mark.parametrize("variant", ["32s", "8s"])
def test_checkpoint_round_trip(tmp_path: Path, variant: str) -> None:
    model = _randomize(build_model(f"fcn{variant}_googlenet", num_classes=3, width=0.125), 3)
    path = save_checkpoint(tmp_path / "googlenet.pt", model, class_names=["a", "b", "c"],
                           palette=voc_palette()[:3].tolist())
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.arch == f"fcn{variant}_googlenet"
    assert rebuilt.build_kwargs == {"num_classes": 3, "width": 0.125, "transform_input": True}
    x = torch.rand(1, 3, 45, 38)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
