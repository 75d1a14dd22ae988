"""Moved to :mod:`fcnseg.weightfiles.caffe_proto`; this name stays for code written against
it, as that module itself (a name set on one is seen through the other)."""

import sys

from fcnseg.weightfiles import caffe_proto

sys.modules[__name__] = caffe_proto
