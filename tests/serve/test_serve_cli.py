"""``fcnseg serve``: argument checks, and the real command answering on loopback."""

from __future__ import annotations

import json
import os
import re
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
from fcnseg.inference import Segmenter
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


@pytest.mark.parametrize(("option", "value", "refusal"), [
    ("--max-upload-mb", "0", "--max-upload-mb must be more than 0, got 0.0"),
    ("--max-upload-mb", "1e-9", "--max-upload-mb must be at least 9.53674e-07, got 1e-09"),
    ("--max-upload-mb", "nan", "--max-upload-mb must be finite, got nan"),
    ("--max-pixels", "0", "--max-pixels must be at least 1, got 0"),
    ("--queue", "-1", "--queue must be at least 0, got -1"),
    ("--header-timeout", "inf", "--header-timeout must be finite, got inf"),
    ("--body-timeout", "-2", "--body-timeout must be more than 0, got -2.0")])
def test_a_limit_option_is_refused_in_its_own_name_and_units(option, value, refusal):
    args = build_parser().parse_args(["serve", "--checkpoint", "x.pt", option, value])
    with pytest.raises(ValueError, match=f"^{re.escape(refusal)}$"):
        limits_from_args(args)


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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == -signal.SIGTERM  # 143 in a shell, as docs/serve.md says
    finally:
        if proc.poll() is None:
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


def test_serve_takes_predicts_tile_and_overlap_options_with_their_defaults(checkpoint_path):
    from fcnseg.cli.options import tiles_from_args

    def tiles(command: str, *given: str) -> tuple[dict, tuple[int, int], tuple[int, int]]:
        args = build_parser().parse_args([command, "--checkpoint", "m.pt", *given, "--out", "o"]
                                         if command == "predict" else
                                         [command, "--checkpoint", "m.pt", *given])
        setting = tiles_from_args(args)
        seg = Segmenter.from_checkpoint(checkpoint_path, **setting)
        return (setting, (seg.tiles.tile, seg.tiles.overlap),
                (seg.photo_tiles.tile, seg.photo_tiles.overlap))

    # Rasters by tiles of 512 sharing 128; large photos by the segmenter's own (2048, aligned).
    assert tiles("serve") == tiles("predict") == ({"tile": "auto", "overlap": None},
                                                   (512, 128), (2048, 512))
    assert tiles("serve", "--tile", "64", "--overlap", "8") == ({"tile": 64, "overlap": 8},
                                                                (64, 8), (64, 8))


def test_serve_refuses_an_overlap_of_half_the_tile_in_one_line(checkpoint_path: Path, capsys):
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--tile", "32",
                 "--overlap", "16"])
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert err.endswith("--overlap must be less than half of --tile (32), got 16")
    assert len(err.splitlines()) == 1


def _start_line(monkeypatch, capsys, *arguments: str) -> tuple[str, list[int]]:
    """The ``serving …`` line of ``fcnseg serve *arguments`` (not served), and the counts
    given to ``torch.set_num_threads``."""
    import torch

    import fcnseg.serve.server

    counts: list[int] = []
    before, set_threads = torch.get_num_threads(), torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: counts.append(n) or set_threads(n))
    monkeypatch.setattr(fcnseg.serve.server, "serve", lambda *args, **kwargs: None)
    try:
        assert main(["serve", "--port", "0", "--batching", "off", *arguments]) == 0
    finally:
        set_threads(before)  # the test process's count
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("serving"))
    return line, counts


def test_serve_threads_sets_torchs_threads_for_a_checkpoint(checkpoint_path: Path, capsys,
                                                            monkeypatch):
    line, counts = _start_line(monkeypatch, capsys, "--checkpoint", str(checkpoint_path),
                               "--threads", "3")
    assert counts == [3] and ", 3 torch threads" in line
    line, _ = _start_line(monkeypatch, capsys, "--checkpoint", str(checkpoint_path),
                          "--threads", "1")
    assert ", 1 torch thread," in line


