"""TIFF tags that put a picture on a map grid, for tests of the rasters ``fcnseg predict``
segments by tiles (a TIFF without them is an image).

pytest puts tests/ on sys.path, so ``from geotags import GEOTIFF_TAGS`` works from every test
folder.
"""

from __future__ import annotations

#: tifffile ``extratags``: GeoTIFF's ModelPixelScale and ModelTiepoint, a geotransform of 1-unit
#: pixels from (500000, 4000000) without a CRS, as GDAL and rasterio read it.
GEOTIFF_TAGS = [(33550, 12, 3, (1.0, 1.0, 0.0), True),
                (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), True)]
