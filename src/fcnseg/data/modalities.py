"""Input modalities other than colour (NYUDv2's HHA and depth), as datasets return them.

Several inputs come as a dict keyed by modality, raw as stored: colour and HHA H×W×3 uint8,
depth H×W in millimetres (0 where unknown). Here are the raw values the model maps to zero
(what crops and batches pad with) and :func:`modality_problem`, the check of a file's values.
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
    """What each modality is padded with: colour the mean pixel of ``convention`` (default the
    reference VGG16's ImageNet mean), the others :data:`MODALITY_FILL`."""
    return {COLOR: (convention or CAFFE_BGR).mean_pixel(), **MODALITY_FILL}


#: Depth below this at its largest is in metres, not millimetres (NYUDv2's Kinect sees 0.5-10 m).
METRES_BELOW = 100.0
#: Depth from :data:`METRES_BELOW` up to this at its largest is in centimetres (10 m = 1000 cm).
CENTIMETRES_UP_TO = 1000.0
#: What the NYUDv2 inputs other than colour are, for the messages about them.
DEPTH_UNIT = "NYUDv2 depth is millimetres"
HHA_CHANNELS = "3 channels of 8 bits (disparity, height, angle)"


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _span(values: np.ndarray) -> str:
    return f"{_number(float(values.min()))}–{_number(float(values.max()))}"


def depth_problem(depth: np.ndarray) -> str | None:
    """What is wrong with a depth map, in one line, or None when it can be millimetres: one
    channel, over 8 bits, finite, not negative, reaching beyond :data:`CENTIMETRES_UP_TO`."""
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
    """What is wrong with an HHA image (3 channels of 8 bits), in one line, or None."""
    if hha.ndim != 3 or hha.shape[2] != 3:
        return f"HHA image has shape {hha.shape}: expected {HHA_CHANNELS}"
    if hha.dtype != np.uint8:
        return (f"HHA image of {hha.dtype} values: expected 8 bits, as the HHA encoding stores "
                f"them (0-255; these span {_span(hha)}): save HHA as 8-bit PNGs")
    return None


def modality_problem(modality: str, values: np.ndarray) -> str | None:
    """What is wrong with one input of a NYUDv2 sample as read (depth in millimetres, HHA as
    8-bit), in one line; None when fine or without a rule (colour)."""
    rule = {"depth": depth_problem, "hha": hha_problem}.get(modality)
    return None if rule is None else rule(values)


def spec_for_inputs(spec: Mapping[str, Any], input_names: Sequence[str]) -> dict[str, Any]:
    """A dataset spec that reads the inputs a model takes: a NYUDv2 spec without
    ``modalities`` gets the model's ``input_names``."""
    spec = dict(spec)
    if spec.get("name") == "nyud" and spec.get("modalities") is None:
        spec["modalities"] = list(input_names)
    return spec


def missing_inputs_problem(given: Sequence[str], input_names: Sequence[str]) -> str | None:
    """One line when the ``given`` modalities lack one the model takes, saying how to ask for
    them; None otherwise."""
    if all(m in given for m in input_names):
        return None
    names = list(input_names)
    return (f"the model takes the inputs {names}; the dataset gives {list(given)}: ask for "
            f"every one, --data \"modalities=[{', '.join(names)}]\" to fcnseg evaluate or "
            f"calibrate, \"modalities\": {json.dumps(names)} in a dataset spec")
