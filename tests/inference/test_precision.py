"""Inference precision: what "auto" picks, bf16 labels against float32, float32 outputs, and
the precision in evaluate's report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fcnseg.cli.main import main
from fcnseg.data import SYNTHETIC_CLASSES
from fcnseg.inference import Segmenter
from fcnseg.utils import hardware
from fcnseg.utils.hardware import CpuInfo

#: bfloat16 keeps 8 significant bits: products and sums through the network move logits by
#: about 1% of their scale, so pixels whose two best logits are closer than this may swap.
BF16_TIE = 0.05


@pytest.fixture(scope="module")
def synthetic_checkpoint(tiny_checkpoint):
    """A tiny checkpoint with the synthetic dataset's classes (for fcnseg evaluate)."""
    return tiny_checkpoint(list(SYNTHETIC_CLASSES))


@pytest.mark.parametrize(("flags", "expected"), [
    (frozenset({"avx512f", "avx512_bf16"}), "bf16"),
    (frozenset({"amx_tile", "amx_bf16"}), "bf16"),
    (frozenset({"avx2", "avx512f"}), "fp32"),
])
def test_auto_follows_the_cpus_bf16_instructions(make_checkpoint, monkeypatch, flags,
                                                 expected) -> None:
    monkeypatch.setattr(hardware, "cpu_info", lambda: CpuInfo("test", flags))
    seg = Segmenter.from_checkpoint(make_checkpoint("same"), precision="auto")
    assert seg.precision == expected
    assert seg.describe()["precision"] == expected
    assert f"precision={expected!r}" in repr(seg)


def test_unknown_precision_is_refused(make_checkpoint) -> None:
    with pytest.raises(ValueError, match="precision: expected one of auto, fp32, bf16, fp16"):
        Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp8")


def test_channels_last_is_on_by_default_on_the_cpu_and_recorded(make_checkpoint) -> None:
    seg = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")
    assert seg.channels_last
    assert "channels_last" in seg.model.optimizations
    plain = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32",
                                      channels_last=False)
    assert "channels_last" not in plain.model.optimizations


def test_bf16_labels_agree_with_fp32_away_from_near_ties(make_checkpoint, smooth_image) -> None:
    fp32 = Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")
    bf16 = Segmenter.from_checkpoint(make_checkpoint("same"), precision="bf16")
    x = fp32.preprocess(smooth_image)
    reference = fp32.logits(x)[0]
    low = bf16.logits(x)[0]
    assert low.dtype == torch.float32
    top2 = reference.sort(dim=0).values[-2:]
    clear = (top2[1] - top2[0]) > BF16_TIE * float(reference.abs().max())
    assert clear.float().mean() > 0.5, "the fixture's logits are mostly near-ties"
    agree = (low.argmax(0) == reference.argmax(0))[clear].float().mean()
    assert agree >= 0.99


def test_bf16_probabilities_are_float32_and_sum_to_one(make_checkpoint, smooth_image) -> None:
    seg = Segmenter.from_checkpoint(make_checkpoint("same"), precision="bf16")
    pred = seg.predict(smooth_image, return_probs=True)
    assert pred.probs.dtype == np.float32
    np.testing.assert_allclose(pred.probs.sum(0), 1.0, rtol=1e-5)


def test_evaluate_reports_the_precision_it_ran_in(synthetic_checkpoint, tmp_path,
                                                  capsys) -> None:
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset",
               "synthetic", "--num-images", "2", "--size", "32", "--out", str(out),
               "--device", "cpu", "--precision", "bf16", "--no-calibration"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["precision"] == "bf16"
    assert "channels_last" in report["optimizations"]
    assert "precision bf16" in capsys.readouterr().out


def test_the_older_amp_option_still_sets_the_precision(synthetic_checkpoint, tmp_path,
                                                       capsys) -> None:
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", str(synthetic_checkpoint), "--dataset",
               "synthetic", "--num-images", "1", "--size", "32", "--out", str(out),
               "--device", "cpu", "--amp", "none", "--no-calibration"])
    assert rc == 0
    assert json.loads((out / "report.json").read_text())["precision"] == "fp32"
    assert "--amp is now spelled --precision" in capsys.readouterr().err
