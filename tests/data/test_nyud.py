"""NYUDv2 in the reference's layout: colour, HHA and depth inputs as a dict keyed by modality."""

import math
import re

import numpy as np
import pytest
import torch
from ondisk import write_nyud
from PIL import Image
from scipy.io import savemat

from fcnseg.cli.main import main
from fcnseg.data import NYUD_CLASSES, NYUDv2, build_dataset, collate_segmentation
from fcnseg.data.errors import DataError
from fcnseg.data.modalities import HHA_MEAN, LOG_DEPTH_MEAN, modality_problem
from fcnseg.data.nyud import NYUD_BGR
from fcnseg.data.transforms import RandomCrop, RandomHorizontalFlip, RandomScale, ToTensor
from fcnseg.models.preprocess import Preprocess

RGB_HHA_D = Preprocess(("color", "hha", "depth"), NYUD_BGR)


def _normalised(inputs, label):
    x, y = ToTensor()(inputs, label)
    return RGB_HHA_D({k: v[None] for k, v in x.items()}), y


@pytest.fixture()
def nyud_root(tmp_path):
    write_nyud(tmp_path, {"train": ["5001", "5002"], "test": ["5003"]})
    return tmp_path


def test_inputs_are_a_dict_keyed_by_modality_in_the_order_asked(nyud_root):
    inputs, label = NYUDv2(nyud_root, "train", modalities=("hha", "color", "depth"))[0]
    assert list(inputs) == ["hha", "color", "depth"]
    color = np.asarray(Image.open(nyud_root / "nyud" / "data" / "images" / "img_5001.png"))
    np.testing.assert_array_equal(inputs["color"], color)
    assert inputs["hha"].shape == (24, 32, 3) and inputs["hha"].dtype == np.uint8
    depth = np.asarray(Image.open(nyud_root / "nyud" / "data" / "depth" / "img_5001.png"))
    np.testing.assert_array_equal(inputs["depth"], depth.astype(np.float32))  # raw 16-bit values
    assert label.shape == (24, 32)


def test_default_is_colour_only(nyud_root):
    inputs, _ = NYUDv2(nyud_root, "test")[0]
    assert list(inputs) == ["color"]


def test_labels_shift_down_so_void_becomes_the_ignore_value(nyud_root):
    seg = np.array([[0, 1, 40], [2, 0, 39]], dtype=np.uint8)
    savemat(nyud_root / "nyud" / "segmentation" / "img_5003.mat", {"segmentation": seg})
    ds = NYUDv2(nyud_root, "test")
    np.testing.assert_array_equal(ds.read_label(0), [[255, 0, 39], [1, 255, 38]])
    assert ds.num_classes == 40 and ds.classes == NYUD_CLASSES and ds.ignore_index == 255


def test_each_modality_has_its_own_normalisation():
    inputs = {"color": np.array([[[10, 20, 30]]], np.uint8),
              "hha": np.array([[[200, 100, 50]]], np.uint8),
              "depth": np.array([[2000.0, 0.0]], np.float32)[:, :1]}
    x, y = _normalised(inputs, np.zeros((1, 1), np.int64))
    # colour: BGR minus the NYUDv2 mean
    np.testing.assert_allclose(x["color"][0, :, 0, 0], [30 - 116.190, 20 - 97.203, 10 - 92.318],
                               rtol=1e-5)
    np.testing.assert_allclose(x["hha"][0, :, 0, 0], np.subtract([200, 100, 50], HHA_MEAN),
                               rtol=1e-5)
    assert x["depth"].shape == (1, 1, 1, 1)
    np.testing.assert_allclose(x["depth"][0, 0, 0, 0], math.log(2000.0) - LOG_DEPTH_MEAN,
                               rtol=1e-5)
    assert y.dtype == torch.int64


def test_missing_depth_normalises_to_zero_not_minus_infinity():
    x, _ = _normalised({"depth": np.zeros((2, 2), np.float32)}, np.zeros((2, 2)))
    assert torch.equal(x["depth"], torch.zeros(1, 1, 2, 2))


def test_unknown_modality_is_refused(nyud_root):
    with pytest.raises(ValueError, match=r"modalities: expected distinct names.*'rgb'"):
        NYUDv2(nyud_root, "train", modalities=("rgb",))


def positional_sample(h=6, w=8):
    """Inputs and a label whose values encode each pixel's column, so geometry can be traced."""
    cols = np.tile(np.arange(w), (h, 1))
    inputs = {"color": np.repeat((cols * 10)[..., None], 3, axis=2).astype(np.uint8),
              "hha": np.repeat((cols * 10 + 1)[..., None], 3, axis=2).astype(np.uint8),
              "depth": (cols * 10 + 2).astype(np.float32)}
    return inputs, cols.astype(np.int64)


