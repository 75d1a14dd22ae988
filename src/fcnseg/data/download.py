"""Download and extract the paper's datasets, or find them already extracted, offline.
PASCAL VOC 2012 / 2011, SBD, PASCAL-Context (with VOC2010), NYUDv2 and SIFT Flow come through
:func:`fcnseg.utils.download.download` (cache, resume, and a checksum where one is published)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fcnseg.data.nyud import find_nyud_dir
from fcnseg.data.pascal_context import find_context_dir, find_voc2010_dir
from fcnseg.data.sbd import find_sbd_dir
from fcnseg.data.siftflow import find_siftflow_dir
from fcnseg.data.voc import find_voc_dir
from fcnseg.utils.download import download, extract_archive
from fcnseg.utils.typing import PathLike


@dataclass(frozen=True)
class Archive:
    """A published dataset archive: where to get it and its checksum (None: none published)."""

    url: str
    md5: str | None
    filename: str


#: The archives, by dataset key.
_VOC = "http://host.robots.ox.ac.uk/pascal/VOC"
_CONTEXT = "http://www.cs.stanford.edu/~roozbeh/pascal-context"
ARCHIVES: dict[str, Archive] = {
    "voc2012": Archive(f"{_VOC}/voc2012/VOCtrainval_11-May-2012.tar",
                       "6cd6e144f989b92b3379bac3b3de84fd", "VOCtrainval_11-May-2012.tar"),
    "voc2011": Archive(f"{_VOC}/voc2011/VOCtrainval_25-May-2011.tar",
                       "6c3384ef61512963050cb5d687e5bf1e", "VOCtrainval_25-May-2011.tar"),
    "sbd": Archive("http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
                   "semantic_contours/benchmark.tgz", "82b4d87ceb2ed10f6038a1cba92111cb",
                   "benchmark.tgz"),
    "voc2010": Archive(f"{_VOC}/voc2010/VOCtrainval_03-May-2010.tar",
                       "da459979d0c395079b5c75ee67908abb", "VOCtrainval_03-May-2010.tar"),
    "pascal_context": Archive(f"{_CONTEXT}/trainval.tar.gz", None,
                              "pascal-context-trainval.tar.gz"),
    "pascal_context_59": Archive(f"{_CONTEXT}/59_labels.txt", None, "59_labels.txt"),
    "nyud": Archive("http://dl.caffe.berkeleyvision.org/nyud.tar.gz", None, "nyud.tar.gz"),
    "siftflow": Archive("http://www.cs.unc.edu/~jtighe/Papers/ECCV10/siftflow/"
                        "SiftFlowDataset.zip", None, "SiftFlowDataset.zip"),
}


def _find_or_fetch(key: str, root: PathLike, find: Callable[[Path], Path],
                   archive_dir: PathLike | None, progress: bool, keep_archive: bool) -> Path:
    """``find(root)``, fetching and extracting ``ARCHIVES[key]`` there first if needed."""
    root = Path(root).expanduser()
    try:
        return find(root)
    except FileNotFoundError:
        _fetch_and_extract(key, root, archive_dir, progress, keep_archive)
    return find(root)


def _fetch_and_extract(key: str, root: Path, archive_dir: PathLike | None, progress: bool,
                       keep_archive: bool) -> None:
    spec = ARCHIVES[key]
    folder = Path(archive_dir) if archive_dir is not None else root
    archive = download(spec.url, filename=spec.filename, md5=spec.md5, directory=folder,
                       progress=progress)
    extract_archive(archive, root)
    if not keep_archive:
        archive.unlink()


def download_voc(root: PathLike, year: str = "2012", *, archive_dir: PathLike | None = None,
                 keep_archive: bool = True, progress: bool = True) -> Path:
    """Make PASCAL VOC ``year`` ("2012" or "2011") available under ``root`` (where
    :class:`VOCSegmentation` finds it); return its folder. The archive is kept in
    ``archive_dir`` (default ``root``) so a later call needs no network."""
    year = str(year)
    if year not in ("2012", "2011"):  # VOC2010 comes with PASCAL-Context only
        raise ValueError(f"year: no download for VOC{year}; available: 2012, 2011")
    return _find_or_fetch(f"voc{year}", root, lambda r: find_voc_dir(r, year), archive_dir,
                          progress, keep_archive)


def download_pascal_context(root: PathLike, *, archive_dir: PathLike | None = None,
                            keep_archive: bool = True, progress: bool = True) -> Path:
    """Make PASCAL-Context available under ``root`` as :class:`PascalContext` reads it
    (``VOCdevkit/VOC2010``, ``pascal-context``); return ``root``."""
    root = Path(root).expanduser()
    _find_or_fetch("voc2010", root, find_voc2010_dir, archive_dir, progress, keep_archive)
    context = root / "pascal-context"
    try:
        find_context_dir(root)
    except FileNotFoundError:
        if not ((context / "trainval").is_dir() and (context / "labels.txt").is_file()):
            _fetch_and_extract("pascal_context", context, archive_dir, progress, keep_archive)
        if not (context / "59_labels.txt").is_file():
            spec = ARCHIVES["pascal_context_59"]
            download(spec.url, filename="59_labels.txt", md5=spec.md5, directory=context,
                     progress=progress)
    find_context_dir(root)
    return root


def download_sbd(root: PathLike, *, archive_dir: PathLike | None = None,
                 keep_archive: bool = True, progress: bool = True) -> Path:
    """Make SBD available as ``root/benchmark_RELEASE/dataset``; return that folder."""
    return _find_or_fetch("sbd", root, find_sbd_dir, archive_dir, progress, keep_archive)


def download_nyud(root: PathLike, *, archive_dir: PathLike | None = None,
                  keep_archive: bool = True, progress: bool = True) -> Path:
    """Make NYUDv2 in the FCN reference's format available under ``root``; return its folder
    (the one holding ``data/``, ``segmentation/`` and the split lists)."""
    return _find_or_fetch("nyud", root, find_nyud_dir, archive_dir, progress, keep_archive)


def download_siftflow(root: PathLike, *, archive_dir: PathLike | None = None,
                      keep_archive: bool = True, progress: bool = True) -> Path:
    """Make SIFT Flow available under ``root``; return its folder. The split lists
    (``trainval.txt``, ``test.txt``) come with the FCN reference release: put them there."""
    return _find_or_fetch("siftflow", root, find_siftflow_dir, archive_dir, progress,
                          keep_archive)
