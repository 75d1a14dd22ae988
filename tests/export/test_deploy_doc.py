"""docs/deploy.md's example runs an exported int8 model with onnxruntime and Pillow alone, and
reads images as fcnseg does: its labels are fcnseg predict's, pixel for pixel."""

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
    assert len(code.splitlines()) <= 45
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


def _rotated_jpeg(path: Path) -> None:
    """A phone photo: stored 61 wide and 45 high, EXIF orientation 6 (shown 45×61, upright)."""
    coarse = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    stored = Image.fromarray(coarse).resize((61, 45), Image.BILINEAR)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif.tobytes())


def _rgba_png(path: Path) -> None:
    """An RGBA PNG: a transparent strip over dark colours and a half-transparent one."""
    coarse = np.random.default_rng(2).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    rgb = np.asarray(Image.fromarray(coarse).resize((61, 45), Image.BILINEAR))
    alpha = np.full((45, 61, 1), 255, dtype=np.uint8)
    alpha[:, :20], alpha[:, 40:] = 0, 128
    Image.fromarray(np.concatenate([rgb // 4, alpha], axis=2), "RGBA").save(path)


@pytest.mark.parametrize(("name", "write"), [("phone.jpg", _rotated_jpeg),
                                             ("cut-out.png", _rgba_png)])
def test_deploy_example_gives_the_labels_of_fcnseg_predict(tiny_checkpoint, tmp_path, name,
                                                          write, capsys) -> None:
    from fcnseg.data.palette import VOC_CLASSES

    ckpt = tiny_checkpoint(list(VOC_CLASSES), "same")
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--labels-out",
                 "--out", str(tmp_path / "model.onnx")]) == 0
    write(tmp_path / name)
    code = _example().replace('"photo.jpg"', repr(name)).replace('"model.int8.onnx"',
                                                                 '"model.onnx"')
    done = subprocess.run([sys.executable, "-c", NO_FCNSEG + code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / name), "--precision",
                 "fp32", "--out", str(tmp_path / "predict")]) == 0
    capsys.readouterr()
    expected = np.asarray(Image.open(tmp_path / "predict" / f"{Path(name).stem}_label.png"))
    labels = np.asarray(Image.open(tmp_path / "labels.png"))
    assert labels.shape == expected.shape == ((61, 45) if name.endswith(".jpg") else (45, 61))
    assert np.count_nonzero(labels != expected) == 0
    assert len(np.unique(expected)) > 1  # labels that vary, so a wrong reading would show


def _cpu_flags(flags: str) -> str:
    """Code making the example read a /proc/cpuinfo of these flags."""
    return f"""
import builtins, io, os
_open, _exists = builtins.open, os.path.exists
builtins.open = lambda f, *a, **k: (io.StringIO("flags\\t: {flags}\\n") if f == "/proc/cpuinfo"
                                    else _open(f, *a, **k))
os.path.exists = lambda f: f == "/proc/cpuinfo" or _exists(f)
"""


def test_the_example_warns_when_a_full_range_int8_file_runs_on_a_cpu_without_vnni(
        tiny_checkpoint, tmp_path) -> None:
    ckpt = tiny_checkpoint(["background", "thing"], "same")
    assert main(["quantize", str(ckpt), "--calib", "synthetic:num_images=2,size=48",
                 "--out", str(tmp_path / "model.int8.onnx"), "--labels-out",
                 "--no-reduce-range"]) == 0
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    for flags, warns in (("fpu sse4_2 avx2", True), ("fpu avx2 avx512_vnni", False)):
        done = subprocess.run([sys.executable, "-c", NO_FCNSEG + _cpu_flags(flags) + _example()],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert ("warning: no VNNI on this CPU" in done.stdout) is warns
        assert ("--reduce-range" in done.stdout) is warns
