"""This module lists the published weights fcnseg knows, plain data :mod:`fcnseg.models` reads.
It says what each holds and its sources, in the order :mod:`fcnseg.pretrained.fetch` tries them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB, InputConvention
from fcnseg.weightfiles.reference import CAFFE_HOST, OXFORD_VGG16_URL, REFERENCE_MODELS


@dataclass(frozen=True)
class Source:
    """One place a file can be downloaded from."""

    url: str
    filename: str
    #: ``"caffemodel"`` (converted after download) or ``"torch"`` (a state dict / checkpoint)
    format: str = "torch"
    md5: str | None = None
    #: a prefix of the SHA-256 (torchvision's file names carry one)
    sha256: str | None = None

    @property
    def checksum(self) -> bool:
        return bool(self.md5 or self.sha256)


@dataclass(frozen=True)
class PublishedWeights:
    """A set of published weights and its sources, tried in order."""

    name: str
    #: ``"backbone"``: a state dict for ``model.backbone_weights``; ``"checkpoint"``: a
    #: self-describing fcnseg checkpoint (``--checkpoint``, ``init``)
    kind: str
    convention: InputConvention
    sources: tuple[Source, ...]
    #: the reference model (:data:`fcnseg.weightfiles.reference.REFERENCE_MODELS`) a
    #: ``.caffemodel`` or port file holds, for conversion and the structural check
    reference: str | None = None
    #: fcnseg builder arguments the converted model must have (defaults: the reference's size)
    build_kwargs: Mapping[str, Any] | None = None
    #: file name of the converted result in the cache ("" = the download is used as it is)
    converted: str = ""
    #: fcnseg builder whose ``backbone_weights`` a converted ImageNet ``.caffemodel`` fills,
    #: when it is not VGG16 (``"fcn_alexnet"`` for Caffe's AlexNet)
    backbone_arch: str = ""
    #: for ``kind="backbone"``: the trunk family the weights fit, as
    #: :func:`fcnseg.models.builders.backbone_trunk` names a model's (see :data:`TRUNKS`)
    trunk: str = ""


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?id={file_id}&export=download"


#: The trunk families published backbone weights fit (:attr:`PublishedWeights.trunk`).
TRUNKS = ("VGG16", "VGG16-BN", "AlexNet (Caffe)", "AlexNet (torchvision)", "GoogLeNet",
          "ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101")


def _torchvision(name: str, filename: str, trunk: str = "", kind: str = "backbone"
                 ) -> PublishedWeights:
    sha = filename.rsplit("-", 1)[1].split(".")[0]
    return PublishedWeights(name, kind, TORCHVISION_RGB,
                            (Source(f"https://download.pytorch.org/models/{filename}", filename,
                                    sha256=sha),), trunk=trunk)


def _reference_fcn(name: str, reference: str, drive: tuple[str, str, str] | None = None
                   ) -> PublishedWeights:
    ref = REFERENCE_MODELS[reference]
    sources = [Source(f"{CAFFE_HOST}/{reference}.caffemodel", f"{reference}.caffemodel",
                      format="caffemodel")]
    if drive is not None:  # the PyTorch port's converted copy (a state dict), as a fallback
        file_id, filename, md5 = drive
        sources.append(Source(_drive(file_id), filename, md5=md5))
    return PublishedWeights(name, "checkpoint", ref.convention, tuple(sources),
                            reference=reference, converted=f"{name}.pt")


PRETRAINED: dict[str, PublishedWeights] = {w.name: w for w in (
    PublishedWeights(
        "vgg16_caffe", "backbone", CAFFE_BGR,
        (Source(OXFORD_VGG16_URL, "VGG_ILSVRC_16_layers.caffemodel", format="caffemodel"),
         Source(_drive("1adDBTGY3GcEB_47dvcibajyzi872RAs3"), "vgg16_from_caffe.pth",
                md5="aa75b158f4181e7f6230029eb96c1b13")),
        reference="VGG_ILSVRC_16_layers", converted="vgg16_caffe_converted.pth", trunk="VGG16"),
    _reference_fcn("fcn32s_caffe", "fcn32s-heavy-pascal",
                   ("11k2Q0bvRQgQbT6-jYWeh6nmAsWlSCY3f", "fcn32s_from_caffe.pth",
                    "d3eb467a80e7da0468a20dfcbc13e6c8")),
    _reference_fcn("fcn16s_caffe", "fcn16s-heavy-pascal",
                   ("1bctu58B6YH9bu6lBBSBB2rUeGlGhYLoP", "fcn16s_from_caffe.pth",
                    "a2d4035f669f09483b39c9a14a0d6670")),
    _reference_fcn("fcn8s_caffe", "fcn8s-heavy-pascal",
                   ("1ieXWyoG68xqoHJPWdyrDyaIaaWlfmUxI", "fcn8s_from_caffe.pth",
                    "de93e540ec79512f8770033849c8ae89")),
    _reference_fcn("fcn8s_atonce_caffe", "fcn8s-atonce-pascal",
                   ("0B9P1L--7Wd2vblE1VUIxV1o2d2M", "fcn8s-atonce_from_caffe.pth",
                    "bfed4437e941fef58932891217fe6464")),
    _reference_fcn("fcn_alexnet_caffe", "fcn-alexnet-pascal"),
    _reference_fcn("pascalcontext_fcn32s", "pascalcontext-fcn32s-heavy"),
    _reference_fcn("pascalcontext_fcn16s", "pascalcontext-fcn16s-heavy"),
    _reference_fcn("pascalcontext_fcn8s", "pascalcontext-fcn8s-heavy"),
    _reference_fcn("nyud_fcn32s_color", "nyud-fcn32s-color-heavy"),
    _reference_fcn("nyud_fcn32s_hha", "nyud-fcn32s-hha-heavy"),
    _reference_fcn("nyud_fcn32s_color_hha", "nyud-fcn32s-color-hha-heavy"),
    _reference_fcn("siftflow_fcn32s", "siftflow-fcn32s-heavy"),
    _reference_fcn("siftflow_fcn16s", "siftflow-fcn16s-heavy"),
    _reference_fcn("siftflow_fcn8s", "siftflow-fcn8s-heavy"),
    _torchvision("vgg16_torchvision", "vgg16-397923af.pth", "VGG16"),
    _torchvision("vgg16_bn", "vgg16_bn-6c64b313.pth", "VGG16-BN"),
    PublishedWeights(
        "alexnet_caffe", "backbone", CAFFE_BGR,
        (Source(f"{CAFFE_HOST}/bvlc_alexnet.caffemodel", "bvlc_alexnet.caffemodel",
                format="caffemodel"),),
        converted="alexnet_caffe_converted.pth", backbone_arch="fcn_alexnet",
        trunk="AlexNet (Caffe)"),
    _torchvision("alexnet", "alexnet-owt-7be5be79.pth", "AlexNet (torchvision)"),
    _torchvision("googlenet", "googlenet-1378be20.pth", "GoogLeNet"),
    _torchvision("resnet18", "resnet18-f37072fd.pth", "ResNet-18"),
    _torchvision("resnet34", "resnet34-b627a593.pth", "ResNet-34"),
    _torchvision("resnet50", "resnet50-0676ba61.pth", "ResNet-50"),
    _torchvision("resnet101", "resnet101-63fe2227.pth", "ResNet-101"),
    _torchvision("fcn_resnet50_coco", "fcn_resnet50_coco-1167a1af.pth", kind="weights"),
    _torchvision("fcn_resnet101_coco", "fcn_resnet101_coco-7ecb50ca.pth", kind="weights"),
)}


def backbones_fitting(trunk: str) -> list[str]:
    """The names of the published backbone weights that fit trunk family ``trunk``
    (``"ResNet-50"`` -> ``["resnet50"]``), in :data:`PRETRAINED`'s order."""
    return [w.name for w in PRETRAINED.values() if w.kind == "backbone" and w.trunk == trunk]

