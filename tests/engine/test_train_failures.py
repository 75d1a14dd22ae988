"""Training runs that meet bad data, signals, full disks and leftovers of earlier crashes: each
stops with one clear line and keeps (or saves) what a resume needs."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_helpers import (
    fcnseg_command,
    subprocess_env,
    tiny_recipe,
    write_folder_dataset,
    write_recipe,
)
from PIL import Image

from fcnseg.checkpoint import load_checkpoint, save_checkpoint
from fcnseg.cli.main import main
from fcnseg.engine import load_config, train
from fcnseg.models import fcn8s
from fcnseg.utils.files import DiskFullError

pytestmark = pytest.mark.usefixtures("one_thread")


def _folder_recipe(spec: dict, bad_val_sample: int, **train: int) -> dict:
    """Train on every sample but ``bad_val_sample``, which only validation reads."""
    root = Path(spec["root"])
    (root / "train.txt").write_text("".join(f"{n}\n" for n in range(6) if n != bad_val_sample))
    return tiny_recipe(data={"train": spec, "val": spec},
                       train={"iterations": 4, "eval_every": 2, "checkpoint_every": 100,
                              **train})


def _iterations_logged(run: Path) -> list[int]:
    return [json.loads(line)["iteration"]
            for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- bad validation data -----------------------------------------------------------------


def test_a_validation_mask_of_the_wrong_size_stops_the_run_before_training(
    tmp_path: Path,
) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "data" / "masks" / "2.png")
    config = load_config(_folder_recipe(spec, 2), out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"data\.val: .*2\.png.*16×16.*check-data.*skip_bad"):
        train(config)
    assert not (tmp_path / "run" / "last.pt").exists()  # stopped before the first iteration


def test_a_validation_sample_failing_during_evaluation_saves_last_pt_and_names_the_file(
    tmp_path: Path,
) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    # The right size (so the start-up check passes) but a value that is no class: only
    # decoding the whole mask finds it, and without the data cache nothing is decoded before
    # the first evaluation.
    mask = np.zeros((32, 32), np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(tmp_path / "data" / "masks" / "3.png")
    recipe = _folder_recipe(spec, 3)
    recipe["data"]["cache"] = "none"
    config = load_config(recipe, out=str(tmp_path / "run"))
    last = tmp_path / "run" / "last.pt"
    with pytest.raises(ValueError) as e:
        train(config)
    message = str(e.value)
    assert "\n" not in message
    assert "3.png" in message and "check-data" in message and "skip_bad" in message
    assert str(last) in message
    assert load_checkpoint(last)["iteration"] == 2

    config.data.skip_bad = True  # the fix the message suggests; the run continues from there
    resumed = train(config, resume=True)
    assert resumed.status == "completed" and resumed.metrics["num_images"] == 5


class _Killed(BaseException):
    """Stands in for a SIGKILL: nothing after it runs."""


def test_a_run_killed_during_an_evaluation_does_it_first_when_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fcnseg.engine import trainer

    recipe = tiny_recipe(train={"iterations": 8, "eval_every": 4, "checkpoint_every": 100})
    train(load_config(recipe, out=str(tmp_path / "straight")))

    def killed_while_evaluating(*args: object, **kwargs: object) -> None:
        raise _Killed

    killed = load_config(recipe, out=str(tmp_path / "killed"))
    monkeypatch.setattr(trainer, "evaluate_model", killed_while_evaluating)
    with pytest.raises(_Killed):
        train(killed)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["iteration"] == 4
    train(killed, resume=True)

    def logged(run: str) -> list[tuple[int, str]]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(r["iteration"], r.get("split", "train")) for r in map(json.loads, lines)]

    assert logged("killed") == logged("straight")
    assert (load_checkpoint(tmp_path / "killed" / "best.pt")["metrics"]
            == load_checkpoint(tmp_path / "straight" / "best.pt")["metrics"])


# -- a bad training sample read by a loader worker ---------------------------------------


def test_a_bad_training_sample_in_a_worker_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    (tmp_path / "data" / "masks" / "4.png").unlink()
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"train": spec, "val": None, "num_workers": 1},
        train={"iterations": 20, "checkpoint_every": 100}))
    code = main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "4.png" in err and "missing mask" in err
    assert "fcnseg check-data" in err and "data.skip_bad: true" in err
    assert "Traceback" not in err and "DataLoader worker" not in err


def _write_bomb_png(path: Path, side: int = 20_000) -> None:
    """A PNG of a few bytes whose header claims side×side pixels: Pillow refuses to open it
    as a decompression bomb (more than twice its pixel limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["images", "masks"])
