"""FCN-32s, FCN-16s, FCN-8s and FCN-8s-at-once on VGG16 (Long, Shelhamer & Darrell).

Two geometries share one set of parameter names and shapes, so a state dict loads into either:

``geometry="caffe"`` (default) is the reference network: conv1_1 padded by 100, ceil-mode pools,
fc6 a 7×7 convolution without padding, bilinear deconvolutions without padding, and crops at
offsets 19 (32s); 5, 27 (16s); 5, 9, 31 (8s). The offsets are not typed in: each model derives them
from its own layers (:mod:`fcnseg.models.geometry`).

``geometry="same"`` drops the 100-pixel pad, pads fc6 by 3 and gives each deconvolution the
padding that puts its output on the pixel centres of the map it is fused with, so no crop is
needed (only the tail beyond the input is trimmed). It computes about 1.68× fewer FLOPs at
500×500 for the same predictions' layout.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnseg.conventions import CAFFE_BGR, InputConvention, get_convention
from fcnseg.models.fastpath import conv_gemm
from fcnseg.models.geometry import IDENTITY, CoordMap, crop_offset, deconv_padding_for, trace
from fcnseg.models.upsample import bilinear_upsampling, upsample_crop

__all__ = [
    "FCN",
    "FCN8s",
    "FCN16s",
    "FCN32s",
    "GEOMETRIES",
    "VGG16_BLOCKS",
]

GEOMETRIES = ("caffe", "same")

#: VGG16's convolution blocks: (number of 3×3 convolutions, output channels).
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def _crop(t: torch.Tensor, offset: int, like: torch.Tensor) -> torch.Tensor:
    """``t`` cropped at ``offset`` (both axes) to the spatial size of ``like``."""
    h, w = like.shape[-2:]
    return t[..., offset : offset + h, offset : offset + w]


class FCN(nn.Module):
    """VGG16 trunk, convolutionalized fc6/fc7 and the stride-32 scorer shared by all variants.

    Subclasses add the skip scorers and upsampling layers and define ``forward``. Public
    attributes describe the model for checkpoints: ``arch``, ``geometry``, ``num_classes``,
    ``input_convention`` and ``build_kwargs`` (the builder's keyword arguments).
    """

    arch = "fcn"

    def __init__(
        self,
        num_classes: int = 21,
        *,
        geometry: str = "caffe",
        width: float = 1.0,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        input_convention: InputConvention | str | dict[str, Any] = CAFFE_BGR,
        batch_norm: bool = False,
        arch: str | None = None,
    ) -> None:
        super().__init__()
        if arch is not None:
            self.arch = arch
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if width <= 0 or fc_channels < 1:
            raise ValueError(f"width must be > 0 and fc_channels >= 1, got {width}, {fc_channels}")
        self.num_classes = num_classes
        self.geometry = geometry
        self.input_convention = get_convention(input_convention)
        self.build_kwargs: dict[str, Any] = {
            "num_classes": num_classes, "geometry": geometry, "width": width,
            "fc_channels": fc_channels, "dropout": dropout,
        }
        self.batch_norm = bool(batch_norm)

        caffe = geometry == "caffe"
        in_ch = 3
        for b, (n_convs, ch) in enumerate(VGG16_BLOCKS, start=1):
            ch = max(1, round(ch * width))
            for i in range(1, n_convs + 1):
                # The reference pads conv1_1 by 100 so that any input of size >= 1 still leaves a
                # 7×7 pool5 for fc6; the crops below remove the extra border again.
                pad = 100 if (caffe and b == 1 and i == 1) else 1
                setattr(self, f"conv{b}_{i}", nn.Conv2d(in_ch, ch, 3, padding=pad))
                if batch_norm:  # VGG16-BN: BatchNorm after each trunk conv, named bn{b}_{i}
                    setattr(self, f"bn{b}_{i}", nn.BatchNorm2d(ch))
                in_ch = ch
            setattr(self, f"pool{b}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
        self.pool3_channels = max(1, round(256 * width))
        self.pool4_channels = max(1, round(512 * width))
        self.fc6 = nn.Conv2d(in_ch, fc_channels, 7, padding=0 if caffe else 3)
        self.drop6 = nn.Dropout(dropout)  # element-wise, as Caffe's Dropout
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.drop7 = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self._init_trunk()

    # -- layers and their coordinate maps ---------------------------------------------------
    def _block_layers(self, last_block: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for b, (n_convs, _) in enumerate(VGG16_BLOCKS[:last_block], start=1):
            layers += [getattr(self, f"conv{b}_{i}") for i in range(1, n_convs + 1)]
            layers.append(getattr(self, f"pool{b}"))
        return layers

    def coord_maps(self) -> dict[str, CoordMap]:
        """Coordinate maps of pool3, pool4 and the stride-32 scores (see ``geometry``)."""
        return {
            "pool3": trace(self._block_layers(3)),
            "pool4": trace(self._block_layers(4)),
            "score_fr": trace(self._block_layers(5) + [self.fc6, self.fc7, self.score_fr]),
        }

    def _upsampling(
        self, src: CoordMap, target: CoordMap, kernel: int, stride: int
    ) -> nn.ConvTranspose2d:
        """A frozen bilinear deconvolution; in the same geometry padded to land on ``target``."""
        pad = deconv_padding_for(src, target, kernel, stride) if self.geometry == "same" else 0
        return bilinear_upsampling(self.num_classes, kernel, stride, pad)

    def _fusion_offset(self, upsampled: CoordMap, skip: CoordMap) -> int:
        """Crop offset for fusing an upsampled score map with a skip score map.

        Caffe geometry: the skip map is the larger one and is cropped at this offset.
        Same geometry: the two align at offset 0 and the upsampled map's tail is trimmed.
        """
        if self.geometry == "caffe":
            return crop_offset(big=skip, ref=upsampled)
        return crop_offset(big=upsampled, ref=skip)

    def _fuse(self, upsampled: torch.Tensor, skip: torch.Tensor, offset: int) -> torch.Tensor:
        if self.geometry == "caffe":
            return upsampled + _crop(skip, offset, upsampled)
        return _crop(upsampled, offset, skip) + skip

    def _upsample_fuse(
        self, layer: nn.ConvTranspose2d, score: torch.Tensor, skip: torch.Tensor, offset: int
    ) -> torch.Tensor:
        """``_fuse(layer(score), skip, offset)``; the same geometry only computes the kept part."""
        if self.geometry == "caffe":
            return self._fuse(upsample_crop(layer, score), skip, offset)
        return upsample_crop(layer, score, offset, skip.shape[-2:]) + skip

    def _init_trunk(self) -> None:
        for name, m in self.named_children():
            if isinstance(m, nn.Conv2d):
                if name.startswith("score"):
                    # The reference starts every scorer at zero: training begins from the
                    # backbone's features with no class preference.
                    nn.init.zeros_(m.weight)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    # -- forward pieces -----------------------------------------------------------------------
    def _block(self, x: torch.Tensor, b: int) -> torch.Tensor:
        for i in range(1, VGG16_BLOCKS[b - 1][0] + 1):
            x = getattr(self, f"conv{b}_{i}")(x)
            if self.batch_norm:
                x = getattr(self, f"bn{b}_{i}")(x)
            x = F.relu(x, inplace=True)
        return getattr(self, f"pool{b}")(x)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """pool3 (stride 8), pool4 (stride 16) and fc7 (stride 32) of an input batch."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an N×3×H×W input, got shape {tuple(x.shape)}")
        x = self._block(self._block(x, 1), 2)
        pool3 = self._block(x, 3)
        pool4 = self._block(pool3, 4)
        x = self._block(pool4, 5)
        # fc6/fc7 as one GEMM each on CPU (see fastpath.conv_gemm): same values, far faster.
        x = self.drop6(F.relu(conv_gemm(self.fc6, x), inplace=True))
        fc7 = self.drop7(F.relu(conv_gemm(self.fc7, x), inplace=True))
        return pool3, pool4, fc7

    def upsampling_layers(self) -> list[nn.ConvTranspose2d]:
        """The bilinear deconvolutions (frozen unless their ``requires_grad`` is set)."""
        return [m for m in self.children() if isinstance(m, nn.ConvTranspose2d)]

    def extra_repr(self) -> str:
        return f"arch={self.arch}, geometry={self.geometry}, num_classes={self.num_classes}"