def test_crop_and_flip_move_every_input_with_the_label():
    inputs, label = positional_sample()
    g = torch.Generator().manual_seed(3)
    inputs, label = RandomCrop((4, 5), generator=g)(inputs, label)
    inputs, label = RandomHorizontalFlip(p=1.0)(inputs, label)
    assert label.shape == (4, 5)
    np.testing.assert_array_equal(inputs["color"][..., 0], label * 10)
    np.testing.assert_array_equal(inputs["hha"][..., 0], label * 10 + 1)
    np.testing.assert_array_equal(inputs["depth"], label * 10 + 2)


def test_scale_resizes_every_input_and_the_label_alike():
    inputs, label = positional_sample()
    inputs, label = RandomScale(2.0, 2.0)(inputs, label)
    assert label.shape == (12, 16)
    assert {k: v.shape[:2] for k, v in inputs.items()} == {k: (12, 16) for k in inputs}
    assert inputs["depth"].dtype == np.float32  # depth is resampled as numbers, not as a picture


def test_crop_pads_each_modality_with_what_normalises_to_zero():
    from fcnseg.data.transforms import build_train_transform

    inputs, label = positional_sample(2, 2)
    fill = NYUDv2.pad_values.fget(NYUDv2)  # the dataset's own: colour pads with the NYUDv2 mean
    t = build_train_transform(crop_size=4, flip=False, fill=fill)
    x, y = t(inputs, label)
    assert (y[2:] == 255).all() and (y[:, 2:] == 255).all()
    x = RGB_HHA_D({k: v[None] for k, v in x.items()})
    for key in ("color", "hha", "depth"):
        np.testing.assert_allclose(x[key][0, :, 2:, 2:], 0, atol=0.5, err_msg=key)


def test_collate_stacks_each_modality_and_pads_the_label(nyud_root):
    ds = NYUDv2(nyud_root, "train", modalities=("color", "hha", "depth"),
                transform=ToTensor())
    (x0, y0), (x1, y1) = ds[0], ds[1]
    x1 = {k: v[:, :20, :30] for k, v in x1.items()}
    images, labels = collate_segmentation([(x0, y0), (x1, y1[:20, :30])])
    assert {k: tuple(v.shape) for k, v in images.items()} == {
        "color": (2, 3, 24, 32), "hha": (2, 3, 24, 32), "depth": (2, 1, 24, 32)}
    assert tuple(labels.shape) == (2, 24, 32)
    # Padding is the raw value each input normalises to zero.
    assert (labels[1, 20:] == 255).all() and (RGB_HHA_D(images)["hha"][1, :, 20:] == 0).all()
    assert torch.equal(images["depth"][0], x0["depth"].float())


def test_build_dataset_takes_the_modalities(nyud_root):
    ds = build_dataset({"name": "nyud", "root": str(nyud_root), "split": "test",
                        "modalities": ["color", "hha"]})
    assert isinstance(ds, NYUDv2) and ds.modalities == ("color", "hha")