def test_serve_threads_sets_onnx_runtimes_intra_op_threads_and_says_so(onnx_path: Path, capsys,
                                                                      monkeypatch):
    import fcnseg.models.exported

    sessions = []
    opened = fcnseg.models.exported.onnx_session
    monkeypatch.setattr(fcnseg.models.exported, "onnx_session",
                        lambda *args: sessions.append(opened(*args)) or sessions[-1])
    line, counts = _start_line(monkeypatch, capsys, "--checkpoint", str(onnx_path),
                               "--threads", "3")
    assert counts == [3]
    assert [s.get_session_options().intra_op_num_threads for s in sessions] == [3]
    assert ", 3 ONNX Runtime threads" in line and "torch threads" not in line


@pytest.fixture(scope="module")
def band_checkpoint(tmp_path_factory) -> Path:
    from tiny_models import tiny_band_model

    from fcnseg.checkpoint import save_checkpoint

    model = tiny_band_model(["nir", "red", "green"], [2000.0, 1000.0, 1100.0],
                            [500.0, 300.0, 300.0])
    return save_checkpoint(tmp_path_factory.mktemp("bands") / "bands.pt", model,
                           class_names=["background", "vegetation", "bare"])


def served_app(monkeypatch, *arguments: str):
    """The application ``fcnseg serve *arguments`` builds, not served (uvicorn stubbed)."""
    import torch
    import uvicorn

    apps = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process's stay
    monkeypatch.setattr(uvicorn, "Config", lambda app, **kwargs: apps.append(app))
    monkeypatch.setattr(uvicorn.Server, "__init__", lambda self, config: None)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    assert main(["serve", "--port", "0", *arguments]) == 0
    return apps[0]


def assert_served_as_predicted(app, checkpoint: Path, path: Path, predicted_label_raster) -> None:
    """The labels ``app`` answers for the TIFF ``path`` are those of ``fcnseg predict --tile 32``
    (to float rounding, judged by predict's probabilities)."""
    import io

    import numpy as np
    from fastapi.testclient import TestClient
    from floats import assert_labels_match
    from PIL import Image

    from fcnseg.data.rasters import rasterio_open

    with TestClient(app) as client:
        answer = client.post("/v1/segment", content=path.read_bytes(),
                             headers={"Content-Type": "image/tiff"})
    assert answer.status_code == 200, answer.text
    served = np.asarray(Image.open(io.BytesIO(answer.content)))
    out = path.parent / "out"
    predicted = predicted_label_raster(checkpoint, path, out, "--tile", "32",
                                       "--precision", "fp32", "--probs")
    with rasterio_open(out / f"{path.stem}_probs.tif") as ds:
        probs = ds.read()
    assert_labels_match(served, predicted, probs)


def test_serve_tile_gives_the_labels_of_predict_tile(band_checkpoint, predicted_label_raster,
                                                     tmp_path, monkeypatch):
    import numpy as np
    import tifffile
    from geotags import GEOTIFF_TAGS

    yy, xx = np.mgrid[0:72, 0:80]
    bands = [np.sin(yy / 9.0 + b) * np.cos(xx / 13.0 - b) * 800 + 1500 for b in range(3)]
    path = tmp_path / "scene.tif"
    tifffile.imwrite(path, np.stack(bands, -1).astype(np.uint16), photometric="minisblack",
                     planarconfig="contig", extratags=GEOTIFF_TAGS)
    app = served_app(monkeypatch, "--checkpoint", str(band_checkpoint), "--tile", "32",
                     "--precision", "fp32", "--batching", "off")
    tiles = app.state.service.segmenter.tiles
    assert (tiles.tile, tiles.overlap) == (32, 8)  # predict's default overlap for 32
    assert_served_as_predicted(app, band_checkpoint, path, predicted_label_raster)