class FCN32s(FCN):
    """FCN-32s: stride-32 scores upsampled ×32 in one step (Fig. 3, top row)."""

    arch = "fcn32s"

    def __init__(self, num_classes: int = 21, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        maps = self.coord_maps()
        self.upscore = self._upsampling(maps["score_fr"], IDENTITY, 64, 32)
        self.offsets = {"final": crop_offset(trace([self.upscore], maps["score_fr"]), IDENTITY)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, fc7 = self.features(x)
        # stride 32 → 1, computing only the cropped pixels
        return upsample_crop(self.upscore, self.score_fr(fc7), self.offsets["final"],
                             x.shape[-2:])


class FCN16s(FCN):
    """FCN-16s: ×2 upsampling fused with pool4 scores, then ×16 (Fig. 3, middle row)."""

    arch = "fcn16s"

    def __init__(self, num_classes: int = 21, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        maps = self.coord_maps()
        self.score_pool4 = nn.Conv2d(self.pool4_channels, num_classes, 1)
        nn.init.zeros_(self.score_pool4.weight)
        nn.init.zeros_(self.score_pool4.bias)
        self.upscore2 = self._upsampling(maps["score_fr"], maps["pool4"], 4, 2)
        up2 = trace([self.upscore2], maps["score_fr"])
        self.upscore16 = self._upsampling(up2, IDENTITY, 32, 16)
        self.offsets = {
            "pool4": self._fusion_offset(up2, maps["pool4"]),
            "final": crop_offset(trace([self.upscore16], up2), IDENTITY),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, pool4, fc7 = self.features(x)
        score = self._upsample_fuse(  # stride 32 → 16
            self.upscore2, self.score_fr(fc7), self.score_pool4(pool4), self.offsets["pool4"])
        # stride 16 → 1
        return upsample_crop(self.upscore16, score, self.offsets["final"], x.shape[-2:])


class FCN8s(FCN):
    """FCN-8s: FCN-16s fused once more with pool3 scores, then ×8 (Fig. 3, bottom row).

    ``skip_scales`` multiplies pool4 and pool3 before their scorers; FCN-8s trained at once uses
    (0.01, 0.0001), fixed, so that the skips start small against the stride-32 path.
    """

    arch = "fcn8s"

    def __init__(
        self,
        num_classes: int = 21,
        *,
        skip_scales: tuple[float, float] = (1.0, 1.0),
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        self.pool4_scale, self.pool3_scale = (float(s) for s in skip_scales)
        maps = self.coord_maps()
        self.score_pool4 = nn.Conv2d(self.pool4_channels, num_classes, 1)
        self.score_pool3 = nn.Conv2d(self.pool3_channels, num_classes, 1)
        for m in (self.score_pool4, self.score_pool3):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.upscore2 = self._upsampling(maps["score_fr"], maps["pool4"], 4, 2)
        up2 = trace([self.upscore2], maps["score_fr"])
        self.upscore_pool4 = self._upsampling(up2, maps["pool3"], 4, 2)
        up4 = trace([self.upscore_pool4], up2)
        self.upscore8 = self._upsampling(up4, IDENTITY, 16, 8)
        self.offsets = {
            "pool4": self._fusion_offset(up2, maps["pool4"]),
            "pool3": self._fusion_offset(up4, maps["pool3"]),
            "final": crop_offset(trace([self.upscore8], up4), IDENTITY),
        }

    def _scaled(self, t: torch.Tensor, scale: float) -> torch.Tensor:
        return t if scale == 1.0 else t * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, fc7 = self.features(x)
        score_pool4 = self.score_pool4(self._scaled(pool4, self.pool4_scale))
        score = self._upsample_fuse(  # stride 32 → 16
            self.upscore2, self.score_fr(fc7), score_pool4, self.offsets["pool4"])
        score_pool3 = self.score_pool3(self._scaled(pool3, self.pool3_scale))
        score = self._upsample_fuse(  # stride 16 → 8
            self.upscore_pool4, score, score_pool3, self.offsets["pool3"])
        # stride 8 → 1
        return upsample_crop(self.upscore8, score, self.offsets["final"], x.shape[-2:])
