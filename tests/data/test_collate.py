import functools

import pytest
import torch
from torch.utils.data import DataLoader

from fcnseg.conventions import CAFFE_BGR
from fcnseg.data import (
    SyntheticSegmentation,
    build_eval_transform,
    build_train_transform,
    collate_segmentation,
)


def test_different_sizes_are_padded_with_the_fill_and_ignore():
    a = (torch.ones(3, 4, 5), torch.full((4, 5), 2))
    b = (torch.ones(3, 6, 3), torch.full((6, 3), 1))
    images, labels = collate_segmentation([a, b], ignore_index=77, fill={"color": 0})
    assert images.shape == (2, 3, 6, 5) and labels.shape == (2, 6, 5)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert (images[0, :, 4:] == 0).all() and (images[1, :, :, 3:] == 0).all()
    assert (labels[0, :4, :5] == 2).all() and (labels[0, 4:] == 77).all()
    assert (labels[1, :, 3:] == 77).all() and (labels[1, :, :3] == 1).all()


def test_mismatched_image_and_label_is_an_error():
    with pytest.raises(ValueError, match="sample 0"):
        collate_segmentation([(torch.zeros(3, 4, 4), torch.zeros(4, 5))])


def test_raw_pixels_are_padded_with_the_imagenet_mean_by_default():
    a = (torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(2, 2))
    b = (torch.zeros(3, 1, 2, dtype=torch.uint8), torch.zeros(1, 2))
    images, _ = collate_segmentation([a, b])
    expected = torch.tensor(CAFFE_BGR.mean_pixel(), dtype=torch.float32)
    assert torch.equal(images[1, :, 1, 0], expected) and (images[0] == 0).all()


def test_loader_batches_images_of_different_sizes():
    sizes = SyntheticSegmentation(2, 32, seed=0, transform=build_eval_transform())
    other = SyntheticSegmentation(2, (40, 24), seed=0, transform=build_eval_transform())
    dataset = torch.utils.data.ConcatDataset([sizes, other])
    loader = DataLoader(dataset, batch_size=4,
                        collate_fn=functools.partial(collate_segmentation, ignore_index=255))
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 40, 32)
    assert (labels[0, 32:] == 255).all() and (labels[2, :, 24:] == 255).all()


def test_worker_augmentation_is_reproducible_from_the_loader_generator():
    t = build_train_transform(crop_size=24, scale_range=(0.5, 1.5))
    ds = SyntheticSegmentation(8, 32, seed=0, transform=t)

    def batches(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, generator=g,
                            collate_fn=collate_segmentation)
        return [x for x, _ in loader]

    first, again, other = batches(1), batches(1), batches(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_channels_last_batches_hold_the_same_values_and_padding():
    ds = SyntheticSegmentation(3, (24, 20), seed=0, transform=build_eval_transform())
    small = SyntheticSegmentation(1, (16, 20), seed=1, transform=build_eval_transform())
    for samples in ([ds[0], ds[1], ds[2]], [ds[0], small[0]]):  # full size, then padded
        plain_images, plain_labels = collate_segmentation(samples)
        images, labels = collate_segmentation(samples, channels_last=True)
        assert images.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(images, plain_images) and torch.equal(labels, plain_labels)
