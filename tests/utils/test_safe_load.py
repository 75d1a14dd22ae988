"""safe_load: one guard for every untrusted torch.save file, failing in the caller's error."""

from __future__ import annotations

import zipfile

import pytest
import torch

from fcnseg.utils import safe_load as safe_load_module
from fcnseg.utils.safe_load import safe_load


class CallersError(ValueError):
    pass


def _damaged(e: Exception) -> str:
    return f"damaged ({type(e).__name__})"


def _load(path, **kw):
    return safe_load(path, CallersError, "a thing", _damaged, **kw)


def test_a_plain_torch_save_file_is_loaded(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(_load(path)["w"], torch.ones(2))


def test_a_zip_of_compressed_members_is_refused_in_the_callers_error_before_loading(
        tmp_path, monkeypatch):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * 1_000_000)
    monkeypatch.setattr(safe_load_module.torch, "load", pytest.fail)  # never reached
    with pytest.raises(CallersError) as e:
        _load(path)
    assert str(e.value).startswith(f"{path}: not a thing: its members declare 1000000 bytes")


def test_a_file_of_another_kind_is_named_as_such(tmp_path):
    path = tmp_path / "w.pt"
    path.write_text('{"not": "weights"}')
    with pytest.raises(CallersError) as e:
        _load(path)
    assert str(e.value) == f"{path} is a text file (JSON), not a thing"


def test_a_damaged_file_gets_the_callers_message_with_the_cause(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(CallersError) as e:
        _load(path)
    assert str(e.value).startswith("damaged (")
    assert e.value.__cause__ is not None


def test_a_given_reader_skips_the_zip_guard_and_a_missing_library_passes_through(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"anything")

    def missing(_path):
        raise ImportError("No module named 'safetensors'")

    with pytest.raises(ImportError):
        _load(path, read=missing)
    assert _load(path, read=lambda p: p.read_bytes()) == b"anything"


def test_an_import_error_of_torch_load_is_the_files_and_gets_the_callers_message(
        tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, path)

    def importing(*_args, **_kwargs):  # as unpickling a global of a module not installed
        raise ModuleNotFoundError("No module named 'evil'")

    monkeypatch.setattr(safe_load_module.torch, "load", importing)
    with pytest.raises(CallersError) as e:
        _load(path)
    assert str(e.value) == "damaged (ModuleNotFoundError)"
