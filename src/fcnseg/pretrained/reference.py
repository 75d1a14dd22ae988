"""Moved to :mod:`fcnseg.weightfiles.reference`; this earlier name is that module itself."""

import sys

from fcnseg.weightfiles import reference

sys.modules[__name__] = reference
