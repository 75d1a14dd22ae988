import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from fcnseg.data import SYNTHETIC_CLASSES, SyntheticSegmentation


def test_same_seed_and_index_give_the_same_sample_in_any_order():
    a = SyntheticSegmentation(10, 48, seed=3)
    b = SyntheticSegmentation(1000, 48, seed=3)
    img_a, lab_a = a[7]
    _ = b[2]
    img_b, lab_b = b[7]
    np.testing.assert_array_equal(img_a, img_b)
    np.testing.assert_array_equal(lab_a, lab_b)


def test_different_seeds_give_different_scenes():
    a = SyntheticSegmentation(1, 48, seed=0)[0]
    b = SyntheticSegmentation(1, 48, seed=1)[0]
    assert not np.array_equal(a[1], b[1])


def test_samples_have_the_documented_types_and_any_size():
    ds = SyntheticSegmentation(2, (40, 72), seed=0)
    image, label = ds[1]
    assert image.shape == (40, 72, 3) and image.dtype == np.uint8
    assert label.shape == (40, 72) and label.dtype == np.int64
    assert ds.num_classes == len(SYNTHETIC_CLASSES) == 7
    assert ds.palette.shape == (256, 3) and ds.ignore_index == 255
    assert len(ds) == 2
    with pytest.raises(IndexError):
        ds[2]


def test_all_classes_occur_and_scenes_hold_several():
    ds = SyntheticSegmentation(24, 64, seed=0)
    seen = set()
    for i in range(len(ds)):
        present = np.unique(ds[i][1])
        assert len(present) >= 3  # background and at least two object classes
        seen.update(present.tolist())
    assert seen == set(range(7))


def test_bars_rings_and_blobs_are_thin_and_small():
    # Hardly any pixel of these classes has a 9×9 neighbourhood of its own class (discs do), so
    # a stride-32 prediction cannot resolve them: they are where FCN-8s gains over FCN-32s.
    ds = SyntheticSegmentation(24, 128, seed=0)

    def interior_fraction(cls: int) -> float:
        total = interior = 0
        for i in range(len(ds)):
            mask = ds[i][1] == cls
            windows = sliding_window_view(np.pad(mask, 4), (9, 9))
            total += mask.sum()
            interior += windows.all(axis=(2, 3)).sum()
        return interior / total

    assert interior_fraction(1) > 0.3  # disc
    for cls in (4, 5, 6):  # bar, ring, blob
        assert interior_fraction(cls) < 0.1, SYNTHETIC_CLASSES[cls]


def test_ignore_border_is_a_thin_band_on_class_boundaries():
    plain = SyntheticSegmentation(4, 64, seed=5)
    banded = SyntheticSegmentation(4, 64, seed=5, ignore_border=1)
    for i in range(4):
        lab, band = plain[i][1], banded[i][1]
        void = band == 255
        assert void.any() and void.mean() < 0.2
        np.testing.assert_array_equal(band[~void], lab[~void])
        # every void pixel touches a pixel of another class in the unbanded label
        padded = np.pad(lab, 1, mode="edge")
        neighbours = [padded[1 + dy : 65 + dy, 1 + dx : 65 + dx]
                      for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        touches = np.any([n != lab for n in neighbours], axis=0)
        assert touches[void].all()
