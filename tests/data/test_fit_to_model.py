"""A dataset is checked against the model that will score it before any image is read."""

from __future__ import annotations

import pytest

from fcnseg.data.band_images import fit_to_model


class _Split:
    """A split of ``images`` images giving ``modalities``, its labels withheld or not."""

    def __init__(self, images: int = 2, modalities: tuple[str, ...] = ("color",),
                 labels_withheld: str | None = None) -> None:
        self.images, self.modalities = images, list(modalities)
        self.labels_withheld, self.split = labels_withheld, "test"

    def __len__(self) -> int:
        return self.images


def _fit(dataset: _Split, input_names: tuple[str, ...] = ("color",)) -> None:
    fit_to_model(dataset, "torchvision_rgb", "data/nyud", "best.pt", own=True, split="test",
                 input_names=input_names)


def test_withheld_labels_are_refused_first_naming_the_split() -> None:
    with pytest.raises(ValueError) as e:
        _fit(_Split(images=0, labels_withheld="test labels are withheld (all void)"),
             ("color", "hha"))
    assert str(e.value) == "data/nyud split 'test': test labels are withheld (all void)"


def test_an_input_the_dataset_does_not_give_is_refused_naming_both_lists() -> None:
    with pytest.raises(ValueError) as e:
        _fit(_Split(images=0), ("color", "hha"))
    assert str(e.value).startswith("data/nyud: the model takes the inputs ['color', 'hha']; "
                                   "the dataset gives ['color']: ask for every one")


def test_a_dataset_of_the_model_inputs_must_still_hold_an_image() -> None:
    _fit(_Split(modalities=("color", "hha")), ("color", "hha"))
    with pytest.raises(ValueError, match="split 'test' of data/nyud holds no image"):
        _fit(_Split(images=0))
