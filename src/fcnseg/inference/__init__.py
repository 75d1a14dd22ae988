"""Prediction: the Segmenter, image reading, sliding windows, test-time augmentation, pictures."""

from fcnseg.inference import visualize
from fcnseg.inference.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageTooLargeError,
    load_image,
    to_rgb_uint8,
)
from fcnseg.inference.segmenter import Prediction, Segmenter, SegmenterOptions, resolve_device
from fcnseg.inference.sliding import (
    TTA,
    PredictFn,
    SlidingWindow,
    forward_logits,
    sliding_window_logits,
    tta_logits,
)
from fcnseg.inference.visualize import colorize, heatmap, overlay, save_label_png