def test_serve_tile_gives_a_colour_models_labels_of_predict_tile_for_a_raster_it_tiles(
        checkpoint_path, predicted_label_raster, tmp_path, monkeypatch):
    import numpy as np
    import tifffile
    from geotags import GEOTIFF_TAGS

    yy, xx = np.mgrid[0:72, 0:80]
    rgb = [np.sin(yy / 9.0 + b) * np.cos(xx / 13.0 - b) * 25000 + 30000 for b in range(3)]
    path = tmp_path / "scan.tif"  # a 16-bit RGB GeoTIFF: fcnseg predict tiles it
    tifffile.imwrite(path, np.stack(rgb, -1).astype(np.uint16), photometric="rgb",
                     extratags=GEOTIFF_TAGS)
    app = served_app(monkeypatch, "--checkpoint", str(checkpoint_path), "--tile", "32",
                     "--precision", "fp32", "--batching", "off")
    assert_served_as_predicted(app, checkpoint_path, path, predicted_label_raster)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_serve_on_a_missing_cuda_says_so_in_predicts_one_line(checkpoint_path: Path, capsys):
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--port", "0",
                 "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "fcnseg serve: error: device: 'cuda:0' requested but CUDA is not available; "
        "use device=cpu"]


SERVE_MD = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def _serve_options_table() -> dict[str, str]:
    """docs/serve.md's options table: option → its default column, backquotes dropped."""
    rows = {}
    for line in SERVE_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`--"):
            rows[cells[0].strip("`").split()[0]] = cells[1].strip("`")
    return rows


def test_serve_md_options_table_lists_every_option_with_the_codes_default():
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]
    table = _serve_options_table()
    for action in serve._actions:
        option = next((o for o in action.option_strings if o.startswith("--")), None)
        if option is None or option == "--help":
            continue
        assert option in table, f"{option} is missing from docs/serve.md's options table"
        if isinstance(action.default, (int, float, str)) and not isinstance(action.default, bool):
            assert table[option] == f"{action.default:g}" if isinstance(action.default, float) \
                else table[option] == str(action.default), option


def test_serve_docs_prose_gives_the_codes_default_timeouts():
    text = " ".join(SERVE_MD.read_text().split())
    defaults = ServiceLimits()
    for option, value in (("--body-timeout", defaults.body_timeout_s),
                          ("--header-timeout", defaults.header_timeout_s)):
        for said in re.findall(rf"`{option}` seconds \((\d+) by default", text):
            assert float(said) == value, f"docs/serve.md says {option} defaults to {said}"


def test_serve_warns_in_one_line_when_the_open_file_limit_leaves_too_few_connections(
        checkpoint_path: Path, capsys, monkeypatch):
    import resource

    import torch

    import fcnseg.serve.server

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the test process's stay
    monkeypatch.setattr(resource, "getrlimit", lambda which: (70, 70))  # as under ulimit -n 70
    monkeypatch.setattr(fcnseg.serve.server, "serve", lambda *args, **kwargs: None)
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--port", "0",
                 "--batching", "off"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "at most 6 connections (" in out
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "open-file limit" in warnings[0] and "ulimit -n" in warnings[0]


def test_serve_refuses_in_one_line_an_open_file_limit_that_leaves_one_connection(
        checkpoint_path: Path, capsys, monkeypatch):
    import resource

    import fcnseg.serve.server

    monkeypatch.setattr(resource, "getrlimit", lambda which: (64, 64))  # as under ulimit -n 64
    monkeypatch.setattr(fcnseg.serve.server, "serve", lambda *args, **kwargs: None)
    code = main(["serve", "--checkpoint", str(checkpoint_path), "--port", "0",
                 "--batching", "off"])
    out, err = capsys.readouterr()
    assert code == 2 and "serving" not in out
    assert len(err.strip().splitlines()) == 1
    assert "--max-connections" in err and "ulimit -n 64" in err and "at least 66" in err
