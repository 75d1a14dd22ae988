"""``fcnseg check-data``: what it says when a dataset's splits cannot be found."""

from __future__ import annotations

import pytest

from fcnseg.cli.main import main


def test_sbd_without_split_lists_names_the_missing_files(tmp_path, capsys) -> None:
    for folder in ("cls", "img"):
        (tmp_path / folder).mkdir()
    assert main(["check-data", "--dataset", "sbd", "--root", str(tmp_path)]) == 2
    assert f"{tmp_path} has neither train.txt nor val.txt" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["voc", "sbd", "nyud", "cityscapes"])
def test_a_dataset_read_from_a_folder_needs_root(dataset, capsys) -> None:
    assert main(["check-data", "--dataset", dataset]) == 2
    assert f"--root is required for --dataset {dataset}" in capsys.readouterr().err


def test_seg11valid_needs_both_roots(tmp_path, capsys) -> None:
    assert main(["check-data", "--dataset", "seg11valid", "--voc-root", str(tmp_path)]) == 2
    assert "--sbd-root is required for --dataset seg11valid" in capsys.readouterr().err


def test_the_splits_read_are_those_whose_lists_are_on_disk(tmp_path, capsys) -> None:
    import re

    from ondisk import write_nyud

    write_nyud(tmp_path, {"train": ["0001"], "test": ["0002"]})
    assert main(["check-data", "--dataset", "nyud", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^train\s+1$", out, re.M) and re.search(r"^test\s+1$", out, re.M)
    assert not re.search(r"^val\s", out, re.M)
    assert re.search(r"^checked\s+2 distinct images$", out, re.M)


def test_voc_with_an_empty_split_folder_names_the_folder(tmp_path, capsys) -> None:
    from ondisk import write_voc

    voc = write_voc(tmp_path, "2012", {"train": ["2007_000032"]})
    lists = voc / "ImageSets" / "Segmentation"
    (lists / "train.txt").unlink()
    assert main(["check-data", "--dataset", "voc", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"fcnseg check-data: error: {lists}: no split lists in it (train.txt, val.txt): add "
        f"them, or remove the empty folder to check every annotated image"]
    assert "no problems found" not in captured.out


def test_voc_whose_split_list_is_empty_is_no_success(tmp_path, capsys) -> None:
    from ondisk import write_voc

    voc = write_voc(tmp_path, "2012", {"train": ["2007_000032"], "val": []})
    assert main(["check-data", "--dataset", "voc", "--root", str(tmp_path), "--split", "val",
                 "--num-workers", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"fcnseg check-data: error: {voc / 'ImageSets' / 'Segmentation' / 'val.txt'} lists no "
        f"images: nothing to check"]
    assert "no problems found" not in captured.out


def test_a_dataset_without_any_image_is_no_success(tmp_path, capsys) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "dataset.yaml").write_text("classes: [bg, fg]\n")
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"fcnseg check-data: error: folder dataset at {tmp_path}: no images to check"]
    assert "no problems found" not in captured.out


def test_two_spellings_of_a_class_in_dataset_yaml_are_one_problem(tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) % 3).save(
        tmp_path / "masks" / "a.png")
    config = tmp_path / "dataset.yaml"
    config.write_text("classes: [_background_, Nucleus, ' nucleus']\n")
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 1
    out = capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if "Nucleus" in ln and "nucleus" in ln]
    assert line.strip() == (
        f"{config}: classes 'Nucleus' (1) and ' nucleus' (2) differ only in case or "
        f"surrounding spaces, so a model learns each spelling as a class of its own: merge "
        f"them by importing the annotations again into a new folder with "
        f"--rename ' nucleus=Nucleus', or edit the classes in {config}")
    assert "no problems found" not in out


def test_a_label_the_labels_file_lacks_is_one_line_with_its_count_and_closest_class(
        tmp_path, capsys) -> None:
    import json

    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    for stem in ("a", "b", "c"):
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(src / f"{stem}.png")
        shapes = [{"label": name, "points": [[10 * k, 0], [10 * k + 7, 7]], "group_id": None,
                   "shape_type": "rectangle", "flags": {}}
                  for k, name in enumerate(["nucleis", "nucleis", "membrane"])]
        (src / f"{stem}.json").write_text(json.dumps({
            "version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{stem}.png",
            "imageData": None, "imageHeight": 30, "imageWidth": 40}))
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nnucleus\nmembrane\n")
    assert main(["check-data", "--dataset", "labelme", "--root", str(src), "--labels",
                 str(labels), "--num-workers", "0"]) == 1
    out = capsys.readouterr().out
    assert [ln.strip() for ln in out.splitlines() if "nucleis" in ln] == [
        f"label 'nucleis' is not in {labels}: 6 shape(s) in 3 image(s) refused, those images "
        f"would not be imported (did you mean 'nucleus'? import with --rename nucleis=nucleus)"]


