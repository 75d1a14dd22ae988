"""Download and extract PASCAL VOC 2012 / 2011 and SBD, verified by their published checksums.

Archives are fetched with :func:`fcnseg.utils.download.download` (cache, resume of partial
files, checksum before use) and unpacked with :func:`~fcnseg.utils.download.extract_archive`.
A dataset that is already extracted is found and returned without any network access.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fcnseg.data.sbd import find_sbd_dir
from fcnseg.data.voc import find_voc_dir
from fcnseg.utils.download import download, extract_archive
from fcnseg.utils.typing import PathLike

__all__ = ["ARCHIVES", "Archive", "download_sbd", "download_voc"]


@dataclass(frozen=True)
class Archive:
    """A published dataset archive: where to get it and its checksum."""

    url: str
    md5: str
    filename: str


#: The archives, by dataset key ("voc2012", "voc2011", "sbd").
ARCHIVES: dict[str, Archive] = {
    "voc2012": Archive(
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "6cd6e144f989b92b3379bac3b3de84fd",
        "VOCtrainval_11-May-2012.tar",
    ),
    "voc2011": Archive(
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2011/VOCtrainval_25-May-2011.tar",
        "6c3384ef61512963050cb5d687e5bf1e",
        "VOCtrainval_25-May-2011.tar",
    ),
    "sbd": Archive(
        "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
        "benchmark.tgz",
        "82b4d87ceb2ed10f6038a1cba92111cb",
        "benchmark.tgz",
    ),
}


def _fetch_and_extract(
    key: str, root: Path, archive_dir: PathLike | None, progress: bool,
    keep_archive: bool,
) -> None:
    spec = ARCHIVES[key]
    folder = Path(archive_dir) if archive_dir is not None else root
    archive = download(spec.url, filename=spec.filename, md5=spec.md5, directory=folder,
                       progress=progress)
    extract_archive(archive, root)
    if not keep_archive:
        archive.unlink()


def download_voc(
    root: PathLike,
    year: str = "2012",
    *,
    archive_dir: PathLike | None = None,
    keep_archive: bool = True,
    progress: bool = True,
) -> Path:
    """Make PASCAL VOC ``year`` ("2012" or "2011") available under ``root``; return its folder.

    VOC2012 extracts to ``root/VOCdevkit/VOC2012``, VOC2011 to
    ``root/TrainVal/VOCdevkit/VOC2011`` (both found by :class:`VOCSegmentation` from ``root``).
    The archive is kept in ``archive_dir`` (default ``root``) so a later call needs no network.
    """
    year = str(year)
    key = f"voc{year}"
    if key not in ARCHIVES:
        raise ValueError(f"year: no download for VOC{year}; available: 2012, 2011")
    root = Path(root).expanduser()
    try:
        return find_voc_dir(root, year)
    except FileNotFoundError:
        pass
    _fetch_and_extract(key, root, archive_dir, progress, keep_archive)
    return find_voc_dir(root, year)


def download_sbd(
    root: PathLike,
    *,
    archive_dir: PathLike | None = None,
    keep_archive: bool = True,
    progress: bool = True,
) -> Path:
    """Make SBD available as ``root/benchmark_RELEASE/dataset``; return that folder."""
    root = Path(root).expanduser()
    try:
        return find_sbd_dir(root)
    except FileNotFoundError:
        pass
    _fetch_and_extract("sbd", root, archive_dir, progress, keep_archive)
    return find_sbd_dir(root)
