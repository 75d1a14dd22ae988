"""This module serves datasets of multi-band images (``bands`` declared).
It gives the band statistics models are standardised by, crop padding and no-data filling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fcnseg.conventions import (
    InputConvention,
    band_convention,
    get_convention,
    refuse_other_bands,
)
from fcnseg.data.base import refuse_empty_split, refuse_withheld_labels
from fcnseg.data.errors import DataError
from fcnseg.data.modalities import missing_inputs_problem
from fcnseg.data.rasters import fill_nodata, nodata_mask

if TYPE_CHECKING:
    from fcnseg.data.band_stats import BandStats


def bands_declaration(dataset: Any, names: Sequence[str]) -> tuple[str, str]:
    """Where ``dataset`` declares ``names`` as its bands and how, for messages: its own
    ``bands_declaration``, else its root's ``dataset.yaml``."""
    own = getattr(dataset, "bands_declaration", None)
    if own is not None:
        return own(names)
    return str(Path(getattr(dataset, "root", ".")) / "dataset.yaml"), \
        f"`bands: [{', '.join(names)}]`"


def fit_to_model(dataset: Any, convention: str | Mapping[str, Any] | InputConvention,
                 where: str, checkpoint: str, *, own: bool, split: str | None,
                 input_names: Sequence[str]) -> None:
    """Check, before any image is read, that a model of ``convention`` (``checkpoint``, taking
    ``input_names``) can score ``dataset``'s ``split``: labels not withheld, every input there,
    the same bands (one line saying how to declare them) and an image in the split. ``own`` (a
    dataset built for the model): pad and fill with the model's band means, never taking the
    dataset's statistics."""
    refuse_withheld_labels(dataset, f"{where} split {split!r}")
    given = getattr(dataset, "modalities", None)
    if given is not None and (problem := missing_inputs_problem(given, input_names)):
        raise ValueError(f"{where}: {problem}")
    refuse_other_bands(convention, getattr(dataset, "bands", None), where, checkpoint,
                       getattr(dataset, "bands_declaration", None))
    refuse_empty_split(dataset, where)
    if own and getattr(dataset, "bands", None) is not None \
            and hasattr(dataset, "use_band_convention"):
        dataset.use_band_convention(get_convention(convention))


class BandImages:
    """A dataset mix-in for images read as H×W×N arrays of their declared ``bands`` (None:
    colour images, as the plain dataset). The dataset gives ``root``, ``image_path(index)`` and
    ``__len__``; :meth:`set_bands` sets the bands."""

    bands: tuple[str, ...] | None = None
    rgb_bands: tuple[str, ...] | None = None
    nodata: float | None = None

    def set_bands(self, bands: Sequence[str] | None, rgb: Sequence[str] | None,
                  nodata: float | None, where: str) -> None:
        """The bands, the three shown as RGB and the value of pixels without data (a ValueError
        naming ``where`` when ``rgb`` is not three of the bands)."""
        self.bands = tuple(bands) if bands is not None else None
        self.rgb_bands = tuple(rgb) if rgb is not None else None
        self.nodata = nodata
        self._band_convention: InputConvention | None = None
        self._band_stats: BandStats | None = None
        if self.rgb_bands is not None:
            missing = [b for b in self.rgb_bands
                       if b.lower() not in {n.lower() for n in self.bands or ()}]
            if self.bands is None or missing or len(self.rgb_bands) != 3:
                raise ValueError(f"{where}: 'rgb' must name three of the declared 'bands' "
                                 f"({', '.join(self.bands or ()) or 'none declared'}); got "
                                 f"{list(self.rgb_bands)}")

    def fill_missing(self, image: Any) -> Any:
        """Pixels without data take each band's mean, after the data cache (which so holds the
        file's bit depth)."""
        missing = None if self.bands is None else nodata_mask(image, self.nodata)
        return image if missing is None else fill_nodata(image, missing, self.pad_values["color"])

    @property
    def pad_values(self) -> dict[str, float | tuple[float, ...]]:
        """Raw values crops and batches pad with: each band's mean (zero to the model), else the
        colour mean pixel."""
        if self.bands is None:
            return super().pad_values  # type: ignore[misc]
        return {"color": self.band_convention().mean_pixel()}

    def band_convention(self) -> InputConvention:
        """The input convention of a model on these bands: each standardised by its mean and std
        over the readable images."""
        if self.bands is None:
            raise ValueError(f"{self.root}: the dataset declares no 'bands'")  # type: ignore
        if self._band_convention is None:
            refuse_empty_split(self, str(self.root))  # type: ignore[attr-defined]
            stats = self.band_statistics()
            if stats.pixels == 0:  # unreadable images are left out (and reported elsewhere)
                path, problem = stats.problems[0] if stats.problems else (
                    str(getattr(self, "image_dir", self.root)),  # type: ignore[attr-defined]
                    "no image pixel with data to take band statistics from")
                raise DataError(path, problem)
            self._band_convention = band_convention(stats.bands, stats.mean, stats.std,
                                                    self.nodata, list(stats.sample_types))
        return self._band_convention

    def use_band_convention(self, convention: InputConvention) -> None:
        """Pad and fill with ``convention``'s band means (a trained model's) instead of this
        dataset's, whose statistics are then never taken."""
        self._band_convention = convention

    def band_statistics(self) -> BandStats:
        """The band statistics of the readable images (cached on disk and here)."""
        if self.bands is None:
            raise ValueError(f"{self.root}: the dataset declares no 'bands'")  # type: ignore
        if self._band_stats is None:
            from fcnseg.data.band_stats import band_statistics  # noqa: PLC0415 - import cycle

            self._band_stats = band_statistics(self)
        return self._band_stats
