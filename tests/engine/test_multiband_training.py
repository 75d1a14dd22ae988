"""Multi-band folder datasets end to end: a 5-band uint16 TIFF dataset trains (pre-flight,
automatic crop, per-band padding), its checkpoint records the bands' statistics and
rebuilds the same normalisation, and it segments 5-band rasters (others: one line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint
from fcnseg.cli.main import main
from fcnseg.conventions import band_convention
from fcnseg.data import FolderSegmentation
from fcnseg.data.band_stats import band_statistics
from fcnseg.data.transforms import RandomCrop
from fcnseg.engine import load_config, train
from fcnseg.engine.preflight import header_size
from fcnseg.engine.setup import sample_file_problems
from fcnseg.inference.visualize import read_label_png
from fcnseg.models import build_model, widen_conv1
from fcnseg.models.resnet import ResNet
from fcnseg.models.weights import band_conv1
from tests.floats import assert_close_to_scale

pytestmark = pytest.mark.usefixtures("one_thread")

BANDS = ["red", "green", "blue", "nir", "swir1"]


def _scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Five uint16 bands; class 1 bright in nir, class 2 bright in swir1; a nodata stripe."""
    image = (rng.random((height, width, 5)) * 3000 + 1000).astype(np.uint16)
    label = np.zeros((height, width), np.uint8)
    label[6:24, 6:24] = 1
    image[6:24, 6:24, 3] += 20000
    label[28:40, 10:44] = 2
    image[28:40, 10:44, 4] += 15000
    image[:2] = 0
    return image, label


