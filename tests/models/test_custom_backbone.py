"""Bring-your-own backbone: the protocol, checkpoints that rebuild it, and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from floats import assert_labels_match
from PIL import Image
from torch import nn

from fcnseg.checkpoint import (
    CheckpointError,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from fcnseg.models import (
    BackboneError,
    allow_factory_modules,
    backbone_factory,
    factories,
    fcn_from_backbone,
    fcn_from_factory,
)
from fcnseg.models.factories import ALLOW_ENV, factory_path, resolve_factory
from fcnseg.models.geometry import CoordMap

CLASSES = ["background", "square", "disc"]
PALETTE = [[0, 0, 0], [128, 0, 0], [0, 128, 0]]


class TinyBackbone(nn.Module):
    """Five stride-2 conv–BN–ReLU stages; returns the stride-8, 16 and 32 maps as a tuple."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        chans = [3, width, width, 2 * width, 4 * width, 8 * width]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(b), nn.ReLU(inplace=True))
            for a, b in zip(chans, chans[1:], strict=False))
        self.out_channels = {8: 2 * width, 16: 4 * width, 32: 8 * width}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return tuple(feats[2:])


@backbone_factory
def make_tiny_backbone(width: int = 8) -> TinyBackbone:
    return TinyBackbone(width)


def perturbed(model: nn.Module) -> nn.Module:
    """The model with every parameter moved off its initial value (zero scorers included)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def save(model: nn.Module, path: Path) -> Path:
    return save_checkpoint(path, model, class_names=CLASSES, palette=PALETTE)


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_custom_backbone_output_matches_input_size(variant: str) -> None:
    model = perturbed(fcn_from_backbone(TinyBackbone(), 3, variant=variant))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 45, 70)).shape == (2, 3, 45, 70)


def test_checkpoint_rebuilds_backbone_from_factory(tmp_path: Path) -> None:
    model = perturbed(fcn_from_factory(make_tiny_backbone, 3, factory_kwargs={"width": 4}))
    path = save(model, tmp_path / "custom.pt")
    recorded = load_checkpoint(path)["model"]["build_kwargs"]
    assert recorded["factory"].endswith(":make_tiny_backbone")
    assert recorded["factory_kwargs"] == {"width": 4}
    rebuilt = build_model_from_checkpoint(path)
    assert rebuilt.trunk.out_channels == {8: 8, 16: 16, 32: 32}
    x = torch.randn(1, 3, 50, 38)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_the_builder_takes_a_marked_factory_function_as_its_path() -> None:
    from fcnseg.models import build_model

    torch.manual_seed(0)
    by_function = build_model("fcn_custom_backbone", num_classes=3,
                              factory=make_tiny_backbone, factory_kwargs={"width": 4})
    torch.manual_seed(0)
    by_path = build_model("fcn_custom_backbone", num_classes=3,
                          factory=factory_path(make_tiny_backbone), factory_kwargs={"width": 4})
    assert by_function.identity.build_kwargs["factory"] == factory_path(make_tiny_backbone)
    for (key, a), (_, b) in zip(by_function.state_dict().items(),
                                by_path.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


def test_checkpoint_without_factory_asks_for_the_backbone(tmp_path: Path) -> None:
    model = perturbed(fcn_from_backbone(TinyBackbone(), 3, variant="16s"))
    path = save(model, tmp_path / "nofactory.pt")
    with pytest.raises(CheckpointError, match=r"nofactory\.pt.*backbone=my_backbone"):
        build_model_from_checkpoint(path)
    rebuilt = build_model_from_checkpoint(path, backbone=TinyBackbone())
    x = torch.randn(1, 3, 33, 33)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_checkpoint_cannot_name_an_unmarked_function_even_when_allowed(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "os")
    model = fcn_from_backbone(TinyBackbone(), 3)
    ckpt = load_checkpoint(save(model, tmp_path / "tampered.pt"))
    ckpt["model"]["build_kwargs"]["factory"] = "os:getcwd"
    with pytest.raises(CheckpointError, match="not marked with @fcnseg.models.backbone_factory"):
        build_model_from_checkpoint(ckpt)


def test_unimportable_allowed_factory_fails_when_building(monkeypatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "no_such_pkg_xyz")
    with pytest.raises(BackboneError, match="cannot import 'no_such_pkg_xyz.mod'"):
        fcn_from_backbone(TinyBackbone(), 3, factory="no_such_pkg_xyz.mod:make")


# -- which modules a checkpoint may make us import ---------------------------------------------
EVIL = """
from pathlib import Path
Path("imported.marker").write_text("evilmod ran")
from fcnseg.models import backbone_factory
@backbone_factory
def make():
    raise SystemExit("never called in these tests")