def test_images_over_2048_pixels_are_counted_in_one_warning(tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [bg, thing]\n")
    for n, (h, w) in enumerate([(3000, 16), (24, 32), (16, 2100)]):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "images" / f"{n}.png")
        Image.fromarray(np.zeros((h, w), np.uint8)).save(root / "masks" / f"{n}.png")
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--num-workers", "0"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "long side" in x]
    assert lines == [
        "warning: 2 of the 3 images checked are over 2048 pixels on the long side (the largest "
        "16×3000): a training crop shows a tiny part of such a photo. Resize them to about "
        "500-1000 pixels on the long side first (docs/own-data-cpu.md, \"Large photos\"), or "
        "narrow data.scale_range"]


def test_an_export_read_directly_takes_its_bands_from_the_data_option(tmp_path, capsys) -> None:
    from ondisk import write_grey_16_bit_cvat

    xml = write_grey_16_bit_cvat(tmp_path / "export", 2500)
    assert main(["check-data", "--dataset", "cvat", "--root", str(xml), "--num-workers", "0",
                 "--data", "bands=[intensity]"]) == 0
    out = capsys.readouterr().out
    assert "bands: intensity (" in out and "nearly black" not in out


def test_the_data_option_is_evaluates_own(capsys) -> None:
    from fcnseg.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if hasattr(a, "choices")
               and isinstance(a.choices, dict))
    data = {name: next(a for a in sub.choices[name]._actions if a.dest == "data")
            for name in ("check-data", "evaluate")}
    assert data["check-data"].help == data["evaluate"].help
    assert data["check-data"].metavar == "KEY=VALUE"


def test_a_data_field_the_dataset_does_not_take_is_named(tmp_path, capsys) -> None:
    from ondisk import write_grey_16_bit_cells

    root = write_grey_16_bit_cells(tmp_path / "d", 2500)
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--data", "bands=[intensity]"]) == 2
    assert "dataset.bands: unknown field for dataset 'folder'" in capsys.readouterr().err


def test_an_empty_split_of_an_export_read_directly_says_how_its_splits_are_chosen(
        tmp_path, capsys) -> None:
    from ondisk import write_grey_16_bit_cvat

    xml = write_grey_16_bit_cvat(tmp_path / "export", 2500)
    assert main(["check-data", "--dataset", "cvat", "--root", str(xml), "--num-workers", "0",
                 "--data", "val_fraction=0"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if "holds no images" in x]
    assert line.startswith("warning: split 'val' holds no images")
    assert "--data val_fraction=0.5" in line


def _cityscapes_ids_folder(root, remap):
    import numpy as np
    import yaml
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.new("RGB", (4, 2)).save(root / "images" / "a.png")
    ids = np.array([[7, 26, 3, 5], [8, 23, 24, 1]], np.uint8)
    Image.fromarray(ids, mode="L").save(root / "masks" / "a.png")
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"classes": ["background", "road", "sidewalk", "car", "person", "lane marking"],
         "remap": remap}))


def test_values_a_remap_table_leaves_as_classes_are_warned_about(tmp_path, capsys) -> None:
    _cityscapes_ids_folder(tmp_path, {7: 1, 8: 2, 26: 3, 24: 4, 23: 0, 1: 255})
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    warned = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warned == [
        f"warning: {tmp_path / 'dataset.yaml'}: remap does not list mask values 3, 5, so they "
        f"stay class indices (3 → car, 5 → lane marking): list each in remap, or say what "
        f"unlisted values become with 'other: ignore' (or 'other: <class index>')"]


def test_remap_with_other_entry_is_not_warned_about(tmp_path, capsys) -> None:
    _cityscapes_ids_folder(tmp_path, {7: 1, 8: 2, 26: 3, 24: 4, 23: 0, 1: 255, "other": "ignore"})
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out and "no problems found" in out


