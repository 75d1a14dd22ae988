"""What a file is, from its first bytes: named in messages instead of "corrupt"."""

from __future__ import annotations

import numpy as np
import torch

from fcnseg.utils.file_kinds import what_file_is


def test_a_tiff_is_named_from_its_first_bytes(tmp_path) -> None:
    path = tmp_path / "scene.dat"
    path.write_bytes(b"II*\x00" + bytes(60))
    assert what_file_is(path) == "an image or raster (TIFF)"


def test_an_npz_is_a_numpy_archive(tmp_path) -> None:
    np.savez_compressed(tmp_path / "p_probs.npz", probs=np.zeros((2, 3), np.float32))
    assert what_file_is(tmp_path / "p_probs.npz") == "a NumPy archive (.npz)"


def test_plain_text_is_text(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("name: mine\nmodel: {arch: fcn8s}\n")
    assert what_file_is(tmp_path / "notes.txt") == "a text file"


def test_what_torch_save_writes_is_not_named(tmp_path) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "new.pt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert what_file_is(tmp_path / "new.pt") is None
    assert what_file_is(tmp_path / "old.pt") is None
