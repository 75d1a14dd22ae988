"""The packages that build ``__all__`` from a module's own list export exactly what they import."""

from __future__ import annotations

import importlib
import types

import pytest


@pytest.mark.parametrize("package, lazy",
                         [("fcnseg.serve", ("create_app", "encode_label_png", "serve_app"))])
def test_all_lists_every_public_name_and_only_defined_ones(package, lazy):
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "no name listed twice"
    defined = {name for name, value in vars(module).items()
               if not name.startswith("_") and not isinstance(value, types.ModuleType)
               and name not in ("annotations", "Any")}
    assert exported - set(lazy) == defined


def test_dir_of_the_package_lists_its_lazy_segmenter():
    import fcnseg

    assert "Segmenter" in dir(fcnseg) and "__version__" in dir(fcnseg)
