"""The pieces of benchmarks/int8_inference.py: its thin-structure dataset, its matrix products
and the reference rates they give."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from fcnseg.data import build_dataset

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("int8_inference")


def test_thin_structures_are_a_folder_dataset_of_thin_lines_and_arcs(bench, tmp_path) -> None:
    root = bench.write_thin_structures(tmp_path / "thin", train=3, val=2, size=64)
    train = build_dataset({"name": "folder", "root": str(root), "split": "train"})
    val = build_dataset({"name": "folder", "root": str(root), "split": "val"})
    assert len(train) == 3 and len(val) == 2 and list(train.classes) == bench.THIN_CLASSES
    labels = np.stack([train.load(i)[1] for i in range(3)])
    assert set(np.unique(labels)) <= {0, 1, 2} and (labels > 0).any()
    assert (labels > 0).mean() < 0.2  # thin structures: a small part of each image


def test_int8_peak_products_compute_the_integer_product(bench) -> None:
    variants = bench.int8_matmul(64)
    assert "onnxruntime MatMulInteger" in variants
    (out,) = variants["onnxruntime MatMulInteger"]()
    assert out.dtype == np.int32 and out.shape == (64, 64)


def test_thin_trunk_gives_the_skip_head_strides_8_4_2_and_full_size_scores(bench) -> None:
    import torch

    from fcnseg.models import fcn_from_backbone

    thin_backbone = load_benchmark("thin_backbone")
    trunk = thin_backbone.fine_trunk(channels=[4, 8, 8], dilations=[1, 2])
    x = torch.rand(1, 3, 37, 50)
    feats = trunk(x)
    assert [tuple(feats[s].shape[-2:]) for s in (8, 16, 32)] == [(19, 25), (10, 13), (5, 7)]
    model = fcn_from_backbone(trunk, 3, factory=thin_backbone.fine_trunk,
                              factory_kwargs={"channels": [4, 8, 8], "dilations": [1, 2]})
    assert model(x).shape == (1, 3, 37, 50)


def test_cached_models_are_keyed_by_their_recipe(bench) -> None:
    key = bench.recipe_key(["train.iterations=10", "model.arch=fcn8s"])
    assert key == bench.recipe_key(["train.iterations=10", "model.arch=fcn8s"])
    assert key != bench.recipe_key(["train.iterations=11", "model.arch=fcn8s"])


def test_the_matrix_product_reference_is_each_kinds_fastest_product_at_its_best_round(
        bench) -> None:
    from fcnseg.bench.timing import Timing

    times = {"int8 matmul: a": Timing([2.0, 1.0, 4.0]), "int8 matmul: b": Timing([3.0, 3.0, 3.0]),
             "bf16 matmul: a": Timing([4.0, 5.0, 6.0]), "bf16 model forward": Timing([0.1])}
    assert bench.product_references(times, ops=8.0) == {"int8": 8.0, "bf16": 2.0}


def test_a_model_faster_than_the_reference_is_not_said_to_beat_a_peak(bench) -> None:
    line = bench.model_rate_line(262e9, {"int8": 2.0, "bf16": 1.0},
                                 {"int8": 200e9, "bf16": 200e9}, size=2048)
    assert "0.66× the fastest int8 2048³ matrix product" in line
    assert "1.31× the fastest bf16 2048³ matrix product" in line
    assert "%" not in line and "not the hardware's peak" in line


def test_sizes_are_n_or_width_x_height(bench) -> None:
    import argparse

    assert bench.parse_size("1280x720") == (720, 1280) and bench.parse_size("96") == (96, 96)
    with pytest.raises(argparse.ArgumentTypeError, match="WxH"):
        bench.parse_size("720p")


def test_time_times_the_given_files_at_each_size_against_the_first(bench, tiny_checkpoint,
                                                                   tmp_path, capsys) -> None:
    from fcnseg.cli.main import main

    ckpt = tiny_checkpoint(["background", "thing"], "same")
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out",
                 str(onnx_file), "--height", "32", "--width", "32"]) == 0
    capsys.readouterr()
    assert bench.main(["--time", str(ckpt), str(onnx_file), "--size", "40x24", "33",
                       "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "quantized" not in out  # no model of its own
    for size in ("40x24", "33x33"):
        block = out.split(f"\n{size}, ")[1].split("\n\n")[0].splitlines()
        rows = [line for line in block if line.startswith((str(ckpt), str(onnx_file)))]
        assert len(rows) == 2 and "1.00× the first's speed" in rows[0]
        assert " fp32 " in rows[1] or " fp32" in rows[1]
