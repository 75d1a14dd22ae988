"""Moved to :mod:`fcnseg.weightfiles.caffe_proto`; this earlier name is that module itself."""

import sys

from fcnseg.weightfiles import caffe_proto

sys.modules[__name__] = caffe_proto
