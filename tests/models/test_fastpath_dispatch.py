"""The oneDNN fast layers step aside where a dispatch mode watches the standard operators."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from fcnseg.models import fcn8s, optimize
from fcnseg.models.fastpath import PackedConv2d, _onednn_dtype


def _packed_conv() -> PackedConv2d:
    model = optimize(fcn8s(3, width=1 / 16, fc_channels=16).eval())
    assert isinstance(model.trunk.conv1_1, PackedConv2d)
    return model.trunk.conv1_1


def test_the_fast_convolution_runs_in_plain_inference() -> None:
    with torch.no_grad():
        assert _onednn_dtype(_packed_conv(), torch.randn(1, 3, 16, 16)) == torch.float32


def test_a_flop_counter_sees_the_fast_convolution_as_a_plain_one() -> None:
    conv = _packed_conv()
    x = torch.randn(1, 3, 16, 16)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        assert _onednn_dtype(conv, x) is None
        conv(x)
    ops = {str(op) for op in counter.get_flop_counts()["Global"]}
    assert ops == {"aten.convolution"}
    out_pixels = (16 + 2 * 100 - 2) ** 2  # conv1_1 pads by 100 in the Caffe geometry
    assert counter.get_total_flops() == 2 * out_pixels * conv.out_channels * 3 * 9
