"""Input modalities other than colour (NYUDv2's HHA and depth), as datasets return them.

A dataset with several inputs returns them as a dict keyed by modality name, raw as stored:
colour and HHA H×W×3 uint8, depth H×W in millimetres (0 where unknown). The model normalises
each; here are the raw values it maps to zero (what crops and batches pad with) and
:func:`modality_problem`, the check that a file read as depth or HHA holds what the model was
trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fcnseg.conventions import CAFFE_BGR, HHA_MEAN, LOG_DEPTH_MEAN, InputConvention

#: The colour modality's key: normalised by the model's input convention.
COLOR = "color"

#: The raw value of each non-colour modality that normalises to zero: what crops pad with.
MODALITY_FILL: dict[str, float | tuple[float, ...]] = {"hha": HHA_MEAN,
                                                       "depth": math.exp(LOG_DEPTH_MEAN)}


def pad_values(convention: InputConvention | None = None
               ) -> dict[str, float | tuple[float, ...]]:
    """What each modality is padded with: for colour the mean pixel of ``convention`` (a
    dataset's own, else the ImageNet mean of the reference's VGG16), for the others
    :data:`MODALITY_FILL`."""
    return {COLOR: (convention or CAFFE_BGR).mean_pixel(), **MODALITY_FILL}


#: Depth whose largest known value is below this is not in millimetres: NYUDv2's Kinect sees
#: 0.5-10 m, so a depth map in millimetres reaches hundreds at least, one in metres about 10.
METRES_BELOW = 100.0
#: Depth whose largest known value is at least :data:`METRES_BELOW` and at most this is in
#: centimetres: NYUDv2's farthest, 10 m, is 1000 cm; in millimetres the scene would be 1 m deep.
CENTIMETRES_UP_TO = 1000.0
#: What the NYUDv2 inputs other than colour are, for the messages about them.
DEPTH_UNIT = "NYUDv2 depth is millimetres"
HHA_CHANNELS = "3 channels of 8 bits (disparity, height, angle)"


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _span(values: np.ndarray) -> str:
    return f"{_number(float(values.min()))}–{_number(float(values.max()))}"


def depth_problem(depth: np.ndarray) -> str | None:
    """What is wrong with a depth map as read, in one line, or None when it can be millimetres:
    one channel, more than 8 bits, finite, not negative, reaching beyond
    :data:`CENTIMETRES_UP_TO` (below :data:`METRES_BELOW` it looks like metres)."""
    if depth.ndim != 2:
        return (f"depth image has shape {depth.shape}: expected one channel (a 16-bit grey PNG "
                f"of millimetres)")
    if depth.dtype in (np.uint8, np.int8, np.bool_):
        return (f"8-bit depth image (values {_span(depth)}): NYUDv2 depth is a 16-bit PNG of "
                f"millimetres, not a picture of depth in 256 grey levels")
    if depth.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(depth)))
        if bad:
            values = "value is" if bad == 1 else "values are"
            return f"{bad} depth {values} NaN or infinite: {DEPTH_UNIT}, 0 where unknown"
    if depth.size == 0:
        return None
    low, high = depth.min(), depth.max()
    if low < 0:
        return f"negative depth values (down to {float(low):.3g}): {DEPTH_UNIT}, 0 where unknown"
    if 0 < high < METRES_BELOW:
        return f"depth values {_span(depth[depth > 0])} look like metres; {DEPTH_UNIT} (×1000)"
    if METRES_BELOW <= high <= CENTIMETRES_UP_TO:
        return (f"depth values {_span(depth[depth > 0])} look like centimetres (in millimetres "
                f"the whole scene would lie within 1 m); {DEPTH_UNIT} (×10)")
    return None


def hha_problem(hha: np.ndarray) -> str | None:
    """What is wrong with an HHA image as read, in one line, or None: HHA is stored as 3
    channels of 8 bits."""
    if hha.ndim != 3 or hha.shape[2] != 3:
        return f"HHA image has shape {hha.shape}: expected {HHA_CHANNELS}"
    if hha.dtype != np.uint8:
        return (f"HHA image of {hha.dtype} values: expected 8 bits, as the HHA encoding stores "
                f"them (0-255; these span {_span(hha)}): save HHA as 8-bit PNGs")
    return None


def modality_problem(modality: str, values: np.ndarray) -> str | None:
    """What is wrong with one input of a NYUDv2 sample as read from its file (depth in
    millimetres, HHA as 8-bit), in one line; None when it is fine or has no rule (colour)."""
    if modality == "depth":
        return depth_problem(values)
    if modality == "hha":
        return hha_problem(values)
    return None


def spec_for_inputs(spec: Mapping[str, Any], input_names: Sequence[str]) -> dict[str, Any]:
    """A :func:`~fcnseg.data.build_dataset` spec that reads the inputs a model takes: a NYUDv2
    spec that names no ``modalities`` gets the model's ``input_names``."""
    spec = dict(spec)
    if spec.get("name") == "nyud" and spec.get("modalities") is None:
        spec["modalities"] = list(input_names)
    return spec


def missing_inputs_problem(given: Sequence[str], input_names: Sequence[str]) -> str | None:
    """One line when a dataset's ``given`` modalities lack one the model takes, saying how to
    ask for them; None when none is missing."""
    if all(m in given for m in input_names):
        return None
    names = list(input_names)
    return (f"the model takes the inputs {names}; the dataset gives {list(given)}: ask for "
            f"every one, --data \"modalities=[{', '.join(names)}]\" to fcnseg evaluate or "
            f"calibrate, \"modalities\": {json.dumps(names)} in a dataset spec")
