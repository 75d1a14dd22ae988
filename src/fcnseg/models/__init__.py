"""FCN models: builders, geometry, and weight loading."""

from fcnseg.models.backbone import BackboneFCN, fcn_from_backbone, fcn_from_factory
from fcnseg.models.builders import (
    MODEL_BUILDERS,
    build_model,
    fcn8s,
    fcn8s_atonce,
    fcn8s_resnet50,
    fcn8s_vgg16_bn,
    fcn16s,
    fcn16s_resnet50,
    fcn16s_vgg16_bn,
    fcn32s,
    fcn32s_resnet50,
    fcn32s_vgg16_bn,
    fcn_resnet50,
    fcn_resnet101,
)
from fcnseg.models.factories import allow_factory_modules, backbone_factory
from fcnseg.models.fastpath import fast_paths, optimize_for_inference
from fcnseg.models.fcn import FCN, GEOMETRIES, FCN8s, FCN16s, FCN32s
from fcnseg.models.resnet import ResNet, ResNetBackbone, load_resnet_weights
from fcnseg.models.torchvision_fcn import TorchvisionFCN, load_torchvision_fcn_weights
from fcnseg.models.trunk import BackboneError
from fcnseg.models.upsample import bilinear_kernel, bilinear_upsampling
from fcnseg.models.vgg16_bn import load_vgg16_bn_weights
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
    "BackboneError",
    "BackboneFCN",
    "ResNet",
    "ResNetBackbone",
    "TorchvisionFCN",
    "allow_factory_modules",
    "backbone_factory",
    "fcn8s_resnet50",
    "fcn8s_vgg16_bn",
    "fcn16s_resnet50",
    "fcn16s_vgg16_bn",
    "fcn32s_resnet50",
    "fcn32s_vgg16_bn",
    "fcn_from_backbone",
    "fcn_from_factory",
    "fcn_resnet50",
    "fcn_resnet101",
    "fast_paths",
    "optimize_for_inference",
    "load_resnet_weights",
    "load_torchvision_fcn_weights",
    "load_vgg16_bn_weights",
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
