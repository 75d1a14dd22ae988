import re

import numpy as np
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import SyntheticSegmentation
from fcnseg.data.check import scan_dataset


def test_voc_report_lists_splits_and_class_pixels(voc_root, capsys):
    assert main(["check-data", "--dataset", "voc", "--root", str(voc_root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"train\s+2\n", out) and re.search(r"val\s+1\n", out)
    assert re.search(r"trainval\s+3\n", out) and re.search(r"checked\s+3 distinct images", out)
    assert "background" in out and "(ignored)" in out and "no problems found" in out


def test_problems_are_listed_with_their_files_and_exit_1(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "dataset.yaml").write_text("classes: [bg, fg]\n")
    for stem in ("good", "big", "wrong"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"{stem}.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "masks" / "good.png")
    Image.fromarray(np.full((8, 8), 5, np.uint8)).save(tmp_path / "masks" / "big.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "masks" / "orphan.png")
    (tmp_path / "train.txt").write_text("good\nbig\nwrong\n")
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"train\s+3\n", out)
    assert "2 problem(s)" in out
    assert f"{tmp_path / 'masks' / 'big.png'}: label values outside [0, 2)" in out
    assert f"{tmp_path / 'masks' / 'wrong.png'}: missing mask" in out
    assert "orphan.png: mask without an image" in out
    assert re.search(r"\n\s+1\s+fg\s+64\s", out)  # only the good mask is counted


def test_missing_root_is_a_usage_error(capsys):
    assert main(["check-data", "--dataset", "voc"]) == 2
    assert "--root is required" in capsys.readouterr().err


def test_scan_counts_match_the_labels_with_or_without_workers():
    ds = SyntheticSegmentation(6, 32, seed=2)
    expected = sum(np.bincount(ds[i][1].ravel(), minlength=7) for i in range(6))
    serial = scan_dataset(ds)
    parallel = scan_dataset(ds, workers=2)
    np.testing.assert_array_equal(serial.class_pixels, expected)
    np.testing.assert_array_equal(parallel.class_pixels, expected)
    assert serial.ok and serial.images == 6


def test_unexpected_read_failure_is_reported_with_the_sample_files(voc_root):
    from fcnseg.data import VOCSegmentation

    class Flaky(VOCSegmentation):
        def read_label(self, index):
            raise RuntimeError("decoder crashed")

    report = scan_dataset(Flaky(voc_root))
    assert not report.ok
    problem = report.problems[0]
    assert problem.path.endswith(f"(mask {Flaky(voc_root).label_path(0)})")
    assert "JPEGImages" in problem.path and "RuntimeError: decoder crashed" in str(problem)


def test_sbd_and_seg11valid_reports(tmp_path, ondisk, monkeypatch, capsys):
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "cache"))
    ondisk.write_sbd(tmp_path, {"train": ["a", "b"], "val": ["c"]})
    ondisk.write_voc(tmp_path, "2011", {"val": ["a", "d"]})
    assert main(["check-data", "--dataset", "sbd", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"train\s+2\n", out) and re.search(r"checked\s+3 distinct", out)
    assert main(["check-data", "--dataset", "seg11valid", "--voc-root", str(tmp_path),
                 "--sbd-root", str(tmp_path)]) == 0
    assert re.search(r"seg11valid\s+1\n", capsys.readouterr().out)


def test_labelme_annotations_are_checked_as_read(tmp_path, capsys):
    import json

    for k in range(3):
        Image.new("RGB", (16, 12), (40 * k, 90, 30)).save(tmp_path / f"img{k}.png")
        (tmp_path / f"img{k}.json").write_text(json.dumps({
            "version": "5.4.1", "flags": {}, "imagePath": f"img{k}.png", "imageData": None,
            "imageHeight": 12, "imageWidth": 16,
            "shapes": [{"label": "box", "shape_type": "rectangle", "flags": {},
                        "points": [[2, 2], [8, 8]], "group_id": None}]}))
    assert main(["check-data", "--dataset", "labelme", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "labelme annotations at" in out and "box" in out


def test_an_empty_split_list_is_warned_about(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "dataset.yaml").write_text("classes: [bg, fg]\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    (tmp_path / "train.txt").write_text("a\n")
    (tmp_path / "val.txt").write_text("")  # as an import of a few images can leave it
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "warning: split 'val' holds no images" in out
    assert "'train' holds no images" not in out


def test_near_duplicates_are_found_with_numpy_1_which_lacks_bitwise_count(monkeypatch):
    from fcnseg.data.check import difference_hash, near_duplicates

    monkeypatch.delattr(np, "bitwise_count", raising=False)  # NumPy 2.0 added it
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    other = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    train = {"a": difference_hash(image), "b": difference_hash(other)}
    assert near_duplicates(train, {"c": difference_hash(image.copy())}) == [("c", "a", 0)]


def _closest_by_plain_comparison(train, val, max_bits):
    """For each val hash, the first train hash of another name with the fewest differing bits."""
    found = []
    for v, hashed in val.items():
        bits = {t: int(np.unpackbits(hashed ^ other).sum()) for t, other in train.items() if t != v}
        closest = min(bits, key=bits.get, default=None)  # the first of the fewest
        if closest is not None and bits[closest] <= max_bits:
            found.append((v, closest, bits[closest]))
    return found


def _hashes_near(centres, count, rng, prefix):
    """``count`` 256-bit hashes, each a random one of ``centres`` with 0 to 60 bits flipped."""
    hashes = {}
    for k in range(count):
        bits = np.unpackbits(centres[rng.integers(len(centres))])
        bits[rng.choice(256, rng.integers(0, 61), replace=False)] ^= 1
        hashes[f"{prefix}{k}"] = np.packbits(bits)
    return hashes


def test_near_duplicates_are_the_closest_pictures_a_plain_comparison_finds():
    from fcnseg.data.check import near_duplicates

    rng = np.random.default_rng(0)
    for max_bits in (0, 1, 10, 32, 45, 300):
        centres = rng.integers(0, 256, (4, 32), dtype=np.uint8)
        train = _hashes_near(centres, 150, rng, "t")
        val = {**_hashes_near(centres, 60, rng, "v"), "t0": train["t0"], "t1": train["t2"]}
        found = near_duplicates(train, val, max_bits)
        assert found == _closest_by_plain_comparison(train, val, max_bits)
        assert len(found) > 0


def test_near_duplicates_of_equally_close_pictures_name_the_first():
    from fcnseg.data.check import near_duplicates

    bits = np.arange(256)
    train = {"far": bits < 20, "first": bits < 7, "second": bits >= 249, "third": bits % 37 == 0}
    val = {"v": np.zeros(32, np.uint8)}
    hashes = {name: np.packbits(h) for name, h in train.items()}
    assert near_duplicates(hashes, val) == [("v", "first", 7)]


def test_near_duplicates_are_within_max_bits_and_not_one_more():
    from fcnseg.data.check import near_duplicates

    train = {"a": np.zeros(32, np.uint8)}
    val = {f"{n} bits": np.packbits(np.arange(256) < n) for n in (31, 32, 33)}
    assert near_duplicates(train, val) == [("31 bits", "a", 31), ("32 bits", "a", 32)]
