"""The pieces of benchmarks/raster_predict.py: its throughput comparison."""

from __future__ import annotations

import argparse

import pytest
from benchmark_scripts import load_benchmark

pytest.importorskip("rasterio", reason="the raster extra is not installed")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("raster_predict")


def test_every_timed_tiled_prediction_writes_its_raster(bench, tmp_path, monkeypatch) -> None:
    # A finished output is skipped by predict_raster (resumption): timing the same output again
    # would time a skip, not a prediction.
    from fcnseg.inference import rasters

    outcomes = []
    predict = rasters.predict_raster

    def recorded(*a, **k):
        outcomes.append(predict(*a, **k))
        return outcomes[-1]

    monkeypatch.setattr(rasters, "predict_raster", recorded)
    raster = tmp_path / "scene.tif"
    bench.write_scene(raster, 96)
    checkpoint = tmp_path / "model.pt"
    bench.make_checkpoint(checkpoint, 0.0625)
    args = argparse.Namespace(tile=64, overlap=16, batch=2)
    bench.throughput(checkpoint, raster, tmp_path, args, repeats=3)
    assert len(outcomes) == 3 and not any(o.skipped for o in outcomes)
