"""The FCN paper's evaluation split, seg11valid, is VOC2011 val less SBD train (736 images).
It is derived from the user's copies of both and cached by a hash of the two lists."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from fcnseg.data.base import Transform
from fcnseg.data.layout import read_split_list
from fcnseg.data.sbd import find_sbd_dir
from fcnseg.data.voc import VOCSegmentation, find_voc_dir
from fcnseg.utils.download import cache_dir as default_cache_dir
from fcnseg.utils.files import atomic_write_bytes
from fcnseg.utils.typing import PathLike

log = logging.getLogger(__name__)

#: Number of images in seg11valid on the official VOC2011 and SBD releases.
SEG11VALID_SIZE = 736


def seg11valid_ids(voc_root: PathLike, sbd_root: PathLike,
                   cache_dir: PathLike | None = None) -> list[str]:
    """The ids of VOC2011 segmentation val images not in SBD train, in VOC's order, cached in
    ``cache_dir`` (default ``<fcnseg cache>/splits``); roots as :func:`find_voc_dir` and
    :func:`find_sbd_dir` take them."""
    voc_val = find_voc_dir(voc_root, "2011") / "ImageSets" / "Segmentation" / "val.txt"
    sbd_train = find_sbd_dir(sbd_root) / "train.txt"
    digest = hashlib.sha256()
    for p in (voc_val, sbd_train):
        if not p.is_file():
            raise FileNotFoundError(f"seg11valid needs {p}, which is missing")
        digest.update(p.read_bytes() + b"\0")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "splits"
    cached = folder / f"seg11valid-{digest.hexdigest()[:16]}.txt"
    if cached.is_file():
        return read_split_list(cached, first_word=True)
    exclude = set(read_split_list(sbd_train, first_word=True))
    ids = [i for i in read_split_list(voc_val, first_word=True) if i not in exclude]
    try:
        atomic_write_bytes(cached, "".join(f"{i}\n" for i in ids).encode())
    except OSError as e:
        log.warning("could not cache the seg11valid list at %s (%s); continuing", cached, e)
    if len(ids) != SEG11VALID_SIZE:
        log.info("seg11valid has %d images (%d on the official releases)", len(ids),
                 SEG11VALID_SIZE)
    return ids


def seg11valid(voc_root: PathLike, sbd_root: PathLike, transform: Transform | None = None,
               cache_dir: PathLike | None = None) -> VOCSegmentation:
    """The seg11valid evaluation set as a :class:`VOCSegmentation` over VOC2011."""
    ids = seg11valid_ids(voc_root, sbd_root, cache_dir=cache_dir)
    return VOCSegmentation(voc_root, year="2011", split="seg11valid", transform=transform,
                           ids=ids)
