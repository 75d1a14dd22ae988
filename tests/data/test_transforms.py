import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from fcnseg.conventions import CAFFE_BGR, TORCHVISION_RGB
from fcnseg.data.transforms import (
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    ToTensor,
    build_eval_transform,
    build_train_transform,
)

# Class k is drawn in colour COLOURS[k]: far apart, so the nearest colour identifies the class.
COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


def pattern(h: int = 60, w: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random blocks of classes 0-4 (16-pixel cells); the image shows each class's colour."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 5, size=(h // 16 + 1, w // 16 + 1))
    label = np.kron(cells, np.ones((16, 16), dtype=np.int64))[:h, :w]
    return COLOURS[label].copy(), label


def nearest_class(image: np.ndarray) -> np.ndarray:
    d = ((image[..., None, :].astype(int) - COLOURS.astype(int)) ** 2).sum(-1)
    return d.argmin(-1)


def interior(label: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose (2r+1)² neighbourhood holds a single label value."""
    p = np.pad(label, radius, mode="edge")
    win = sliding_window_view(p, (2 * radius + 1, 2 * radius + 1))
    return (win == label[..., None, None]).all(axis=(2, 3))


def test_scale_crop_flip_keep_image_and_mask_aligned():
    torch.manual_seed(0)
    t = Compose([RandomScale(0.5, 2.0), RandomCrop(48, ignore_index=255),
                 RandomHorizontalFlip(0.5)])
    for seed in range(8):
        image, label = pattern(96, 128, seed=seed)
        out_img, out_lab = t(image, label)
        assert out_img.shape[:2] == out_lab.shape == (48, 48)
        valid = (out_lab != 255) & interior(out_lab)
        assert valid.mean() > 0.3
        np.testing.assert_array_equal(nearest_class(out_img)[valid], out_lab[valid])


def test_flip_mirrors_both_exactly():
    image, label = pattern()
    out_img, out_lab = RandomHorizontalFlip(p=1.0)(image, label)
    np.testing.assert_array_equal(out_img, image[:, ::-1])
    np.testing.assert_array_equal(out_lab, label[:, ::-1])
    same_img, same_lab = RandomHorizontalFlip(p=0.0)(image, label)
    np.testing.assert_array_equal(same_lab, label)


def test_scaling_never_invents_label_values():
    rng = np.random.default_rng(1)
    label = rng.choice(np.array([0, 3, 7, 255]), size=(37, 53))
    image = np.zeros((37, 53, 3), np.uint8)
    torch.manual_seed(3)
    for _ in range(5):
        _, out = RandomScale(0.3, 2.5)(image, label)
        assert set(np.unique(out)) <= {0, 3, 7, 255}


def test_crop_larger_than_image_pads_label_with_ignore_and_image_with_fill():
    image, label = pattern(20, 30)
    out_img, out_lab = RandomCrop((32, 40), ignore_index=99, fill=(1, 2, 3))(image, label)
    assert out_lab.shape == (32, 40)
    np.testing.assert_array_equal(out_lab[:20, :30], label)
    assert (out_lab[20:] == 99).all() and (out_lab[:, 30:] == 99).all()
    assert (out_img[20:] == (1, 2, 3)).all()


def test_color_jitter_changes_the_image_only():
    image, label = pattern()
    torch.manual_seed(0)
    out_img, out_lab = ColorJitter(0.4, 0.4, 0.4)(image, label)
    assert out_lab is label
    assert out_img.dtype == np.uint8 and not np.array_equal(out_img, image)


def test_to_tensor_keeps_the_raw_pixels():
    image, label = pattern()
    x, y = ToTensor()(image, label)
    assert x.dtype == torch.uint8 and x.shape == (3, 60, 80)
    assert y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(image).permute(2, 0, 1))


def test_to_tensor_shares_a_writable_images_memory():
    image, label = pattern()
    x, _ = ToTensor()(image, label)
    assert x.data_ptr() == image.ctypes.data  # no copy on the way to the batch


def test_a_rescaled_image_cropped_to_its_whole_width_becomes_a_tensor_of_its_own_memory():
    # RandomScale resizes through PIL, whose pixels NumPy sees as a read-only view of
    # immutable bytes; a crop of whole rows of it is contiguous, so the tensor would alias them.
    image, label = pattern(60, 80)
    scaled, scaled_label = RandomScale(0.8, 0.8)(image, label)
    crop = (slice(4, 36), slice(None))
    x, _ = ToTensor()(scaled[crop], scaled_label[crop])
    assert not scaled.flags.writeable  # what made the tensor share read-only memory before
    assert x.data_ptr() != scaled[crop].ctypes.data
    x[0, 0, 0] ^= 255  # an in-place change of the sample leaves the resized pixels alone
    assert x[0, 0, 0] != scaled[4, 0, 0]


@pytest.mark.parametrize("convention", [CAFFE_BGR, TORCHVISION_RGB])
def test_train_transform_pads_with_the_given_mean_pixel(convention):
    image, label = pattern(20, 20)
    t = build_train_transform(crop_size=32, flip=False, fill={"color": convention.mean_pixel()})
    x, y = t(image, label)
    assert x.shape == (3, 32, 32)
    assert (y[20:] == 255).all()
    expected = torch.tensor(convention.mean_pixel()).round().to(torch.uint8).view(3, 1, 1)
    assert (x[:, 25:, 25:] == expected).all()


def test_train_transform_pads_with_the_imagenet_mean_by_default():
    image, label = pattern(20, 20)
    x, _ = build_train_transform(crop_size=32, flip=False)(image, label)
    assert x[:, 25:, 25:].flatten(1).unique(dim=1).tolist() == [[123], [117], [104]]


def test_augmentation_is_reproducible_from_torch_seed():
    t = build_train_transform(crop_size=40, scale_range=(0.5, 1.5), jitter=True)
    image, label = pattern()
    torch.manual_seed(7)
    a = t(image, label)
    torch.manual_seed(7)
    b = t(image, label)
    torch.testing.assert_close(a[0], b[0])
    assert torch.equal(a[1], b[1])
    c = t(image, label)
    assert not torch.equal(a[0], c[0])


def test_eval_transform_only_makes_tensors():
    image, label = pattern()
    x, y = build_eval_transform()(image, label)
    assert x.shape == (3, 60, 80)
    assert torch.equal(y, torch.from_numpy(label))
