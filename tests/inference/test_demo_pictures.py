"""The demo's pictures: titled, enlarged strips with a legend; one overlay and one heatmap."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fcnseg.cli.demo import save_predictions
from fcnseg.data import build_dataset
from fcnseg.data.palette import voc_palette
from fcnseg.data.synthetic import SYNTHETIC_CLASSES


def test_demo_strips_are_titled_enlarged_and_have_a_legend(tiny_checkpoint, tmp_path) -> None:
    checkpoint = tiny_checkpoint(list(SYNTHETIC_CLASSES))
    spec = {"name": "synthetic", "num_images": 2, "size": 64, "seed": 0, "split": "val"}
    paths = save_predictions(checkpoint, spec, tmp_path / "predictions", 2)
    names = [p.name for p in paths]
    strips = [p for p in paths if p.name.startswith("synthetic-")]
    assert len(strips) == 2
    assert [n for n in names if n.startswith("overlay_synthetic-")]
    assert [n for n in names if n.startswith("heatmap_synthetic-")]
    with Image.open(strips[0]) as img:
        strip = np.array(img)
    # Three 64-pixel panels enlarged 4× to 256, a title row above them, a legend beside them.
    assert strip.shape[0] > 256 and strip.shape[1] > 3 * 256
    top = strip.shape[0] - 256
    assert (strip[:top] < 100).any(), "titles are drawn above the panels"
    legend = {tuple(c) for c in strip[:, 3 * 256 + 20 :].reshape(-1, 3).tolist()}
    _, truth = build_dataset(spec, split="val")[0]
    for c in np.unique(truth):
        assert tuple(voc_palette()[c].tolist()) in legend, f"class {c} is in the legend"
    for path in paths:
        with Image.open(path) as img:
            assert img.mode == "RGB" and min(img.size) >= 256
