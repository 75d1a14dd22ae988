import logging

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from fcnseg.data import DataError, FolderSegmentation, SBDSegmentation, SkipBad, VOCSegmentation
from fcnseg.data import io as data_io


@pytest.fixture()
def folder(tmp_path):
    """A folder dataset of three good samples (classes 0-2), to be spoiled one way per test."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "dataset.yaml").write_text("classes: [bg, a, b]\n")
    for n, stem in enumerate(("s0", "s1", "s2")):
        image = Image.fromarray(np.full((12, 16, 3), 40 * n, np.uint8))
        image.save(tmp_path / "images" / f"{stem}.jpg")
        Image.fromarray(np.full((12, 16), n, np.uint8)).save(tmp_path / "masks" / f"{stem}.png")
    return tmp_path


def error_for(root, stem="s1"):
    ds = FolderSegmentation(root)
    with pytest.raises(DataError) as info:
        ds[ds.ids.index(stem)]
    return info.value


def test_unreadable_image(folder):
    (folder / "images" / "s1.jpg").write_bytes(b"this is not a jpeg")
    err = error_for(folder)
    assert err.path.endswith("s1.jpg") and "unreadable image" in str(err)


def test_truncated_image(folder):
    path = folder / "images" / "s1.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:600])
    err = error_for(folder)
    assert err.path.endswith("s1.jpg") and "truncated" in str(err)


def test_missing_mask(folder):
    (folder / "masks" / "s1.png").unlink()
    err = error_for(folder)
    assert err.path.endswith("s1.png") and "missing mask" in str(err)


@pytest.mark.parametrize("name", ["s1.jpg", "s1.png"])  # a JPEG saved under a PNG's name too
def test_a_jpeg_mask_is_refused_saying_to_save_it_as_png(folder, name):
    (folder / "masks" / "s1.png").unlink()
    Image.fromarray(np.full((12, 16), 1, np.uint8)).save(folder / "masks" / name, format="JPEG")
    err = error_for(folder)
    assert err.path.endswith(name)
    assert err.problem.startswith("a JPEG mask: ") and "save masks as PNG" in err.problem


def test_a_png_mask_beside_a_jpeg_of_its_name_is_the_mask(folder):
    # a labelling tool's coloured preview saved beside the mask
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(folder / "masks" / "s1.jpg")
    ds = FolderSegmentation(folder)
    assert (ds[ds.ids.index("s1")][1] == 1).all()


def test_an_image_that_is_a_link_loop_is_said_to_be_one(folder):
    (folder / "images" / "s1.jpg").unlink()
    (folder / "images" / "s1.jpg").symlink_to("s1.jpg")
    err = error_for(folder)
    assert err.problem == "missing image (a link to no file, or a loop of links)"


def test_image_and_mask_of_different_sizes(folder):
    Image.fromarray(np.zeros((12, 15), np.uint8)).save(folder / "masks" / "s1.png")
    err = error_for(folder)
    assert err.path.endswith("s1.png")
    assert "mask is 15×12 but its image s1.jpg is 16×12" in str(err)


def test_a_transposed_mask_is_said_to_have_width_and_height_swapped(folder):
    Image.fromarray(np.zeros((16, 12), np.uint8)).save(folder / "masks" / "s1.png")
    assert error_for(folder).problem == (
        "mask is 12×16 but its image s1.jpg is 16×12 (W×H): width and height swapped, as an H×W "
        "array saved transposed: transpose the mask back")


def test_label_values_outside_the_classes(folder):
    Image.fromarray(np.array([[0, 1, 3, 7] * 4] * 12, np.uint8)).save(folder / "masks" / "s1.png")
    err = error_for(folder)
    assert err.path.endswith("s1.png")
    assert "outside [0, 3)" in str(err) and "3, 7" in str(err)


def test_ignore_value_is_not_an_error(folder):
    Image.fromarray(np.full((12, 16), 255, np.uint8)).save(folder / "masks" / "s1.png")
    assert (FolderSegmentation(folder)[1][1] == 255).all()


def test_rgb_mask_without_colour_table(folder):
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(folder / "masks" / "s1.png")
    err = error_for(folder)
    assert err.path.endswith("s1.png") and "RGB mask where class indices are expected" in str(err)


def test_rgb_mask_with_unknown_colour(folder):
    (folder / "dataset.yaml").write_text(
        "classes: [bg, a, b]\ncolors: [[0, 0, 0], [255, 0, 0], [0, 255, 0]]\n")
    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(folder / "masks" / "s1.png")
    err = error_for(folder)
    assert "1 pixels have colours not in the colour table, e.g. (1, 2, 3)" in str(err)


def test_an_antialiased_rgb_mask_is_refused_saying_how_to_save_it(folder):
    (folder / "dataset.yaml").write_text(
        "classes: [bg, a, b]\ncolors: [[0, 0, 0], [255, 0, 0], [0, 255, 0]]\n")
    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[:, 8:] = (255, 0, 0)
    rgb[:, 7] = (128, 0, 0)  # the edge between bg and a, blended
    Image.fromarray(rgb).save(folder / "masks" / "s1.png")
    err = error_for(folder)
    assert err.problem.startswith("12 pixels have colours not in the colour table, e.g. "
                                  "(128, 0, 0): save masks without antialiasing (and resize "
                                  "them nearest-neighbour)")


def test_16_bit_mask_with_out_of_range_values(folder):
    Image.fromarray(np.full((12, 16), 1000, np.uint16)).save(folder / "masks" / "s1.png")
    err = error_for(folder)
    assert err.path.endswith("s1.png") and "16-bit mask" in str(err) and "1000" in str(err)


def test_16_bit_mask_in_range_is_read(folder):
    Image.fromarray(np.full((12, 16), 2, np.uint16)).save(folder / "masks" / "s1.png")
    assert (FolderSegmentation(folder)[1][1] == 2).all()


def test_image_over_the_pixel_limit_is_refused(folder, monkeypatch):
    monkeypatch.setattr(data_io, "MAX_PIXELS", 100)
    err = error_for(folder)
    assert err.path.endswith("s1.jpg") and "decompression bomb" in str(err)


def test_pillow_decompression_bomb_error_becomes_a_data_error(folder, monkeypatch):
    # With no limit of fcnseg's own, Pillow's applies: 16×12 > 2×50, so Pillow refuses to open.
    monkeypatch.setattr(data_io, "MAX_PIXELS", None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    err = error_for(folder)
    assert "decompression bomb" in str(err)


def test_voc_rgb_label_is_refused(voc_root):
    path = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000039.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(DataError, match="2007_000039.png: RGB mask"):
        VOCSegmentation(voc_root)[1]


def test_sbd_mat_without_segmentation(tmp_path, ondisk):
    from scipy.io import savemat

    ds = ondisk.write_sbd(tmp_path, {"train": ["a", "b"]})
    savemat(ds / "cls" / "b.mat", {"GTinst": {"Segmentation": np.zeros((2, 2))}})
    (ds / "cls" / "a.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="b.mat: no GTcls.Segmentation"):
        SBDSegmentation(tmp_path)[1]
    with pytest.raises(DataError, match="a.mat: unreadable .mat file"):
        SBDSegmentation(tmp_path)[0]


def test_skip_bad_logs_and_returns_the_next_good_sample(folder, caplog):
    (folder / "masks" / "s1.png").unlink()
    ds = SkipBad(FolderSegmentation(folder))
    assert ds.classes == ("bg", "a", "b") and len(ds) == 3
    with caplog.at_level(logging.WARNING):
        image, label = ds[1]
    assert (label == 2).all()  # s2 stands in for s1
    assert "s1.png" in caplog.text and "missing mask" in caplog.text
    assert (ds[1][1] == 2).all()  # deterministic


def test_skip_bad_says_where_its_wrapped_attributes_are_set(folder):
    ds = SkipBad(FolderSegmentation(folder))
    with pytest.raises(AttributeError, match="^classes is the wrapped dataset's: set it there$"):
        ds.classes = ("x", "y", "z")
    assert ds.classes == ("bg", "a", "b")


def test_skip_bad_gives_up_when_nothing_is_good(folder):
    for p in (folder / "masks").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="no good sample found"):
        SkipBad(FolderSegmentation(folder))[0]


def test_data_error_is_one_line_naming_the_file_the_problem_and_what_to_do(folder):
    (folder / "masks" / "s1.png").unlink()
    message = str(error_for(folder))
    assert "\n" not in message
    assert message.startswith(f"{folder / 'masks' / 's1.png'}: missing mask (no such file)")
    assert "fcnseg check-data" in message and "data.skip_bad: true" in message
    assert "fcnseg.data.SkipBad" in message  # what a Python user wraps a dataset in


def test_worker_data_error_reaches_the_main_process_as_the_same_one_line(folder):
    # torch re-raises a worker's exception from its 30-line formatted traceback.
    (folder / "masks" / "s1.png").unlink()
    expected = error_for(folder)
    loader = DataLoader(FolderSegmentation(folder), batch_size=None, num_workers=1)
    with pytest.raises(DataError) as info:
        list(loader)
    assert str(info.value) == str(expected)
    assert (info.value.path, info.value.problem) == (expected.path, expected.problem)


def test_skip_bad_warns_once_per_run_though_workers_restart_every_epoch(folder, tmp_path):
    (folder / "masks" / "s1.png").unlink()
    log_file = tmp_path / "warnings.log"
    handler = logging.FileHandler(log_file)  # appends: worker processes write to it too
    logger = logging.getLogger("fcnseg.data.skip")
    logger.addHandler(handler)
    try:
        loader = DataLoader(SkipBad(FolderSegmentation(folder)), batch_size=None, num_workers=2)
        for _ in range(3):  # three epochs, each with newly started workers
            assert len(list(loader)) == 3
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 and "s1.png: missing mask" in lines[0]


def test_a_folder_datasets_mask_messages_point_to_its_dataset_yaml(folder):
    Image.fromarray(np.full((12, 16), 7, np.uint8)).save(folder / "masks" / "s1.png")
    assert "'remap' in dataset.yaml or FolderSegmentation(remap=...)" in str(error_for(folder))
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(folder / "masks" / "s1.png")
    assert "'colors' in dataset.yaml" in str(error_for(folder))
