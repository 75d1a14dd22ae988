"""``torchrun --nproc_per_node 2 fcnseg predict``: the inputs shared over two gloo processes,
each output written once and equal to one process's, a stopped run finished by a re-run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchrun_workers import READABLE, exit_statuses, worker_with_rank

from fcnseg.inference.files import MANIFEST_NAME, written_by
from fcnseg.inference.visualize import read_label_png

IMAGES = 40
#: How long one ``fcnseg predict`` may take before it counts as hung: a guard against a hang, not
#: a speed check (on a loaded machine, torchrun starting three processes that import torch alone
#: can take minutes).
HANG_TIMEOUT_S = 600
# Up to seven processes importing torch per test (torchrun runs three): on a loaded machine more
# than the suite's 300 s per test, so a longer guard against a hang.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2 * HANG_TIMEOUT_S)]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return e


def predict(checkpoint: Path, images: Path, out: Path, processes: int,
            *extra: str, progress: bool = False) -> subprocess.CompletedProcess:
    """``fcnseg predict`` in one process, or under torchrun with ``processes`` (batch 1 and
    one thread each, so every image runs the same kernels whichever process takes it);
    ``progress``: its lines, as a log gets them (stderr is no terminal)."""
    command = [str(Path(sys.executable).parent / "fcnseg"), "predict", "--checkpoint",
               str(checkpoint), str(images), "--out", str(out), "--batch-size", "1",
               *([] if progress else ["--no-progress"]), "--precision", "fp32", "--device",
               "cpu", *extra]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(processes), *command]
    done = subprocess.run(command, env=env(), capture_output=True, text=True,
                          timeout=HANG_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for k in range(IMAGES):
        small = rng.integers(0, 256, (3, 4, 3)).astype(np.uint8)
        picture = Image.fromarray(small).resize((32, 24), Image.Resampling.BILINEAR)
        picture.save(root / f"img{k:02d}.png")
    return root


def labels(out: Path) -> dict[str, np.ndarray]:
    return {p.name: read_label_png(p) for p in sorted(out.glob("*_label.png"))}


def test_two_processes_write_each_output_once_and_a_rerun_writes_only_the_rest(
        make_checkpoint, images, tmp_path):
    checkpoint = make_checkpoint("same")
    out = tmp_path / "two"
    predict(checkpoint, images, tmp_path / "one", 1)
    done = predict(checkpoint, images, out, 2)
    summaries = [line for line in done.stdout.splitlines() if line.startswith("wrote outputs")]
    assert summaries == [f"wrote outputs for {IMAGES} of {IMAGES} input(s) to {out} "
                         f"(2 processes), precision fp32"]
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    listed = [line for line in lines if not line.startswith("\t")]  # not the written records
    assert len(listed) == len(set(listed)) == 2 * IMAGES  # label and overlay, each once
    # every process records the same model and settings, so a re-run on any one skips
    writers = written_by(out)
    assert len(writers) == 2 * IMAGES and len(set(writers.values())) == 1
    assert None not in writers.values()
    one, two = labels(tmp_path / "one"), labels(out)
    assert one.keys() == two.keys() and len(one) == IMAGES
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)

    # As a run stopped half-way leaves it: the later half missing, one label cut short.
    for k in range(20, IMAGES):
        (out / f"img{k:02d}_label.png").unlink()
    label = out / "img05_label.png"
    label.write_bytes(label.read_bytes()[:40])
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    done = predict(checkpoint, images, out, 2, "--skip-complete")
    assert f"wrote outputs for 21 of {IMAGES} input(s)" in done.stdout
    assert "19 complete already, skipped" in done.stdout
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    rewritten = {name for name in after if before.get(name) != after[name]}
    expected = {f"img{k:02d}_{kind}.png" for k in [5, *range(20, IMAGES)]
                for kind in ("label", "overlay")}
    assert rewritten == expected
    assert labels(out).keys() == one.keys()


def test_two_processes_share_the_tiles_of_one_raster(make_checkpoint, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)
    picture = np.asarray(Image.fromarray(small).resize((100, 120), Image.Resampling.BILINEAR))
    (tmp_path / "in").mkdir()
    with rasterio.open(tmp_path / "in" / "scene.tif", "w", driver="GTiff", height=120,
                       width=100, count=3, dtype="uint8", crs="EPSG:32630",
                       transform=Affine(1.0, 0, 0.0, 0, -1.0, 120.0)) as ds:
        ds.write(np.moveaxis(picture, -1, 0))
    checkpoint = make_checkpoint("same")
    tiles = ("--tile", "48", "--overlap", "16")
    predict(checkpoint, tmp_path / "in" / "scene.tif", tmp_path / "one", 1, *tiles)
    done = predict(checkpoint, tmp_path / "in" / "scene.tif", tmp_path / "two", 2, *tiles)
    assert "wrote outputs for 1 of 1 input(s)" in done.stdout
    with rasterio.open(tmp_path / "one" / "scene.tif") as a, \
            rasterio.open(tmp_path / "two" / "scene.tif") as b:
        assert b.crs == a.crs and b.transform == a.transform
        np.testing.assert_array_equal(b.read(), a.read())
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "scene.tif", "scene.tif.done.json", "scene_overlay.png"]


def test_two_processes_say_one_speed_line_for_all_the_images_written(make_checkpoint, images,
                                                                     tmp_path):
    done = predict(make_checkpoint("same"), images, tmp_path / "two", 2, progress=True)
    speed = [line for line in done.stderr.splitlines() if line.startswith("predict (2 proc")]
    assert len(speed) == 1, done.stderr
    assert speed[0].startswith(f"predict (2 processes): {IMAGES} images in ")
    assert speed[0].endswith(" images/s)")
    # any other progress line names its process
    others = [line for line in done.stderr.splitlines() if "images" in line and line not in speed]
    assert all(line.startswith(("predict (process 1 of 2): ", "predict (process 2 of 2): "))
               for line in others), others


@pytest.mark.skipif(not READABLE, reason="processes read in /proc")
def test_a_sigterm_to_one_process_stops_both_with_one_line(make_checkpoint, tmp_path):
    # Without an agreement the other process finished its share and waited for this one forever.
    many = tmp_path / "many"
    many.mkdir()
    rng = np.random.default_rng(0)
    for k in range(600):  # far more than are written before the signal
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), np.uint8)).save(many / f"{k:03d}.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", str(Path(sys.executable).parent / "fcnseg"), "predict", "--checkpoint",
               str(make_checkpoint("same")), str(many), "--out", str(out), "--batch-size", "1",
               "--no-progress", "--device", "cpu"]
    launcher = subprocess.Popen(command, env=env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    workers = [worker_with_rank(launcher, rank) for rank in (0, 1)]
    try:
        while len(list(out.glob("*_label.png"))) < 4 and launcher.poll() is None:
            time.sleep(0.02)
        os.kill(workers[1], signal.SIGTERM)
        said, _ = launcher.communicate(timeout=HANG_TIMEOUT_S)
    finally:
        for pid in [launcher.pid, *workers]:  # where it hung
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    lines = [line for line in said.splitlines() if line.startswith("fcnseg predict: stopped")]
    assert len(lines) == 1 and lines[0].endswith(
        f"to {out}; run the same command with --skip-complete to write the rest"), said
    # 143, or ended by the launcher's SIGTERM once the other process left (the line said)
    assert len(exit_statuses(said)) == 2 and set(exit_statuses(said)) <= {143, -15}, said
