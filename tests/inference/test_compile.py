"""``Segmenter.compile``: torch.compile with a warm-up, and a one-line fallback when the
toolchain fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnseg.cli.main import main
from fcnseg.inference import Segmenter


@pytest.fixture
def fresh(make_checkpoint) -> Segmenter:
    return Segmenter.from_checkpoint(make_checkpoint("same"), precision="fp32")


def _no_compiler(*args, **kwargs):
    raise RuntimeError("InductorError: CppCompileError: C++ compile error\nno C compiler found")


def test_compile_runs_the_warm_up_and_keeps_the_labels(fresh, segmenter, smooth_image):
    # The eager backend traces the model (no C compiler needed, so the test is quick).
    assert fresh.compile((48, 64), backend="eager") is None
    assert fresh.compiled is not None
    assert "torch.compile" in fresh.describe()["optimizations"]
    np.testing.assert_array_equal(fresh.predict(smooth_image).label,
                                  segmenter.predict(smooth_image).label)


def test_a_failing_compiler_gives_one_line_and_the_uncompiled_model(fresh, segmenter,
                                                                    smooth_image, monkeypatch):
    monkeypatch.setattr(torch, "compile", _no_compiler)
    failure = fresh.compile((48, 64))
    assert failure is not None and "\n" not in failure
    assert failure.startswith("torch.compile failed (RuntimeError") and "uncompiled" in failure
    assert fresh.compiled is None
    np.testing.assert_array_equal(fresh.predict(smooth_image).label,
                                  segmenter.predict(smooth_image).label)


def test_a_compiled_forward_failing_later_falls_back_for_good(fresh, segmenter, smooth_image,
                                                              monkeypatch):
    assert fresh.compile((48, 64), backend="eager") is None

    def failing(*args, **kwargs):
        raise RuntimeError("LoweringException: a shape the compiler cannot handle")

    monkeypatch.setattr(fresh, "compiled", failing)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        label = fresh.predict(smooth_image).label
    assert fresh.compiled is None
    np.testing.assert_array_equal(label, segmenter.predict(smooth_image).label)


def test_predict_compile_falls_back_with_one_warning_line(make_checkpoint, smooth_image,
                                                          tmp_path, capsys, monkeypatch):
    from PIL import Image

    Image.fromarray(smooth_image).save(tmp_path / "a.png")
    monkeypatch.setattr(torch, "compile", _no_compiler)
    rc = main(["predict", "--checkpoint", str(make_checkpoint("same")), str(tmp_path / "a.png"),
               "--out", str(tmp_path / "out"), "--compile", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "torch.compile failed" in warnings[0]
    assert (tmp_path / "out" / "a_label.png").is_file()
