"""Which imported images go to validation: by a hash of the name, whole videos together.

A video's neighbouring frames are near copies: split frame by frame, validation would score
frames the model has all but seen. So frames of several videos (``<video>__frame_NNNNNN``) are
split by a hash of the video's name, other images by their own.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: A video's frame as imports name it (``<video>__frame_NNNNNN``) or as CVAT does
#: (``frame_NNNNNN``, no video named).
_FRAME = re.compile(r"(?:(.+)__)?frame_(\d+)")


def _share(name: str) -> float:
    """Where ``name`` falls in [0, 1), by a hash (stable whatever else is imported)."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def split_of(name: str, val_fraction: float) -> str:
    """``"val"`` for about ``val_fraction`` of the names, by a hash of the name, else
    ``"train"``."""
    return "val" if _share(name) < val_fraction else "train"


def frame_of(name: str) -> tuple[str | None, int] | None:
    """The video (None where the name gives none) and number of frame ``name``: ``("clipA",
    12)`` for ``clipA__frame_000012``, ``(None, 12)`` for ``frame_000012``; None for names of
    other images."""
    found = _FRAME.fullmatch(name)
    return (found.group(1), int(found.group(2))) if found else None


def video_of(name: str) -> str | None:
    """The video whose frame ``name`` is; None for other names and frames of no video."""
    return (frame_of(name) or (None, 0))[0]


@dataclass
class ValSplit:
    """Each name's split (``of``), the videos split whole, the only video (``one_video``) when
    frames are split one by one, and whether no video's hash fell into validation
    (``fallback``: the first by hash was held out)."""

    of: dict[str, str] = field(default_factory=dict)
    val_videos: list[str] = field(default_factory=list)
    train_videos: list[str] = field(default_factory=list)
    one_video: str | None = None
    fallback: bool = False


def split_names(names: Iterable[str], val_fraction: float) -> ValSplit:
    """The split of each of ``names``: frames of two or more videos by their video (at least
    one video in validation when ``val_fraction`` > 0), other names by their own hash."""
    video = {n: video_of(n) for n in names}
    videos = sorted({v for v in video.values() if v is not None})
    result = ValSplit()
    if len(videos) == 1:
        result.one_video = videos[0]
    if len(videos) < 2:
        result.of = {n: split_of(n, val_fraction) for n in video}
        return result
    held = [v for v in videos if split_of(v, val_fraction) == "val"]
    if not held and val_fraction > 0:
        held, result.fallback = [min(videos, key=_share)], True
    result.val_videos = held
    result.train_videos = [v for v in videos if v not in held]
    for n, v in video.items():
        result.of[n] = split_of(n, val_fraction) if v is None else "val" if v in held else "train"
    return result


def fraction_splitting(listed: Mapping[str, str]) -> float | None:
    """The val_fraction by which :func:`split_names` splits the names of ``listed`` (name:
    ``"train"`` or ``"val"``) as they are: 0.2 where it does, else the one of fewest decimals;
    None where none does (lists edited by hand, or split another way)."""
    video = {n: video_of(n) for n in listed}
    whole = len(set(video.values()) - {None}) > 1  # frames split by their video's hash
    share = {n: _share(video[n] if whole and video[n] is not None else n) for n in listed}
    low = max((share[n] for n, s in listed.items() if s == "val"), default=-1.0)
    high = min((share[n] for n, s in listed.items() if s != "val"), default=1.0)
    for fraction in (0.2, *(max(0.0, math.floor(low * 10**d + 1) / 10**d) for d in range(7))):
        if low < fraction <= high and split_names(listed, fraction).of == listed:
            return fraction
    return None


def _listed(videos: list[str]) -> str:
    return ", ".join(videos[:5]) + (f" and {len(videos) - 5} more" if len(videos) > 5 else "")


def video_split_line(split: ValSplit, val_fraction: float) -> str | None:
    """One line saying how the frames of videos were split (None when no frame is a video's);
    for one video, frame by frame, a line starting ``warning:``."""
    if split.one_video is not None:
        return (f"warning: the frames are of one video ({split.one_video}), so they are split "
                f"frame by frame: validation frames neighbour near-identical training frames "
                f"and score higher than new footage would; import the frames of more videos "
                f"to hold out whole videos")
    if not split.val_videos and not split.train_videos:
        return None
    how = (f"no video's hash fell under --val-fraction {val_fraction:g}, so the first by hash "
           f"is held out" if split.fallback else f"about {val_fraction:g} of the videos, by a "
           f"hash of the video's name")
    return (f"frames split by video, every frame of a video on one side ({how}): val.txt "
            f"holds {_listed(split.val_videos) or 'none'}, train.txt "
            f"{_listed(split.train_videos) or 'none'}")
