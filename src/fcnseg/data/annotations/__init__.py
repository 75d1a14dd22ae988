"""Annotations from labelling tools: labelme, COCO, CVAT and Label Studio, read into label maps
(:mod:`.shapes` draws them), imported as folder datasets (:mod:`.importer`), read directly as
datasets (:mod:`.dataset`), and predictions written back as polygons (:mod:`.export`)."""

from fcnseg.data.annotations.importer import (
    FORMATS,
    ImportOptions,
    ImportReport,
    import_annotations,
    read_annotations,
)
from fcnseg.data.annotations.shapes import LabelSet, RasterOptions, rasterise
