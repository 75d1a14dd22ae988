"""Datasets, transforms and batching.

Every dataset returns ``(image, label)``: an H×W×3 uint8 RGB array and an H×W int64 array of
class indices (``ignore_index`` marks void), or whatever its ``transform`` makes of them.
Datasets with several inputs return them as a dict keyed by modality (:class:`NYUDv2`), and
datasets with several label maps return a dict keyed by head (:class:`SIFTFlow`).
"""

from fcnseg.data.ade20k import ADE20K, ADE20K_CLASSES
from fcnseg.data.base import FileSegmentationDataset, SegmentationDataset
from fcnseg.data.build import DATASET_NAMES, build_dataset
from fcnseg.data.cityscapes import CITYSCAPES_CLASSES, Cityscapes
from fcnseg.data.collate import collate_segmentation
from fcnseg.data.download import (
    download_nyud,
    download_pascal_context,
    download_sbd,
    download_siftflow,
    download_voc,
)
from fcnseg.data.errors import DataError
from fcnseg.data.folder import FolderSegmentation
from fcnseg.data.io import read_image, read_label
from fcnseg.data.nyud import NYUD_CLASSES, NYUDv2
from fcnseg.data.palette import VOC_CLASSES, VOC_IGNORE_INDEX, colorize, palette_for, voc_palette
from fcnseg.data.pascal_context import PASCAL_CONTEXT_CLASSES, PascalContext
from fcnseg.data.sbd import SBDSegmentation
from fcnseg.data.siftflow import SIFTFLOW_GEOMETRIC_CLASSES, SIFTFLOW_SEMANTIC_CLASSES, SIFTFlow
from fcnseg.data.skip import SkipBad
from fcnseg.data.splits import seg11valid, seg11valid_ids
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticSegmentation
from fcnseg.data.transforms import (
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    ToTensor,
    build_eval_transform,
    build_train_transform,
)
from fcnseg.data.voc import VOCSegmentation
