"""Float comparisons that hold on every CPU.

Two computations of the same result through different kernels (another batch size or memory
layout, ONNX Runtime, another CPU's vector units) round float32 differently: each sum is off by
a few units in the last place of its largest terms. Results are therefore compared relative to
their scale, and labels (an argmax) only where the two best scores are further apart than that
rounding can move them. Where exactness is the point (a copy, the same kernel run twice, a
bit-identical resume on one machine), tests compare exactly instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# float32 carries about 7 digits; a deep network's sums lose one or two more. 1e-4 leaves a
# margin of about 30 over the largest difference measured between two CPUs' kernels.
NETWORK_RTOL = 1e-4


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close_to_scale(actual: Any, expected: Any, rtol: float = NETWORK_RTOL,
                          err_msg: str = "") -> None:
    """``actual`` equals ``expected`` within ``rtol`` of each value, and within ``rtol`` of
    ``expected``'s largest magnitude for values near zero (their rounding comes from terms of
    that size, not from their own)."""
    actual, expected = _numpy(actual), _numpy(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol = rtol * float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def assert_labels_match(actual: Any, expected: Any, scores: Any, rtol: float = NETWORK_RTOL,
                        max_ties: float = 0.01, err_msg: str = "") -> None:
    """Label maps agree wherever ``scores`` (C×H×W logits or probabilities behind ``expected``)
    pick a clear winner.

    Scores that agree within :func:`assert_close_to_scale`'s ``rtol`` can swap their two best
    classes only where those are within ``4 * rtol`` of the scores' scale; such pixels may go
    either way. They must stay rare (``max_ties``), so that the comparison means something.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    scores = _numpy(scores)
    assert actual.shape == expected.shape == scores.shape[1:], \
        (actual.shape, expected.shape, scores.shape)
    top2 = np.sort(scores, axis=0)[-2:]
    clear = top2[1] - top2[0] > 4 * rtol * float(np.abs(scores).max(initial=0.0))
    assert clear.mean() >= 1 - max_ties, \
        f"{(~clear).sum()} of {clear.size} pixels are near-ties; choose another test input"
    np.testing.assert_array_equal(actual[clear], expected[clear], err_msg=err_msg)
