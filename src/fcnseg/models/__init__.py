"""FCN models: builders, geometry, and weight loading."""

from fcnseg.models.builders import (
    MODEL_BUILDERS,
    build_model,
    fcn8s,
    fcn8s_atonce,
    fcn16s,
    fcn32s,
)
from fcnseg.models.fcn import FCN, GEOMETRIES, FCN8s, FCN16s, FCN32s
from fcnseg.models.upsample import bilinear_kernel, bilinear_upsampling
from fcnseg.models.weights import (
    PRETRAINED,
    WeightsError,
    fetch_pretrained,
    init_from,
    load_backbone_weights,
    load_fcn_weights,
    read_state_dict,
)

__all__ = [
    "FCN",
    "FCN8s",
    "FCN16s",
    "FCN32s",
    "GEOMETRIES",
    "MODEL_BUILDERS",
    "PRETRAINED",
    "WeightsError",
    "bilinear_kernel",
    "bilinear_upsampling",
    "build_model",
    "fcn8s",
    "fcn8s_atonce",
    "fcn16s",
    "fcn32s",
    "fetch_pretrained",
    "init_from",
    "load_backbone_weights",
    "load_fcn_weights",
    "read_state_dict",
]