def test_a_decompression_bomb_in_the_training_data_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    _write_bomb_png(tmp_path / "data" / kind / "4.png")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"train": spec, "val": None, "crop_size": 32},
        train={"iterations": 20, "checkpoint_every": 100}))
    code = main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "DecompressionBombError" not in err
    (line,) = [e for e in err.strip().splitlines() if "error:" in e]
    assert f"{kind}/4.png" in line and "decompression bomb" in line
    assert "fcnseg check-data" in line


def test_a_decompression_bomb_in_the_validation_data_stops_before_training_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    _write_bomb_png(tmp_path / "data" / "masks" / "3.png")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"train": spec, "val": spec, "crop_size": 32}))
    code = main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "data.val" in err and "masks/3.png" in err and "decompression bomb" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_postscript_image_named_jpg_stops_training_in_one_line_without_ghostscript(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_ghostscript: Path,
    postscript_bytes: bytes,
) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    (tmp_path / "data" / "images" / "4.png").unlink()
    (tmp_path / "data" / "images" / "4.jpg").write_bytes(postscript_bytes)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"train": spec, "val": None, "crop_size": 32},
        train={"iterations": 20, "checkpoint_every": 100}))
    code = main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert not fake_ghostscript.exists(), "Ghostscript was run on an untrusted file"
    assert code == 2 and "Traceback" not in err
    (line,) = [e for e in err.strip().splitlines() if "error:" in e]
    assert "images/4.jpg" in line and "a PostScript/EPS file" in line


# -- signals ---------------------------------------------------------------------------


def test_sigterm_to_the_whole_process_group_with_loader_workers_saves_and_exits_143(
    tmp_path: Path,
) -> None:
    # What `timeout`, Slurm and Kubernetes do: every process of the group, the loader's worker
    # processes included, gets the signal.
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"num_workers": 2, "train": {"name": "synthetic", "num_images": 40, "size": 32,
                                          "seed": 0}},
        train={"iterations": 2000, "checkpoint_every": 2, "eval_every": 10000}))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        fcnseg_command("train", "--recipe", str(recipe), "--out", str(run)),
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.pt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.01)
        time.sleep(0.3)  # well inside the next iterations, workers busy
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "DataLoader worker" not in out
    stopped_at = int(out.split("stopped by signal 15 at iteration ")[1].split(";")[0])
    assert load_checkpoint(run / "last.pt")["iteration"] == stopped_at


def test_the_demo_stopped_by_sigterm_exits_143_as_train_does(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    tiny = ["train.iterations=100000", "train.checkpoint_every=2", "threads=1",
            "data.train.num_images=16", "data.train.size=32", "model.width=0.0625",
            "model.fc_channels=16"]
    proc = subprocess.Popen(
        fcnseg_command("demo", "--out", str(out), *[a for kv in tiny for a in ("--set", kv)]),
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "stopped by signal 15" in output


# -- leftovers of a run killed earlier ---------------------------------------------------


def _leave_temporaries(run: Path) -> list[Path]:
    run.mkdir(parents=True, exist_ok=True)
    stale = [run / ".last.pt.k3j2h1g0.tmp", run / ".best.pt.a_b4c5d6.tmp",
             run / ".metrics.jsonl.zzzz9999.tmp", run / ".recipe.yaml.q1w2e3r4.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    return stale


def test_resume_removes_the_temporaries_of_writes_cut_short_by_a_kill(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = load_config(tiny_recipe(train={"iterations": 2}), out=str(run))
    train(config)
    stale = _leave_temporaries(run)
    unrelated = [run / ".notes.txt.k3j2h1g0.tmp", run / "last.pt.tmp"]
    for path in unrelated:
        path.write_text("mine")
    config.train.iterations = 3
    train(config, resume=True)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in unrelated)


def test_a_new_run_removes_temporaries_left_by_a_kill_before_its_first_checkpoint(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    stale = _leave_temporaries(run)
    train(load_config(tiny_recipe(train={"iterations": 1}), out=str(run)))
    assert not any(p.exists() for p in stale)


def test_a_run_restarted_before_its_first_checkpoint_starts_a_new_metrics_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # What a run killed before it wrote last.pt leaves behind.
    (run / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "loss": 1.0}) + "\n"
                                               for i in (2, 4, 6)))
    config = load_config(tiny_recipe(train={"iterations": 4, "eval_every": 4, "log_every": 2}),
                         out=str(run))
    train(config, resume=True)
    assert "starting a new run" in capsys.readouterr().out
    assert _iterations_logged(run) == [2, 4, 4]  # two training records and one evaluation


# -- full disk ---------------------------------------------------------------------------


def _tiny_model() -> torch.nn.Module:
    return fcn8s(num_classes=2, geometry="same", width=0.0625, fc_channels=8)


def _save(path: Path, model: torch.nn.Module, iteration: int) -> Path:
    return save_checkpoint(path, model, class_names=["a", "b"], palette=[[0, 0, 0], [1, 1, 1]],
                           iteration=iteration)


def test_a_checkpoint_write_on_a_full_disk_is_one_line_naming_the_file_and_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _tiny_model()
    path = _save(tmp_path / "last.pt", model, 1)
    before = path.read_bytes()

    def full_disk(obj: object, f: object, *args: object, **kwargs: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFullError) as e:
        _save(path, model, 2)
    assert str(e.value).startswith(f"cannot write {path}: disk full (")
    assert " free in " in str(e.value) and "the previous last.pt is intact" in str(e.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.fixture()
def small_tmpfs(tmp_path: Path):
    """A 1.2 MB file system: room for one tiny checkpoint (0.8 MB) but not for writing the next
    one beside it."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_training_onto_a_really_full_disk_stops_with_one_line_and_keeps_last_pt(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    run = small_tmpfs / "run"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        data={"val": None},
        train={"iterations": 50, "checkpoint_every": 1}))
    done = subprocess.run(fcnseg_command("train", "--recipe", str(recipe), "--out", str(run)),
                          env=subprocess_env(), capture_output=True, text=True, timeout=180)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"fcnseg train: error: cannot write {run / 'last.pt'}: "
                               f"disk full (")
    assert "the previous last.pt is intact" in lines[0]
    assert load_checkpoint(run / "last.pt")["iteration"] >= 1
    assert not list(run.glob(".*.tmp"))


def test_an_empty_validation_split_stops_the_run_before_training_naming_it(
    tmp_path: Path,
) -> None:
    # An import of a few images can leave val.txt empty: a run would then validate nothing and
    # end with "best mean IU n/a" after all its iterations.
    spec = write_folder_dataset(tmp_path / "data")
    (tmp_path / "data" / "val.txt").write_text("")
    recipe = tiny_recipe(data={"train": spec, "val": spec}, train={"iterations": 2})
    config = load_config(recipe, out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"^data\.val: .*'val'.*no images.*data\.val=null"):
        train(config)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_an_empty_training_split_is_one_line_naming_it(tmp_path: Path) -> None:
    spec = write_folder_dataset(tmp_path / "data")
    (tmp_path / "data" / "train.txt").write_text("")
    recipe = tiny_recipe(data={"train": spec, "val": None}, train={"iterations": 2})
    config = load_config(recipe, out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"^data\.train: the 'train' split of .*data holds no "
                                         r"images"):
        train(config)


def test_a_lost_process_is_named_with_gloo_s_reason_and_the_resume_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fcnseg.engine.errors import is_process_lost, process_lost_message

    monkeypatch.setattr("sys.argv", ["/venv/bin/fcnseg", "train"])
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    gloo = RuntimeError("[/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:38019: "
                        "Connection reset by peer. This is typically caused by a remote worker "
                        "hanging or bugs in the application. GLHF!")
    assert is_process_lost(gloo) and not is_process_lost(RuntimeError("out of memory"))
    line = process_lost_message(gloo, 0, 2, "runs/r/last.pt (iteration 20) is kept",
                                Path("runs/r"))
    assert line == ("lost rank 1 of 2 training processes (Read error [127.0.0.1]:38019: "
                    "Connection reset by peer); runs/r/last.pt (iteration 20) is kept; continue "
                    "the run with: torchrun --standalone --nproc_per_node 2 /venv/bin/fcnseg "
                    "train --out runs/r --resume")


def test_the_resume_command_of_a_lost_process_quotes_a_run_folder_with_spaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shlex

    from fcnseg.engine.errors import resume_command

    monkeypatch.setattr("sys.argv", ["/my venv/bin/fcnseg", "train"])
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    words = shlex.split(resume_command(Path("runs/my run"), 2))
    assert words[-5:] == ["/my venv/bin/fcnseg", "train", "--out", "runs/my run", "--resume"]


def test_a_lost_process_is_one_line_when_gloo_s_reason_runs_onto_a_cpp_stack_trace() -> None:
    from fcnseg.engine.errors import process_lost_message

    # as torch words it with TORCH_SHOW_CPP_STACKTRACES=1: the reason, then the C++ frames
    gloo = RuntimeError("[/gloo/transport/tcp/pair.cc:537] Read error [10.0.0.2]:38019: "
                        "Connection reset by peer\nException raised from recvHandler at "
                        "../gloo/pair.cc:537 (most recent call first):\nframe #0: ...")
    line = process_lost_message(gloo, 1, 2, "kept", Path("runs/r"))
    assert "\n" not in line
    assert line.startswith("lost rank 0 of 2 training processes (Read error [10.0.0.2]:38019: "
                           "Connection reset by peer); kept; ")


def _group_with_store(monkeypatch: pytest.MonkeyPatch, store: object):
    """This process's view of a 3-process group whose store is ``store``."""
    import torch.distributed as dist

    from fcnseg.engine import distributed

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed, "run_store", lambda: store)
    return distributed.DistInfo(1, 3, 1, torch.device("cpu"), owns_group=True)


@pytest.fixture
def store_at_master_address(monkeypatch: pytest.MonkeyPatch) -> object:
    """A real store at MASTER_ADDR:MASTER_PORT, as torchrun's launcher holds it."""
    import torch.distributed as dist

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(server.port))
    return server


@pytest.mark.usefixtures("store_at_master_address")
def test_the_processes_left_count_themselves_in_the_store_torchrun_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.distributed as dist

    from fcnseg.engine.distributed import DistInfo, first_to_report_loss

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    info = DistInfo(1, 3, 1, torch.device("cpu"), owns_group=True)
    assert [first_to_report_loss(info) for _ in range(2)] == [True, False]


def test_of_the_processes_left_after_a_loss_only_the_first_reports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fcnseg.engine.distributed import first_to_report_loss

    class Store:  # torchrun's store, shared by the processes left
        counts: dict[str, int] = {}

        def add(self, key: str, amount: int) -> int:
            self.counts[key] = self.counts.get(key, 0) + amount
            return self.counts[key]

    info = _group_with_store(monkeypatch, Store())
    assert [first_to_report_loss(info) for _ in range(2)] == [True, False]


def test_a_process_left_reports_the_loss_when_the_store_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from fcnseg.engine import distributed

    class SilentStore:  # on a machine that is gone
        def add(self, key: str, amount: int) -> int:
            threading.Event().wait()
            raise AssertionError("unreachable")

    monkeypatch.setattr(distributed, "STORE_WAIT_S", 0.05)
    assert distributed.first_to_report_loss(_group_with_store(monkeypatch, SilentStore()))


def test_a_process_left_reports_the_loss_when_the_store_went_with_the_lost_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fcnseg.engine.distributed import first_to_report_loss

    class GoneStore:  # rank 0 held it, and rank 0 was lost
        def add(self, key: str, amount: int) -> int:
            raise RuntimeError("Connection reset by peer")

    assert first_to_report_loss(_group_with_store(monkeypatch, GoneStore()))


@pytest.mark.usefixtures("store_at_master_address")
def test_a_stop_signal_posted_by_one_process_is_read_by_another() -> None:
    from fcnseg.engine.distributed import stop_board

    posting, reading = stop_board(True), stop_board(True)
    assert reading(None) is None
    assert (posting(15), reading(None)) == (15, 15)


def test_a_stop_board_whose_store_cannot_be_reached_tries_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fcnseg.engine import distributed

    tries = []

    def unreachable() -> None:  # each try may wait STORE_WAIT_S: once, not at every image
        tries.append(1)
        raise RuntimeError("connect timed out")

    monkeypatch.setattr(distributed, "run_store", unreachable)
    board = distributed.stop_board(True)
    assert [board(None), board(15), board(None)] == [None, 15, None]
    assert len(tries) == 1
