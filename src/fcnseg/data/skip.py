"""Skip bad samples during training instead of stopping."""

from __future__ import annotations

import logging
from typing import Any

from fcnseg.data.base import DataError, SegmentationDataset

__all__ = ["SkipBad"]

log = logging.getLogger(__name__)


class SkipBad(SegmentationDataset):
    """Wrap a dataset so that a bad sample is replaced by the next good one, with a warning.

    When ``dataset[i]`` raises :class:`DataError`, a warning naming the file and problem is
    logged (once per sample) and samples ``i + 1, i + 2, ...`` (wrapping around) are tried in
    turn, so the replacement is deterministic. Gives up after ``max_tries`` bad samples in a row.
    Class names, palette and ignore value are the wrapped dataset's.
    """

    def __init__(self, dataset: SegmentationDataset, max_tries: int = 100) -> None:
        super().__init__(None)
        self.dataset = dataset
        self.max_tries = int(max_tries)
        self.bad: dict[int, str] = {}

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.dataset.classes

    @property
    def ignore_index(self) -> int:  # type: ignore[override]
        return self.dataset.ignore_index

    @property
    def palette(self) -> Any:  # type: ignore[override]
        return self.dataset.palette

    @property
    def ids(self) -> Any:  # type: ignore[override]
        return getattr(self.dataset, "ids", ())

    def name(self, index: int) -> str:
        return self.dataset.name(index)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        n = len(self.dataset)
        for step in range(min(self.max_tries, n)):
            i = (index + step) % n
            if i in self.bad:
                continue
            try:
                return self.dataset[i]
            except DataError as e:
                self.bad[i] = str(e)
                log.warning("skipping bad sample %d (%s): %s", i, self.dataset.name(i), e)
        raise DataError(
            self.dataset.name(index % n) if n else "dataset",
            f"no good sample found in {min(self.max_tries, n)} tries from index {index}; "
            f"run 'fcnseg check-data' on this dataset",
        )

    def __repr__(self) -> str:
        return f"SkipBad({self.dataset!r})"
