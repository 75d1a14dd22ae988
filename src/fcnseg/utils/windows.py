"""This module says where the windows of a tiled pass over an image start.
Sliding-window inference, tiled raster prediction and raster training sets share it."""

from __future__ import annotations


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of ``window`` pixels every ``stride`` pixels covering ``size``,
    the last moved back to end at the border (no padding needed); one at 0 for a window at
    least as large as the image."""
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts
