"""The README's Quick start runs as written, in a clean shell, on a checkout whose ``.venv`` is
the environment running these tests (``make demo`` shortened to seconds through DEMO_ARGS)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli import demo

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(sys.executable).parent
TINY_DEMO = ("--predictions 1 --set train.iterations=2 --set train.eval_every=2 --set threads=1 "
             "--set data.train.num_images=8 --set data.val.num_images=2 --set data.val.size=64 "
             "--set model.width=0.0625 --set model.fc_channels=16")


def quick_start_commands() -> list[str]:
    """The shell lines of the README block marked ``<!-- shell-test: quick-start -->``, without
    their comments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!--\s*shell-test:\s*quick-start\s*-->\s*\n```\n(.*?)\n```", text,
                      re.DOTALL)
    assert match, "README.md has no block marked <!-- shell-test: quick-start -->"
    lines = [line.split(" #")[0].strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line]


def fresh_checkout(root: Path) -> None:
    """``root``: the Makefile and an installed ``.venv`` (this environment's scripts), as
    ``make`` leaves a clone after its first run."""
    shutil.copy(ROOT / "Makefile", root / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    os.utime(root / "pyproject.toml", (0, 0))  # older than the install stamp: nothing to install
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(SCRIPTS, target_is_directory=True)
    (root / ".venv" / ".fcnseg-installed").touch()
    (root / "my_images").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), np.uint8)).save(root / "my_images" / name)


def clean_env(root: Path) -> dict[str, str]:
    """A login-like environment: no virtual environment active, the system PATH only."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8",
           "DEMO_ARGS": TINY_DEMO, "FCNSEG_HOME": str(root / "cache"), "OMP_NUM_THREADS": "1"}
    if os.environ.get("PYTHONPATH"):  # a source checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (SCRIPTS / "activate").is_file() or shutil.which("make") is None,
                    reason="needs make and tests run from a virtual environment")
def test_quick_start_runs_as_written_in_a_clean_shell(tmp_path: Path) -> None:
    commands = quick_start_commands()
    assert commands[0] == "make demo" and commands[-1].startswith("fcnseg serve ")
    fresh_checkout(tmp_path)
    port = free_port()
    # serve runs until stopped: start it in the background on a free port (its output to a file,
    # so the shell's pipes close when the shell ends) and ask /healthz.
    script = "\n".join(commands[:-1] + [f"{commands[-1]} --port {port} > serve.log 2>&1 &",
                                         "echo $! > serve.pid"])
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pid = int((tmp_path / "serve.pid").read_text())
    try:
        answer = None
        deadline = time.monotonic() + 120
        while answer is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    answer = r.status
            except OSError:
                time.sleep(0.5)
        assert answer == 200, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        os.kill(pid, 15)
    assert "next:" in done.stdout and "activate" in done.stdout, done.stdout[-2000:]
    assert sorted(p.name for p in (tmp_path / "preds").iterdir() if p.suffix == ".png")


def test_demo_next_commands_activate_the_environment_when_fcnseg_is_not_on_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    lines = demo.next_commands(Path("runs/demo/best.pt"))
    assert lines[1].strip().startswith(". ") and "activate" in lines[1]
    assert any("fcnseg predict --checkpoint runs/demo/best.pt" in line for line in lines)
    assert any("fcnseg serve --checkpoint runs/demo/best.pt" in line for line in lines)


def test_demo_next_commands_are_plain_when_fcnseg_is_on_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{SCRIPTS}:/usr/bin:/bin")
    if shutil.which("fcnseg") is None:
        pytest.skip("this environment has no fcnseg script")
    lines = demo.next_commands(Path("runs/demo/best.pt"))
    assert not any("activate" in line for line in lines)
    assert lines[1].strip().startswith("fcnseg predict")