def test_each_mask_is_opened_once_when_a_remap_table_is_set(tmp_path, capsys, monkeypatch) -> None:
    # The labels and the values the table leaves unlisted come from one read of each mask.
    import shutil
    from collections import Counter

    from PIL import Image

    _cityscapes_ids_folder(tmp_path, {7: 1, 8: 2, 26: 3, 24: 4, 23: 0, 1: 255})
    for stem in ("b", "c"):
        shutil.copy(tmp_path / "images" / "a.png", tmp_path / "images" / f"{stem}.png")
        shutil.copy(tmp_path / "masks" / "a.png", tmp_path / "masks" / f"{stem}.png")
    opened: Counter[str] = Counter()
    pil_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened[str(fp)] += 1
        return pil_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    assert "remap does not list mask values 3, 5" in capsys.readouterr().out
    masks = {str(tmp_path / "masks" / f"{stem}.png") for stem in "abc"}
    assert {m: opened[m] for m in masks} == dict.fromkeys(masks, 1)


def test_the_cvat_mask_format_is_taken_in_either_spelling(tmp_path, capsys) -> None:
    from tests.data.test_annotations_every_format import write_source

    root = write_source("cvat-mask", tmp_path / "export")
    for spelling in ("cvat_mask", "cvat-mask"):
        assert main(["check-data", "--dataset", spelling, "--root", str(root),
                     "--num-workers", "0"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_a_cvat_label_missing_from_the_task_label_list_is_one_warning(tmp_path, capsys) -> None:
    from tests.data.test_annotations_formats import CVAT_XML, cvat_source

    xml = CVAT_XML.replace('<label><name>road</name><color>#aa00ff</color><type>polygon</type>'
                           '</label>', "")
    src = cvat_source(tmp_path, xml)
    main(["check-data", "--dataset", "cvat", "--root", str(src), "--num-workers", "0"])
    assert (f"warning: {src / 'annotations.xml'}: image 'a.jpg' box 1 ('road'): label 'road' "
            f"is not in the export's label list: read as class 2") in capsys.readouterr().out


def test_band_statistics_are_the_training_splits_that_training_normalises_by(tmp_path,
                                                                          capsys) -> None:
    import numpy as np
    import tifffile
    from PIL import Image

    from fcnseg.data import FolderSegmentation

    root = tmp_path / "tiles"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "dataset.yaml").write_text("classes: [a, b]\nbands: [red, nir]\nnodata: 0\n")
    for n, level in enumerate((1000, 1200, 5000)):  # the third, bright, in val alone
        tifffile.imwrite(root / "images" / f"t{n}.tif", np.full((8, 8, 2), level, np.uint16),
                         photometric="minisblack", planarconfig="contig")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / f"t{n}.png")
    (root / "train.txt").write_text("t0\nt1\n")
    (root / "val.txt").write_text("t2\n")
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "over the train split (2 images): what training normalises by" in out
    mean = FolderSegmentation(root, split="train").band_convention().mean[0]
    assert mean == 1100.0
    [red] = [line.split() for line in out.splitlines() if line.startswith("red ")]
    assert float(red[3]) == mean  # band, min, max, mean, ...


def test_an_unknown_dataset_is_named_as_it_was_typed(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["check-data", "--dataset", "cvat-masks", "--root", "x"])
    assert "argument --dataset: invalid choice: 'cvat-masks' (choose from 'synthetic', " \
        in capsys.readouterr().err


