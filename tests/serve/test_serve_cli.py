"""``fcnseg serve``: argument checks, and the real command answering on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fcnseg.cli.main import build_parser, main
from fcnseg.cli.serve import limits_from_args
from fcnseg.serve.limits import ServiceLimits


def test_serve_rejects_a_zero_worker_count(checkpoint_path: Path, capsys):
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--workers-concurrency", "0"])
    assert code == 2
    assert "--workers-concurrency" in capsys.readouterr().err


def test_serve_limit_options_default_to_the_service_limits():
    args = build_parser().parse_args(["serve", "--checkpoint", "x.pt"])
    assert ServiceLimits(**limits_from_args(args)) == ServiceLimits()


def test_serve_limit_options_set_the_service_limits_in_their_units():
    args = build_parser().parse_args([
        "serve", "--checkpoint", "x.pt", "--max-upload-mb", "0.5", "--max-pixels", "100",
        "--body-timeout", "2.5", "--workers-concurrency", "3", "--queue", "0",
        "--header-timeout", "4", "--max-connections", "50"])
    assert limits_from_args(args) == {"max_upload_bytes": 2**19, "max_pixels": 100,
                                      "body_timeout_s": 2.5, "max_concurrency": 3,
                                      "max_queue": 0, "header_timeout_s": 4.0,
                                      "max_connections": 50}


def test_serve_command_answers_on_loopback(checkpoint_path: Path):
    with socket.socket() as s:  # a free port (released just before the server takes it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "fcnseg.cli.main", "serve", "--checkpoint",
           str(checkpoint_path), "--port", str(port), "--log-level", "warning",
           "--torch-threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/model", timeout=2) as r:
                    model = json.load(r)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    output = proc.communicate()[0]
                    raise AssertionError(f"fcnseg serve did not come up: {output}") from None
                time.sleep(0.2)
        assert model["class_names"] == ["background", "sky", "road", "tree"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_reports_a_busy_port_in_one_line_before_serving(checkpoint_path: Path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--checkpoint", str(checkpoint_path), "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "serving" not in out
    assert len(err.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in err


def test_serve_rejects_a_non_positive_body_timeout(checkpoint_path: Path, capsys):
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--body-timeout", "0"])
    assert code == 2
    assert "--body-timeout" in capsys.readouterr().err


def test_serve_compile_warms_up_before_serving_and_falls_back_in_one_line(
        checkpoint_path: Path, capsys, monkeypatch):
    import torch
    import uvicorn

    events = []

    def no_compiler(*args, **kwargs):
        events.append("compile")
        raise RuntimeError("CppCompileError: no C compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process's stay
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: events.append("serve"))
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--port", "0", "--compile"])
    out, err = capsys.readouterr()
    assert code == 0
    assert events == ["compile", "serve"]  # compiled (and warmed up) before serving
    assert [line for line in err.splitlines() if line.strip()] == [
        next(line for line in err.splitlines() if "warning" in line)]
    assert "torch.compile failed" in err
    assert "serving" in out and "compiled" not in out


@pytest.mark.parametrize(("option", "said"), [
    ([], "batching o"),  # auto: the probe's decision, on or off, with its measured reason
    (["--batching", "on"], "batching on: as configured"),
    (["--batching", "off"], "batching off: as configured"),
])
def test_serve_start_line_reports_the_batching_decision(checkpoint_path: Path, capsys,
                                                         monkeypatch, option, said):
    import torch
    import uvicorn

    apps = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process's stay
    monkeypatch.setattr(uvicorn, "Config", lambda app, **kwargs: apps.append(app))
    monkeypatch.setattr(uvicorn.Server, "__init__", lambda self, config: None)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--port", "0", *option])
    assert code == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("serving"))
    decision = apps[0].state.service.batching
    assert line.endswith(f"; batching {decision.reason}")
    assert said in line
    if not option:
        assert "on this CPU a batch of two took" in decision.reason
    assert apps[0].state.service.batcher.max_batch == (4 if decision.enabled else 1)
