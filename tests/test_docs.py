"""The Python blocks of README.md and docs/*.md run, each in a fresh namespace and directory.

A block that needs data, weights or the network is marked in the markdown by an HTML comment on
the line before it: ``<!-- doc-test: stand-in=NAME[,NAME] -->`` generates small stand-ins (see
STAND_INS) in the block's working directory first; ``<!-- doc-test: skip REASON -->`` leaves out
a block that cannot run here at all. The docs also speak of the project, never of issues.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ondisk  # tests/ is on sys.path (see ondisk's docstring)
import pytest
import torch
from PIL import Image

import fcnseg.models
from fcnseg.checkpoint import save_checkpoint
from fcnseg.conventions import CAFFE_BGR
from fcnseg.data.nyud import NYUD_CLASSES
from fcnseg.data.palette import VOC_CLASSES, voc_palette
from fcnseg.data.synthetic import SyntheticSegmentation
from fcnseg.export import export_onnx
from fcnseg.inference import Segmenter
from fcnseg.models import build_model, fcn8s
from fcnseg.models.alexnet import read_alexnet_caffemodel
from fcnseg.models.builders import MODEL_BUILDERS
from fcnseg.models.resnet import ResNet
from fcnseg.models.weights import vgg16_torchvision_keys
from fcnseg.pretrained import fetch
from fcnseg.pretrained.caffemodel import write_caffemodel

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(.*?)\s*-->")
# The smallest VGG16 FCNs that still have every layer of the reference.
TINY = {"width": 0.0625, "fc_channels": 16}
# A small AlexNet (conv1 12 channels, even for the two groups of conv2).
TINY_ALEXNET = {"width": 0.125, "fc_channels": 16}


def python_blocks(path: Path) -> list[tuple[str, int, str, str]]:
    """(id, line, directive, code) of every ```python block of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = start
            while lines[end].strip() != "```":
                end += 1
            before = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
            match = DIRECTIVE.search(before)
            # A block inside a list item is indented with the item: run it dedented.
            code = textwrap.dedent("\n".join(lines[start:end]))
            blocks.append((f"{path.relative_to(ROOT)}:{i + 1}", i + 1,
                           match.group(1) if match else "", code))
            i = end
        i += 1
    return blocks


BLOCKS = [b for path in DOCS for b in python_blocks(path)]


# -- stand-ins: each gets the block's working directory and pytest's monkeypatch ---------------


def tiny_fcn(num_classes: int = 21, **kwargs) -> torch.nn.Module:
    """A tiny FCN-8s whose score layers are random, so its predictions vary over an image."""
    torch.manual_seed(0)
    model = fcn8s(num_classes=num_classes, **TINY, **kwargs)
    with torch.no_grad():
        for name in ("score_fr", "score_pool4", "score_pool3"):
            getattr(model.head, name).weight.normal_(0.0, 0.05)
            getattr(model.head, name).bias.normal_(0.0, 0.5)
    return model


def photo(path: Path, size: tuple[int, int] = (40, 48)) -> None:
    image, _ = SyntheticSegmentation(1, max(size), seed=3)[0]
    Image.fromarray(np.asarray(image)[: size[0], : size[1]]).save(path)


