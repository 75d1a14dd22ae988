"""SIFT Flow in its own layout: one image, two label maps (semantic, geometric)."""

import re

import numpy as np
import pytest
import torch
from ondisk import SIFTFLOW_SUBDIR, write_siftflow
from scipy.io import savemat

from fcnseg.cli.main import main
from fcnseg.data import SIFTFlow, build_dataset, collate_segmentation
from fcnseg.data.transforms import ToTensor, build_train_transform


@pytest.fixture()
def siftflow_root(tmp_path):
    write_siftflow(tmp_path, {"trainval": ["coast_a", "highway_bost181", "forest_b"],
                              "test": ["street_urb506", "mountain_c"]})
    return tmp_path


def test_sample_is_an_image_and_a_dict_of_two_label_maps(siftflow_root):
    image, labels = SIFTFlow(siftflow_root, "test")[0]
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    assert list(labels) == ["semantic", "geometric"]
    assert all(v.shape == (16, 16) and v.dtype == np.int64 for v in labels.values())


def test_void_becomes_the_ignore_value_in_both_maps(siftflow_root):
    ds_dir = siftflow_root / "SiftFlowDataset"
    savemat(ds_dir / "SemanticLabels" / SIFTFLOW_SUBDIR / "mountain_c.mat",
            {"S": np.array([[0, 1], [33, 9]], np.int32)})
    savemat(ds_dir / "GeoLabels" / SIFTFLOW_SUBDIR / "mountain_c.mat",
            {"S": np.array([[-1, 1], [2, 3]], np.int32)})
    labels = SIFTFlow(siftflow_root, "test").read_label(0)
    np.testing.assert_array_equal(labels["semantic"], [[255, 0], [32, 8]])
    np.testing.assert_array_equal(labels["geometric"], [[255, 0], [1, 2]])


def test_unannotated_images_are_left_out_of_every_split(siftflow_root):
    assert SIFTFlow(siftflow_root, "trainval").ids == ["coast_a", "forest_b"]
    assert SIFTFlow(siftflow_root, "test").ids == ["mountain_c"]
    assert SIFTFlow.excluded_ids == ("highway_bost181", "street_urb506")


def test_classes_absent_from_the_test_set_are_excluded_from_semantic_evaluation():
    ds_classes = SIFTFlow.heads["semantic"]
    excluded = SIFTFlow.eval_exclude_classes["semantic"]
    assert [ds_classes[c] for c in excluded] == ["cow", "desert", "moon"]
    assert "geometric" not in SIFTFlow.eval_exclude_classes
    assert len(ds_classes) == 33 and SIFTFlow.heads["geometric"] == (
        "sky", "horizontal", "vertical")


def test_transforms_move_both_label_maps_with_the_image(siftflow_root):
    ds = SIFTFlow(siftflow_root, "trainval")
    image, labels = ds.load(0)
    # Tie the geometric map to the semantic one, so any drift between them shows.
    semantic = labels["semantic"]
    labels = {"semantic": semantic, "geometric": np.where(semantic == 255, 255, semantic % 3)}
    torch.manual_seed(0)
    t = build_train_transform(crop_size=20, scale_range=(0.7, 1.6))
    for _ in range(5):
        x, y = t(image, labels)
        assert x.shape == (3, 20, 20) and set(y) == {"semantic", "geometric"}
        semantic, geometric = y["semantic"], y["geometric"]
        void = semantic == 255
        assert torch.equal(void, geometric == 255)  # padding hits both maps alike
        assert torch.equal(geometric[~void], semantic[~void] % 3)


def test_collate_gives_a_dict_of_label_batches(siftflow_root):
    ds = SIFTFlow(siftflow_root, "trainval", transform=ToTensor())
    images, labels = collate_segmentation([ds[0], ds[1]])
    assert tuple(images.shape) == (2, 3, 16, 16)
    assert {k: tuple(v.shape) for k, v in labels.items()} == {
        "semantic": (2, 16, 16), "geometric": (2, 16, 16)}


def test_missing_split_list_says_where_lists_come_from(siftflow_root):
    with pytest.raises(ValueError, match="trainval.txt and test.txt"):
        SIFTFlow(siftflow_root, "val")


def test_build_dataset_name(siftflow_root):
    ds = build_dataset({"name": "siftflow", "root": str(siftflow_root), "split": "test"})
    assert isinstance(ds, SIFTFlow) and len(ds) == 1


