import hashlib
import tarfile

import pytest

from fcnseg.data import SBDSegmentation, VOCSegmentation, download_sbd, download_voc
from fcnseg.data import download as data_download
from fcnseg.utils.download import ChecksumError, DownloadError


def make_archive(src_root, served, name, mode="w"):
    """Pack every top-level entry of ``src_root`` into ``served/name``; return its md5."""
    path = served / name
    with tarfile.open(path, mode) as tf:
        for child in sorted(src_root.iterdir()):
            tf.add(child, arcname=child.name)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture()
def voc2012_archive(tmp_path, ondisk, loopback_server, monkeypatch):
    ondisk.write_voc(tmp_path / "staging", "2012", {"train": ["a", "b"], "val": ["c"]})
    md5 = make_archive(tmp_path / "staging", loopback_server.root, "voc.tar")
    monkeypatch.setitem(data_download.ARCHIVES, "voc2012", data_download.Archive(
        loopback_server.url("voc.tar"), md5, "VOCtrainval_11-May-2012.tar"))
    return loopback_server.root / "voc.tar"


def test_voc2012_is_downloaded_verified_and_extracted(tmp_path, voc2012_archive, loopback_server):
    root = tmp_path / "data"
    voc_dir = download_voc(root, "2012", progress=False)
    assert voc_dir == root / "VOCdevkit" / "VOC2012"
    assert VOCSegmentation(root, split="train")[1][1].shape == (40, 48)
    assert (root / "VOCtrainval_11-May-2012.tar").is_file()  # kept for later use
    # Already there: no network access at all the second time.
    requests = len(loopback_server.requests)
    assert download_voc(root, "2012", progress=False) == voc_dir
    assert len(loopback_server.requests) == requests


def test_checksum_mismatch_is_an_error_and_leaves_nothing_behind(
    tmp_path, voc2012_archive, loopback_server, monkeypatch
):
    good = data_download.ARCHIVES["voc2012"]
    monkeypatch.setitem(data_download.ARCHIVES, "voc2012",
                        data_download.Archive(good.url, "0" * 32, good.filename))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="md5 expected 0000"):
        download_voc(root, "2012", progress=False)
    assert not (root / "VOCdevkit").exists()
    assert not list(root.glob("*.part")) and not (root / good.filename).exists()


def test_partial_download_is_resumed_with_a_range_request(
    tmp_path, voc2012_archive, loopback_server
):
    root = tmp_path / "data"
    root.mkdir()
    data = voc2012_archive.read_bytes()
    half = len(data) // 2
    (root / "VOCtrainval_11-May-2012.tar.part").write_bytes(data[:half])
    download_voc(root, "2012", progress=False)
    assert loopback_server.range_requests == [f"bytes={half}-"]
    assert len(VOCSegmentation(root, split="val")) == 1


def test_voc2011_uses_its_trainval_layout(tmp_path, ondisk, loopback_server, monkeypatch):
    ondisk.write_voc(tmp_path / "staging" / "TrainVal", "2011", {"val": ["x"]})
    md5 = make_archive(tmp_path / "staging", loopback_server.root, "voc11.tar")
    monkeypatch.setitem(data_download.ARCHIVES, "voc2011", data_download.Archive(
        loopback_server.url("voc11.tar"), md5, "VOCtrainval_25-May-2011.tar"))
    voc_dir = download_voc(tmp_path / "data", "2011", progress=False, keep_archive=False)
    assert voc_dir == tmp_path / "data" / "TrainVal" / "VOCdevkit" / "VOC2011"
    assert not (tmp_path / "data" / "VOCtrainval_25-May-2011.tar").exists()


def test_sbd_tgz_is_downloaded_and_extracted(tmp_path, ondisk, loopback_server, monkeypatch):
    ondisk.write_sbd(tmp_path / "staging", {"train": ["p", "q"], "val": ["r"]})
    md5 = make_archive(tmp_path / "staging", loopback_server.root, "benchmark.tgz", "w:gz")
    monkeypatch.setitem(data_download.ARCHIVES, "sbd", data_download.Archive(
        loopback_server.url("benchmark.tgz"), md5, "benchmark.tgz"))
    sbd_dir = download_sbd(tmp_path / "data", archive_dir=tmp_path / "archives", progress=False)
    assert sbd_dir == tmp_path / "data" / "benchmark_RELEASE" / "dataset"
    assert (tmp_path / "archives" / "benchmark.tgz").is_file()
    assert SBDSegmentation(tmp_path / "data")[0][1].shape == (40, 48)


def test_unknown_year_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no download for VOC2010"):
        download_voc(tmp_path, "2010")


def test_published_checksums_are_the_reference_ones():
    assert data_download.ARCHIVES["voc2012"].md5 == "6cd6e144f989b92b3379bac3b3de84fd"
    assert data_download.ARCHIVES["voc2011"].md5 == "6c3384ef61512963050cb5d687e5bf1e"
    assert data_download.ARCHIVES["sbd"].md5 == "82b4d87ceb2ed10f6038a1cba92111cb"


