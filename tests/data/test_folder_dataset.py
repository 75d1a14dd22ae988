import logging

import numpy as np
import pytest
import yaml
from PIL import Image

from fcnseg.data import FolderSegmentation, build_dataset


def make_folder(root, masks, config=None, image_ext=".png"):
    """Write images/<stem> and masks/<stem>.png from {stem: PIL mask image}."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, mask in masks.items():
        w, h = mask.size
        image = Image.fromarray(np.full((h, w, 3), 90, np.uint8))
        image.save(root / "images" / f"{stem}{image_ext}")
        mask.save(root / "masks" / f"{stem}.png")
    if config is not None:
        (root / "dataset.yaml").write_text(yaml.safe_dump(config))
    return root


def index_mask(values):
    return Image.fromarray(np.asarray(values, np.uint8), mode="L")


def test_index_masks_matched_by_stem(tmp_path):
    masks = {"b": index_mask([[0, 1], [2, 255]]), "a": index_mask([[1, 1], [0, 0]])}
    make_folder(tmp_path, masks, {"classes": ["bg", "road", "car"]}, image_ext=".jpg")
    ds = FolderSegmentation(tmp_path)
    assert ds.ids == ["a", "b"] and ds.classes == ("bg", "road", "car") and ds.num_classes == 3
    image, label = ds[1]
    assert image.shape == (2, 2, 3)
    np.testing.assert_array_equal(label, [[0, 1], [2, 255]])


def test_palette_masks_give_their_indices(tmp_path):
    mask = Image.fromarray(np.array([[0, 2], [1, 1]], np.uint8), mode="P")
    mask.putpalette([0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (253 * 3))
    make_folder(tmp_path, {"x": mask}, {"classes": ["a", "b", "c"]})
    np.testing.assert_array_equal(FolderSegmentation(tmp_path)[0][1], [[0, 2], [1, 1]])


def test_rgb_masks_through_a_colour_table(tmp_path):
    rgb = np.array([[[0, 0, 0], [128, 64, 128]], [[0, 0, 142], [255, 255, 255]]], np.uint8)
    make_folder(tmp_path, {"x": Image.fromarray(rgb)},
                {"classes": ["bg", "road", "car"],
                 "colors": [[0, 0, 0], [128, 64, 128], [0, 0, 142]],
                 "ignore_color": [255, 255, 255]})
    ds = FolderSegmentation(tmp_path)
    np.testing.assert_array_equal(ds[0][1], [[0, 1], [2, 255]])
    assert tuple(ds.palette[1]) == (128, 64, 128)  # display colours default to the table
    assert tuple(ds.palette[255]) == (224, 224, 192)  # void keeps its colour


def test_palette_masks_with_a_colour_table_give_the_class_of_each_colour(tmp_path):
    # Two tools' palettes: index 1 is road in one file, car in the other.
    table = [[0, 0, 0], [128, 64, 128], [0, 0, 142]]
    masks = {}
    for stem, order in (("a", [0, 1, 2]), ("b", [0, 2, 1])):
        mask = Image.fromarray(np.array([[0, 1], [2, 2]], np.uint8), mode="P")
        mask.putpalette([c for k in order for c in table[k]])
        masks[stem] = mask
    make_folder(tmp_path, masks, {"classes": ["bg", "road", "car"], "colors": table})
    ds = FolderSegmentation(tmp_path)
    np.testing.assert_array_equal(ds[0][1], [[0, 1], [2, 2]])
    np.testing.assert_array_equal(ds[1][1], [[0, 2], [1, 1]])


def test_a_palette_masks_void_index_stays_ignored_with_a_colour_table(tmp_path):
    # VOC's palette: index 255 (void) is (224, 224, 192), a colour no class has.
    table = [[0, 0, 0], [128, 0, 0]]
    mask = Image.fromarray(np.array([[0, 1], [255, 255]], np.uint8), mode="P")
    mask.putpalette([c for k in range(256) for c in (table[k] if k < 2 else (224, 224, 192))])
    make_folder(tmp_path, {"a": mask}, {"classes": ["bg", "cat"], "colors": table})
    np.testing.assert_array_equal(FolderSegmentation(tmp_path)[0][1], [[0, 1], [255, 255]])


def test_images_in_sub_folders_are_said_not_to_be_read(tmp_path, caplog):
    make_folder(tmp_path, {"a": index_mask([[0, 1]])}, {"classes": ["bg", "road"]})
    for site in ("site_a", "site_b"):  # one name in each, as two cameras number their photos
        (tmp_path / "images" / site).mkdir()
        Image.new("RGB", (2, 1)).save(tmp_path / "images" / site / "0001.jpg")
    with caplog.at_level(logging.WARNING, logger="fcnseg.data"):
        assert FolderSegmentation(tmp_path).ids == ["a"]
    said = [r.message for r in caplog.records if "sub-folders" in r.message]
    assert said == [f"{tmp_path / 'images'}: its sub-folders are not read (site_a/, site_b/): a "
                    f"folder dataset's files lie directly in images/; move theirs there to use "
                    f"them (renaming apart files of one name)"]


def test_a_gif_image_is_read_at_its_first_frame(tmp_path):
    # as fcnseg import labelme copies a GIF picture into images/
    make_folder(tmp_path, {"a": index_mask([[0, 1]])}, {"classes": ["bg", "road"]})
    (tmp_path / "images" / "a.png").unlink()
    frames = [Image.new("RGB", (2, 1), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    frames[0].save(tmp_path / "images" / "a.gif", save_all=True, append_images=frames[1:])
    image, label = FolderSegmentation(tmp_path)[0]
    assert tuple(image[0, 0]) == (200, 0, 0) and label.tolist() == [[0, 1]]


def test_grey_masks_with_alpha_give_their_values(tmp_path):
    mask = Image.fromarray(np.array([[[0, 255], [2, 0]]], np.uint8), mode="LA")
    make_folder(tmp_path, {"x": mask}, {"classes": ["bg", "road", "car"]})
    np.testing.assert_array_equal(FolderSegmentation(tmp_path)[0][1], [[0, 2]])


# 1.png ... 10.png: '10_mask.png' sorts before '1_mask.png' and starts with '1' too
@pytest.mark.parametrize("stems", [["a"], ["1", "10"]], ids=["named", "numbered"])
def test_masks_named_with_a_suffix_are_said_to_need_mask_suffix(tmp_path, caplog, stems):
    make_folder(tmp_path, {f"{stem}_mask": index_mask([[0, 1]]) for stem in stems},
                {"classes": ["bg", "road"]})
    for stem in stems:
        (tmp_path / "images" / f"{stem}_mask.png").rename(tmp_path / "images" / f"{stem}.png")
    with caplog.at_level(logging.WARNING, logger="fcnseg.data"):
        FolderSegmentation(tmp_path)
    assert [r.message for r in caplog.records if "mask_suffix" in r.message] == [
        f"{tmp_path / 'masks'}: no mask has the name of an image (such as {stems[0]}); masks "
        f"such as {stems[0]}_mask.png are found with mask_suffix: _mask.png in "
        f"{tmp_path / 'dataset.yaml'}"]


def test_a_split_list_saved_with_a_byte_order_mark_gives_its_first_name(tmp_path):
    make_folder(tmp_path, {s: index_mask([[0, 1]]) for s in ("a", "b")}, {"classes": ["x", "y"]})
    (tmp_path / "train.txt").write_bytes(b"\xef\xbb\xbfa\r\nb\r\n")  # Notepad's UTF-8
    assert FolderSegmentation(tmp_path, "train").ids == ["a", "b"]


def test_binary_0_255_masks_are_remapped(tmp_path):
    make_folder(tmp_path, {"x": index_mask([[0, 255], [255, 0]])},
                {"classes": ["background", "object"], "remap": {255: 1}})
    np.testing.assert_array_equal(FolderSegmentation(tmp_path)[0][1], [[0, 1], [1, 0]])


def test_split_lists_from_root_splits_folder_or_yaml(tmp_path):
    make_folder(tmp_path, {s: index_mask([[0, 1]]) for s in ("a", "b", "c")},
                {"classes": ["x", "y"], "splits": {"test": "lists/test-set.txt"}})
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("c\na\n")
    (tmp_path / "train.txt").write_text("b\n")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "test-set.txt").write_text("a\n")
    assert FolderSegmentation(tmp_path, "val").ids == ["c", "a"]
    assert FolderSegmentation(tmp_path, "test").ids == ["a"]
    ds = build_dataset({"name": "folder", "root": str(tmp_path), "split": "train"})
    assert ds.ids == ["b"] and ds.classes == ("x", "y")


def test_split_names_are_those_of_every_list_place(tmp_path):
    make_folder(tmp_path, {"a": index_mask([[0, 1]])},
                {"classes": ["x", "y"], "splits": {"test": "lists/test-set.txt"}})
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("a\n")
    (tmp_path / "train.txt").write_text("a\n")
    assert FolderSegmentation(tmp_path).split_names() == ["test", "train", "val"]


def test_keyword_arguments_need_no_yaml(tmp_path):
    make_folder(tmp_path, {"a": index_mask([[0, 9]])})
    ds = FolderSegmentation(tmp_path, classes=["bg", "fg"], remap={9: 1})
    np.testing.assert_array_equal(ds[0][1], [[0, 1]])


def test_missing_classes_and_bad_yaml_fields_are_named(tmp_path):
    make_folder(tmp_path, {"a": index_mask([[0]])}, {"ignore_index": 255})
    with pytest.raises(ValueError, match="dataset.yaml: 'classes' is required"):
        FolderSegmentation(tmp_path)
    (tmp_path / "dataset.yaml").write_text("classes: [a]\ncolour: [[0, 0, 0]]\n")
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        FolderSegmentation(tmp_path)
    (tmp_path / "dataset.yaml").write_text("classes: [a, b]\ncolors: [[0, 0, 0]]\n")
    with pytest.raises(ValueError, match="'colors' has 1 entries for 2 classes"):
        FolderSegmentation(tmp_path)
    (tmp_path / "train.txt").write_text("a\n")  # with some list, a missing one is an error
    with pytest.raises(ValueError, match="no list for split 'val'"):
        FolderSegmentation(tmp_path, "val", classes=["a"])


CITYSCAPES_LIKE = {"classes": ["background", "road", "sidewalk", "car", "person", "lane marking"],
                   "remap": {7: 1, 8: 2, 26: 3, 24: 4, 23: 0, 1: 255}}


def test_remap_other_says_what_unlisted_values_become(tmp_path):
    make_folder(tmp_path, {"x": index_mask([[7, 26, 3, 5], [1, 23, 0, 40]])},
                {**CITYSCAPES_LIKE,
                 "remap": {**CITYSCAPES_LIKE["remap"], "other": "ignore"}})
    ds = FolderSegmentation(tmp_path)
    np.testing.assert_array_equal(ds[0][1], [[1, 3, 255, 255], [255, 0, 255, 255]])
    assert ds.unlisted_values(0) == set()


def test_remap_other_and_ignore_entries_in_python(tmp_path):
    make_folder(tmp_path, {"x": index_mask([[9, 3, 200]])})
    ds = FolderSegmentation(tmp_path, classes=["bg", "fg"], ignore_index=250,
                            remap={9: 1, 200: "ignore", "other": 0})
    np.testing.assert_array_equal(ds[0][1], [[1, 0, 250]])


def test_remap_other_leaves_void_pixels_ignored(tmp_path):
    # VOC-style masks: 255 outlines every object; 'other' merges the unlisted classes only
    make_folder(tmp_path, {"x": index_mask([[15, 3, 255]])})
    ds = FolderSegmentation(tmp_path, classes=["background", "person"],
                            remap={15: 1, "other": 0})
    np.testing.assert_array_equal(ds[0][1], [[1, 0, 255]])


def test_remap_without_other_keeps_unlisted_values_and_names_them(tmp_path):
    make_folder(tmp_path, {"x": index_mask([[7, 26, 3, 5], [1, 23, 0, 255]])}, CITYSCAPES_LIKE)
    ds = FolderSegmentation(tmp_path)
    np.testing.assert_array_equal(ds[0][1], [[1, 3, 3, 5], [255, 0, 0, 255]])
    assert ds.unlisted_values(0) == {0, 3, 5}
    assert ds.remap_warning({3, 5}) == (
        f"{tmp_path / 'dataset.yaml'}: remap does not list mask values 3, 5, so they stay "
        f"class indices (3 → car, 5 → lane marking): list each in remap, or say what unlisted "
        f"values become with 'other: ignore' (or 'other: <class index>')")


def test_binary_remap_leaves_background_unremarked(tmp_path):
    make_folder(tmp_path, {"x": index_mask([[0, 255], [255, 0]])},
                {"classes": ["background", "object"], "remap": {255: 1}})
    assert FolderSegmentation(tmp_path).unlisted_values(0) == set()


def test_unlisted_value_sharing_a_class_with_a_listed_one_is_named(tmp_path):
    make_folder(tmp_path, {"x": index_mask([[7, 1, 0]])},
                {"classes": ["bg", "road", "car"], "remap": {7: 1}})
    assert FolderSegmentation(tmp_path).unlisted_values(0) == {1}


def test_an_ignore_value_above_8_bits_is_refused_by_a_png_mask_not_a_stray_jpeg(tmp_path):
    # a JPEG in masks/ (a preview whose PNG is gone) is no 8-bit mask to check the value by
    make_folder(tmp_path, {"b": index_mask([[0, 1]])}, {"classes": ["bg", "road"],
                                                        "ignore_index": 2555})
    Image.new("RGB", (2, 1)).save(tmp_path / "masks" / "a.jpg")
    with pytest.raises(ValueError, match="2555 cannot occur in 8-bit masks .* such as .*b.png"):
        FolderSegmentation(tmp_path)


def test_an_ignore_value_above_8_bits_is_refused_for_grey_masks_with_alpha(tmp_path):
    mask = Image.fromarray(np.array([[[0, 255], [1, 255]]], np.uint8), mode="LA")
    make_folder(tmp_path, {"a": mask}, {"classes": ["bg", "road"], "ignore_index": 2555})
    with pytest.raises(ValueError, match="2555 cannot occur in 8-bit masks"):
        FolderSegmentation(tmp_path)