def test_check_data_counts_each_label_map(siftflow_root, capsys):
    assert main(["check-data", "--dataset", "siftflow", "--root", str(siftflow_root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"trainval\s+2\n", out) and re.search(r"test\s+1\n", out)
    assert "label map 'semantic' (33 classes)" in out
    assert "label map 'geometric' (3 classes)" in out
    assert "left out of every split: highway_bost181, street_urb506" in out
    labels = [SIFTFlow(siftflow_root, s).read_label(0) for s in ("trainval", "test")]
    labels.append(SIFTFlow(siftflow_root, "trainval").read_label(1))
    vertical = sum(int((lb["geometric"] == 2).sum()) for lb in labels)
    assert re.search(rf"\n\s+2\s+vertical\s+{vertical}\s", out)


def test_check_data_names_a_bad_geometric_file(siftflow_root, capsys):
    path = siftflow_root / "SiftFlowDataset" / "GeoLabels" / SIFTFLOW_SUBDIR / "forest_b.mat"
    savemat(path, {"S": np.full((16, 16), 7, np.int32)})
    assert main(["check-data", "--dataset", "siftflow", "--root", str(siftflow_root)]) == 1
    assert f"{path}: label values outside [0, 4)" in capsys.readouterr().out


class ColumnsAndRows(torch.nn.Module):
    """A fake two-head model: predicts semantic class = column, geometric class = row % 3."""

    def forward(self, x):
        n, _, h, w = x.shape
        cols = torch.arange(w).expand(n, h, w)
        rows = torch.arange(h)[:, None].expand(n, h, w)
        return {"semantic": torch.nn.functional.one_hot(cols, 33).permute(0, 3, 1, 2).float(),
                "geometric": torch.nn.functional.one_hot(rows % 3, 3).permute(0, 3, 1, 2).float()}


def test_evaluation_scores_each_head_and_honours_the_dataset_exclusions(siftflow_root):
    from functools import partial

    from torch.utils.data import DataLoader

    from fcnseg.engine.evaluation import evaluate_model

    ds = SIFTFlow(siftflow_root, "trainval", transform=ToTensor())
    loader = DataLoader(ds, batch_size=2, collate_fn=partial(collate_segmentation))
    result = evaluate_model(ColumnsAndRows(), loader,
                            num_classes={h: len(c) for h, c in ds.heads.items()},
                            exclude_classes=ds.eval_exclude_classes)
    expected = {"semantic": np.zeros((33, 33), np.int64), "geometric": np.zeros((3, 3), np.int64)}
    rows, cols = np.indices((16, 16))
    for i in range(len(ds)):
        labels = ds.read_label(i)
        for head, pred in (("semantic", cols), ("geometric", rows % 3)):
            valid = labels[head] != 255
            np.add.at(expected[head], (labels[head][valid], pred[valid]), 1)
    for head in expected:
        np.testing.assert_array_equal(result["heads"][head]["confusion"], expected[head])
    semantic = result["heads"]["semantic"]
    assert semantic["excluded_classes"] == [8, 10, 15]
    iu = np.asarray(semantic["iu"])
    keep = np.ones(33, bool)
    keep[[8, 10, 15]] = False
    assert semantic["mean_iu"] == pytest.approx(np.nanmean(iu[keep]), rel=1e-6)
    geometric = expected["geometric"]
    assert result["heads"]["geometric"]["pixel_acc"] == pytest.approx(
        np.trace(geometric) / geometric.sum(), rel=1e-6)


def test_skipping_bad_samples_keeps_the_heads_and_exclusions(siftflow_root):
    from fcnseg.data import SkipBad

    wrapped = SkipBad(SIFTFlow(siftflow_root, "test"))
    assert wrapped.heads == SIFTFlow.heads
    assert wrapped.eval_exclude_classes == {"semantic": (8, 10, 15)}
    assert wrapped.excluded_ids == ("highway_bost181", "street_urb506")


@pytest.mark.parametrize("recipe", ["siftflow-fcn32s", "siftflow-fcn16s", "siftflow-fcn8s"])
def test_the_recipes_default_root_is_the_folder_download_siftflow_writes(
        tmp_path, monkeypatch, recipe):
    from fcnseg.engine.config import load_config

    write_siftflow(tmp_path / "data", {"trainval": ["coast_a"], "test": ["mountain_c"]})
    monkeypatch.chdir(tmp_path)  # download_siftflow("data") → data/SiftFlowDataset
    data = load_config(recipe).data
    assert data.train["root"] == data.val["root"] == "data/SiftFlowDataset"
    assert SIFTFlow(data.val["root"], data.val["split"]).ids == ["mountain_c"]


def test_the_reference_folder_name_beside_it_serves_the_same_root(tmp_path, monkeypatch):
    write_siftflow(tmp_path / "data", {"test": ["mountain_c"]})
    (tmp_path / "data" / "SiftFlowDataset").rename(tmp_path / "data" / "sift-flow")
    monkeypatch.chdir(tmp_path)
    for root in ("data/SiftFlowDataset", "data/sift-flow", "data"):
        assert SIFTFlow(root, "test").dir.resolve() == tmp_path / "data" / "sift-flow"


def test_no_siftflow_folder_names_both_places_looked_in(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(FileNotFoundError, match=r"looked for .* in .*SiftFlowDataset, "
                                                r".*sift-flow"):
        SIFTFlow(tmp_path / "data" / "SiftFlowDataset", "test")