def test_a_background_spelling_the_labels_file_lacks_is_said_to_be_class_0(tmp_path,
                                                                           capsys) -> None:
    import json

    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(src / "a.png")
    shapes = [{"label": name, "points": [[10 * k, 0], [10 * k + 7, 7]], "group_id": None,
               "shape_type": "rectangle", "flags": {}}
              for k, name in enumerate(["background", "road"])]
    (src / "a.json").write_text(json.dumps({
        "version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": "a.png",
        "imageData": None, "imageHeight": 30, "imageWidth": 40}))
    labels = tmp_path / "labels.txt"
    labels.write_text("__ignore__\n_background_\nroad\n")
    assert main(["check-data", "--dataset", "labelme", "--root", str(src), "--labels",
                 str(labels), "--split", "train", "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if "'background'" in ln] == [
        f"warning: {src}: label 'background' read as class 0 '_background_': a label "
        f"named like background is class 0, whatever its spelling"]


def test_the_shares_of_classes_and_of_ignored_pixels_are_of_all_pixels(tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(tmp_path / "images" / "a.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[:2], mask[2:4] = 1, 255  # a quarter of class 1, a quarter ignored, half class 0
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    (tmp_path / "dataset.yaml").write_text("classes: [bg, fg]\n")
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    assert ["id", "class", "pixels", "share", "of", "all", "pixels"] in lines
    assert ["0", "bg", "32", "50.00%"] in lines and ["1", "fg", "16", "25.00%"] in lines
    assert ["255", "(ignored)", "16", "25.00%"] in lines


def _folder_of(root, images, masks, lists=None) -> None:
    """A folder dataset of classes bg and fg: ``images`` and ``masks`` by name (arrays), the
    split lists ``lists`` ({split: names})."""
    from PIL import Image

    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for name, image in images.items():
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        Image.fromarray(masks[name]).save(root / "masks" / f"{name}.png")
    (root / "dataset.yaml").write_text("classes: [bg, fg]\n")
    for split, names in (lists or {}).items():
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))


def _with_a_void_mask(root) -> None:
    """Two 8×8 images: ``a`` half fg, ``void`` whose mask ignores every pixel."""
    import numpy as np

    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = 1
    _folder_of(root, {n: np.full((8, 8, 3), 90, np.uint8) for n in ("a", "void")},
               {"a": mask, "void": np.full((8, 8), 255, np.uint8)})


def test_masks_that_ignore_every_pixel_are_one_warning(tmp_path, capsys) -> None:
    _with_a_void_mask(tmp_path)
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    assert [ln for ln in capsys.readouterr().out.splitlines() if "every pixel" in ln] == [
        "warning: 1 mask(s) ignore every pixel (value 255), so training learns nothing from "
        "them (void): left out of the pixel counts above"]


def test_masks_that_ignore_every_pixel_are_left_out_of_the_shares(tmp_path, capsys) -> None:
    _with_a_void_mask(tmp_path)
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    lines = [ln.split() for ln in capsys.readouterr().out.splitlines()]
    assert ["1", "fg", "32", "50.00%"] in lines and ["255", "(ignored)", "0", "0.00%"] in lines


def _scenes(count: int):
    """``count`` distinct 128×128 pictures (generated scenes) and their masks, by name."""
    from fcnseg.data import build_dataset

    scenes = build_dataset({"name": "synthetic", "num_images": count, "size": 128, "seed": 3})
    loaded = {f"s{k}": scenes.load(k) for k in range(count)}
    return ({n: image for n, (image, _) in loaded.items()},
            {n: (mask > 0).astype("uint8") for n, (_, mask) in loaded.items()})


def _duplicate_lines(root, capsys) -> list[str]:
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--num-workers", "0"]) == 0
    return [ln for ln in capsys.readouterr().out.splitlines() if "val image(s) look" in ln]


def test_a_val_image_that_copies_a_train_image_is_one_warning(tmp_path, capsys) -> None:
    images, masks = _scenes(4)
    images["copy"], masks["copy"] = images["s0"][::2, ::2], masks["s0"][::2, ::2]  # resized
    _folder_of(tmp_path, images, masks, {"train": ["s0", "s1"], "val": ["s2", "s3", "copy"]})
    assert _duplicate_lines(tmp_path, capsys) == [
        "warning: 1 val image(s) look the same as a train image (hashes within 10 of 256 bits: "
        "a copy, or the picture re-saved or resized): copy ~ s0; validation scores on them "
        "overstate those on new pictures: keep such pictures in one split"]


def test_a_val_image_a_pixel_off_a_train_image_is_said_to_look_nearly_like_it(tmp_path,
                                                                            capsys) -> None:
    import numpy as np

    images, masks = _scenes(4)
    images["next"], masks["next"] = np.roll(images["s1"], 1, axis=1), masks["s1"]
    _folder_of(tmp_path, images, masks, {"train": ["s0", "s1"], "val": ["s2", "s3", "next"]})
    [line] = _duplicate_lines(tmp_path, capsys)
    assert line.startswith("warning: 1 val image(s) look nearly like a train image "
                           "(hashes 11 to 32 of 256 bits apart") and ": next ~ s1;" in line


def test_distinct_pictures_across_train_and_val_are_no_duplicates(tmp_path, capsys) -> None:
    images, masks = _scenes(6)
    _folder_of(tmp_path, images, masks, {"train": ["s0", "s1", "s2"], "val": ["s3", "s4", "s5"]})
    assert _duplicate_lines(tmp_path, capsys) == []


def _coco_with(tmp_path, change) -> str:
    """A COCO file (tests.data.test_annotations_formats.coco_file) as ``change`` edits it."""
    import json

    from tests.data.test_annotations_formats import coco_file

    square = [[0, 0, 9, 0, 9, 9, 0, 9]]
    path = coco_file(tmp_path, [{"id": k, "image_id": k, "category_id": 3, "segmentation": square}
                                for k in (1, 2)], images=("a.jpg", "b.jpg"))
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return str(path)


def test_coco_categories_of_one_name_read_directly_are_said_to_be_read_as_one_class(
        tmp_path, capsys) -> None:
    path = _coco_with(tmp_path, lambda doc: doc["categories"].append({"id": 33, "name": "car"}))
    main(["check-data", "--dataset", "coco", "--root", path, "--num-workers", "0"])
    assert (f"warning: {path}: categories 3 and 33 are both named 'car': read as one class "
            f"'car'") in capsys.readouterr().out.splitlines()


def test_coco_images_of_one_id_read_directly_are_said_to_be_neither_read(tmp_path,
                                                                          capsys) -> None:
    path = _coco_with(tmp_path, lambda doc: doc["images"].append(
        {"id": 1, "file_name": "b.jpg", "height": 30, "width": 40}))
    main(["check-data", "--dataset", "coco", "--root", path, "--num-workers", "0"])
    assert (f"{path}: images[2] ('b.jpg') has the id 1 of images[0] ('a.jpg'): annotations "
            f"cannot tell them apart; neither read (give each image its own id)"
            ) in capsys.readouterr().out


def test_a_first_label_drawn_as_class_0_read_directly_names_the_rename_field(tmp_path,
                                                                            capsys) -> None:
    from tests.data.test_annotations_formats import CVAT_XML, cvat_source

    src = cvat_source(tmp_path, CVAT_XML.replace("road", "unlabeled"))
    main(["check-data", "--dataset", "cvat", "--root", str(src), "--num-workers", "0"])
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "is drawn by" in ln]
    assert line.endswith("give it another name (rename: {\"unlabeled\": NAME} in the dataset's "
                         "spec; check-data: --data 'rename={\"unlabeled\": NAME}')")


