"""Moved to :mod:`fcnseg.weightfiles.published`; this earlier name is that module itself."""

import sys

from fcnseg.weightfiles import published

sys.modules[__name__] = published