def tiny_models(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The VGG16 FCN builders default to a tiny width (a block reads as for the real size)."""
    for name in ("fcn32s", "fcn16s", "fcn8s"):
        full = getattr(fcnseg.models, name)

        def small(*args, _full=full, **kwargs):
            return _full(*args, **{**TINY, **kwargs})

        monkeypatch.setattr(fcnseg.models, name, small)


def pretrained_cache(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache holding the converted reference FCN-8s (a tiny one), as after a first download."""
    cache = cwd / "cache"
    cache.mkdir()
    monkeypatch.setenv("FCNSEG_HOME", str(cache))
    converted = cache / fetch.PRETRAINED["fcn8s_caffe"].converted
    model = tiny_fcn()
    model.input_convention = CAFFE_BGR
    save_checkpoint(converted, model, class_names=VOC_CLASSES, palette=voc_palette())
    fetch._record(cache, converted, source="stand-in", verified="converted")


def hub(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.hub.load("<owner>/fcnseg", ...)`` loads this checkout's hubconf.py instead."""
    pretrained_cache(cwd, monkeypatch)
    load = torch.hub.load

    def local(repo: str, model: str, *args, **kwargs):
        assert repo == "<owner>/fcnseg", repo
        return load(str(ROOT), model, *args, source="local", **kwargs)

    monkeypatch.setattr(torch.hub, "load", local)


def checkpoint(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny VOC checkpoint at every path the docs use, and photos to segment."""
    for path in ("best.pt", "runs/voc/best.pt", "fcn8s-voc.pt"):
        (cwd / path).parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(cwd / path, tiny_fcn(geometry="same"), class_names=VOC_CLASSES,
                        palette=voc_palette())
    for name in ("photo.jpg", "a.jpg", "b.jpg", "street.jpg"):
        photo(cwd / name)


def bands_checkpoint(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runs/bands/best.pt: a tiny 6-band model, and scene6.tif, a raster of its bands."""
    import tifffile

    from fcnseg.conventions import band_convention

    bands = ["red", "green", "blue", "nir", "swir1", "swir2"]
    model = build_model("fcn8s", num_classes=3, geometry="same",
                        input_convention=band_convention(bands, [1000.0] * 6, [300.0] * 6),
                        **TINY)
    (cwd / "runs" / "bands").mkdir(parents=True)
    save_checkpoint(cwd / "runs" / "bands" / "best.pt", model,
                    class_names=["background", "water", "field"])
    scene = np.random.default_rng(0).integers(0, 4000, (40, 48, 6), dtype=np.uint16)
    tifffile.imwrite(cwd / "scene6.tif", scene, photometric="minisblack", planarconfig="contig")


def bands_folder(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiles/: a 6-band uint16 folder dataset (nodata 0) of 4 tiles, 3 in train.txt; a small
    ``fcn8s_resnet18`` (``base_channels=8``) for the block's build."""
    import tifffile

    root = cwd / "tiles"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text(
        "classes: [water, vegetation, soil, built, cloud]\n"
        "bands: [blue, green, red, nir, swir1, swir2]\nnodata: 0\n")
    rng = np.random.default_rng(0)
    for n in range(4):
        tile = rng.integers(200, 4000, (64, 64, 6), dtype=np.uint16)
        tile[:, :5] = 0
        tifffile.imwrite(root / "images" / f"t{n}.tif", tile, photometric="minisblack",
                         planarconfig="contig")
        Image.fromarray(rng.integers(0, 5, (64, 64), dtype=np.uint8)).save(
            root / "masks" / f"t{n}.png")
    (root / "train.txt").write_text("t0\nt1\nt2\n")
    tiny_builder(monkeypatch, "fcn8s_resnet18", {"base_channels": 8})


def demo_checkpoint(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runs/demo/best.pt: a tiny (untrained) model of the synthetic shapes."""
    classes = SyntheticSegmentation(1, 32)
    (cwd / "runs" / "demo").mkdir(parents=True)
    save_checkpoint(cwd / "runs" / "demo" / "best.pt",
                    tiny_fcn(classes.num_classes, geometry="same"),
                    class_names=classes.classes, palette=classes.palette)


def resnet_weights(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's ImageNet ResNet-50 and COCO FCN-ResNet50 files (random weights)."""
    torch.manual_seed(0)
    torch.save(ResNet(50).state_dict(), cwd / "resnet50-0676ba61.pth")
    tv = build_model("fcn_resnet50", num_classes=21, aux_loss=True)
    torch.save(tv.state_dict(), cwd / "fcn_resnet50_coco-1167a1af.pth")


def onnx_file(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fcn8s.onnx: a tiny FCN-8s exported as ``fcnseg export`` does."""
    checkpoint(cwd, monkeypatch)
    segmenter = Segmenter.from_checkpoint(cwd / "best.pt")
    export_onnx(segmenter.model, cwd / "fcn8s.onnx", description=segmenter.describe(),
                sample_size=(64, 64))


def guarded_server(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve_app(app, host, port)`` serves on a free loopback port instead, until its
    ``/healthz``, asked over a real socket, reports the connection cap it enforces."""
    import socket
    import threading
    import time

    from fcnseg.serve import server

    def loopback(host: str, port: int) -> socket.socket:
        return socket.create_server(("127.0.0.1", 0))

    def serve_once(app, sock, limits, gauge, **kwargs) -> None:
        guarded = server.build_server(app, limits, gauge, log_level="warning")
        thread = threading.Thread(target=guarded.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not guarded.started:
                assert time.monotonic() < deadline and thread.is_alive(), "no server started"
                time.sleep(0.02)
            with socket.create_connection(sock.getsockname(), timeout=10) as client:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := client.recv(4096):
                    answer += chunk
            health = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert health["connections"]["limit"] == gauge.limit, health
            assert health["connections"]["open"] == 1, health
        finally:
            guarded.should_exit = True
            thread.join(timeout=10)

    monkeypatch.setattr(server, "bind_socket", loopback)
    monkeypatch.setattr(server, "serve", serve_once)


def vgg16_weights(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vgg16_from_caffe.pth in torchvision's VGG16 layout, as wide as the tiny FCNs."""
    trunk = tiny_fcn().state_dict()
    sd = {}
    for key, file_key in vgg16_torchvision_keys().items():
        fully_connected = key in ("fc6.weight", "fc7.weight")  # Linear layers in the file
        sd[file_key] = trunk[key].flatten(1) if fully_connected else trunk[key]
    sd["classifier.6.weight"] = torch.zeros(1000, TINY["fc_channels"])
    sd["classifier.6.bias"] = torch.zeros(1000)
    torch.save(sd, cwd / "vgg16_from_caffe.pth")


def voc(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data/: VOC2012, VOC2011 and SBD in their on-disk formats, a few images each."""
    ids = ["2008_000002", "2008_000003", "2008_000007"]
    ondisk.write_voc(cwd / "data", "2012", {"train": ids[:2], "val": ids[2:],
                                            "trainval": ids})
    ondisk.write_voc(cwd / "data" / "TrainVal", "2011", {"val": ids, "train": ids[:1]})
    ondisk.write_sbd(cwd / "data", {"train": ids[:2], "val": ids[2:]})


def folder(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mydata/: a two-class folder dataset with train and val lists."""
    root = cwd / "mydata"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, fg]\n")
    for n in range(4):
        image = np.full((24, 32, 3), 40 * n, np.uint8)
        mask = np.zeros((24, 32), np.uint8)
        mask[6:18, 8:24] = 1
        image[mask == 1] = 200
        Image.fromarray(image).save(root / "images" / f"{n}.png")
        Image.fromarray(mask).save(root / "masks" / f"{n}.png")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in range(4)))


def tiny_builder(monkeypatch: pytest.MonkeyPatch, name: str, defaults: dict) -> None:
    """``build_model(name, ...)`` builds with ``defaults`` unless the block says otherwise."""
    full = MODEL_BUILDERS[name]

    def small(*args, _full=full, **kwargs):
        return _full(*args, **{**defaults, **kwargs})

    monkeypatch.setitem(MODEL_BUILDERS, name, small)


def nyud_streams(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nyud-color.pt and nyud-hha.pt: tiny trained-stream checkpoints; the NYUDv2 builders
    default to the tiny width."""
    for name in ("nyud_fcn32s_color", "nyud_fcn32s_hha", "nyud_fcn32s_color_hha",
                 "nyud_fcn16s_color_hha"):
        tiny_builder(monkeypatch, name, TINY)
    for modality in ("color", "hha"):
        torch.manual_seed(0)
        model = build_model(f"nyud_fcn32s_{modality}")
        save_checkpoint(cwd / f"nyud-{modality}.pt", model, class_names=NYUD_CLASSES,
                        palette=voc_palette()[: len(NYUD_CLASSES)])


def alexnet_weights(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FCN-AlexNet builds small; Caffe's bvlc_alexnet.caffemodel and torchvision's
    alexnet-owt-7be5be79.pth at that size, and the cache holding the converted Caffe file (as
    after ``fetch_pretrained("alexnet_caffe")`` downloaded it once)."""
    tiny_builder(monkeypatch, "fcn_alexnet", TINY_ALEXNET)
    torch.manual_seed(0)
    caffe = build_model("fcn_alexnet", num_classes=1).state_dict()
    layers = [("data", "Data", [])]
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        weight = caffe[f"{name}.weight"]
        if name.startswith("fc"):  # Caffe's InnerProduct: (out, in)
            layers.append((name, "InnerProduct",
                           [weight.flatten(1).numpy(), caffe[f"{name}.bias"].numpy()]))
        else:
            layers.append((name, "Convolution", [weight.numpy(), caffe[f"{name}.bias"].numpy()]))
    fc = TINY_ALEXNET["fc_channels"]
    layers.append(("fc8", "InnerProduct", [np.zeros((1000, fc), np.float32),
                                           np.zeros(1000, np.float32)]))
    caffemodel = write_caffemodel(cwd / "bvlc_alexnet.caffemodel", layers, v1=True)
    cache = cwd / "cache"
    cache.mkdir()
    monkeypatch.setenv("FCNSEG_HOME", str(cache))
    converted = cache / fetch.PRETRAINED["alexnet_caffe"].converted
    torch.save(read_alexnet_caffemodel(caffemodel), converted)
    fetch._record(cache, converted, source="stand-in", verified="converted")

    tv = build_model("fcn_alexnet", num_classes=1, variant="torchvision").state_dict()
    sd = {k.removeprefix("backbone."): v for k, v in tv.items()
          if k.startswith("backbone.features.")}
    for fc_name, index in (("fc6", 1), ("fc7", 4)):
        sd[f"classifier.{index}.weight"] = tv[f"backbone.{fc_name}.weight"].flatten(1)
        sd[f"classifier.{index}.bias"] = tv[f"backbone.{fc_name}.bias"]
    sd["classifier.6.weight"] = torch.zeros(1000, fc)
    sd["classifier.6.bias"] = torch.zeros(1000)
    torch.save(sd, cwd / "alexnet-owt-7be5be79.pth")


def pascal_context(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data/: PASCAL-Context as download_pascal_context leaves it (VOC2010 + pascal-context/)."""
    ondisk.write_pascal_context(cwd / "data", {"train": ["2008_000002", "2008_000003"],
                                               "val": ["2008_000007"]})


def nyud(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data/nyud: NYUDv2 in the FCN reference's layout, a few images a split."""
    ondisk.write_nyud(cwd / "data", {"train": ["0001", "0002"], "val": ["0003"],
                                     "test": ["0004"]})


def siftflow(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data/SiftFlowDataset with the reference's split lists, a few images each."""
    ondisk.write_siftflow(cwd / "data", {"trainval": ["coast_arnat59", "street_par151"],
                                         "test": ["coast_bea1"]})


def labelling_loop(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """photos/: ten generated 64×64 scenes, the first six with labelme files (as labelme
    writes them; p4 falls in the val split) and labels.txt; training recipes run a few small
    iterations."""
    import fcnseg.engine
    from fcnseg.data.annotations.export import labelme_document

    scenes = SyntheticSegmentation(10, 64, seed=5)
    (cwd / "photos").mkdir()
    for k in range(len(scenes)):
        image, label = scenes[k]
        Image.fromarray(np.asarray(image)).save(cwd / "photos" / f"p{k}.png")
        if k < 6:
            doc = labelme_document(np.asarray(label, np.uint8), scenes.classes, f"p{k}.png")
            (cwd / "photos" / f"p{k}.json").write_text(json.dumps(doc), encoding="utf-8")
    (cwd / "labels.txt").write_text("\n".join(["__ignore__", "_background_",
                                               *scenes.classes[1:]]) + "\n")
    full = fcnseg.engine.load_config
    quick = ["train.iterations=2", "train.eval_every=2", "train.checkpoint_every=2",
             "train.log_every=1", "data.crop_size=48", "data.batch_size=2",
             "data.num_workers=0", "device=cpu", "schedule.warmup_iters=1"]

    def short(recipe, overrides=(), **fields):
        return full(recipe, [*overrides, *quick], **fields)

    monkeypatch.setattr(fcnseg.engine, "load_config", short)


def int8_model(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """model.int8.onnx: a tiny VOC model quantized by ``fcnseg quantize --labels-out``, and
    photos to segment."""
    from fcnseg.cli.main import main

    checkpoint(cwd, monkeypatch)
    assert main(["quantize", str(cwd / "best.pt"), "--calib", "synthetic:num_images=2,size=48",
                 "--out", str(cwd / "model.int8.onnx"), "--labels-out"]) == 0


STAND_INS: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    "tiny-models": tiny_models,
    "pretrained-cache": pretrained_cache,
    "hub": hub,
    "checkpoint": checkpoint,
    "demo-checkpoint": demo_checkpoint,
    "bands-checkpoint": bands_checkpoint,
    "bands-folder": bands_folder,
    "resnet-weights": resnet_weights,
    "vgg16-weights": vgg16_weights,
    "onnx": onnx_file,
    "int8-model": int8_model,
    "server": guarded_server,
    "voc": voc,
    "folder": folder,
    "nyud-streams": nyud_streams,
    "alexnet-weights": alexnet_weights,
    "pascal-context": pascal_context,
    "nyud": nyud,
    "siftflow": siftflow,
    "labelling-loop": labelling_loop,
}


@pytest.mark.parametrize(("line", "directive", "code"), [b[1:] for b in BLOCKS],
                         ids=[b[0] for b in BLOCKS])
def test_doc_block_runs(line: int, directive: str, code: str, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    if directive.startswith("skip"):
        reason = directive[len("skip"):].strip()
        assert reason, f"line {line}: a skipped block must say why"
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    if directive:
        kind, _, names = directive.partition("=")
        assert kind.strip() == "stand-in", f"line {line}: unknown doc-test directive {directive!r}"
        for name in names.split(","):
            STAND_INS[name.strip()](tmp_path, monkeypatch)
    torch.manual_seed(0)
    # One thread: the blocks' small models gain nothing from more, and a shared CPU loses much.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(code, f"<doc block at line {line}>", "exec"), {"__name__": "__main__"})
    finally:
        torch.set_num_threads(threads)


def test_docs_have_python_blocks() -> None:
    assert len(BLOCKS) >= 20


def test_docs_do_not_speak_of_issues() -> None:
    found = [f"{path.relative_to(ROOT)}:{n}: {text.strip()}"
             for path in DOCS
             for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if re.search(r"\bissues?\b", text, re.IGNORECASE)]
    assert not found, "\n".join(found)


def test_stand_ins_named_in_docs_exist() -> None:
    names = {n.strip() for _, _, d, _ in BLOCKS if d.startswith("stand-in")
             for n in d.partition("=")[2].split(",")}
    assert names <= set(STAND_INS), names - set(STAND_INS)


def test_readme_states_the_export_check_as_the_code_makes_it() -> None:
    from fcnseg.export.common import DEFAULT_ATOL, DEFAULT_RTOL

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("fcnseg export --checkpoint best.pt --format onnx")
    export = " ".join(text[start:start + 1500].split())
    assert "only if it is below 1e-4" not in export  # the check is relative to the logits
    assert "max(`--atol`, `--rtol` × that sample's largest logit)" in export
    assert DEFAULT_ATOL == DEFAULT_RTOL == 1e-4 and "both 1e-4 by default" in export


def test_data_md_describes_the_multi_band_fields() -> None:
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    section = text[text.index("### Multi-band"):]
    section = section[:section.index("\n### ", 5)]
    for field in ("`bands`", "`rgb`", "`nodata`"):
        assert field in section
    assert "three of the declared bands" in section and "in grey" in section


def test_the_docs_say_which_loader_default_applies_on_2_cores() -> None:
    import yaml

    training = (ROOT / "docs" / "training.md").read_text()
    assert "(the default on 2 cores)" not in training  # the default is auto, not a recipe's
    recipe = yaml.safe_load((ROOT / "src" / "fcnseg" / "recipes" /
                             "folder-cpu.yaml").read_text())
    workers = recipe["data"]["num_workers"]
    assert f"`num_workers: {workers}`" in (ROOT / "docs" / "own-data-cpu.md").read_text()
    assert f"folder-cpu recipe sets {workers}" in training


def test_the_training_docs_say_a_run_folder_is_not_trained_into_twice() -> None:
    training = (ROOT / "docs" / "training.md").read_text()
    assert "already holds a run" in training and "--resume" in training


def test_random_images_in_the_docs_are_raw_pixels() -> None:
    # Models take raw pixels (0-255, as files hold them); torch.rand alone is 0-1, a
    # near-black image that a reader copying the snippet would learn as the convention.
    for path in DOCS:
        for _, line, _, code in python_blocks(path):
            for k, text in enumerate(code.splitlines()):
                if "torch.rand(" in text:
                    assert "* 255" in text, f"{path.name}:{line + k}: {text.strip()}"


def test_the_readme_layout_names_every_part_of_the_package_and_only_parts_that_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("Layout: `src/fcnseg/`"):text.index("Data moves one way")]
    named = set(re.findall(r"`([\w/]+?\.py|\w+/)`", layout))
    named |= {n.split("/")[0] + "/" for n in named if n.endswith(".py") and "/" in n}
    package = ROOT / "src" / "fcnseg"
    parts = {p.name + "/" for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    parts |= {p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert parts <= named, f"not said where they live: {sorted(parts - named)}"
    files = {str(p.relative_to(package)) for p in package.rglob("*.py")}
    for name in named - {"src/fcnseg/", "cli/", "tests/"}:
        suffix = name.rstrip("/")
        assert any(f == suffix or f.endswith("/" + suffix) or f.startswith(suffix + "/")
                   for f in files | {p.name + "/" for p in package.iterdir()}), name


def test_every_fcnseg_import_in_the_docs_works_and_a_modules_names_come_from_their_home() -> None:
    import importlib
    import inspect

    wrong = []
    for doc in DOCS:
        for m in re.finditer(r"from (fcnseg[\w.]*) import (\([^)]*\)|[\w ,]+)", doc.read_text()):
            module = importlib.import_module(m.group(1))
            for name in re.findall(r"\w+", m.group(2).split("#")[0].replace(" as ", " ")):
                obj = getattr(module, name, None)
                if obj is None and not re.search(rf"\bas {name}\b", m.group(2)):
                    wrong.append(f"{doc.name}: from {m.group(1)} import {name}: missing")
                elif (inspect.isfunction(obj) or inspect.isclass(obj)) \
                        and not hasattr(module, "__path__") and obj.__module__ != module.__name__:
                    wrong.append(f"{doc.name}: {name} lives in {obj.__module__}, not {m.group(1)}")
    assert not wrong


def test_the_training_docs_point_a_recipe_at_another_kind_of_dataset_as_written(
        tmp_path, monkeypatch) -> None:
    import shlex

    from fcnseg.data import build_dataset
    from fcnseg.engine.config import load_config

    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    [command] = [block for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                 if "data.train={name: cityscapes" in block]
    words = shlex.split(command.replace("\\\n", " "))
    for split in ("train", "val"):  # data/cityscapes: one image of each split
        for kind, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
            folder = tmp_path / "data" / "cityscapes" / kind / split / "ulm"
            folder.mkdir(parents=True)
            Image.fromarray(np.full((8, 8), 7, np.uint8)).save(
                folder / f"ulm_000000_000019_{suffix}.png")
    monkeypatch.chdir(tmp_path)
    config = load_config(words[words.index("--recipe") + 1], words[words.index("--set") + 1:])
    for spec, split in ((config.data.train, "train"), (config.data.val, "val")):
        assert spec == {"name": "cityscapes", "root": "data/cityscapes", "split": split}
        assert len(build_dataset(spec)) == 1