def test_the_rename_field_that_line_names_keeps_the_label_a_class_of_its_own(tmp_path,
                                                                            capsys) -> None:
    from tests.data.test_annotations_formats import CVAT_XML, cvat_source

    src = cvat_source(tmp_path, CVAT_XML.replace("road", "unlabeled"))
    main(["check-data", "--dataset", "cvat", "--root", str(src), "--num-workers", "0",
          "--data", 'rename={"unlabeled": other}'])
    out = capsys.readouterr().out
    assert "is drawn by" not in out and "other" in [ln.split()[1] for ln in out.splitlines()
                                                     if ln[:3].strip().isdigit()]


def test_a_test_image_that_copies_a_val_image_is_one_warning(tmp_path, capsys) -> None:
    images, masks = _scenes(5)
    images["copy"], masks["copy"] = images["s2"][::2, ::2], masks["s2"][::2, ::2]  # resized
    _folder_of(tmp_path, images, masks, {"train": ["s0", "s1"], "val": ["s2", "s3"],
                                         "test": ["s4", "copy"]})
    assert main(["check-data", "--dataset", "folder", "--root", str(tmp_path),
                 "--num-workers", "0"]) == 0
    assert [ln for ln in capsys.readouterr().out.splitlines() if "image(s) look" in ln] == [
        "warning: 1 test image(s) look the same as a train or val image (hashes within 10 of "
        "256 bits: a copy, or the picture re-saved or resized): copy ~ s2; test scores on them "
        "overstate those on new pictures: keep such pictures in one split"]


def test_a_siftflow_test_image_that_copies_a_trainval_image_is_one_warning(tmp_path,
                                                                           capsys) -> None:
    import shutil

    from ondisk import SIFTFLOW_SUBDIR, write_siftflow

    folder = write_siftflow(tmp_path, {"trainval": ["coast_a", "forest_b"],
                                       "test": ["mountain_c", "street_d"]})
    images = folder / "Images" / SIFTFLOW_SUBDIR
    shutil.copy(images / "forest_b.jpg", images / "street_d.jpg")
    main(["check-data", "--dataset", "siftflow", "--root", str(tmp_path), "--num-workers", "0"])
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if "image(s) look" in ln]
    assert line.startswith("warning: 1 test image(s) look the same as a trainval image "
                           "(hashes within 10") and ": street_d ~ forest_b;" in line