def _write_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        image, label = _scene(rng, 44, 48)
        tifffile.imwrite(root / "images" / f"s{i}.tif", image, photometric="minisblack",
                         planarconfig="contig")
        Image.fromarray(label).save(root / "masks" / f"s{i}.png")
    (root / "dataset.yaml").write_text("classes: [other, vegetation, bare]\n"
                                       f"bands: [{', '.join(BANDS)}]\n"
                                       "rgb: [red, green, blue]\nnodata: 0\n")
    (root / "train.txt").write_text("s0\ns1\ns2\n")
    (root / "val.txt").write_text("s3\n")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(dataset root, run folder) of a few iterations on the 5-band dataset."""
    tmp = tmp_path_factory.mktemp("multiband")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FCNSEG_HOME", str(tmp / "home"))
        root = _write_dataset(tmp / "ds")
        config = load_config("folder-cpu", [
            f"data.train.root={root}", f"data.val.root={root}", "model.backbone_weights=null",
            "train.iterations=2", "train.eval_every=2", "data.batch_size=2",
            "data.num_workers=0", "train.progress=false", "train.tensorboard=false"])
        result = train(config, out=str(tmp / "run"))
        assert result.status == "completed"
        yield root, tmp / "run"


def test_a_five_band_uint16_folder_trains_and_predicts_a_five_band_raster(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    raster = tmp_path / "scene.tif"
    tifffile.imwrite(raster, _scene(np.random.default_rng(1), 40, 56)[0],
                     photometric="minisblack",
                         planarconfig="contig")
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(raster),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    labels = read_label_png(tmp_path / "out" / "scene_label.png")
    assert labels.shape == (40, 56) and int(labels[2:].max()) < 3
    assert (labels[:2] == 255).all()  # the nodata stripe: the dataset's nodata, unlabelled


def test_the_checkpoint_records_the_band_statistics_and_rebuilds_their_normalisation(
        trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, run = trained
    monkeypatch.setenv("FCNSEG_HOME", str(root.parent / "home"))
    stats = band_statistics(FolderSegmentation(root, split="train"))
    recorded = load_checkpoint(run / "best.pt")["model"]["input_convention"]
    assert recorded["bands"] == BANDS
    np.testing.assert_array_equal(recorded["mean"], stats.mean)
    np.testing.assert_array_equal(recorded["std"], stats.std)

    model = build_model_from_checkpoint(run / "best.pt")
    x = torch.rand(1, 5, 8, 8, dtype=torch.float64) * 20000
    expected = (x - torch.tensor(stats.mean, dtype=torch.float64).view(1, 5, 1, 1)) \
        / torch.tensor(stats.std, dtype=torch.float64).view(1, 5, 1, 1)
    assert_close_to_scale(model.preprocess(x.float()), expected)


def test_a_raster_of_another_band_count_is_one_line_naming_it(
        trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, run = trained
    raster = tmp_path / "rgb16.tif"
    tifffile.imwrite(raster, np.full((32, 32, 3), 500, np.uint16), photometric="rgb")
    code = main(["predict", "--checkpoint", str(run / "best.pt"), str(raster),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code != 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if str(raster) in ln]
    assert len(lines) == 1 and "3 band(s), but the model takes 5" in lines[0]


def test_the_preflight_reads_multiband_tiff_headers(trained: tuple[Path, Path]) -> None:
    root, _ = trained
    assert header_size(root / "images" / "s0.tif") == (48, 44)
    dataset = FolderSegmentation(root, split="val")
    assert sample_file_problems(dataset) == []
    (root / "images" / "s3.tif").write_bytes(b"II*\x00garbage")
    try:
        problems = sample_file_problems(dataset)
    finally:
        tifffile.imwrite(root / "images" / "s3.tif",
                         _scene(np.random.default_rng(3), 44, 48)[0], photometric="minisblack",
                         planarconfig="contig")
    assert len(problems) == 1 and "s3.tif" in problems[0]


def test_crops_pad_each_band_with_its_mean(trained: tuple[Path, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = trained
    monkeypatch.setenv("FCNSEG_HOME", str(root.parent / "home"))
    dataset = FolderSegmentation(root, split="train")
    fill = dataset.pad_values
    means = band_statistics(dataset).mean
    np.testing.assert_allclose(fill["color"], means)
    image = np.zeros((10, 10, 5), np.uint16)
    padded, _ = RandomCrop(16, fill=fill)(image, np.zeros((10, 10), np.uint8))
    np.testing.assert_array_equal(padded[15, 15], np.round(means).astype(np.uint16))


def test_imagenet_weights_are_widened_to_the_bands(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = {k: v for k, v in ResNet(18).state_dict().items() if not k.startswith("fc.")}
    torch.save(weights, tmp_path / "resnet18.pth")
    convention = band_convention(BANDS, [1000.0] * 5, [300.0] * 5)
    model = build_model("fcn8s_resnet18", num_classes=3, input_convention=convention,
                        backbone_weights=tmp_path / "resnet18.pth")
    conv1 = model.trunk.conv1.weight
    assert conv1.shape == (64, 5, 7, 7)
    torch.testing.assert_close(conv1, widen_conv1(weights["conv1.weight"], BANDS), rtol=0, atol=0)
    assert model.input_convention == convention


def test_band_statistics_leave_an_unreadable_image_out(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCNSEG_HOME", str(tmp_path / "home"))
    root = _write_dataset(tmp_path / "ds")
    (root / "images" / "s1.tif").write_bytes(b"II*\x00garbage")  # skipped under skip_bad
    dataset = FolderSegmentation(root, split="train")
    assert len(dataset.pad_values["color"]) == 5
    assert dataset.band_convention().bands == tuple(BANDS)


def test_raster_windows_take_their_rasters_band_convention(
        trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.data.raster_windows import RasterWindows

    root, _ = trained
    monkeypatch.setenv("FCNSEG_HOME", str(root.parent / "home"))
    rasters = FolderSegmentation(root, split="train")
    windows = RasterWindows(rasters, window=32, windows=4)
    assert windows.band_convention() == rasters.band_convention()
    assert windows.pad_values == rasters.pad_values


def test_a_multiband_checkpoint_exports_verified_on_its_bands(
        trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, run = trained
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt"), "--height", "32", "--width", "32"]) == 0
    assert "verified input 1×5×32×32" in capsys.readouterr().out


def test_a_multiband_model_reads_every_input_as_a_raster_of_its_bands(
        trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, run = trained
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(photo)
    code = main(["predict", "--checkpoint", str(run / "best.pt"), str(photo),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code != 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if str(photo) in ln]
    assert len(lines) == 1 and "3 band(s), but the model takes 5" in lines[0]


def test_an_architecture_of_colour_input_only_refuses_bands_in_one_line() -> None:
    from fcnseg.engine.setup import build_training_model

    config = load_config("synthetic-fcn32s", ["model.backbone_weights=null",
                                              "model.arch=nyud_fcn32s_color"])
    convention = band_convention(BANDS, [1000.0] * 5, [300.0] * 5)
    with pytest.raises(ValueError,
                       match=r"^model\.arch: nyud_fcn32s_color takes 3-band colour images"):
        build_training_model(config, 3, convention=convention)


def test_a_vgg_fcn8s_recipe_builds_one_input_channel_per_band() -> None:
    from fcnseg.engine.setup import build_training_model

    config = load_config("synthetic-fcn8s", ["model.backbone_weights=null"])
    convention = band_convention(BANDS, [1000.0] * 5, [300.0] * 5)
    model = build_training_model(config, 3, convention=convention)
    assert model.trunk.conv1_1.in_channels == len(BANDS)
    assert model.input_convention == convention


def test_a_multiband_model_starts_from_a_colour_checkpoint_by_the_first_convolution_rule(
        tiny_checkpoint: Any) -> None:
    from fcnseg.engine.setup import build_training_model

    path = tiny_checkpoint(["other", "vegetation", "bare"])  # a colour FCN-8s, Caffe's BGR
    config = load_config("synthetic-fcn8s", ["model.backbone_weights=null", "model.width=0.0625",
                                             "model.fc_channels=16", f"init={path}"])
    convention = band_convention(BANDS, [1000.0] * 5, [300.0] * 5)
    model = build_training_model(config, 3, convention=convention)
    ckpt = load_checkpoint(path)
    colour = ckpt["model_state_dict"]
    weight, offset = band_conv1(colour["conv1_1.weight"], BANDS,
                                ckpt["model"]["input_convention"])
    own = model.state_dict()
    assert own["conv1_1.weight"].shape[1] == len(BANDS)
    torch.testing.assert_close(own["conv1_1.weight"], weight, rtol=0, atol=0)
    torch.testing.assert_close(own["conv1_1.bias"], colour["conv1_1.bias"] + offset,
                               rtol=0, atol=0)
    for key in ("conv1_2.weight", "conv5_3.bias", "fc7.weight", "score_fr.weight"):
        assert torch.equal(own[key], colour[key]), key
    assert model.input_convention == convention  # the bands' statistics stay


def test_evaluate_strips_draw_a_multiband_validation_image_from_its_rgb_bands(
        trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, run = trained
    monkeypatch.setenv("FCNSEG_HOME", str(root.parent / "home"))
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--strips", "1",
                 "--no-calibration", "--out", str(tmp_path / "eval")]) == 0
    [strip] = sorted((tmp_path / "eval" / "strips").glob("*.png"))
    assert strip.name == "s3.png"
    picture = np.asarray(Image.open(strip).convert("RGB"))
    assert picture.shape[1] > 3 * 48  # image | truth | prediction, enlarged, with titles


def test_the_checkpoint_records_the_datasets_nodata_and_info_shows_it(
        trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, run = trained
    assert load_checkpoint(run / "best.pt")["model"]["input_convention"]["nodata"] == 0
    assert main(["info", str(run / "best.pt")]) == 0
    assert "nodata 0" in capsys.readouterr().out


def _scene_with_empty_corner(path: Path, **tags: Any) -> None:
    """A 5-band scene whose top-left 16×16 corner is all zeros (the dataset's nodata)."""
    image = _scene(np.random.default_rng(1), 40, 56)[0]
    image[:16, :16] = 0
    if tags:
        import rasterio

        with rasterio.open(path, "w", driver="GTiff", height=40, width=56, count=5,
                           dtype="uint16", **tags) as ds:
            ds.write(np.moveaxis(image, -1, 0))
    else:
        tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig")


def test_prediction_leaves_the_models_nodata_unlabelled_where_the_file_sets_none(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    _scene_with_empty_corner(tmp_path / "scene.tif")  # no nodata tag
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(tmp_path / "scene.tif"),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    labels = read_label_png(tmp_path / "out" / "scene_label.png")
    assert (labels[:16, :16] == 255).all()
    assert int(labels[16:].max()) < 3 and int(labels[2:, 16:].max()) < 3  # rows :2: nodata


def test_the_files_own_nodata_comes_before_the_models(
        trained: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("rasterio")
    _, run = trained
    _scene_with_empty_corner(tmp_path / "scene.tif", nodata=65535)  # zeros are data here
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(tmp_path / "scene.tif"),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert int(read_label_png(tmp_path / "out" / "scene_label.png").max()) < 3
