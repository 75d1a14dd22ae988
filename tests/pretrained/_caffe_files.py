"""Small .caffemodel files for the tests, written through the Caffe message definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnseg.models import build_model
from fcnseg.pretrained.caffemodel import write_caffemodel
from fcnseg.pretrained.reference import VGG16_CONVS, ReferenceModel

WIDTH = 0.0625  # conv1 has 4 channels, conv5 32
FC = 16


def random_fcn_state_dict(arch: str, num_classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values for every tensor of a small ``arch`` (zeros would hide mix-ups)."""
    model = build_model(arch, num_classes=num_classes, width=WIDTH, fc_channels=FC)
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


def _layer_type(name: str) -> str:
    return "Deconvolution" if name.startswith("upscore") else "Convolution"


def write_reference_fcn(path: Path, ref: ReferenceModel, sd: dict[str, torch.Tensor], *,
                        v1: bool = False, with_plain_layers: bool = True,
                        extra: tuple = ()) -> Path:
    """``ref``'s net as Caffe would save it: data/relu/pool layers without blobs between the
    weighted ones, each weighted layer holding its fcnseg tensors as blobs."""
    layers: list[tuple[str, str, list[np.ndarray]]] = []
    if with_plain_layers:
        layers.append(("data", "Data", []))
    for name in ref.layers:
        module = ref.rename.get(name, name)  # the fcnseg module the Caffe layer fills
        blobs = [sd[k].numpy() for k in (f"{module}.weight", f"{module}.bias") if k in sd]
        layers.append((name, _layer_type(name), blobs))
        if with_plain_layers and not name.startswith(("score", "upscore")):
            layers.append((f"relu{name.removeprefix('conv')}", "ReLU", []))
    layers.extend(extra)
    if with_plain_layers:
        layers.append(("loss", "SoftmaxWithLoss", []))
    return write_caffemodel(path, layers, v1=v1)


def imagenet_vgg16_layers(seed: int = 0) -> list[tuple[str, str, list[np.ndarray]]]:
    """A small ImageNet VGG16 in Caffe's layout: 13 convolutions, then InnerProduct fc6/fc7/fc8
    with (out, in) weights, fc6 over the flattened 7×7 pool5."""
    rng = np.random.default_rng(seed)
    chans = [3] + [round(c * WIDTH) for n, c in ((2, 64), (2, 128), (3, 256), (3, 512),
                                                 (3, 512)) for _ in range(n)]
    layers: list[tuple[str, str, list[np.ndarray]]] = [("data", "Data", [])]
    for i, name in enumerate(VGG16_CONVS):
        layers.append((name, "Convolution",
                       [rng.standard_normal((chans[i + 1], chans[i], 3, 3), dtype=np.float32),
                        rng.standard_normal(chans[i + 1], dtype=np.float32)]))
    for name, n_in, n_out in (("fc6", chans[-1] * 49, FC), ("fc7", FC, FC), ("fc8", FC, 1000)):
        layers.append((name, "InnerProduct",
                       [rng.standard_normal((n_out, n_in), dtype=np.float32),
                        rng.standard_normal(n_out, dtype=np.float32)]))
    return layers


def imagenet_alexnet_layers(width: float = 0.125, fc: int = FC, seed: int = 0
                            ) -> list[tuple[str, str, list[np.ndarray]]]:
    """A small ImageNet AlexNet in Caffe's layout (bvlc_alexnet): Convolution conv1 … conv5
    (conv2/4/5 in two groups), InnerProduct fc6/fc7/fc8, fc6 over the flattened 6×6 pool5."""
    rng = np.random.default_rng(seed)
    c1, c2, c3, c5 = (round(c * width) for c in (96, 256, 384, 256))
    shapes = {"conv1": (c1, 3, 11, 11), "conv2": (c2, c1 // 2, 5, 5), "conv3": (c3, c2, 3, 3),
              "conv4": (c3, c3 // 2, 3, 3), "conv5": (c5, c3 // 2, 3, 3)}
    layers: list[tuple[str, str, list[np.ndarray]]] = [("data", "Data", [])]
    for name, shape in shapes.items():
        layers.append((name, "Convolution", [rng.standard_normal(shape, dtype=np.float32),
                                             rng.standard_normal(shape[0], dtype=np.float32)]))
    for name, n_in, n_out in (("fc6", c5 * 36, fc), ("fc7", fc, fc), ("fc8", fc, 1000)):
        layers.append((name, "InnerProduct",
                       [rng.standard_normal((n_out, n_in), dtype=np.float32),
                        rng.standard_normal(n_out, dtype=np.float32)]))
    return layers
