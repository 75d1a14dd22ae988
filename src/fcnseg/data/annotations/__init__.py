"""Annotations from labelme, COCO, CVAT and Label Studio become label maps here.
:mod:`.shapes` draws them, :mod:`.importer` imports them as folder datasets, :mod:`.dataset`
reads them directly as datasets, and :mod:`.export` writes predictions back as polygons."""

from fcnseg.data.annotations.importer import (
    FORMATS,
    ImportOptions,
    ImportReport,
    import_annotations,
    read_annotations,
)
from fcnseg.data.annotations.shapes import LabelSet, RasterOptions, rasterise