"""


@pytest.fixture
def no_allowed_modules(monkeypatch) -> None:
    monkeypatch.setattr(factories, "_ALLOWED", set())
    monkeypatch.delenv(ALLOW_ENV, raising=False)


def _checkpoint_naming(factory: str, path: Path) -> Path:
    ckpt = torch.load(save(fcn_from_backbone(TinyBackbone(), 3), path), weights_only=True)
    ckpt["model"]["build_kwargs"]["factory"] = factory
    torch.save(ckpt, path)
    return path


def _predict_in(folder: Path, checkpoint: Path, *extra: str) -> subprocess.CompletedProcess:
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "in.png")
    env = {k: v for k, v in os.environ.items() if k != ALLOW_ENV}
    return subprocess.run([sys.executable, "-m", "fcnseg", "predict", "--checkpoint",
                           str(checkpoint), "in.png", "--out", "out", "--no-progress", *extra],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_checkpoint_naming_a_module_in_the_current_folder_does_not_import_it(
        tmp_path: Path) -> None:
    (tmp_path / "evilmod.py").write_text(EVIL)
    checkpoint = _checkpoint_naming("evilmod:make", tmp_path / "evil.pt")
    result = _predict_in(tmp_path, checkpoint)
    assert result.returncode == 2
    assert not (tmp_path / "imported.marker").exists()
    assert "evil.pt" in result.stderr and "'evilmod:make'" in result.stderr
    assert "--allow-factory evilmod" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_allow_factory_lets_the_named_module_be_imported(tmp_path: Path) -> None:
    (tmp_path / "evilmod.py").write_text(EVIL)
    checkpoint = _checkpoint_naming("evilmod:make", tmp_path / "evil.pt")
    result = _predict_in(tmp_path, checkpoint, "--allow-factory", "evilmod")
    assert (tmp_path / "imported.marker").exists()  # allowed: imported (and then refused to run)
    assert "never called" in result.stderr


def test_a_standard_library_module_is_not_imported(no_allowed_modules) -> None:
    assert "this" not in sys.modules
    with pytest.raises(BackboneError, match=r"'this:x' is not registered.*--allow-factory this"):
        resolve_factory("this:x")
    assert "this" not in sys.modules


def test_allowed_module_and_its_submodules_resolve(tmp_path: Path, monkeypatch,
                                                   no_allowed_modules) -> None:
    pkg = tmp_path / "mybackbones_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("from fcnseg.models import backbone_factory\n"
                                 "@backbone_factory\ndef make(width=4):\n    return width\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackboneError, match="not allowed"):
        resolve_factory("mybackbones_pkg.nets:make")
    allow_factory_modules("mybackbones_pkg")
    assert resolve_factory("mybackbones_pkg.nets:make")(width=2) == 2


def test_allow_list_from_the_environment(tmp_path: Path, monkeypatch, no_allowed_modules) -> None:
    (tmp_path / "envallowed_mod.py").write_text(
        "from fcnseg.models import backbone_factory\n@backbone_factory\ndef make():\n"
        "    return 'built'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ALLOW_ENV, "other, envallowed_mod")
    assert resolve_factory("envallowed_mod:make")() == "built"


def test_imported_factory_resolves_without_an_allow_list(no_allowed_modules) -> None:
    # This test module imported itself, so @backbone_factory registered make_tiny_backbone.
    assert resolve_factory(factory_path(make_tiny_backbone)) is make_tiny_backbone


def test_backbone_without_out_channels_is_rejected() -> None:
    with pytest.raises(BackboneError, match="expected an out_channels dict"):
        fcn_from_backbone(nn.Conv2d(3, 8, 3), 3)


def test_missing_level_is_named() -> None:
    backbone = TinyBackbone()
    backbone.out_channels = {16: 16, 32: 32}
    with pytest.raises(BackboneError, match=r"FCN-8s needs .*lacks \[8\]"):
        fcn_from_backbone(backbone, 3, variant="8s")
    assert fcn_from_backbone(backbone, 3, variant="16s").strides == (32, 16)


def test_wrong_channel_count_is_reported_at_forward() -> None:
    backbone = TinyBackbone()
    backbone.out_channels = {8: 16, 16: 99, 32: 64}
    model = fcn_from_backbone(backbone, 3).eval()
    with pytest.raises(BackboneError, match="returned 32 channels at stride 16.*declares 99"):
        model(torch.randn(1, 3, 32, 32))


# -- a custom backbone through the whole toolkit ---------------------------------------------------
SYNTH = {"name": "synthetic", "num_images": 8, "size": 64, "seed": 5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """FCN-8s on TinyBackbone, trained briefly on synthetic scenes and saved as a checkpoint."""
    from torch.utils.data import DataLoader

    from fcnseg.data import build_dataset, build_train_transform, collate_segmentation
    from fcnseg.engine.config import OptimConfig
    from fcnseg.engine.optim import build_optimizer, segmentation_loss

    torch.manual_seed(0)
    plain = build_dataset(SYNTH, split="train")
    model = fcn_from_factory(make_tiny_backbone, plain.num_classes, factory_kwargs={"width": 8})
    data = build_dataset(SYNTH, split="train",
                         transform=build_train_transform(flip=True))
    loader = DataLoader(data, batch_size=4, shuffle=True, collate_fn=collate_segmentation,
                        generator=torch.Generator().manual_seed(0))
    optimizer = build_optimizer(model, OptimConfig(name="adam", lr=1e-2, bias_lr_mult=1.0))
    model.train()
    losses = []
    for _ in range(6):
        for images, labels in loader:
            loss = segmentation_loss(model(images), labels, reduction="mean")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    path = save_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", model.eval(),
                           class_names=plain.classes, palette=plain.palette,
                           ignore_index=plain.ignore_index)
    return {"model": model, "path": path, "losses": losses, "classes": plain.classes}


def test_custom_backbone_trains(trained: dict) -> None:
    losses = trained["losses"]
    assert sum(losses[-4:]) < 0.8 * sum(losses[:4])


def test_custom_backbone_evaluates_from_checkpoint(trained: dict) -> None:
    from torch.utils.data import DataLoader

    from fcnseg.data import build_dataset, build_eval_transform, collate_segmentation
    from fcnseg.engine.evaluation import evaluate_model

    model = build_model_from_checkpoint(trained["path"])
    val = build_dataset(SYNTH, split="val", transform=build_eval_transform())
    loader = DataLoader(val, batch_size=2, collate_fn=collate_segmentation)
    result = evaluate_model(model, loader, num_classes=len(trained["classes"]))
    correct = valid = 0
    with torch.no_grad():
        for images, labels in loader:
            keep = labels != 255
            correct += int(((model(images).argmax(1) == labels) & keep).sum())
            valid += int(keep.sum())
    assert result["num_images"] == len(val)
    assert result["pixel_acc"] == pytest.approx(correct / valid)


def test_custom_backbone_predicts_from_checkpoint(trained: dict) -> None:
    from fcnseg.data import build_dataset
    from fcnseg.inference import Segmenter

    segmenter = Segmenter.from_checkpoint(trained["path"])
    image, _ = build_dataset(SYNTH, split="val")[0]
    prediction = segmenter.predict(image)
    x = torch.from_numpy(image).permute(2, 0, 1)
    with torch.no_grad():
        logits = trained["model"](x[None])[0]
    assert prediction.label.shape == image.shape[:2]
    assert_labels_match(prediction.label, logits.argmax(0).numpy(), logits)
    assert segmenter.arch == "fcn_custom_backbone"


def test_custom_backbone_exports_to_onnx_and_torchscript(trained: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from fcnseg.export import export_onnx, export_torchscript, read_onnx_metadata
    from fcnseg.inference import Segmenter

    segmenter = Segmenter.from_checkpoint(trained["path"])
    onnx_result = export_onnx(segmenter.model, tmp_path / "custom.onnx",
                              description=segmenter.describe(), sample_size=(64, 64))
    assert all(c.max_abs_diff < 1e-3 for c in onnx_result.checks)
    assert read_onnx_metadata(tmp_path / "custom.onnx")["arch"] == "fcn_custom_backbone"
    ts_result = export_torchscript(segmenter.model, tmp_path / "custom.ts",
                                   description=segmenter.describe(), sample_size=(48, 40))
    assert len(ts_result.checks) == 2


def test_custom_backbone_serves(trained: dict) -> None:
    pytest.importorskip("fastapi")
    import io

    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from fcnseg.data import build_dataset
    from fcnseg.inference import Segmenter
    from fcnseg.serve import create_app

    segmenter = Segmenter.from_checkpoint(trained["path"])
    image, _ = build_dataset(SYNTH, split="val")[1]
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    with TestClient(create_app(segmenter)) as client:
        r = client.post("/v1/segment", files={"image": ("a.png", png.getvalue(), "image/png")})
    assert r.status_code == 200
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content))),
                                  segmenter.predict(image).label)


class PoolBackbone(nn.Module):
    """VGG-style: 3×3 convs and 2×2/2 pools, so stride-s features sit at s·i + (s - 1) / 2;
    declares that through coord_maps."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1)
                                   for i in range(5))
        self.out_channels = {8: 4, 16: 4, 32: 4}
        self.coord_maps = {s: CoordMap(s, (s - 1) / 2) for s in (8, 16, 32)}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        feats = {}
        for i, conv in enumerate(self.convs):
            x = F.max_pool2d(torch.relu(conv(x)), 2, ceil_mode=True)
            feats[2 ** (i + 1)] = x
        return {s: feats[s] for s in (8, 16, 32)}


def test_declared_coord_maps_place_the_upsampling() -> None:
    model = fcn_from_backbone(PoolBackbone(), 2)
    # Half-pixel offsets between pooled grids take the even bilinear kernels.
    assert [m.kernel_size[0] for m in model.upsampling_layers()] == [4, 4, 16]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 50, 41)).shape == (1, 2, 50, 41)
