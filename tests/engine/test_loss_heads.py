"""The training loss and loss sampling with one label map per head."""

from __future__ import annotations

import torch

from fcnseg.engine.loss import LossSampler, segmentation_loss


def test_averaged_loss_divides_each_head_by_its_own_normalizer():
    torch.manual_seed(0)
    logits = {"semantic": torch.randn(1, 5, 4, 4), "geometric": torch.randn(1, 3, 4, 4)}
    labels = {"semantic": torch.randint(0, 5, (1, 4, 4)),
              "geometric": torch.randint(0, 3, (1, 4, 4))}
    labels["semantic"][0, 0] = 255  # 4 of its 16 pixels ignored: the heads' divisors differ
    per_head = sum(segmentation_loss(logits[h], labels[h], reduction="mean") for h in logits)
    got = segmentation_loss(logits, labels, reduction="mean",
                            normalizer={"semantic": 12.0, "geometric": 16.0})
    torch.testing.assert_close(got, per_head, rtol=1e-5, atol=0)


def test_loss_sampling_drops_the_same_cells_from_every_head():
    sampler = LossSampler(0.5, cell=2, seed=3)
    labels = {"semantic": torch.ones(2, 8, 8, dtype=torch.long),
              "geometric": torch.zeros(2, 8, 8, dtype=torch.long)}
    sampled = sampler(labels)
    dropped = {h: sampled[h] == 255 for h in labels}
    assert dropped["semantic"].any() and not dropped["semantic"].all()
    assert torch.equal(dropped["semantic"], dropped["geometric"])
