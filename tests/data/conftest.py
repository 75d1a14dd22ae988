"""Fixtures that write small datasets in the exact on-disk formats of VOC, SBD and folders."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from ondisk import (
    save_jpeg,
    save_palette_png,
    scene,
    write_nyud,
    write_pascal_context,
    write_sbd,
    write_siftflow,
    write_voc,
)


@pytest.fixture()
def voc_root(tmp_path: Path) -> Path:
    write_voc(tmp_path, "2012", {"train": ["2007_000032", "2007_000039"], "val": ["2007_000042"],
                                 "trainval": ["2007_000032", "2007_000039", "2007_000042"]})
    return tmp_path


@pytest.fixture()
def ondisk() -> SimpleNamespace:
    """The writers above, for tests that build their own trees."""
    return SimpleNamespace(scene=scene, save_palette_png=save_palette_png, save_jpeg=save_jpeg,
                           write_voc=write_voc, write_sbd=write_sbd,
                           write_pascal_context=write_pascal_context, write_nyud=write_nyud,
                           write_siftflow=write_siftflow)
