"""Regenerate the legacy checkpoints (kept for reference; the files in this folder were written
by fcnseg 6b518fc, before the trunk/head redesign, and must keep loading unchanged).

    PYTHONPATH=src python tests/data/legacy_checkpoints/make_legacy_checkpoints.py

Each model is tiny (2 classes; VGG16 at width 1/64 with 4 fc channels, ResNets with 1-2 stem
channels), its parameters and BatchNorm statistics are moved off their initial values, and its
outputs for ``inputs.pt`` are stored in ``expected.pt``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fcnseg.checkpoint import save_checkpoint
from fcnseg.models import build_model, fcn_from_backbone

HERE = Path(__file__).parent
CLASSES = ["background", "thing"]
PALETTE = [[0, 0, 0], [128, 0, 0]]
VGG = {"num_classes": 2, "width": 1 / 64, "fc_channels": 4}


class LegacyBackbone(nn.Module):
    """Three stride-2 conv stages after a stride-4 stem: features at strides 8, 16, 32."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 2, 3, stride=4, padding=1)
        self.s8 = nn.Conv2d(2, 3, 3, stride=2, padding=1)
        self.s16 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.s32 = nn.Conv2d(4, 5, 3, stride=2, padding=1)
        self.out_channels = {8: 3, 16: 4, 32: 5}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        c8 = torch.relu(self.s8(torch.relu(self.stem(x))))
        c16 = torch.relu(self.s16(c8))
        return {8: c8, 16: c16, 32: torch.relu(self.s32(c16))}


MODELS = {
    **{f"{arch}_{g}": (arch, {**VGG, "geometry": g})
       for arch in ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce") for g in ("caffe", "same")},
    "fcn8s_vgg16_bn_same": ("fcn8s_vgg16_bn", {**VGG, "geometry": "same"}),
    "fcn16s_vgg16_bn_caffe": ("fcn16s_vgg16_bn", {**VGG, "geometry": "caffe"}),
    "fcn8s_resnet18": ("fcn8s_resnet18", {"num_classes": 2, "base_channels": 2}),
    "fcn8s_resnet18_dilated": ("fcn8s_resnet18", {"num_classes": 2, "base_channels": 2,
                                                  "replace_stride_with_dilation":
                                                  [False, False, True]}),
    "fcn_resnet50": ("fcn_resnet50", {"num_classes": 2, "base_channels": 1, "aux_loss": True}),
}


def moved(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # the frozen bilinear upsampling keeps its kernel
                p.add_(torch.randn(p.shape, generator=g) * 0.3)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


def main() -> None:
    torch.manual_seed(0)
    inputs = {"a": torch.randn(1, 3, 29, 35), "b": torch.randn(1, 3, 22, 17)}
    expected = {}
    models = {name: build_model(arch, **kw) for name, (arch, kw) in MODELS.items()}
    models["custom_8s"] = fcn_from_backbone(LegacyBackbone(), 2, variant="8s")
    for seed, (name, model) in enumerate(models.items()):
        moved(model, seed)
        save_checkpoint(HERE / f"{name}.pt", model, class_names=CLASSES, palette=PALETTE)
        with torch.no_grad():
            for key, x in inputs.items():
                expected[f"{name}/{key}"] = model(x)
    torch.save(inputs, HERE / "inputs.pt")
    torch.save(expected, HERE / "expected.pt")


if __name__ == "__main__":
    main()
