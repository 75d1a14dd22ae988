"""Moved to :mod:`fcnseg.weightfiles.resolve`; this earlier name is that module itself."""

import sys

from fcnseg.weightfiles import resolve

sys.modules[__name__] = resolve
