"""The ``fcnseg`` command line: a thin layer over the Python API."""

from fcnseg.cli.main import main

__all__ = ["main"]
