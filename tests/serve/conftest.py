"""Fixtures of the web-service tests: a tiny checkpoint, its Segmenter, images, a live server."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tiny_models import tiny_task_model as build_tiny_task_model  # noqa: E402

from fcnseg.checkpoint import save_checkpoint  # noqa: E402
from fcnseg.data.palette import voc_palette  # noqa: E402
from fcnseg.inference import Segmenter  # noqa: E402
from fcnseg.pretrained.reference import NYUD_CLASSES, SIFT_FLOW_CLASSES  # noqa: E402
from fcnseg.serve.server import build_server  # noqa: E402

CLASS_NAMES = ["background", "sky", "road", "tree"]
GEOMETRIC_CLASSES = ["sky", "horizontal", "vertical"]


@pytest.fixture(scope="session")
def tiny_task_model() -> Callable[[str], torch.nn.Module]:
    """``tiny_task_model(arch)``: see :func:`tiny_models.tiny_task_model`."""
    return build_tiny_task_model


@pytest.fixture(scope="session")
def siftflow_segmenter(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    """A tiny SIFT Flow FCN-16s: one trunk, heads ``semantic`` (33) and ``geometric`` (3)."""
    ckpt = save_checkpoint(tmp_path_factory.mktemp("sift") / "sift.pt",
                           build_tiny_task_model("siftflow_fcn16s"),
                           class_names=list(SIFT_FLOW_CLASSES), palette=voc_palette(),
                           head_classes={"semantic": SIFT_FLOW_CLASSES,
                                         "geometric": GEOMETRIC_CLASSES})
    return Segmenter.from_checkpoint(ckpt, precision="fp32")


@pytest.fixture(scope="session")
def fusion_segmenter(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    """A tiny NYUDv2 late-fusion FCN-32s taking ``color`` and ``hha``."""
    ckpt = save_checkpoint(tmp_path_factory.mktemp("nyud") / "rgbhha.pt",
                           build_tiny_task_model("nyud_fcn32s_color_hha"),
                           class_names=list(NYUD_CLASSES), palette=voc_palette())
    return Segmenter.from_checkpoint(ckpt, precision="fp32")


@pytest.fixture(scope="session")
def checkpoint_path(tiny_checkpoint: Callable[..., Path]) -> Path:
    """A tiny FCN-8s checkpoint whose score layers are random, so predictions vary by pixel
    (the reference initialisation, zeros, would predict class 0 everywhere)."""
    return tiny_checkpoint(CLASS_NAMES, "same", score_std=0.5)


@pytest.fixture(scope="session")
def segmenter(checkpoint_path: Path) -> Segmenter:
    return Segmenter.from_checkpoint(checkpoint_path)


@pytest.fixture(scope="session")
def onnx_path(checkpoint_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint exported to ONNX (logits)."""
    from fcnseg.cli.main import main

    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoint_path), "--format", "onnx",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def labels_only_segmenter(checkpoint_path: Path, tmp_path_factory: pytest.TempPathFactory
                          ) -> Segmenter:
    """The checkpoint exported as docs/deploy.md recommends: ONNX with labels only."""
    from fcnseg.cli.main import main

    out = tmp_path_factory.mktemp("labels_only") / "m.labels.onnx"
    assert main(["export", "--checkpoint", str(checkpoint_path), "--format", "onnx",
                 "--out", str(out), "--labels-out"]) == 0
    return Segmenter.from_checkpoint(out)


def _encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def make_image() -> Callable[..., tuple[np.ndarray, bytes]]:
    """``make_image(height, width, seed=0, fmt="PNG") -> (pixels, encoded bytes)``: a smooth
    random colour image (smooth so that the tiny model's labels form regions)."""

    def make(height: int, width: int, seed: int = 0, fmt: str = "PNG") -> tuple[np.ndarray, bytes]:
        rng = np.random.default_rng(seed)
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
        return image, _encode(image, fmt)

    return make


class LiveServer:
    """``fcnseg serve``'s server (guarded uvicorn) serving an app on 127.0.0.1 in a background
    thread."""

    def __init__(self, app: object) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))  # port 0: the kernel picks a free port
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # The server ``fcnseg serve`` runs: uvicorn with the header timeout and connection cap.
        service = app.state.service
        self._server = build_server(app, service.limits, service.connections,
                                    log_level="warning")
        self._server.config.lifespan = "off"
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def live_server() -> Iterator[Callable[[object], LiveServer]]:
    """``live_server(app)`` starts ``app`` on a free loopback port; stopped after the test."""
    started: list[LiveServer] = []

    def start(app: object) -> LiveServer:
        server = LiveServer(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
