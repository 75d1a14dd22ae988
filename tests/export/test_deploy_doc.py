"""docs/deploy.md's example runs an exported int8 model with onnxruntime and Pillow alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

ROOT = Path(__file__).resolve().parents[2]

# Any import of fcnseg in the example fails: it must run where fcnseg is not installed.
NO_FCNSEG = """
import importlib.abc, sys
class NoFcnseg(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fcnseg" or name.startswith("fcnseg."):
            raise ImportError("fcnseg is not installed here")
sys.meta_path.insert(0, NoFcnseg())
"""


def _example() -> str:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    start = text.index("<!-- doc-test: stand-in=int8-model -->")
    block = text[text.index("```python\n", start) + len("```python\n"):]
    return block[:block.index("```")]


def test_deploy_example_runs_without_fcnseg(tiny_checkpoint, tmp_path) -> None:
    from fcnseg.data.palette import VOC_CLASSES

    ckpt = tiny_checkpoint(list(VOC_CLASSES), "same")
    assert main(["quantize", str(ckpt), "--calib", "synthetic:num_images=2,size=48",
                 "--out", str(tmp_path / "model.int8.onnx"), "--labels-out"]) == 0
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)).save(
        tmp_path / "photo.jpg")
    code = _example()
    assert len(code.splitlines()) <= 35
    done = subprocess.run([sys.executable, "-c", NO_FCNSEG + code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "% of the image" in done.stdout
    labels = np.asarray(Image.open(tmp_path / "labels.png"))
    assert labels.shape == (45, 61) and labels.max() < len(VOC_CLASSES)
    assert np.asarray(Image.open(tmp_path / "overlay.png")).shape == (45, 61, 3)


def test_the_example_cannot_import_fcnseg(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", NO_FCNSEG + "import fcnseg"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "fcnseg is not installed here" in done.stderr