def test_check_data_reads_every_modality_and_names_a_bad_file(nyud_root, capsys):
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(
        nyud_root / "nyud" / "data" / "hha" / "img_5002.png")
    assert main(["check-data", "--dataset", "nyud", "--root", str(nyud_root)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"train\s+2\n", out) and re.search(r"test\s+1\n", out)
    assert re.search(r"hha/img_5002.png: hha input is 10×10 but its label img_5002.mat is 32×24",
                     out)


def test_check_data_reads_only_the_modalities_asked_for(nyud_root, capsys):
    (nyud_root / "nyud" / "data" / "hha" / "img_5002.png").write_bytes(b"not a png")
    args = ["check-data", "--dataset", "nyud", "--root", str(nyud_root)]
    assert main([*args, "--modality", "color"]) == 0
    assert main([*args, "--modality", "color", "--modality", "hha"]) == 1
    assert "img_5002.png: unreadable" in capsys.readouterr().out


def _save_depth(nyud_root, stem, values):
    """Overwrite sample ``stem``'s depth file with ``values`` (PNG, or float TIFF for floats)."""
    folder = nyud_root / "nyud" / "data" / "depth"
    (folder / f"img_{stem}.png").unlink()
    path = folder / f"img_{stem}.png"
    Image.fromarray(values).save(path, format="TIFF" if values.dtype.kind == "f" else "PNG")
    return path


def test_depth_in_metres_is_refused_in_one_line_naming_the_file(nyud_root):
    metres = np.random.default_rng(0).integers(1, 8, (24, 32)).astype(np.uint16)
    path = _save_depth(nyud_root, "5001", metres)
    with pytest.raises(DataError) as e:
        NYUDv2(nyud_root, "train", modalities=("color", "depth"))[0]
    assert e.value.path == str(path)
    assert e.value.problem == ("depth values 1–7 look like metres; NYUDv2 depth is millimetres "
                               "(×1000)")


def test_a_float_depth_in_metres_is_refused_and_one_in_millimetres_read(nyud_root):
    metres = np.linspace(0.4, 9.8, 24 * 32, dtype=np.float32).reshape(24, 32)
    _save_depth(nyud_root, "5001", metres)
    _save_depth(nyud_root, "5002", metres * 1000)
    ds = NYUDv2(nyud_root, "train", modalities=("depth",))
    with pytest.raises(DataError, match="depth values 0.4–9.8 look like metres"):
        ds[0]
    np.testing.assert_allclose(ds[1][0]["depth"], metres * 1000)


def test_depth_in_centimetres_is_refused_in_one_line_naming_the_file(nyud_root):
    centimetres = np.linspace(50, 1000, 24 * 32).reshape(24, 32).astype(np.uint16)
    path = _save_depth(nyud_root, "5001", centimetres)
    with pytest.raises(DataError) as e:
        NYUDv2(nyud_root, "train", modalities=("color", "depth"))[0]
    assert e.value.path == str(path)
    assert e.value.problem == ("depth values 50–1000 look like centimetres (in millimetres "
                               "the whole scene would lie within 1 m); NYUDv2 depth is "
                               "millimetres (×10)")


def test_a_float_depth_in_centimetres_is_refused_and_one_in_millimetres_read(nyud_root):
    centimetres = np.linspace(52.5, 987.5, 24 * 32, dtype=np.float32).reshape(24, 32)
    _save_depth(nyud_root, "5001", centimetres)
    _save_depth(nyud_root, "5002", centimetres * 10)
    ds = NYUDv2(nyud_root, "train", modalities=("depth",))
    with pytest.raises(DataError, match="depth values 52.5–988 look like centimetres"):
        ds[0]
    np.testing.assert_allclose(ds[1][0]["depth"], centimetres * 10)


def test_an_8_bit_depth_picture_is_refused(nyud_root):
    _save_depth(nyud_root, "5001", np.full((24, 32), 200, np.uint8))
    with pytest.raises(DataError, match=r"8-bit depth image \(values 200–200\): NYUDv2 depth "
                                        r"is a 16-bit PNG of millimetres"):
        NYUDv2(nyud_root, "train", modalities=("depth",))[0]


def test_an_hha_image_of_one_channel_is_refused(nyud_root):
    path = nyud_root / "nyud" / "data" / "hha" / "img_5001.png"
    Image.fromarray(np.full((24, 32), 90, np.uint8)).save(path)
    with pytest.raises(DataError, match=r"HHA image has shape \(24, 32\): expected 3 "
                                        r"channels of 8 bits \(disparity, height, angle\)"):
        NYUDv2(nyud_root, "train", modalities=("color", "hha"))[0]


def test_an_hha_png_of_16_bit_samples_is_refused_in_one_line_naming_the_file(nyud_root):
    from ondisk import save_png_16

    path = nyud_root / "nyud" / "data" / "hha" / "img_5001.png"
    save_png_16(path, np.full((24, 32, 3), 200, np.uint16))  # 0-255 values: 0 as high bytes
    with pytest.raises(DataError) as e:
        NYUDv2(nyud_root, "train", modalities=("color", "hha"))[0]
    assert e.value.path == str(path)
    assert e.value.problem == ("HHA image of uint16 values: expected 8 bits, as the HHA "
                               "encoding stores them (0-255; these span 200–200): save HHA as "
                               "8-bit PNGs")


def test_check_data_names_the_depth_in_metres(nyud_root, capsys):
    _save_depth(nyud_root, "5002", np.full((24, 32), 3, np.uint16))
    assert main(["check-data", "--dataset", "nyud", "--root", str(nyud_root)]) == 1
    assert re.search(r"depth/img_5002.png: depth values 3–3 look like metres; NYUDv2 depth is "
                     r"millimetres \(×1000\)", capsys.readouterr().out)


@pytest.mark.parametrize(("values", "problem"), [
    (np.array([[0.0, 2.0]], np.float32), "depth values 2–2 look like metres"),
    (np.array([[0, 120, 640]], np.uint16), "depth values 120–640 look like centimetres"),
    (np.array([[np.nan, 2000.0]], np.float32), "1 depth value is NaN or infinite"),
    (np.array([[-5, 2000]], np.int32), "negative depth values (down to -5)"),
    (np.zeros((2, 3, 3), np.uint16), "depth image has shape (2, 3, 3): expected one channel"),
    (np.ones((2, 2, 3), np.uint16) * 300, "HHA image of uint16 values: expected 8 bits"),
])
def test_modality_problems_name_what_is_wrong(values, problem):
    modality = "hha" if "HHA" in problem else "depth"
    assert problem in modality_problem(modality, values)


@pytest.mark.parametrize(("modality", "values"), [
    ("depth", np.array([[0, 450, 9800]], np.uint16)),   # millimetres, 0 unknown
    ("depth", np.zeros((2, 2), np.uint16)),             # nothing known: no unit to judge
    ("depth", np.array([[450.5, 9800.0]], np.float32)),
    ("depth", np.array([[0, 520, 1400]], np.uint16)),    # a near scene, up to 1.4 m
    ("hha", np.zeros((2, 2, 3), np.uint8)),
])
def test_inputs_as_the_reference_stores_them_pass(modality, values):
    assert modality_problem(modality, values) is None
