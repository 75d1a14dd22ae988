"""Shared fixtures: a loopback HTTP file server (with Range support) for download tests."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class LoopbackServer:
    """Serves files from ``root`` on 127.0.0.1; records the Range headers it was sent."""

    root: Path
    port: int = 0
    range_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: LoopbackServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            server.requests.append(self.path)
            path = server.root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            ctype = "text/html" if path.suffix == ".html" else "application/octet-stream"
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                server.range_requests.append(rng)
                start = int(rng[len("bytes="):].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                data = data[start:]
            else:
                self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def loopback_server(tmp_path: Path) -> Iterator[LoopbackServer]:
    """An HTTP server on 127.0.0.1 serving the files a test writes into ``server.root``."""
    root = tmp_path / "served"
    root.mkdir()
    server = LoopbackServer(root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_checkpoint(class_names, geometry="same", score_std=0.05)``: a saved tiny FCN-8s.

    Its score layers are random (seeded), so labels vary over an image; the reference
    initialisation (zeros) would predict class 0 everywhere. Cached per arguments.
    """
    import torch

    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.palette import voc_palette
    from fcnseg.models import fcn8s

    made: dict[tuple, Path] = {}

    def make(class_names: list[str], geometry: str = "same", score_std: float = 0.05) -> Path:
        key = (tuple(class_names), geometry, score_std)
        if key not in made:
            torch.manual_seed(0)
            model = fcn8s(num_classes=len(class_names), geometry=geometry, width=0.0625,
                          fc_channels=16)
            with torch.no_grad():
                for name in ("score_fr", "score_pool4", "score_pool3"):
                    getattr(model.head, name).weight.normal_(0.0, score_std)
                    getattr(model.head, name).bias.normal_(0.0, 0.5)
            path = tmp_path_factory.mktemp(f"tiny_{geometry}") / "tiny.pt"
            save_checkpoint(path, model, class_names=list(class_names), palette=voc_palette())
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def predicted_label_raster():
    """``predicted_label_raster(checkpoint, raster, out, *options)``: the label raster that
    ``fcnseg predict --checkpoint CHECKPOINT RASTER *OPTIONS --out OUT`` writes (OUT/<stem>.tif),
    read as an array; the command must succeed."""
    import tifffile

    from fcnseg.cli.main import main

    def run(checkpoint: Path, raster: Path, out: Path, *options: str):
        assert main(["predict", "--checkpoint", str(checkpoint), str(raster), *options,
                     "--out", str(out), "--no-progress"]) == 0
        return tifffile.imread(Path(out) / f"{Path(raster).stem}.tif")

    return run


@pytest.fixture
def fake_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gs`` first on PATH whose only act is to create a marker file, whose path is returned:
    the marker exists if and only if something ran Ghostscript. Pillow's cached answer to "is
    Ghostscript installed?" is reset, so that it would look for (and run) this one."""
    import os

    from PIL import EpsImagePlugin

    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    marker = tmp_path / "ghostscript-ran"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 0\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return marker


@pytest.fixture(scope="session")
def postscript_bytes() -> bytes:
    """A small, valid EPS file (Pillow writes it without Ghostscript)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="EPS")
    return buf.getvalue()
