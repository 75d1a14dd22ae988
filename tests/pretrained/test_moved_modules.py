"""The weight-file modules live below the models (fcnseg.weightfiles); their earlier names in
fcnseg.pretrained and fcnseg.inference.backends still import them."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("name", ["reference", "published", "resolve", "caffemodel",
                                  "caffe_proto"])
def test_an_earlier_pretrained_module_name_is_the_weightfiles_module(name: str) -> None:
    old = importlib.import_module(f"fcnseg.pretrained.{name}")
    assert old is importlib.import_module(f"fcnseg.weightfiles.{name}")


def test_the_backends_names_are_those_of_weightfiles_and_models() -> None:
    from fcnseg.inference import backends
    from fcnseg.models import exported
    from fcnseg.weightfiles import artifacts

    assert backends.read_artifact is artifacts.read_artifact
    assert backends.onnx_session is artifacts.onnx_session
    assert backends.artifact_model is exported.artifact_model


def test_models_and_checkpoints_import_nothing_from_pretrained_or_inference() -> None:
    import ast
    from pathlib import Path

    import fcnseg

    root = Path(fcnseg.__file__).parent
    files = [root / "checkpoint.py", *root.glob("models/*.py"), *root.glob("weightfiles/*.py")]
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("fcnseg.pretrained", "fcnseg.inference")), \
                    f"{file.name} imports {node.module}"
