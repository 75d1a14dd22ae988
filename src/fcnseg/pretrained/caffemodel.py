"""Moved to :mod:`fcnseg.weightfiles.caffemodel`; this name stays for code written against
it, as that module itself (a name set on one is seen through the other)."""

import sys

from fcnseg.weightfiles import caffemodel

sys.modules[__name__] = caffemodel
