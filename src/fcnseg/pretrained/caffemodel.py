"""Moved to :mod:`fcnseg.weightfiles.caffemodel`; this earlier name is that module itself."""

import sys

from fcnseg.weightfiles import caffemodel

sys.modules[__name__] = caffemodel
