"""Input modalities other than colour (NYUDv2's HHA and depth), as datasets return them.

A dataset with several inputs returns them as a dict keyed by modality name (``{"color": ...,
"hha": ..., "depth": ...}``), raw as stored: colour and HHA H×W×3 uint8, depth H×W in the
16-bit PNGs' units (millimetres, 0 where unknown). The model normalises each
(:class:`fcnseg.models.preprocess.Preprocess`); here are the raw values that it maps to zero,
which crops and batches pad with.
"""

from __future__ import annotations

import math

from fcnseg.conventions import CAFFE_BGR, HHA_MEAN, LOG_DEPTH_MEAN, InputConvention

#: The colour modality's key: normalised by the model's input convention.
COLOR = "color"

#: The raw value of each non-colour modality that normalises to zero: what crops pad with.
MODALITY_FILL: dict[str, float | tuple[float, ...]] = {
    "hha": HHA_MEAN,
    "depth": math.exp(LOG_DEPTH_MEAN),
}


def pad_values(convention: InputConvention | None = None
               ) -> dict[str, float | tuple[float, ...]]:
    """What each modality is padded with: for colour the mean pixel of ``convention`` (a
    dataset's own, else the ImageNet mean of the reference's VGG16), for the others
    :data:`MODALITY_FILL`."""
    return {COLOR: (convention or CAFFE_BGR).mean_pixel(), **MODALITY_FILL}
