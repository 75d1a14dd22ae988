"""torch.hub entry points: ``torch.hub.load("<owner>/fcnseg", "fcn8s", pretrained=True)``.

``pretrained=True`` gives the reference release's trained models, downloaded from the
reference's own host (``.caffemodel``), converted once and cached (see
``fcnseg.pretrained.fetch``); otherwise a freshly initialised model. Each returned model has
``class_names``, ``palette`` and ``input_convention`` (Caffe BGR for the reference models).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# torch.hub imports this file from a checkout that is not installed: use its own sources.
_SRC = Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

dependencies = ["torch", "numpy", "PIL", "yaml"]


def _model(arch: str, published: str, pretrained: bool, progress: bool, **kwargs: Any) -> Any:
    from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
    from fcnseg.data import NYUD_CLASSES, PASCAL_CONTEXT_CLASSES, SIFTFLOW_SEMANTIC_CLASSES
    from fcnseg.data.palette import VOC_CLASSES, dataset_palette
    from fcnseg.models import build_model
    from fcnseg.pretrained.fetch import fetch_pretrained

    if not pretrained:  # the classes of the dataset its class count is, else class_0 ...
        model = build_model(arch, **kwargs)
        n = model.num_classes
        known = {21: VOC_CLASSES, 33: SIFTFLOW_SEMANTIC_CLASSES, 40: NYUD_CLASSES,
                 60: PASCAL_CONTEXT_CLASSES}
        model.class_names = list(known.get(n, [f"class_{i}" for i in range(n)]))
        model.palette = dataset_palette(model.class_names).tolist()
        return model
    if kwargs:
        raise ValueError(f"{arch}: pretrained=True builds the published model; "
                         f"builder arguments {sorted(kwargs)} do not apply")
    ckpt = load_checkpoint(fetch_pretrained(published, progress=progress))
    model = build_model_from_checkpoint(ckpt)
    model.class_names = list(ckpt["classes"]["names"])
    model.palette = [list(c) for c in ckpt["classes"]["palette"]]
    return model


def fcn32s(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> Any:
    """FCN-32s on VGG16; pretrained: PASCAL VOC, 63.6 mean IU on seg11valid."""
    return _model("fcn32s", "fcn32s_caffe", pretrained, progress, **kwargs)


def fcn16s(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> Any:
    """FCN-16s on VGG16; pretrained: PASCAL VOC, 65.0 mean IU on seg11valid."""
    return _model("fcn16s", "fcn16s_caffe", pretrained, progress, **kwargs)


def fcn8s(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> Any:
    """FCN-8s on VGG16; pretrained: PASCAL VOC, 65.5 mean IU on seg11valid."""
    return _model("fcn8s", "fcn8s_caffe", pretrained, progress, **kwargs)


def fcn8s_atonce(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> Any:
    """FCN-8s trained at once; pretrained: PASCAL VOC, 65.4 mean IU on seg11valid."""
    return _model("fcn8s_atonce", "fcn8s_atonce_caffe", pretrained, progress, **kwargs)


def fcn8s_pascalcontext(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> Any:
    """FCN-8s on VGG16; pretrained: PASCAL-Context, 59 classes + background."""
    if not pretrained:
        kwargs.setdefault("num_classes", 60)
    return _model("fcn8s", "pascalcontext_fcn8s", pretrained, progress, **kwargs)
