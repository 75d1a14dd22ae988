"""Exported models whose metadata is hostile (JSON nested thousands deep, numbers of thousands
of digits) are refused in one line naming the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fcnseg.cli.main import main
from fcnseg.weightfiles.artifacts import TORCHSCRIPT_METADATA

HOSTILE = {"nested-100000-deep": "[" * 100_000 + "]" * 100_000,
           "integer-of-5000-digits": "9" * 5000}


def refused_in_one_line(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    assert main(["info", str(path)]) != 0
    said = capsys.readouterr()
    lines = [x for x in (said.out + said.err).splitlines() if "error" in x]
    assert len(lines) == 1 and path.name in lines[0]
    return lines[0]


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_info_refuses_onnx_metadata_that_is_hostile_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in "xy"]
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])],
                                                "g", io[:1], io[1:]))
    entry = model.metadata_props.add()
    entry.key, entry.value = "classes", value
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert "metadata 'classes'" in refused_in_one_line(capsys, tmp_path / "m.onnx")


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_info_refuses_a_torchscript_description_that_is_hostile_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    path = tmp_path / "m.ts"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/code/__torch__.py", "")
        z.writestr(f"m/extra/{TORCHSCRIPT_METADATA}", '{"classes": ' + value + "}")
    assert TORCHSCRIPT_METADATA in refused_in_one_line(capsys, path)


def test_a_torchscript_archive_of_compressed_members_is_refused_before_it_is_inflated(
        tmp_path: Path) -> None:
    # torch.jit.load, like torch.load, inflates deflated members to their declared size.
    from fcnseg.checkpoint import CheckpointError, load_checkpoint

    path = tmp_path / "m.ts"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/code/__torch__.py", "")
        z.writestr(f"m/extra/{TORCHSCRIPT_METADATA}", "{}")
        z.writestr("m/data/0", bytes(4_000_000))
    assert path.stat().st_size < 50_000
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{path}: not an exported model: its members declare")
