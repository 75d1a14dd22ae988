"""Each reference release model is one :class:`ReferenceModel` here.
It says what a ``.caffemodel`` holds and which fcnseg model it becomes: each Caffe layer goes to
the module of its name unless ``rename`` says otherwise; blob 0 is ``.weight``, blob 1 ``.bias``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fcnseg.conventions import CAFFE_BGR, NYUD_BGR, NYUD_HHA, SIFTFLOW_BGR, InputConvention
from fcnseg.data.nyud import NYUD_CLASSES
from fcnseg.data.palette import VOC_CLASSES
from fcnseg.data.pascal_context import PASCAL_CONTEXT_CLASSES
from fcnseg.data.siftflow import SIFTFLOW_GEOMETRIC_CLASSES, SIFTFLOW_SEMANTIC_CLASSES

#: The reference release's host: ``<CAFFE_HOST>/<name>.caffemodel``.
CAFFE_HOST = "http://dl.caffe.berkeleyvision.org"
OXFORD_VGG16_URL = ("http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
                    "VGG_ILSVRC_16_layers.caffemodel")

#: VGG16's 13 convolutions, then the convolutionalized fully connected layers.
VGG16_CONVS = tuple(f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1)
                    for i in range(1, n + 1))
VGG16_TRUNK = (*VGG16_CONVS, "fc6", "fc7")
#: AlexNet's five convolutions and its convolutionalized fc6/fc7 (the Caffe layer names).
ALEXNET_TRUNK = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")

#: The weighted layers of each head, as named in the reference's Caffe nets (and in fcnseg).
HEADS: dict[str, tuple[str, ...]] = {
    "fcn32s": ("score_fr", "upscore"),
    "fcn16s": ("score_fr", "score_pool4", "upscore2", "upscore16"),
    "fcn8s": ("score_fr", "score_pool4", "score_pool3", "upscore2", "upscore_pool4", "upscore8"),
}

#: The datasets' class lists, under the names this table has always used.
SIFT_FLOW_CLASSES = SIFTFLOW_SEMANTIC_CLASSES


@dataclass(frozen=True)
class ReferenceModel:
    """One published model: its Caffe layers and the fcnseg model they fill."""

    #: the file's name on the reference host, without ``.caffemodel``
    name: str
    #: fcnseg builder (``fcnseg.models.build_model``), or ``"vgg16"`` for the ImageNet backbone
    arch: str
    #: Caffe layers with weights, all required
    layers: tuple[str, ...]
    #: class names (their count is the model's output channels)
    classes: tuple[str, ...] | None
    dataset: str | None
    convention: InputConvention = CAFFE_BGR
    #: published scores, e.g. ``{"mean_iu": 65.5}`` and where they were measured
    published: Mapping[str, float | str] = field(default_factory=dict)
    #: Caffe layer → fcnseg module, where the names differ
    rename: Mapping[str, str] = field(default_factory=dict)
    #: layers with weights that the fcnseg model does without (ImageNet's fc8)
    dropped: tuple[str, ...] = ()
    #: layers whose weights must all equal a constant the fcnseg model has built in
    fixed: Mapping[str, float] = field(default_factory=dict)
    #: class names per head of a multi-head model (``classes`` are the first head's)
    heads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None


def _voc(name: str, arch: str, head: str, mean_iu: float, **kw: object) -> ReferenceModel:
    return ReferenceModel(name, arch, VGG16_TRUNK + HEADS[head], VOC_CLASSES, "voc",
                          published={"mean_iu": mean_iu, "split": "seg11valid"}, **kw)


def _scores(mean_iu: float, pixel_acc: float, mean_acc: float, fw_iu: float,
            split: str, **more: float) -> dict[str, float | str]:
    """A published-scores block in percent (what the recipes' ``published`` hold)."""
    return {"mean_iu": mean_iu, "pixel_acc": pixel_acc, "mean_acc": mean_acc, "fw_iu": fw_iu,
            **more, "split": split}


def _context(variant: str, *scores: float) -> ReferenceModel:
    return ReferenceModel(f"pascalcontext-{variant}-heavy", variant, VGG16_TRUNK + HEADS[variant],
                          PASCAL_CONTEXT_CLASSES, "pascal_context",
                          published=_scores(*scores, split="PASCAL-Context val, 59 classes (PAMI)"))


def _siftflow(variant: str) -> ReferenceModel:
    # One trunk, a semantic and a geometric head: every head layer twice, suffixed.
    heads = tuple(f"{layer}_{task}" for task in ("sem", "geo") for layer in HEADS[variant])
    return ReferenceModel(
        f"siftflow-{variant}-heavy", f"siftflow_{variant}", VGG16_TRUNK + heads,
        SIFT_FLOW_CLASSES, "sift_flow", convention=SIFTFLOW_BGR,
        published=_scores(39.5, 85.2, 51.7, 76.1, geometric_pixel_acc=94.3,
                          split="SIFT Flow test (FCN-16s)") if variant == "fcn16s" else {},
        heads={"semantic": SIFT_FLOW_CLASSES, "geometric": SIFTFLOW_GEOMETRIC_CLASSES},
    )


# The reference's RGB-HHA net names each stream's layers by appending the modality with no
# separator (``conv1_1color``, ``score_frhha``); fcnseg separates it (``conv1_1_color``).
_COLOR_HHA_RENAME = {f"{layer}{s}": f"{layer}_{s}" for s in ("color", "hha")
                     for layer in (*VGG16_TRUNK, "score_fr")}


#: The ImageNet VGG16 (V1 layer format), from the Oxford VGG page.
VGG16_IMAGENET = ReferenceModel(
    "VGG_ILSVRC_16_layers", "vgg16", VGG16_TRUNK, None, "imagenet", dropped=("fc8",))

REFERENCE_MODELS: dict[str, ReferenceModel] = {m.name: m for m in (
    VGG16_IMAGENET,
    # PASCAL VOC (seg11valid mean IU, from the paper / Caffe release)
    _voc("fcn32s-heavy-pascal", "fcn32s", "fcn32s", 63.6),
    _voc("fcn16s-heavy-pascal", "fcn16s", "fcn16s", 65.0),
    _voc("fcn8s-heavy-pascal", "fcn8s", "fcn8s", 65.5),
    # The at-once net scales pool4 and pool3 by fixed Scale layers (lr 0) before scoring.
    _voc("fcn8s-atonce-pascal", "fcn8s_atonce", "fcn8s", 65.4,
         fixed={"scale_pool4": 0.01, "scale_pool3": 0.0001}),
    # PASCAL-Context, 59 classes + background: the VGG FCNs with 60 outputs; val scores of
    # the PAMI version of the paper.
    _context("fcn32s", 36.7, 65.5, 49.1, 50.9), _context("fcn16s", 38.4, 66.9, 51.3, 52.3),
    _context("fcn8s", 39.1, 67.5, 52.3, 53.0),
    # NYUDv2 colour: FCN-32s with 40 outputs and the NYUD colour mean.
    ReferenceModel("nyud-fcn32s-color-heavy", "nyud_fcn32s_color", VGG16_TRUNK + HEADS["fcn32s"],
                   NYUD_CLASSES, "nyud", convention=NYUD_BGR,
                   published=_scores(29.2, 60.0, 42.2, 43.9, split="NYUDv2 test (RGB)")),
    # FCN-AlexNet (voc-fcn-alexnet): grouped conv2/4/5, 6×6 fc6, upscore 63/32.
    ReferenceModel("fcn-alexnet-pascal", "fcn_alexnet", ALEXNET_TRUNK + ("score_fr", "upscore"),
                   VOC_CLASSES, "voc", published={"mean_iu": 48.0, "split": "seg11valid"}),
    ReferenceModel("nyud-fcn32s-hha-heavy", "nyud_fcn32s_hha", VGG16_TRUNK + HEADS["fcn32s"],
                   NYUD_CLASSES, "nyud", convention=NYUD_HHA,
                   published=_scores(24.2, 57.1, 35.2, 40.4, split="NYUDv2 test (HHA)")),
    # RGB-HHA late fusion: two suffixed streams, one shared upscore.
    ReferenceModel("nyud-fcn32s-color-hha-heavy", "nyud_fcn32s_color_hha",
                   (*_COLOR_HHA_RENAME, "upscore"), NYUD_CLASSES, "nyud", convention=NYUD_BGR,
                   rename=_COLOR_HHA_RENAME,
                   published=_scores(32.8, 64.3, 44.9, 48.0, split="NYUDv2 test (RGB-HHA)")),
    # SIFT Flow: one trunk, semantic and geometric heads.
    _siftflow("fcn32s"), _siftflow("fcn16s"), _siftflow("fcn8s"),
)}
