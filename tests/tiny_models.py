"""Tiny models of the paper's other tasks for tests that run them end to end."""

from __future__ import annotations

import torch

from fcnseg.conventions import band_convention
from fcnseg.models import build_model
from fcnseg.models.head import Scorer

#: Build options that make any VGG16-based builder tiny (a sixteenth of the widths).
SMALL = {"width": 0.0625, "fc_channels": 16}


def tiny_task_model(arch: str, seed: int = 4) -> torch.nn.Module:
    """A tiny ``arch`` (``siftflow_fcn16s``, ``nyud_fcn32s_color_hha`` ...) in eval mode whose
    score layers are random (zero-initialised ones would give one label everywhere).

    ``seed`` fixes every weight: the trunk's initialisation draws from its own seeded RNG, not
    from the process's, which training (its ``seed_everything``) and other tests leave in a
    state that depends on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, **SMALL)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Scorer):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return model.eval()


def tiny_band_model(bands: list[str], mean: list[float], std: list[float], num_classes: int = 3,
                    nodata: float | None = None,
                    sample_types: list[str] | None = None) -> torch.nn.Module:
    """A tiny FCN-8s ("same" geometry) taking ``bands`` (raw values; their dataset ``mean`` and
    ``std``, its ``nodata`` and its training images' ``sample_types`` if any), seeded, whose
    score layers are random (N(0, 0.5)), so that its labels vary over an image."""
    torch.manual_seed(0)
    model = build_model("fcn8s", num_classes=num_classes, width=0.0625, fc_channels=16,
                        geometry="same",
                        input_convention=band_convention(bands, mean, std, nodata=nodata,
                                                         sample_types=sample_types))
    with torch.no_grad():
        for name in ("score_fr", "score_pool4", "score_pool3"):
            getattr(model.head, name).weight.normal_(0.0, 0.5)
            getattr(model.head, name).bias.normal_(0.0, 0.5)
    return model


def export_description(model: torch.nn.Module, **extra: object) -> dict[str, object]:
    """The least description an export takes (what fcnseg loads the file by): a name and a
    colour per class of ``model`` ("a", "b", "c" ...), plus ``extra``."""
    n = getattr(model, "num_classes", 3)
    names = ["a", "b", "c"] if n == 3 else [f"class_{i}" for i in range(n)]
    palette = [[0, 0, 0], [128, 0, 0], [0, 128, 0]] if n == 3 else \
        [[(40 * i) % 256, (90 * i) % 256, (150 * i) % 256] for i in range(n)]
    return {"class_names": names, "palette": palette,
            "input_convention": model.input_convention.to_dict(), **extra}
