"""The evaluation loop: one confusion matrix over padded batches, eval mode, reports."""

import json
import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data import SyntheticSegmentation, collate_segmentation, palette_for
from fcnseg.engine.evaluation import (
    ShardedEvalSampler,
    evaluate_checkpoint,
    evaluate_model,
    format_report,
    write_report,
)
from fcnseg.metrics import confusion_matrix
from fcnseg.models import fcn8s

K = 4


class LabelEchoModel(nn.Module):
    """Predicts ``(channel-0 value + shift) mod K``: the test images carry their label there.

    It records whether each forward pass ran in eval and inference mode.
    """

    def __init__(self, shift: int = 0) -> None:
        super().__init__()
        self.shift = shift
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_inference_mode_enabled()))
        pred = (x[:, 0].round().long() + self.shift) % K
        return F.one_hot(pred, K).permute(0, 3, 1, 2).float() * self.scale


def _samples(sizes, seed=0):
    """(image, label) pairs of the given sizes; the image's channel 0 holds the label."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        label = rng.integers(0, K, size=(h, w))
        label[0, :2] = 255  # some void pixels
        image = torch.zeros(3, h, w)
        image[0] = torch.from_numpy(np.where(label == 255, 0, label)).float()
        out.append((image, torch.from_numpy(label)))
    return out


SIZES = [(9, 11), (12, 7), (5, 5), (10, 10), (8, 13)]


def _loader(samples, batch_size):
    return DataLoader(samples, batch_size=batch_size, collate_fn=collate_segmentation)


def test_padded_pixels_are_not_scored():
    samples = _samples(SIZES)
    result = evaluate_model(LabelEchoModel(), _loader(samples, 3), num_classes=K)
    valid = sum(int((lb != 255).sum()) for _, lb in samples)
    assert np.asarray(result["confusion"]).sum() == valid
    assert result["pixel_acc"] == 1.0 and result["mean_iu"] == 1.0
    assert result["num_images"] == len(samples)


def test_batched_validation_gives_the_confusion_of_one_image_at_a_time():
    # Images of five sizes: batches of 4 pad to their largest image, and the padding is
    # left out, so the matrix is exactly that of unpadded images one by one.
    samples = _samples(SIZES, seed=4)
    model = LabelEchoModel(shift=1)
    one = evaluate_model(model, _loader(samples, 1), num_classes=K)["confusion"]
    batched = evaluate_model(model, _loader(samples, 4), num_classes=K)["confusion"]
    assert batched == one
    assert np.asarray(one).sum() == sum(int((lb != 255).sum()) for _, lb in samples)


def test_confusion_is_summed_over_the_whole_dataset():
    samples = _samples(SIZES, seed=1)
    result = evaluate_model(LabelEchoModel(shift=1), _loader(samples, 2), num_classes=K)
    labels = np.concatenate([lb.numpy().ravel() for _, lb in samples])
    expected = confusion_matrix(labels, np.where(labels == 255, 0, (labels + 1) % K), K)
    np.testing.assert_array_equal(result["confusion"], expected)
    assert result["pixel_acc"] == 0.0


def test_runs_in_eval_and_inference_mode_and_restores_training_mode():
    model = LabelEchoModel().train()
    evaluate_model(model, _loader(_samples(SIZES[:2]), 1), num_classes=K)
    assert model.calls == [(False, True), (False, True)]
    assert model.training


def test_predict_fn_replaces_the_forward_pass():
    model = LabelEchoModel()

    def shifted(m, x):
        return m(x).roll(1, dims=1)  # class c's score moves to c + 1

    result = evaluate_model(model, _loader(_samples(SIZES), 2), num_classes=K,
                            predict_fn=shifted)
    assert result["pixel_acc"] == 0.0
    assert len(model.calls) == 3


def test_model_output_of_the_wrong_size_is_an_error():
    def half(m, x):
        return m(x)[..., ::2, ::2]

    with pytest.raises(ValueError, match="does not cover labels"):
        evaluate_model(LabelEchoModel(), _loader(_samples(SIZES[:1]), 1), num_classes=K,
                       predict_fn=half)


def test_sharded_sampler_covers_every_index_once():
    shards = [list(ShardedEvalSampler(7, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(7))
    assert [len(ShardedEvalSampler(7, rank=r, world_size=3)) for r in range(3)] == [3, 2, 2]


def _tiny_checkpoint(path, num_classes, names=None, recipe=None):
    torch.manual_seed(0)
    model = fcn8s(num_classes=num_classes, geometry="same", width=0.0625, fc_channels=16)
    with torch.no_grad():  # score layers start at zero; give the model some opinions
        for layer in (model.head.score_fr, model.head.score_pool4, model.head.score_pool3):
            layer.weight.normal_(0, 1.0)
    names = names or [f"class{i}" for i in range(num_classes)]
    return save_checkpoint(path, model, class_names=names, palette=palette_for(num_classes),
                           recipe=recipe)


def test_evaluate_checkpoint_on_a_dataset_spec(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes))
    spec = {"name": "synthetic", "num_images": 3, "size": [40, 56], "seed": 1, "split": "val"}
    result = evaluate_checkpoint(ckpt, spec)
    assert result["num_images"] == 3
    assert np.asarray(result["confusion"]).sum() == 3 * 40 * 56
    assert result["pixels"] == np.asarray(result["confusion"]).sum(axis=1).tolist()
    assert result["class_names"] == list(SyntheticSegmentation.classes)
    assert result["checkpoint"]["arch"] == "fcn8s"
    assert result["dataset"]["name"] == "synthetic"


@pytest.mark.parametrize(("recipe", "expected"), [
    (None, "fp32"),
    ({"name": "synthetic-fcn8s", "precision": "bf16"}, "bf16"),
    ({"name": "synthetic-fcn8s", "precision": "fp32"}, "fp32"),
])
def test_default_precision_is_the_one_training_validated_at(tmp_path, recipe, expected):
    # As `fcnseg evaluate` defaults, so that Python and the command give the same scores.
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes),
                            recipe=recipe)
    result = evaluate_checkpoint(ckpt, {"name": "synthetic", "num_images": 1, "size": 32})
    assert result["precision"] == expected


def test_a_spec_without_split_scores_the_val_split_and_says_so(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes))
    spec = {"name": "synthetic", "num_images": 2, "size": 32}
    result = evaluate_checkpoint(ckpt, spec)
    val = evaluate_checkpoint(ckpt, {**spec, "split": "val"})
    assert result["dataset"]["split"] == "val"
    assert result["confusion"] == val["confusion"]
    assert result["confusion"] != evaluate_checkpoint(ckpt, {**spec, "split": "train"})["confusion"]


def test_a_dataset_objects_split_is_reported(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes))
    data = SyntheticSegmentation(1, size=32)
    data.split = "test"
    assert evaluate_checkpoint(ckpt, data)["dataset"]["split"] == "test"


def test_batched_evaluation_scores_the_same_pixels(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes))
    data = SyntheticSegmentation(3, size=48, seed=2)
    one = np.asarray(evaluate_checkpoint(ckpt, data, batch_size=1)["confusion"])
    three = np.asarray(evaluate_checkpoint(ckpt, data, batch_size=3)["confusion"])
    np.testing.assert_array_equal(one.sum(axis=1), three.sum(axis=1))
    # Same-size images need no padding, so only float rounding could flip a prediction.
    assert np.abs(one - three).sum() <= 0.001 * one.sum()


@pytest.mark.parametrize("convention", ["caffe_bgr", "torchvision_rgb"])
def test_evaluation_preprocesses_in_the_checkpoints_input_convention(tmp_path, convention):
    from fcnseg.checkpoint import load_checkpoint
    from fcnseg.conventions import get_convention

    path = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes))
    ckpt = load_checkpoint(path)
    ckpt["model"]["input_convention"] = get_convention(convention).to_dict()
    data = SyntheticSegmentation(2, size=32, seed=3)
    seen = []

    def record(model, images):
        seen.append((images.clone(), model.preprocess(images)))
        return model(images)

    evaluate_checkpoint(ckpt, data, predict_fn=record)
    c = get_convention(convention)
    mean, std = torch.tensor(c.mean).view(3, 1, 1), torch.tensor(c.std).view(3, 1, 1)
    for (image, _), (x, normalised) in zip((data[0], data[1]), seen, strict=True):
        raw = torch.from_numpy(image).permute(2, 0, 1).float()
        torch.testing.assert_close(x[0], raw)  # the model takes raw pixels ...
        ordered = raw.flip(0) if c.channel_order == "BGR" else raw
        torch.testing.assert_close(normalised[0], (ordered * c.scale - mean) / std)  # ... and
        # normalises them in the checkpoint's convention


def test_class_count_mismatch_is_a_clear_error(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 4)
    with pytest.raises(ValueError, match=r"has 7 classes .* predicts 4"):
        evaluate_checkpoint(ckpt, {"name": "synthetic", "num_images": 1, "size": 32})


class _OneBadLabel(SyntheticSegmentation):
    def load(self, index):
        image, label = super().load(index)
        if index == 1:
            label[0, 0] = 9
        return image, label


def test_label_outside_the_classes_names_the_sample(tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "m.pt", 7, names=list(SyntheticSegmentation.classes))
    data = _OneBadLabel(3, size=32, seed=4)
    with pytest.raises(ValueError, match=rf"sample {data.name(1)}: label values .*: 9"):
        evaluate_checkpoint(ckpt, data)


def test_write_report_json_has_nulls_for_undefined_scores(tmp_path):
    confusion = [[3, 0, 1], [0, 2, 0], [0, 0, 0]]
    result = {"pixel_acc": 5 / 6, "mean_acc": 0.875, "mean_iu": 7 / 12, "fw_iu": 5 / 6,
              "iu": [0.75, 1.0, 0.0], "acc": [0.75, 1.0, math.nan], "confusion": confusion}
    written = write_report(tmp_path / "r", result, ["bg", "cat", "dog"])
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["metrics"]["mean_iu"] == pytest.approx(7 / 12)
    assert report["per_class"][2] == {"class": "dog", "iu": 0.0, "acc": None, "pixels": 0}
    assert report["confusion"] == confusion
    if written["confusion_plot"] is not None:
        assert written["confusion_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = format_report(result, ["bg", "cat", "dog"])
    assert "mean_iu 58.33" in table
    assert "dog" in table and "n/a" in table


def _ddp_worker(rank, world_size, init_file, samples, out):
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}",
                                         rank=rank, world_size=world_size)
    try:
        loader = DataLoader(samples, batch_size=2,
                            sampler=ShardedEvalSampler(samples, rank, world_size),
                            collate_fn=partial(collate_segmentation, ignore_index=255))
        result = evaluate_model(LabelEchoModel(shift=rank + 1), loader, num_classes=K)
        torch.save({"confusion": result["confusion"], "n": result["num_images"]},
                   f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_all_reduce_one_matrix(tmp_path):
    samples = _samples(SIZES, seed=3)
    out = str(tmp_path / "result")
    # fork: the children need nothing re-imported, which keeps this test to about a second.
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(2, str(tmp_path / "init"), samples, out), nprocs=2,
        start_method="fork")
    results = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    # Each rank shifted its own predictions differently, so the summed matrix holds rank 0's
    # shard shifted by 1 and rank 1's shard by 2; both ranks hold the same sum.
    expected = np.zeros((K, K), dtype=np.int64)
    for i, (_, lb) in enumerate(samples):
        lb = lb.numpy()
        shift = i % 2 + 1
        expected += confusion_matrix(lb, np.where(lb == 255, 0, (lb + shift) % K), K)
    for r in results:
        np.testing.assert_array_equal(r["confusion"], expected)
        assert r["n"] == len(samples)


def test_unknown_precision_is_rejected_before_any_work():
    with pytest.raises(ValueError, match="precision: expected one of auto, fp32, bf16, fp16"):
        evaluate_model(LabelEchoModel(), [], num_classes=K, precision="int8")


def _full_and_bare(seed: int = 0):
    """A tiny FCN-8s with random scorers, and its bare network holding the same weights."""
    from fcnseg.models import build_model

    options = {"num_classes": K, "width": 0.0625, "fc_channels": 16, "geometry": "same"}
    torch.manual_seed(seed)
    full = build_model("fcn8s", **options)
    with torch.no_grad():
        for name in ("score_fr", "score_pool4", "score_pool3"):
            getattr(full.head, name).weight.normal_(0.0, 0.5)
    bare = build_model("fcn8s", preprocess=False, **options)
    bare.load_state_dict(full.state_dict())
    return full.eval(), bare.eval()


def _raw_pixel_batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 256, (2, 3, 40, 48), generator=g).float(),
             torch.randint(0, K, (2, 40, 48), generator=g)) for _ in range(2)]


def test_a_bare_network_is_scored_on_raw_pixels_as_the_full_model() -> None:
    full, bare = _full_and_bare()
    batches = _raw_pixel_batches()  # float 0-255, as collate_segmentation gives them
    want = evaluate_model(full, batches, num_classes=K)
    got = evaluate_model(bare, batches, num_classes=K)
    assert got["confusion"] == want["confusion"]
    assert isinstance(bare.preprocess, nn.Identity)  # the caller's network stays bare
    with torch.no_grad():
        assert torch.equal(bare(full.preprocess(batches[0][0])), full(batches[0][0]))


def test_a_bare_network_given_normalised_input_is_refused_unless_raw_pixels_false() -> None:
    full, bare = _full_and_bare()
    normalised = [(full.preprocess(x), y) for x, y in _raw_pixel_batches()]
    with pytest.raises(ValueError, match="raw_pixels=False") as e:
        evaluate_model(bare, normalised, num_classes=K)
    assert "\n" not in str(e.value)
    got = evaluate_model(bare, normalised, num_classes=K, raw_pixels=False)
    assert got["confusion"] == evaluate_model(full, _raw_pixel_batches(),
                                              num_classes=K)["confusion"]


def test_raw_pixels_false_refuses_a_model_that_normalises_its_input() -> None:
    full, _ = _full_and_bare()
    with pytest.raises(ValueError, match="raw_pixels=False: the model normalises"):
        evaluate_model(full, _raw_pixel_batches(), num_classes=K, raw_pixels=False)


@pytest.fixture
def intensity_export(tmp_path):
    """A CVAT export of 16-bit grey cells (c0 and c1 fall in its val split, c2 and c3 in train)
    and a checkpoint of a model taking their one band."""
    pytest.importorskip("tifffile")
    from ondisk import write_grey_16_bit_cvat
    from tiny_models import tiny_band_model

    xml = write_grey_16_bit_cvat(tmp_path / "export", 2500)
    model = tiny_band_model(["intensity"], [1000.0], [500.0], num_classes=2)
    ckpt = save_checkpoint(tmp_path / "cells.pt", model, class_names=["_background_", "cell"])
    return xml, ckpt


def test_a_dataset_declaring_no_bands_is_told_to_declare_the_checkpoints(intensity_export):
    xml, ckpt = intensity_export
    with pytest.raises(ValueError) as refused:
        evaluate_checkpoint(ckpt, {"name": "cvat", "root": str(xml)})
    assert str(refused.value).startswith(f"dataset {xml} declares no bands, so its images are "
                                         f"read as RGB colour")
    assert "--data 'bands=[intensity]'" in str(refused.value)


def test_an_empty_split_is_named_with_how_to_choose_another(intensity_export):
    xml, ckpt = intensity_export
    spec = {"name": "cvat", "root": str(xml), "bands": ["intensity"], "val_fraction": 0.0}
    with pytest.raises(ValueError) as refused:
        evaluate_checkpoint(ckpt, spec)
    message = str(refused.value)
    assert message.startswith(f"split 'val' of {xml} holds no image: choose another split")
    assert "val_fraction" in message


def test_a_band_dataset_is_scored_without_taking_its_band_statistics(intensity_export,
                                                                     monkeypatch):
    from fcnseg.data.band_images import BandImages

    def refused(self):
        raise AssertionError("band statistics taken")

    monkeypatch.setattr(BandImages, "band_statistics", refused)
    xml, ckpt = intensity_export
    spec = {"name": "cvat", "root": str(xml), "bands": ["intensity"], "split": "train"}
    result = evaluate_checkpoint(ckpt, spec, batch_size=2)
    assert result["num_images"] == 2
