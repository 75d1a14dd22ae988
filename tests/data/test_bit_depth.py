"""16-bit images read as 8-bit RGB that fill a small part of their range are warned about
(in ``check-data``, and at the start of ``train``: tests/engine/test_preflight.py), with the
``bands:`` line that keeps them."""

from __future__ import annotations

import pytest
from ondisk import write_grey_16_bit_cells, write_grey_16_bit_cvat

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.bit_depth import narrow_range_warning
from fcnseg.data.folder import FolderSegmentation

pytest.importorskip("tifffile")


def test_12_bit_values_read_as_8_bits_are_warned_about_with_the_bands_line(tmp_path):
    cells = write_grey_16_bit_cells(tmp_path / "d", 2500)
    message = narrow_range_warning(FolderSegmentation(cells))
    assert message is not None
    assert message.startswith("images/c0.tif, images/c1.tif, images/c2.tif and 1 more (4 of "
                               "the 4 images looked at): 16-bit values 300-2,500 of 0-65,535")
    assert "they span 1-10 of 0-255" in message
    assert message.endswith(f"declare the band in {tmp_path / 'd' / 'dataset.yaml'} to keep "
                            f"their depth: `bands: [intensity]`")


def test_16_bit_images_that_fill_their_range_are_not_warned_about(tmp_path):
    cells = write_grey_16_bit_cells(tmp_path / "d", 60000)
    assert narrow_range_warning(FolderSegmentation(cells)) is None


def test_a_dataset_that_declares_its_band_is_not_warned_about(tmp_path):
    root = write_grey_16_bit_cells(tmp_path / "d", 2500, bands_line="bands: [intensity]\n")
    assert narrow_range_warning(FolderSegmentation(root)) is None


def test_only_a_few_images_are_looked_at(tmp_path, monkeypatch):
    import fcnseg.data.bit_depth as bit_depth

    read = []
    sixteen_bit_range = bit_depth._sixteen_bit_range
    monkeypatch.setattr(bit_depth, "_sixteen_bit_range",
                        lambda path: read.append(path) or sixteen_bit_range(path))
    cells = write_grey_16_bit_cells(tmp_path / "d", 2500, count=12)
    narrow_range_warning(FolderSegmentation(cells), limit=3)
    assert len(read) == 3


def test_check_data_prints_the_warning(tmp_path, capsys):
    root = write_grey_16_bit_cells(tmp_path / "d", 2500)
    assert main(["check-data", "--dataset", "folder", "--root", str(root),
                 "--num-workers", "0"]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if "16-bit" in x]
    assert line.startswith("warning: images/c0.tif") and "`bands: [intensity]`" in line


def test_an_export_read_directly_is_told_the_spec_field_not_a_dataset_yaml(tmp_path):
    xml = write_grey_16_bit_cvat(tmp_path / "export", 2500)
    message = narrow_range_warning(build_dataset({"name": "cvat", "root": str(xml)}))
    assert message is not None and "nearly black" in message
    assert "dataset.yaml" not in message.split("nearly black")[1]
    assert "--data 'bands=[intensity]'" in message
    assert "data.train.bands=[intensity] data.val.bands=[intensity]" in message
