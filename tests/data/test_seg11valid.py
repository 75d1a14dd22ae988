import pytest

from fcnseg.data import VOCSegmentation, build_dataset, seg11valid, seg11valid_ids


@pytest.fixture()
def roots(tmp_path, ondisk):
    ondisk.write_voc(tmp_path / "voc", "2011",
                     {"val": ["2007_000033", "2007_000042", "2007_000061", "2007_000123"],
                      "train": ["2007_000032"]})
    ondisk.write_sbd(tmp_path / "sbd", {"train": ["2007_000042", "2007_000123", "2008_000002"],
                                        "val": ["2007_000033"]})
    return tmp_path / "voc", tmp_path / "sbd"


def test_seg11valid_is_voc2011_val_minus_sbd_train_in_voc_order(roots, tmp_path):
    ids = seg11valid_ids(*roots, cache_dir=tmp_path / "cache")
    assert ids == ["2007_000033", "2007_000061"]
    ds = seg11valid(*roots, cache_dir=tmp_path / "cache")
    assert isinstance(ds, VOCSegmentation) and ds.year == "2011" and ds.ids == ids
    assert ds[1][1].shape == (40, 48)


def test_the_list_is_cached_keyed_by_the_inputs(roots, tmp_path):
    cache = tmp_path / "cache"
    seg11valid_ids(*roots, cache_dir=cache)
    (first,) = cache.glob("seg11valid-*.txt")
    assert first.read_text().split() == ["2007_000033", "2007_000061"]
    # a changed SBD train list gives a new cache entry, never the stale one
    (roots[1] / "benchmark_RELEASE" / "dataset" / "train.txt").write_text("2007_000033\n")
    assert seg11valid_ids(*roots, cache_dir=cache) == ["2007_000042", "2007_000061",
                                                       "2007_000123"]
    assert len(list(cache.glob("seg11valid-*.txt"))) == 2


def test_cached_list_is_what_later_calls_return(roots, tmp_path):
    cache = tmp_path / "cache"
    seg11valid_ids(*roots, cache_dir=cache)
    (entry,) = cache.glob("seg11valid-*.txt")
    entry.write_text("2007_000061\n")  # the cache is trusted once written
    assert seg11valid_ids(*roots, cache_dir=cache) == ["2007_000061"]


def test_unwritable_cache_still_gives_the_list(roots, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a file where the cache folder would go: no one can write there
    assert seg11valid_ids(*roots, cache_dir=blocker / "splits") == ["2007_000033", "2007_000061"]
    assert "could not cache" in caplog.text


def test_build_dataset_seg11valid(roots, tmp_path):
    ds = build_dataset({"name": "seg11valid", "voc_root": str(roots[0]),
                        "sbd_root": str(roots[1]), "cache_dir": str(tmp_path / "c")})
    assert ds.ids == ["2007_000033", "2007_000061"]


def test_the_voc_recipes_default_paths_find_the_downloaded_layout(tmp_path, ondisk, monkeypatch):
    # download_voc("data", "2011") extracts to data/TrainVal/VOCdevkit/VOC2011 and
    # download_sbd("data") to data/benchmark_RELEASE: the recipes' defaults must find both
    from fcnseg.engine.config import load_config

    ondisk.write_voc(tmp_path / "data" / "TrainVal", "2011", {"val": ["2007_000033"]})
    ondisk.write_sbd(tmp_path / "data", {"train": ["2007_000042"], "val": ["2007_000033"]})
    monkeypatch.chdir(tmp_path)
    for recipe in ("voc-fcn32s", "voc-fcn8s", "voc-fcn-alexnet", "voc-fcn32s-googlenet"):
        spec = dict(load_config(recipe).data.val, cache_dir=str(tmp_path / "c"))
        assert build_dataset(spec).ids == ["2007_000033"], recipe


@pytest.mark.parametrize("relative", ["", "TrainVal", "TrainVal/VOCdevkit",
                                      "TrainVal/VOCdevkit/VOC2011"])
def test_voc2011_is_found_from_the_download_folder_or_the_devkit(tmp_path, ondisk, relative):
    voc = ondisk.write_voc(tmp_path / "TrainVal", "2011", {"val": ["2007_000033"]})
    assert VOCSegmentation(tmp_path / relative, year="2011", split="val").dir == voc


def test_a_devkit_without_voc2011_names_the_places_looked_in(tmp_path, ondisk):
    ondisk.write_voc(tmp_path / "data" / "TrainVal", "2011", {"val": ["2007_000033"]})
    with pytest.raises(FileNotFoundError) as error:
        VOCSegmentation(tmp_path / "data" / "VOCdevkit", year="2011", split="val")
    message = str(error.value)
    assert "\n" not in message and "data/VOCdevkit/VOC2011" in message
    data = tmp_path / "data"
    assert message.endswith(f"It is in {data}/TrainVal/VOCdevkit/VOC2011: pass {data}.")