def test_archive_placed_by_hand_is_used_without_network(tmp_path, voc2012_archive, monkeypatch):
    good = data_download.ARCHIVES["voc2012"]
    monkeypatch.setitem(data_download.ARCHIVES, "voc2012", data_download.Archive(
        "http://127.0.0.1:9/unreachable.tar", good.md5, good.filename))
    root = tmp_path / "data"
    root.mkdir()
    (root / good.filename).write_bytes(voc2012_archive.read_bytes())
    assert download_voc(root, "2012", progress=False) == root / "VOCdevkit" / "VOC2012"


def test_pascal_context_fetches_voc2010_annotations_and_task_labels(
    tmp_path, ondisk, loopback_server, monkeypatch
):
    from fcnseg.data import PascalContext, download_pascal_context

    staging = tmp_path / "staging"
    ondisk.write_pascal_context(staging, {"val": ["2008_000008"]})
    context = staging / "pascal-context"
    # The annotations archive holds trainval/ and labels.txt; 59_labels.txt is its own file.
    (context / "59_labels.txt").rename(loopback_server.root / "59.txt")
    context.rename(tmp_path / "context")
    md5 = make_archive(staging, loopback_server.root, "voc10.tar")
    make_archive(tmp_path / "context", loopback_server.root, "context.tgz", "w:gz")
    for key, name, checksum in (("voc2010", "voc10.tar", md5), ("pascal_context", "context.tgz",
                                                                 None), ("pascal_context_59",
                                                                         "59.txt", None)):
        monkeypatch.setitem(data_download.ARCHIVES, key, data_download.Archive(
            loopback_server.url(name), checksum, name))
    root = tmp_path / "data"
    assert download_pascal_context(root, progress=False) == root
    assert (root / "VOCdevkit" / "VOC2010" / "JPEGImages" / "2008_000008.jpg").is_file()
    assert (root / "pascal-context" / "59_labels.txt").is_file()
    assert len(PascalContext(root, "val")) == 1
    requests = len(loopback_server.requests)
    download_pascal_context(root, progress=False)  # already there: no network access
    assert len(loopback_server.requests) == requests


def test_voc2010_checksum_is_the_published_one():
    assert data_download.ARCHIVES["voc2010"].md5 == "da459979d0c395079b5c75ee67908abb"


@pytest.mark.parametrize("name", ["nyud", "siftflow"])
def test_nyud_and_siftflow_archives_are_fetched_and_extracted(
    name, tmp_path, ondisk, loopback_server, monkeypatch
):
    from fcnseg.data import NYUDv2, SIFTFlow, download_nyud, download_siftflow

    staging = tmp_path / "staging"
    if name == "nyud":
        ondisk.write_nyud(staging, {"test": ["5003"]})
    else:
        ondisk.write_siftflow(staging, {"test": ["coast_a"]})
    make_archive(staging, loopback_server.root, f"{name}.tar")
    monkeypatch.setitem(data_download.ARCHIVES, name, data_download.Archive(
        loopback_server.url(f"{name}.tar"), None, f"{name}.tar"))
    fetch, dataset = {"nyud": (download_nyud, NYUDv2), "siftflow": (download_siftflow,
                                                                    SIFTFlow)}[name]
    folder = fetch(tmp_path / "data", progress=False)
    assert len(dataset(folder, "test")) == 1


def test_an_archive_placed_by_hand_with_the_wrong_md5_offline_says_so(tmp_path, voc2012_archive,
                                                                      monkeypatch):
    good = data_download.ARCHIVES["voc2012"]
    monkeypatch.setitem(data_download.ARCHIVES, "voc2012", data_download.Archive(
        "http://127.0.0.1:9/unreachable.tar", good.md5, good.filename))
    root = tmp_path / "data"
    root.mkdir()
    (root / good.filename).write_bytes(voc2012_archive.read_bytes()[:-10])  # damaged
    with pytest.raises(ChecksumError) as info:
        download_voc(root, "2012", progress=False)
    message = str(info.value)
    assert message.startswith(f"{root / good.filename}: checksum mismatch: md5 is ")
    assert f"the published one is {good.md5}" in message
    assert sorted(p.name for p in root.iterdir()) == [good.filename]  # nothing else written


def test_offline_the_error_names_the_archive_its_url_and_the_folder_to_put_it_in(
        tmp_path, monkeypatch):
    good = data_download.ARCHIVES["voc2011"]
    url = "http://127.0.0.1:9/VOCtrainval_25-May-2011.tar"  # nothing listens on port 9
    monkeypatch.setitem(data_download.ARCHIVES, "voc2011",
                        data_download.Archive(url, good.md5, good.filename))
    root = tmp_path / "dl"
    with pytest.raises(DownloadError) as info:
        download_voc(root, "2011", progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"downloading {url} failed: ")
    assert message.endswith(
        f"If this machine has no internet access, download VOCtrainval_25-May-2011.tar "
        f"elsewhere (from {url}) and put it in {root}: it is used from there without network "
        f"access.")
