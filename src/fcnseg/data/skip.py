"""Skip bad samples during training instead of stopping."""

from __future__ import annotations

import logging
from typing import Any

import torch

from fcnseg.data.base import SegmentationDataset
from fcnseg.data.errors import DataError

log = logging.getLogger(__name__)


def _wrapped(name: str, *default: Any) -> property:
    """A read-only attribute answered by the wrapped dataset (``default`` where it has none)."""

    def refuse(wrapper: Any, value: Any) -> None:
        raise AttributeError(f"{name} is the wrapped dataset's: set it there")

    return property(lambda wrapper: getattr(wrapper.dataset, name, *default), refuse)


class SkipBad(SegmentationDataset):
    """Wrap a dataset so that a bad sample is replaced by the next good one, with a warning.

    When ``dataset[i]`` raises :class:`DataError`, a warning names the file and problem and
    samples ``i + 1, i + 2, ...`` (wrapping around) are tried, up to ``max_tries``. Each bad
    sample is warned about once per run and not read again (a record in shared memory, for
    loader workers and later epochs). Classes, palette, ignore value and ids are the wrapped
    dataset's.
    """

    classes = _wrapped("classes")
    ignore_index = _wrapped("ignore_index")
    palette = _wrapped("palette")
    heads = _wrapped("heads")
    eval_exclude_classes = _wrapped("eval_exclude_classes")
    excluded_ids = _wrapped("excluded_ids")
    ids = _wrapped("ids", ())

    def __init__(self, dataset: SegmentationDataset, max_tries: int = 100) -> None:
        super().__init__(None)
        self.dataset = dataset
        self.max_tries = int(max_tries)
        #: Problems met in this process: {index: message}.
        self.bad: dict[int, str] = {}
        # One flag per sample, in shared memory: set once the sample is known to be bad.
        self._known_bad = torch.zeros(len(dataset), dtype=torch.bool).share_memory_()

    def name(self, index: int) -> str:
        return self.dataset.name(index)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        n = len(self.dataset)
        tries = min(self.max_tries, n)
        for step in range(tries):
            i = (index + step) % n
            if i in self.bad or self._known_bad[i]:
                continue
            try:
                return self.dataset[i]
            except DataError as e:
                self.bad[i] = str(e)
                if not self._known_bad[i]:
                    self._known_bad[i] = True
                    log.warning("skipping bad sample %d (%s): %s: %s", i, self.dataset.name(i),
                                e.path, e.problem)
        raise DataError(self.dataset.name(index % n) if n else "dataset",
                        f"no good sample found in {tries} tries from index {index}",
                        "run 'fcnseg check-data' on this dataset to list the bad samples")

    def __repr__(self) -> str:
        return f"SkipBad({self.dataset!r})"
