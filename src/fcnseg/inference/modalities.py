"""This module finds the other inputs of a model with several (NYUDv2 RGB-HHA, RGB-D).
Each image's companion file of another modality is the file of the same name in its folder
(``--input-dir hha=DIR``) or, without one, the first of ``DIR/NAME_hha.EXT``, ``DIR/NAME.hha.EXT``
and ``DIR/../hha/NAME.EXT`` (NYUDv2's layout), ``EXT`` the image's extension, then ``.png``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from fcnseg.inference.segmenter import Prediction, Segmenter


class CompanionNotFoundError(FileNotFoundError):
    """An image's file of another modality is not where the convention or folder says."""


def given_modality(input_names: Sequence[str], folders: Mapping[str, Path]) -> str:
    """The modality the INPUT files are: colour when no folder is given for it, else the one
    modality without a folder."""
    rest = [m for m in input_names if m not in folders]
    if not rest:
        raise ValueError(f"every input of the model ({list(input_names)}) has a folder; the "
                         f"INPUT files must be one of them")
    return "color" if "color" in rest else rest[0]


def companion_candidates(image: Path, modality: str) -> list[Path]:
    """The paths where ``image``'s file of ``modality`` may be, in the order they are tried."""
    image = Path(image)
    suffixes = list(dict.fromkeys([image.suffix, ".png"]))
    beside = [image.with_name(f"{image.stem}{sep}{modality}{ext}")
              for sep in ("_", ".") for ext in suffixes]
    sibling = [image.parent.parent / modality / f"{image.stem}{ext}" for ext in suffixes]
    return [p for p in dict.fromkeys(beside + sibling) if p != image]


def find_companion(image: Path, modality: str) -> Path:
    """``image``'s file of ``modality`` by the convention above (else a
    :class:`CompanionNotFoundError` naming the image and every path tried)."""
    candidates = companion_candidates(image, modality)
    for path in candidates:
        if path.is_file():
            return path
    raise CompanionNotFoundError(
        f"{image}: no {modality} input found; looked for "
        + ", ".join(str(p) for p in candidates)
        + f" (or give --input-dir {modality}=DIR)")


def is_companion_file(path: Path, modalities: Sequence[str]) -> bool:
    """Whether ``path`` is another image's companion (``NAME_hha.png``, ``NAME.hha.png``, or in a
    folder named ``hha``), not an input of its own."""
    path = Path(path)
    return any(path.stem.endswith((f"_{m}", f".{m}")) or path.parent.name == m
               for m in modalities)


def _check_distinct_files(image: Path, sample: Mapping[str, Path]) -> None:
    """One file read as two modalities is refused: a silently wrong result otherwise."""
    seen: dict[Path, str] = {}
    for modality, path in sample.items():
        real = Path(path).resolve()
        if real in seen:
            raise ValueError(f"{image}: {path} would be both its {seen[real]} and its "
                             f"{modality} input; give each modality its own file")
        seen[real] = modality


def segment_modalities(segmenter: Segmenter, inputs: Sequence[tuple[Path, str]],
                       folders: Mapping[str, Path], *, return_probs: bool = False
                       ) -> Iterator[tuple[Path, str, Prediction | Exception]]:
    """``(file, name, prediction or error)`` for each INPUT of a model with several inputs
    (:func:`given_modality`), its other files from ``folders`` or :func:`find_companion`; a
    file missing or unreadable gives its error in place of the prediction."""
    given = given_modality(segmenter.input_names, folders)
    for path, name in inputs:
        try:
            sample: dict[str, Path] = {given: path}
            for modality in segmenter.input_names:
                if modality in folders:
                    sample[modality] = folders[modality] / path.name
                    if not sample[modality].is_file():
                        raise CompanionNotFoundError(
                            f"{path}: no {modality} input {sample[modality]} (--input-dir "
                            f"{modality}={folders[modality]})")
                elif modality != given:
                    sample[modality] = find_companion(path, modality)
            _check_distinct_files(path, sample)
            yield path, name, segmenter.predict_inputs(sample, return_probs=return_probs)
        except (OSError, ValueError) as e:
            yield path, name, e
