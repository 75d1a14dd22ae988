"""Bilinear deconvolution kernels."""

from __future__ import annotations

import pytest
import torch

from fcnseg.models.upsample import bilinear_kernel, bilinear_upsampling, is_bilinear


def test_kernel_of_size_4_is_quarter_three_quarters() -> None:
    k = bilinear_kernel(4)
    axis = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(k, torch.outer(axis, axis))


def test_odd_kernel_peaks_at_its_centre() -> None:
    assert torch.allclose(bilinear_kernel(3)[1], torch.tensor([0.5, 1.0, 0.5]))


def test_upsampling_is_channel_diagonal() -> None:
    layer = bilinear_upsampling(3, 4, 2)
    w = layer.weight
    assert torch.equal(w[0, 1], torch.zeros(4, 4)) and torch.equal(w[2, 2], bilinear_kernel(4))
    assert is_bilinear(layer)
    with torch.no_grad():
        w[0, 1, 0, 0] = 0.1
    assert not is_bilinear(layer)


@pytest.mark.parametrize(("kernel", "stride"), [(4, 2), (16, 8), (32, 16), (64, 32)])
def test_constant_map_upsamples_to_the_constant_away_from_the_border(
    kernel: int, stride: int
) -> None:
    layer = bilinear_upsampling(2, kernel, stride)
    x = torch.stack([torch.full((6, 6), 3.0), torch.full((6, 6), -2.0)])[None]
    with torch.no_grad():
        y = layer(x)
    inner = y[0, :, kernel:-kernel, kernel:-kernel]
    assert torch.allclose(inner[0], torch.full_like(inner[0], 3.0), atol=1e-5)
    assert torch.allclose(inner[1], torch.full_like(inner[1], -2.0), atol=1e-5)
