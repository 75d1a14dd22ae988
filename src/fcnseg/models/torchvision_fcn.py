"""torchvision's FCN variant (``fcn_resnet50`` / ``fcn_resnet101``) keeps its state-dict keys here.
So its published checkpoints load unchanged (:func:`load_torchvision_fcn_weights`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.conventions import TORCHVISION_RGB, InputConvention, get_convention
from fcnseg.models.identity import DescribedModel, ModelIdentity
from fcnseg.models.preprocess import Preprocess
from fcnseg.models.resnet import ResNet
from fcnseg.models.weights import load_exactly, read_state_dict
from fcnseg.utils.typing import PathLike


class FCNHead(nn.Sequential):
    """torchvision's FCN head: 3×3 conv (no bias) to ``in_channels // 4`` – BN – ReLU –
    Dropout(0.1) – 1×1 conv to ``channels``. Indices 0, 1, 4 hold the parameters."""

    def __init__(self, in_channels: int, channels: int) -> None:
        inter = in_channels // 4
        super().__init__(nn.Conv2d(in_channels, inter, 3, padding=1, bias=False),
                         nn.BatchNorm2d(inter), nn.ReLU(), nn.Dropout(0.1),
                         nn.Conv2d(inter, channels, 1))


class TorchvisionFCN(DescribedModel, nn.Module):
    """FCN on a dilated ResNet of ``depth``: ``classifier`` (an FCNHead) scores layer4, resized
    bilinearly to the input.

    ``aux_loss`` adds ``aux_classifier`` on layer3, whose scores come out only with ``output=
    "dict"`` (torchvision's ``{"out", "aux"}``; ``"tensor"``, the logits, warns once in
    training that the head gets no loss). ``identity`` defaults to these arguments and RGB.
    """

    def __init__(self, num_classes: int = 21, *, depth: int = 50, aux_loss: bool = False,
                 output: str = "tensor", base_channels: int = 64,
                 replace_stride_with_dilation: Sequence[bool] = (False, True, True),
                 identity: ModelIdentity | None = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if output not in ("tensor", "dict"):
            raise ValueError(f"output must be 'tensor' or 'dict', got {output!r}")
        self.identity = identity or ModelIdentity(f"fcn_resnet{depth}", {
            "num_classes": num_classes, "aux_loss": aux_loss, "output": output,
            "base_channels": base_channels,
            "replace_stride_with_dilation": [bool(d) for d in replace_stride_with_dilation],
        }, TORCHVISION_RGB)
        #: Raw RGB pixels → the network's input (see :mod:`fcnseg.models.preprocess`).
        self.preprocess: nn.Module = Preprocess(("color",), self.identity.input_convention)
        self.backbone = ResNet(depth, include_top=False, base_channels=base_channels,
                               replace_stride_with_dilation=list(replace_stride_with_dilation))
        c3, c4 = self.backbone.stage_channels[2:]
        self.classifier = FCNHead(c4, num_classes)
        self.aux_classifier = FCNHead(c3, num_classes) if aux_loss else None
        self.num_classes = num_classes
        self.output = output
        self._aux_unused_said = False

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        size = x.shape[-2:]
        _, _, layer3, layer4 = self.backbone.stages(self.preprocess(x))
        out = F.interpolate(self.classifier(layer4), size=size, mode="bilinear",
                            align_corners=False)
        if self.output == "tensor":
            if (self.training and self.aux_classifier is not None
                    and not getattr(self, "_aux_unused_said", False)):
                self._aux_unused_said = True  # warned once
                warnings.warn(f"{self.arch}: built with aux_loss=True, but model.output is "
                              f"'tensor', so training sees the main logits only and "
                              f"aux_classifier gets no loss; set model.output = 'dict' for "
                              f"{{'out', 'aux'}}", UserWarning,
                              stacklevel=4)  # the caller of model(x), past nn.Module's call
            return out
        result = {"out": out}
        if self.aux_classifier is not None:
            result["aux"] = F.interpolate(self.aux_classifier(layer3), size=size,
                                          mode="bilinear", align_corners=False)
        return result

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        """None: this model resizes with ``F.interpolate`` (training code treats all alike)."""
        return []

    def extra_repr(self) -> str:
        return f"arch={self.arch}, num_classes={self.num_classes}, output={self.output}"


def load_torchvision_fcn_weights(model: TorchvisionFCN, path: PathLike, *,
                                 convention: InputConvention | str = TORCHVISION_RGB
                                 ) -> TorchvisionFCN:
    """Load a torchvision FCN checkpoint (``fcn_resnet50_coco-1167a1af.pth`` …) strictly, its
    ``aux_classifier.*`` skipped for a model without ``aux_loss``; errors name file and keys."""
    path = Path(path)
    sd = read_state_dict(path)
    if model.aux_classifier is None:
        sd = {k: v for k, v in sd.items() if not k.startswith("aux_classifier.")}
    load_exactly(path, model, sd)
    model.input_convention = get_convention(convention)
    return model
