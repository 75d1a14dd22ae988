"""Datasets, transforms and batching."""

from fcnseg.data.palette import VOC_CLASSES, VOC_IGNORE_INDEX, colorize, palette_for, voc_palette

__all__ = ["VOC_CLASSES", "VOC_IGNORE_INDEX", "colorize", "palette_for", "voc_palette"]
