"""Datasets, transforms and batching.

Every dataset returns ``(image, label)``: an H×W×3 uint8 RGB array and an H×W int64 array of
class indices (``ignore_index`` marks void), or whatever its ``transform`` makes of them.
"""

from fcnseg.data.base import FileSegmentationDataset, SegmentationDataset
from fcnseg.data.build import DATASET_NAMES, build_dataset
from fcnseg.data.collate import collate_segmentation
from fcnseg.data.download import download_sbd, download_voc
from fcnseg.data.errors import DataError
from fcnseg.data.folder import FolderSegmentation
from fcnseg.data.io import read_image, read_label
from fcnseg.data.palette import VOC_CLASSES, VOC_IGNORE_INDEX, colorize, palette_for, voc_palette
from fcnseg.data.sbd import SBDSegmentation
from fcnseg.data.skip import SkipBad
from fcnseg.data.splits import seg11valid, seg11valid_ids
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticSegmentation
from fcnseg.data.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    ToTensor,
    build_eval_transform,
    build_train_transform,
)
from fcnseg.data.voc import VOCSegmentation

__all__ = [
    "DATASET_NAMES",
    "SYNTHETIC_CLASSES",
    "VOC_CLASSES",
    "VOC_IGNORE_INDEX",
    "ColorJitter",
    "Compose",
    "DataError",
    "FileSegmentationDataset",
    "FolderSegmentation",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomScale",
    "SBDSegmentation",
    "SegmentationDataset",
    "SkipBad",
    "SyntheticSegmentation",
    "ToTensor",
    "VOCSegmentation",
    "build_dataset",
    "build_eval_transform",
    "build_train_transform",
    "collate_segmentation",
    "colorize",
    "download_sbd",
    "download_voc",
    "palette_for",
    "read_image",
    "read_label",
    "seg11valid",
    "seg11valid_ids",
    "voc_palette",
]
