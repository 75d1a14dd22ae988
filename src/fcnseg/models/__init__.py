"""FCN models are built here from trunks, the skip head and the reference's multi-task nets.
See :mod:`~fcnseg.models.trunk` (``vgg``, ``resnet``, ...), :mod:`~fcnseg.models.head`,
:class:`FCN`, :mod:`~fcnseg.models.multitask`, your own backbone (:mod:`~fcnseg.models.backbone`),
the builders (:mod:`~fcnseg.models.builders`), fast paths (:func:`optimize`) and weight loading."""

from fcnseg.models.alexnet import (
    AlexNetTrunk,
    load_alexnet_caffe_weights,
    load_alexnet_weights,
)
from fcnseg.models.backbone import fcn_from_backbone, fcn_from_factory
from fcnseg.models.builders import (
    ARCHITECTURES,
    MODEL_BUILDERS,
    NOT_RECORDED,
    AlexNetOptions,
    Architecture,
    GoogLeNetOptions,
    LateFusionOptions,
    ModelOptions,
    NYUDOptions,
    ResNetOptions,
    SiftFlowOptions,
    TorchvisionFCNOptions,
    VGGOptions,
    build_model,
    builder_parameters,
    check_build_kwargs,
    fcn8s,
    fcn8s_atonce,
    fcn8s_googlenet,
    fcn8s_resnet18,
    fcn8s_resnet34,
    fcn8s_resnet50,
    fcn8s_resnet101,
    fcn8s_vgg16_bn,
    fcn16s,
    fcn16s_googlenet,
    fcn16s_resnet18,
    fcn16s_resnet34,
    fcn16s_resnet50,
    fcn16s_resnet101,
    fcn16s_vgg16_bn,
    fcn32s,
    fcn32s_googlenet,
    fcn32s_resnet18,
    fcn32s_resnet34,
    fcn32s_resnet50,
    fcn32s_resnet101,
    fcn32s_vgg16_bn,
    fcn_alexnet,
    fcn_resnet50,
    fcn_resnet101,
    get_builder,
    model_names,
    nyud_fcn16s_color_hha,
    nyud_fcn32s_color,
    nyud_fcn32s_color_d,
    nyud_fcn32s_color_hha,
    nyud_fcn32s_hha,
    siftflow_fcn8s,
    siftflow_fcn16s,
    siftflow_fcn32s,
)
from fcnseg.models.factories import allow_factory_modules, backbone_factory
from fcnseg.models.fastpath import optimize, plain_copy
from fcnseg.models.fcn import FCN
from fcnseg.models.googlenet import GoogLeNetTrunk, load_googlenet_weights
from fcnseg.models.head import (
    BACKBONE_NAMES,
    VGG_NAMES,
    AlignedUpsampling,
    HeadNames,
    Scorer,
    SkipHead,
    edge_upsampling,
    reference_upsampling,
)
from fcnseg.models.identity import ModelIdentity
from fcnseg.models.multitask import LateFusionFCN, early_fusion_conv1, init_late_fusion
from fcnseg.models.resnet import ResNet, ResNetBackbone, load_resnet_weights
from fcnseg.models.torchvision_fcn import TorchvisionFCN, load_torchvision_fcn_weights
from fcnseg.models.trunk import BackboneError
from fcnseg.models.upsample import bilinear_kernel, bilinear_upsampling
from fcnseg.models.vgg import GEOMETRIES, VGG16Trunk
from fcnseg.models.weights import (
    WeightsError,
    init_from,
    load_backbone_weights,
    load_fcn_weights,
    load_vgg16_bn_weights,
    read_state_dict,
    widen_conv1,
)
from fcnseg.weightfiles.published import PRETRAINED

