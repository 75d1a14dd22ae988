"""Build a dataset from a recipe's ``dataset`` section (a plain dict read from YAML)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from fcnseg.data.ade20k import ADE20K
from fcnseg.data.annotations.dataset import AnnotationDataset
from fcnseg.data.base import SegmentationDataset, Transform
from fcnseg.data.cityscapes import Cityscapes, checked_labels
from fcnseg.data.folder import FolderSegmentation
from fcnseg.data.nyud import NYUDv2
from fcnseg.data.pascal_context import PascalContext
from fcnseg.data.raster_windows import RasterWindows
from fcnseg.data.sbd import SBDSegmentation
from fcnseg.data.siftflow import SIFTFlow
from fcnseg.data.splits import seg11valid
from fcnseg.data.synthetic import SyntheticSegmentation
from fcnseg.data.voc import VOCSegmentation
from fcnseg.utils.validate import expect_mapping

#: Options of the annotation datasets (AnnotationDataset's keyword arguments).
_ANNOTATION_OPTIONS = {"split", "labels", "overlap", "line_width", "images", "val_fraction",
                       "empty_as_background", "crowd_as_ignore", "rename", "bands", "rgb",
                       "nodata"}

#: Folder dataset fields a spec may give beside dataset.yaml's (where the files are).
_FOLDER_LAYOUT = ("images", "masks", "image_suffix", "mask_suffix")

#: The split scored when a dataset spec names none (``evaluate``'s, ``calibrate``'s default).
EVAL_SPLIT = "val"


def eval_split(spec: dict[str, Any]) -> str:
    """The split of ``spec`` to score: its ``split``, else :data:`EVAL_SPLIT`."""
    return str(spec.get("split") or EVAL_SPLIT)


def _field(spec: dict[str, Any], key: str, default: Any = None) -> Any:
    return spec[key] if key in spec and spec[key] is not None else default


def build_dataset(
    spec: dict[str, Any], split: str | None = None, transform: Transform | None = None
) -> SegmentationDataset:
    """Create a dataset from ``spec``; ``split`` overrides ``spec["split"]``. Examples::

        {"name": "synthetic", "num_images": 200, "size": 96, "seed": 0}
        {"name": "voc", "root": "data/VOCdevkit", "year": "2012", "split": "train"}
        {"name": "seg11valid", "voc_root": "data", "sbd_root": "data/benchmark_RELEASE"}
        {"name": "folder", "root": "data/mine", "split": "val"}
        {"name": "nyud", "root": "data/nyud", "split": "test", "modalities": ["color", "hha"]}
        {"name": "cityscapes", "root": "data/cityscapes", "labels": "train_ids"}
        {"name": "coco", "root": "data/coco/annotations/instances_val2017.json"}
        {"name": "raster_windows", "root": "data/scenes", "window": 512, "windows": 2000}

    Raises ValueError naming the field when the name is unknown or a required field is missing.
    """
    expect_mapping(spec, "dataset")
    name = spec.get("name")
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset.name: unknown dataset {name!r}; known: "
                         f"{', '.join(DATASET_NAMES)}")
    for key in DATASET_NAMES[name]:
        if spec.get(key) is None:
            raise ValueError(f"dataset.{key}: required for dataset {name!r}")
    known = set(DATASET_NAMES[name]) | _DATASETS[name].optional | {"name"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"dataset.{unknown[0]}: unknown field for dataset {name!r}; "
                         f"allowed: {', '.join(sorted(known))}")
    split = split if split is not None else spec.get("split")
    return _DATASETS[name].opener(spec, split, transform)


# One opener per dataset name: (spec, split, transform) -> dataset.

def _synthetic(spec: dict[str, Any], split: str | None,
               transform: Transform | None) -> SegmentationDataset:
    # A "val" split draws from other seeds than "train", so they never share a scene.
    seed = int(_field(spec, "seed", 0)) + (0 if split in (None, "train") else 1_000_003)
    return SyntheticSegmentation(int(spec["num_images"]), size=_size(spec.get("size", 128)),
                                 seed=seed, transform=transform,
                                 ignore_border=int(_field(spec, "ignore_border", 0)))


def _nyud(spec: dict[str, Any], split: str | None,
          transform: Transform | None) -> SegmentationDataset:
    modalities = _field(spec, "modalities", ["color"])
    if isinstance(modalities, str) or not isinstance(modalities, (list, tuple)):
        raise ValueError(f"dataset.modalities: expected a list such as [color, hha], got "
                         f"{modalities!r}")
    return NYUDv2(spec["root"], split=split or "train", modalities=tuple(modalities),
                  transform=transform)


def _annotations(spec: dict[str, Any], split: str | None,
                 transform: Transform | None) -> SegmentationDataset:
    options = {k: spec[k] for k in _ANNOTATION_OPTIONS - {"split"} if spec.get(k) is not None}
    return AnnotationDataset(spec["name"].replace("_", "-"), spec["root"], split=split,
                             transform=transform, **options)


def _raster_windows(spec: dict[str, Any], split: str | None,
                    transform: Transform | None) -> SegmentationDataset:
    rasters = _folder(spec, split, None)
    # Training draws random windows; every other split scores a grid covering each raster.
    sampling = _field(spec, "sampling", "random" if split in (None, "train") else "grid")
    return RasterWindows(rasters, int(_field(spec, "window", 512)), sampling=sampling,
                         windows=int(_field(spec, "windows", 1000)),
                         seed=int(_field(spec, "seed", 0)), transform=transform)


def _folder(spec: dict[str, Any], split: str | None,
            transform: Transform | None) -> SegmentationDataset:
    layout = {k: spec[k] for k in _FOLDER_LAYOUT if spec.get(k) is not None}
    return FolderSegmentation(spec["root"], split=split, transform=transform,
                              config=_field(spec, "config"), **layout)


class _Dataset(NamedTuple):
    """What a dataset name takes (the fields it needs, those it may have) and how it opens."""

    required: tuple[str, ...]
    optional: set[str]
    opener: Callable[[dict[str, Any], str | None, Transform | None], SegmentationDataset]


#: Each dataset name (in the order messages list them), its fields and its opener.
_DATASETS: dict[str, _Dataset] = {
    "synthetic": _Dataset(("num_images",), {"size", "seed", "split", "ignore_border"}, _synthetic),
    "voc": _Dataset(("root",), {"year", "split"}, lambda spec, split, transform: VOCSegmentation(
        spec["root"], year=str(_field(spec, "year", "2012")), split=split or "train",
        transform=transform)),
    "sbd": _Dataset(("root",), {"split"}, lambda spec, split, transform: SBDSegmentation(
        spec["root"], split=split or "train", transform=transform)),
    "seg11valid": _Dataset(("voc_root", "sbd_root"), {"split", "cache_dir"},
                           lambda spec, split, transform: seg11valid(
                               spec["voc_root"], spec["sbd_root"], transform=transform,
                               cache_dir=_field(spec, "cache_dir"))),
    "folder": _Dataset(("root",), {"split", "config", *_FOLDER_LAYOUT}, _folder),
    "pascal_context": _Dataset(("root",), {"split", "context_dir"},
                               lambda spec, split, transform: PascalContext(
                                   spec["root"], split=split or "train", transform=transform,
                                   context_dir=_field(spec, "context_dir"))),
    "nyud": _Dataset(("root",), {"split", "modalities"}, _nyud),
    "siftflow": _Dataset(("root",), {"split"}, lambda spec, split, transform: SIFTFlow(
        spec["root"], split=split or "trainval", transform=transform)),
    # labels: label_ids (*_gtFine_labelIds.png) or train_ids (*_gtFine_labelTrainIds.png).
    "cityscapes": _Dataset(("root",), {"split", "labels"},
                           lambda spec, split, transform: Cityscapes(
                               spec["root"], split=split or "train", transform=transform,
                               labels=checked_labels(_field(spec, "labels", "label_ids"),
                                                     "dataset.labels"))),
    "ade20k": _Dataset(("root",), {"split"}, lambda spec, split, transform: ADE20K(
        spec["root"], split=split or "train", transform=transform)),
    # Windows of large rasters (a folder dataset declaring its bands), read by window.
    "raster_windows": _Dataset(("root",), {"split", "config", "window", "windows", "seed",
                                           "sampling", *_FOLDER_LAYOUT}, _raster_windows),
    # Annotations of labelling tools, read directly (fcnseg.data.annotations).
    **{n: _Dataset(("root",), _ANNOTATION_OPTIONS, _annotations)
       for n in ("labelme", "coco", "cvat", "cvat_mask", "labelstudio")},
}

#: Accepted values of ``spec["name"]`` and the fields each one needs.
DATASET_NAMES: dict[str, tuple[str, ...]] = {name: d.required for name, d in _DATASETS.items()}


#: Dataset fields that may name a file or folder (relative: to the current folder; ``labels``
#: only where it names a file, not Cityscapes' ``train_ids``).
PATH_FIELDS = ("root", "voc_root", "sbd_root", "config", "cache_dir", "labels")


def relative_paths(spec: Mapping[str, Any]) -> dict[str, str]:
    """The fields of :data:`PATH_FIELDS` in ``spec`` that are relative paths, as written."""
    return {k: v for k, v in spec.items() if k in PATH_FIELDS and isinstance(v, str) and v
            and not Path(v).expanduser().is_absolute()}


def _size(value: Any) -> int | tuple[int, int]:
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"dataset.size: expected an int or [height, width], got {value!r}")
