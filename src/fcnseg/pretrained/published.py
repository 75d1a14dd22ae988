"""Moved to :mod:`fcnseg.weightfiles.published`; this name stays for code written against
it, as that module itself (a name set on one is seen through the other)."""

import sys

from fcnseg.weightfiles import published

sys.modules[__name__] = published
