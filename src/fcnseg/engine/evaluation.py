"""The evaluation loop and reports: one confusion matrix over a whole dataset.

:func:`evaluate_model` scores a model (the trainer's validation); :func:`evaluate_checkpoint`
rebuilds one from a checkpoint and scores it on any dataset (``fcnseg evaluate``);
:func:`write_report` writes ``report.json`` and ``confusion.png``; :func:`format_report` prints.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from tqdm.auto import tqdm

from fcnseg.checkpoint import as_checkpoint, build_model_from_checkpoint
from fcnseg.data.band_images import fit_to_model
from fcnseg.data.build import build_dataset, eval_split
from fcnseg.data.collate import collate_segmentation
from fcnseg.data.modalities import spec_for_inputs
from fcnseg.data.transforms import build_eval_transform
from fcnseg.engine.config import upgrade_recipe
from fcnseg.inference.class_match import ClassMatch, RelabeledDataset, match_classes
from fcnseg.inference.runner import InferenceRunner
from fcnseg.inference.visualize import reliability_diagram, save_png
from fcnseg.metrics import DEFAULT_COVERAGES, METRIC_NAMES, CalibrationBins, ConfusionMatrix, scores
from fcnseg.utils.batches import to_device
from fcnseg.utils.files import atomic_write
from fcnseg.utils.jsonable import json_safe
from fcnseg.utils.keyed import first_of, keyed
from fcnseg.utils.typing import PathLike
from fcnseg.weightfiles.artifacts import labels_only

#: ``predict_fn(model, images) -> logits``: how a batch becomes N×C×H×W class scores (plain
#: forward by default; sliding-window or test-time augmentation plug in here).
PredictFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def scores_excluding(confusion: Any, exclude: Sequence[int] = ()) -> dict[str, Any]:
    """:func:`fcnseg.metrics.scores` with the classes ``exclude`` left out of the class means
    (see there), and ``excluded_classes`` listing them."""
    exclude = sorted({int(c) for c in exclude})
    return {**scores(confusion, exclude), "excluded_classes": exclude}


class BatchError(ValueError):
    """A batch could not be scored (e.g. label values outside the classes); names the batch."""

    def __init__(self, batch_index: int, problem: str) -> None:
        self.batch_index = batch_index
        self.problem = problem
        super().__init__(f"batch {batch_index}: {problem}")


class ShardedEvalSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each sample on exactly one process.
    Unlike ``DistributedSampler``, nothing is repeated to even out the shards, so the
    all-reduced confusion matrix counts every image once."""

    def __init__(self, dataset: Dataset | int, rank: int | None = None,
                 world_size: int | None = None) -> None:
        self.length = dataset if isinstance(dataset, int) else len(dataset)  # type: ignore[arg-type]
        dist = _is_distributed()
        self.rank = int(rank if rank is not None else
                        (torch.distributed.get_rank() if dist else 0))
        self.world_size = int(world_size if world_size is not None else
                              (torch.distributed.get_world_size() if dist else 1))
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world size {self.world_size}")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


@dataclass(frozen=True)
class EvalOptions:
    """What :func:`evaluate_model` scores and how it runs the model.

    Attributes:
        num_classes: number of classes C; ``{head: C}`` for a model with several heads.
        ignore_index: label value left out of the metrics.
        device: where images, labels and the confusion matrix go (the model must be there).
        precision: "fp32", "bf16", "fp16" (autocast) or "auto" (what the hardware runs natively).
        predict_fn: ``predict_fn(model, images) -> logits``; default the plain forward pass.
        progress: show a progress bar (on rank 0 only).
        calibration: also return ``calibration`` statistics of ``softmax(logits / temperature)``.
        temperature: divides the logits for the calibration statistics only.
        coverages: fractions of the most confident pixels whose mean IU ``calibration`` reports.
        exclude_classes: classes left out of the class means; ``{head: classes}`` per head.
        raw_pixels: the loader gives raw pixels (fcnseg's datasets do): a bare network is scored
            behind its input convention's preprocessing. False: it gives normalised input.
    """

    num_classes: int | Mapping[str, int]
    ignore_index: int = 255
    device: str | torch.device = "cpu"
    precision: str = "fp32"
    predict_fn: PredictFn | None = None
    progress: bool = False
    calibration: bool = False
    temperature: float = 1.0
    coverages: Sequence[float] = DEFAULT_COVERAGES
    exclude_classes: Sequence[int] | Mapping[str, Sequence[int]] = ()
    raw_pixels: bool = True

    @property
    def several_heads(self) -> bool:
        return None not in keyed(self.num_classes)

    @property
    def heads(self) -> dict[str | None, int]:
        """Classes per head: ``{None: C}`` for a model with one head."""
        return {h: int(n) for h, n in keyed(self.num_classes).items()}

    def exclusions(self) -> dict[str | None, Sequence[int]]:
        """``exclude_classes`` per head (``{None: classes}`` for one head), checked."""
        several = self.several_heads
        by_head = keyed(self.exclude_classes) if len(self.exclude_classes) else {}
        if not several and set(by_head) - {None}:
            raise ValueError("exclude_classes: a {head: classes} dict needs a model with "
                             "several heads (num_classes given per head)")
        if several and (set(by_head) - set(self.heads) or None in by_head):
            raise ValueError(f"exclude_classes: expected {{head: classes}} for heads "
                             f"{sorted(self.heads)}, got {self.exclude_classes!r}")
        if several and self.calibration:
            raise ValueError("calibration is measured for models with one head only")
        return by_head


def evaluate_model(model: nn.Module, loader: Any, options: EvalOptions | None = None,
                   **fields: Any) -> dict[str, Any]:
    """Score ``model`` on every batch of ``loader`` with one confusion matrix (per head).

    Runs in eval mode under ``torch.inference_mode`` (the model's mode is restored after).
    ``loader`` yields ``(images N×3×H×W, labels N×H×W)``, padding at ``ignore_index``; ``model``
    returns N×C×H×W logits (a DDP wrapper is unwrapped). Under ``torch.distributed`` each
    process scores its own shard (:class:`ShardedEvalSampler`) and all return the summed
    matrices' scores. ``options`` (:class:`EvalOptions`) says what is scored and how; keyword
    ``fields`` (``num_classes=21, device="cuda"``) replace its fields.

    Returns :func:`scores_excluding` of the matrix plus ``confusion`` (rows = ground truth) and
    ``num_images`` (over all processes). With several heads (labels ``{head: N×H×W}``, logits
    ``{head: N×C×H×W}``, ``num_classes`` per head): ``{"heads": {head: scores plus confusion},
    "num_images": n}``; the FCN paper's geometric pixel accuracy is
    ``result["heads"]["geometric"]["pixel_acc"]``.
    """
    opts = replace(options, **fields) if options is not None else EvalOptions(**fields)
    net = model.module if isinstance(
        model, nn.parallel.DistributedDataParallel | nn.DataParallel) else model
    runner = InferenceRunner(net, device=opts.device, precision=opts.precision, prepare=False,
                             raw_pixels=opts.raw_pixels)
    exclude = opts.exclusions()
    matrices = {h: ConfusionMatrix(n, opts.ignore_index, device=runner.device)
                for h, n in opts.heads.items()}
    bins = (CalibrationBins(opts.heads[None], opts.ignore_index, device=runner.device)
            if opts.calibration else None)
    num_images = _run_model(runner, loader, opts, matrices, bins)
    heads = {}
    for head, matrix in matrices.items():
        matrix.all_reduce()
        heads[head] = scores_excluding(matrix.numpy(), exclude.get(head, ()))
        heads[head]["confusion"] = matrix.numpy().tolist()
    if opts.several_heads:
        return {"heads": heads, "num_images": num_images}
    result = {**heads[None], "num_images": num_images}
    if bins is not None:
        result["calibration"] = {"temperature": float(opts.temperature),
                                 **bins.all_reduce().compute(
                                     opts.coverages, exclude=exclude.get(None, ()))}
    return result


def _run_model(runner: InferenceRunner, loader: Any, opts: EvalOptions,
               matrices: dict[Any, ConfusionMatrix], bins: CalibrationBins | None) -> int:
    """Every batch of ``loader`` counted in ``matrices`` and ``bins``; returns the images seen
    by all processes."""
    num_images = torch.zeros((), dtype=torch.int64, device=runner.device)
    show = opts.progress and (not _is_distributed() or torch.distributed.get_rank() == 0)
    batches = tqdm(loader, desc="evaluate", unit="batch", disable=not show, dynamic_ncols=True,
                   leave=False)
    try:
        with runner.session():
            for batch_index, batch in enumerate(batches):
                if not (isinstance(batch, Sequence) and len(batch) >= 2):
                    raise ValueError(f"evaluation loader must yield (images, labels) pairs, "
                                     f"got {type(batch).__name__}")
                images, labels = batch[0], batch[1]
                labels = keyed(to_device(labels, runner.device))
                outputs = keyed(runner.forward(images, opts.predict_fn))
                _score_batch(matrices, bins, opts.temperature, batch_index, outputs, labels)
                num_images += first_of(labels).shape[0]
    finally:
        batches.close()
    if _is_distributed():
        torch.distributed.all_reduce(num_images)
    return int(num_images)


def _score_batch(matrices: dict[Any, ConfusionMatrix], bins: CalibrationBins | None,
                 temperature: float, batch_index: int, outputs: dict[Any, Any],
                 labels: dict[Any, Any]) -> None:
    """Count one batch (``{head: tensor}``; ``{None: tensor}`` for one head) in each head's
    matrix, and the single head's in ``bins``."""
    def expected(what: str) -> str:
        return f"one {what}" if list(matrices) == [None] else \
            f"a dict with the heads {sorted(matrices)}"

    def got(given: dict[Any, Any], what: str) -> str:
        return f"one {what}" if list(given) == [None] else str(sorted(given))

    if set(labels) != set(matrices):
        raise ValueError(f"batch {batch_index}: labels must be {expected('label map')}, got "
                         f"{got(labels, 'label map')}")
    if not set(matrices) <= set(outputs):
        raise ValueError(f"the model must return {expected('tensor')}, got "
                         f"{got(outputs, 'tensor')}")
    for head, matrix in matrices.items():
        logits, label = outputs[head], labels[head]
        where = "" if head is None else f"head {head!r}: "
        if logits.shape[0] != label.shape[0] or logits.shape[-2:] != label.shape[-2:]:
            raise ValueError(f"{where}model output {tuple(logits.shape)} does not cover labels "
                             f"{tuple(label.shape)}: logits must be N×C×H×W at the label size")
        if logits.shape[1] != matrix.num_classes:
            raise ValueError(f"{where}model outputs {logits.shape[1]} classes, evaluation "
                             f"expects {matrix.num_classes}")
        try:
            matrix.update(label, logits.argmax(1))
        except ValueError as e:  # bad label values: say where they are
            raise BatchError(batch_index, f"{where}{e}") from None
    if bins is not None:
        bins.update(labels[None], (outputs[None].float() / temperature).softmax(1))


class _WithTransform(Dataset):
    """A view of a dataset with a transform applied to its raw samples."""

    def __init__(self, dataset: Any, transform: Callable[[Any, Any], Any]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.transform(*self.dataset[index])


def _describe_checkpoint(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    model = ckpt["model"]
    return {
        "path": ckpt.get("path"),
        "arch": model["arch"],
        "build_kwargs": model["build_kwargs"],
        "input_convention": model["input_convention"].get("name"),
        "iteration": ckpt.get("iteration"),
        "epoch": ckpt.get("epoch"),
        "recipe": (ckpt.get("recipe") or {}).get("name"),
    }


@dataclass(frozen=True)
class CheckpointEvalOptions:
    """How :func:`evaluate_checkpoint` reads the data and runs the model.

    Attributes:
        device: where to run.
        batch_size: images per batch; 1 (default) evaluates each whole image exactly, more pad
            a batch to its largest image (padded pixels are not scored).
        num_workers: DataLoader workers.
        precision: "auto", "fp32", "bf16" or "fp16"; None (default): :func:`training_precision`,
            so that the scores repeat those training logged. Reported as ``precision``.
        predict_fn: ``predict_fn(model, images) -> logits`` (sliding window, TTA).
        limit: score only the first ``limit`` images.
        progress: show a progress bar.
        calibration: also report calibration, at the checkpoint's temperature.
        coverages: fractions of the most confident pixels to score (with ``calibration``).
    """

    device: str | torch.device = "cpu"
    batch_size: int = 1
    num_workers: int = 0
    precision: str | None = None
    predict_fn: PredictFn | None = None
    limit: int | None = None
    progress: bool = False
    calibration: bool = False
    coverages: Sequence[float] = DEFAULT_COVERAGES


def evaluate_checkpoint(checkpoint: PathLike | Mapping[str, Any],
                        dataset: Mapping[str, Any] | Dataset,
                        options: CheckpointEvalOptions | None = None,
                        **fields: Any) -> dict[str, Any]:
    """Rebuild the model a checkpoint describes and score it on a dataset.

    Args:
        checkpoint: checkpoint path (or a dict from :func:`fcnseg.checkpoint.load_checkpoint`).
        dataset: a spec for :func:`fcnseg.data.build_dataset` (``{"name": "voc", "root":
            "data/VOCdevkit", "split": "val"}``; without ``split``, the val split, as ``fcnseg
            evaluate`` scores), or a dataset object (without a transform it gets
            :func:`~fcnseg.data.transforms.build_eval_transform`); raw pixels either way.
        options: how (:class:`CheckpointEvalOptions`); keyword ``fields`` (``device="cuda",
            batch_size=4``) replace its fields.

    Returns the :func:`evaluate_model` result plus ``class_names``, ``pixels`` (ground-truth
    pixels per class), ``checkpoint`` and ``dataset`` descriptions (``split``: the one scored),
    ``precision``, ``optimizations`` (what :func:`fcnseg.models.optimize` did), ``seconds`` and
    ``images_per_s``. A model with several heads is scored per head (``result["heads"]``, the
    first head's repeated at the top level, no calibration). A dataset whose class count
    differs from the checkpoint's is a ValueError.
    """
    opts = replace(options or CheckpointEvalOptions(), **fields)
    ckpt = as_checkpoint(checkpoint)
    precision = opts.precision if opts.precision is not None else training_precision(ckpt)
    runner = InferenceRunner(build_model_from_checkpoint(ckpt), device=opts.device,
                             precision=precision)
    data, source, described, match = _eval_data(dataset, ckpt, opts.limit, runner.model)
    head_classes = {str(h): list(n) for h, n in (ckpt["classes"].get("heads") or {}).items()}
    scoring = _scoring(ckpt, source, runner, opts, match)
    ignore_index = scoring.ignore_index
    loader = DataLoader(data, batch_size=opts.batch_size, shuffle=False,
                        num_workers=opts.num_workers, pin_memory=runner.device.type == "cuda",
                        collate_fn=partial(collate_segmentation, ignore_index=ignore_index,
                                           fill=getattr(source, "pad_values", None)))
    start = time.perf_counter()
    try:
        result = evaluate_model(runner.model, loader, scoring)
    except BatchError as e:
        if opts.batch_size == 1 and hasattr(source, "name"):  # batch i is sample i: its file
            raise ValueError(f"sample {source.name(e.batch_index)}: {e.problem}") from None
        raise
    seconds = time.perf_counter() - start
    if head_classes:
        result = _first_head_on_top(result, head_classes)
    result.update(
        class_names=list(ckpt["classes"]["names"]),
        pixels=[int(v) for v in np.asarray(result["confusion"]).sum(axis=1)],
        checkpoint=_describe_checkpoint(ckpt), dataset=described, ignore_index=ignore_index,
        excluded_images=list(getattr(source, "excluded_ids", ())),
        precision=runner.reported_precision, optimizations=runner.optimizations,
        seconds=round(seconds, 3),
        **({"calibration_skipped": skipped}
           if opts.calibration and (skipped := calibration_skipped(ckpt)) else {}),
        images_per_s=round(result["num_images"] / seconds, 3) if seconds > 0 else None)
    return result


def training_precision(ckpt: Mapping[str, Any]) -> str:
    """The precision a checkpoint's training validated at (its recipe's, fp32 without one):
    what ``fcnseg evaluate`` runs at unless told otherwise, to repeat the scores logged."""
    recipe = upgrade_recipe(dict(ckpt.get("recipe") or {}))
    return str(recipe.get("precision") or "fp32")


def _scoring(ckpt: Mapping[str, Any], source: Any, runner: InferenceRunner,
             opts: CheckpointEvalOptions, match: ClassMatch) -> EvalOptions:
    """What to score: the checkpoint's classes (per head), the dataset's ignore value and
    excluded classes, calibration (one head only) at the checkpoint's temperature."""
    heads = ckpt["classes"].get("heads") or {}
    return EvalOptions(
        num_classes=({str(h): len(n) for h, n in heads.items()} if heads
                     else len(ckpt["classes"]["names"])),
        ignore_index=int(getattr(source, "ignore_index", ckpt["classes"]["ignore_index"])),
        device=runner.device, precision=runner.precision, predict_fn=opts.predict_fn,
        progress=opts.progress,
        calibration=opts.calibration and not heads and calibration_skipped(ckpt) is None,
        coverages=opts.coverages, temperature=float(ckpt.get("temperature", 1.0)),
        exclude_classes=match.exclusions(getattr(source, "eval_exclude_classes", ())))


def calibration_skipped(ckpt: Mapping[str, Any]) -> str | None:
    """Why the calibration of a model cannot be measured (one line), or None when it can: a
    model exported with labels only gives no probabilities."""
    if labels_only(ckpt):
        return (f"calibration skipped: {ckpt.get('path', 'the model')} was exported with labels "
                f"only (--labels-out), so it gives no probabilities; evaluate the checkpoint "
                f"or an export without --labels-out for them")
    return None


def _eval_data(dataset: Mapping[str, Any] | Dataset, ckpt: Mapping[str, Any],
               limit: int | None, model: nn.Module | None = None,
               ) -> tuple[Any, Any, dict[str, Any], ClassMatch]:
    """The data to score (transformed, in the checkpoint's class indices, cut to ``limit``),
    the dataset it comes from, its description and how its classes match the checkpoint's."""
    input_names = tuple(getattr(model, "input_names", ("color",)))
    transform = build_eval_transform()
    if isinstance(dataset, Mapping):
        dataset = spec_for_inputs(dataset, input_names)
        described: dict[str, Any] = {**dataset, "split": eval_split(dict(dataset))}
        source = data = build_dataset(dict(dataset), split=described["split"],
                                      transform=transform)
        built = True  # so the model's band statistics may be given to it
    else:
        described = {"repr": repr(dataset), "split": getattr(dataset, "split", None)}
        source = data = dataset
        built = False
        if getattr(dataset, "transform", None) is None:
            data = _WithTransform(dataset, transform)
    # the folder it read (absolute) and its year (VOC2011 and VOC2012 may lie under one root)
    folder = next((getattr(source, a) for a in ("dir", "voc_dir", "root")
                   if isinstance(getattr(source, a, None), str | os.PathLike)), None)
    if folder is not None:
        described["folder"] = str(Path(folder).absolute())
    if getattr(source, "year", None) is not None:
        described["year"] = str(source.year)
    where = described.get("root") or described.get("name", described.get("repr"))
    fit_to_model(source, ckpt["model"]["input_convention"], str(where),
                 str(ckpt.get("path", "<checkpoint>")), own=built, split=described["split"],
                 input_names=input_names)
    data_classes = [str(c) for c in getattr(source, "classes", ())]
    described["classes"] = data_classes or None
    match = match_classes(data_classes, ckpt["classes"]["names"], dataset=str(where),
                          model=str(ckpt.get("path", "the checkpoint")))
    if match.lookup is not None:
        data = RelabeledDataset(data, match)
        described["classes_matched_by_name"] = match.note
    if limit is not None:  # num_images: those scored, of the split's images_in_split
        described["images_in_split"] = len(data)
        data = Subset(data, range(min(int(limit), len(data))))
    described["num_images"] = len(data)
    return data, source, described, match


def data_summary(described: Mapping[str, Any]) -> str:
    """``voc 2012 val at /data/VOCdevkit/VOC2012``: what a report's ``dataset`` scored."""
    words = [str(described.get("name") or described.get("repr"))]
    words += [str(described[k]) for k in ("year", "split") if described.get(k)]
    folder = described.get("folder")
    return " ".join(words) + (f" at {folder}" if folder else "")


def _first_head_on_top(result: dict[str, Any],
                       head_classes: Mapping[str, list[str]]) -> dict[str, Any]:
    """A multi-head result with each head's ``class_names`` and ``pixels``, and the first head's
    scores also at the top level, where single-head reports read them."""
    for head, head_scores in result["heads"].items():
        head_scores["class_names"] = list(head_classes[head])
        head_scores["pixels"] = [int(v)
                                 for v in np.asarray(head_scores["confusion"]).sum(axis=1)]
    return {**first_of(result["heads"]), **result}


def _report_json(report: dict[str, Any]) -> str:
    """Indented JSON, except that each confusion-matrix row stays on one line (a 21-class
    matrix would otherwise take 441 lines)."""
    marker = "@confusion-rows@"
    rows = report["confusion"]
    text = json.dumps({**report, "confusion": marker}, indent=2)
    body = ",\n".join("    " + json.dumps(row) for row in rows)
    return text.replace(json.dumps(marker), "[\n" + body + "\n  ]" if rows else "[]") + "\n"


def _names_for(result: Mapping[str, Any], class_names: Sequence[str] | None) -> list[str]:
    n = len(result["iu"])
    names = list(class_names if class_names is not None else result.get("class_names") or [])
    return names if len(names) == n else [str(i) for i in range(n)]


def format_report(result: Mapping[str, Any], class_names: Sequence[str] | None = None) -> str:
    """The four metrics and a per-class table (IU, accuracy, ground-truth pixels) as text."""

    def pct(v: float) -> str:
        return "   n/a" if v is None or math.isnan(v) else f"{100 * v:6.2f}"

    names = _names_for(result, class_names)
    pixels = result.get("pixels") or np.asarray(result["confusion"]).sum(axis=1).tolist()
    width = max([len("class")] + [len(n) for n in names])
    lines = [
        "  ".join(f"{k} {pct(result[k]).strip()}" for k in METRIC_NAMES) + "   (percent)",
        "",
        f"{'class':<{width}}  {'IU':>6}  {'acc':>6}  {'pixels':>12}",
    ]
    excluded = set(result.get("excluded_classes") or ())
    for k, (name, iu, acc, px) in enumerate(
            zip(names, result["iu"], result["acc"], pixels, strict=True)):
        mark = "  (excluded from the means)" if k in excluded else ""
        lines.append(f"{name:<{width}}  {pct(iu)}  {pct(acc)}  {int(px):>12d}{mark}")
    return "\n".join(lines)


def format_calibration(calibration: Mapping[str, Any]) -> str:
    """One paragraph on calibration: ECE, accuracy against mean confidence, and the mean IU
    of the most confident pixels (an :func:`evaluate_model` ``calibration`` entry)."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"

    def confidence(doubt: float | None) -> str:  # 0.997 as it is; 1 - 3.6e-12, not 1.00000
        if doubt is None or not math.isfinite(doubt):
            return "confidence n/a"
        if doubt >= 1:  # the least confident level, which has no lower bound
            return "down to the least confident"
        return f"confidence ≥ {1 - doubt:.3g}" if doubt >= 1e-3 else \
            f"confidence ≥ 1 - {doubt:.2g}"

    temperature = calibration.get("temperature", 1.0)
    lines = [f"calibration over {calibration['pixels']:,} pixels"
             + (f" (temperature {temperature:.3g})" if temperature != 1.0 else "")
             + f": expected calibration error {pct(calibration['ece'])}% "
             f"({calibration['num_bins']} bins); accuracy {pct(calibration['accuracy'])}% at "
             f"mean confidence {pct(calibration['mean_confidence'])}%"]
    coverage = calibration.get("coverage", [])
    if coverage and calibration.get("confidence_levels") == 1:
        # Every pixel at one confidence (an untrained model): there is no most confident part.
        asked = ", ".join(f"{100 * c['fraction']:.0f}%" for c in coverage)
        lines.append(f"  most confident {asked} of pixels: not told apart, as every pixel has "
                     f"about the same confidence; their scores are those of all pixels")
        coverage = []
    for c in coverage:
        asked, took = 100 * c["fraction"], 100 * c["pixels_fraction"]
        # Confidence levels are taken whole: a row far from its fraction is named by its own.
        which = (f"{took:.2f}% of pixels ({asked:.0f}% asked, whole confidence levels"
                 if abs(took - asked) >= 1 else
                 f"{asked:.0f}% of pixels (took {pct(c['pixels_fraction'])}%")
        lines.append(f"  most confident {which}, {confidence(c['max_doubt'])}): "
                     f"mean IU {pct(c['mean_iu'])}"
                     f"{_classes_note(c, calibration)}, pixel acc {pct(c['pixel_acc'])}")
    return "\n".join(lines)


def _classes_note(coverage: Mapping[str, Any], calibration: Mapping[str, Any]) -> str:
    """`` over 3 of 4 classes`` when the confident pixels' ground truth holds fewer classes
    than all pixels' (their mean IU averages those only); ``""`` otherwise or when unknown."""
    shown, most = coverage.get("mean_iu_classes"), calibration.get("mean_iu_classes")
    if not isinstance(shown, int) or not isinstance(most, int) or shown >= most:
        return ""
    return f" over {shown} of {most} classes"


def plot_confusion(confusion: Any, class_names: Sequence[str], path: PathLike, *,
                   title: str | None = None) -> Path | None:
    """Save a row-normalised confusion matrix (rows = ground truth) as a PNG.

    Returns the path, or None when matplotlib (the ``viz`` extra) is not installed.
    """
    try:  # matplotlib is an optional extra (fcnseg[viz]): imported only when plotting
        import matplotlib

        matplotlib.use("Agg")  # no display needed; must precede pyplot's import
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    counts = np.asarray(confusion, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(class_names)
    size = min(4.0 + 0.35 * n, 16.0)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    try:
        image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n), labels=list(class_names), rotation=90)
        ax.set_yticks(range(n), labels=list(class_names))
        ax.set_xlabel("predicted")
        ax.set_ylabel("ground truth")
        ax.set_title(title or "confusion matrix (each row sums to 1)")
        if n <= 25:  # cell values stay legible up to about VOC's 21 classes
            for i, j in zip(*np.nonzero(counts), strict=True):
                v = normalised[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.5 else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def write_report(out_dir: PathLike, result: Mapping[str, Any],
                 class_names: Sequence[str] | None = None) -> dict[str, Path | None]:
    """Write ``report.json`` and ``confusion.png`` into ``out_dir``, and ``reliability.png``
    when ``result`` holds a ``calibration`` entry.

    ``report.json`` holds the four metrics, a per-class list (name, IU, accuracy, pixels), the
    confusion matrix and whatever else ``result`` describes (checkpoint, dataset, timing,
    calibration); undefined scores are written as ``null``. The confusion plot is skipped
    (``None`` in the returned dict) when matplotlib is not installed; the reliability diagram
    needs only Pillow.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = _names_for(result, class_names)
    confusion = np.asarray(result["confusion"], dtype=np.int64)
    pixels = confusion.sum(axis=1)
    report = {
        "metrics": {k: result[k] for k in METRIC_NAMES},
        "per_class": [
            {"class": name, "iu": iu, "acc": acc, "pixels": int(px)}
            for name, iu, acc, px in zip(names, result["iu"], result["acc"], pixels, strict=True)
        ],
        "class_names": names,
        "confusion": confusion.tolist(),
    }
    skip = set(report) | set(METRIC_NAMES) | {"iu", "acc", "pixels"}
    report.update({k: v for k, v in result.items() if k not in skip})
    report_path = out / "report.json"
    with atomic_write(report_path, "w") as f:
        f.write(_report_json(json_safe(report)))
    plot_path = plot_confusion(confusion, names, out / "confusion.png")
    written: dict[str, Path | None] = {"report": report_path, "confusion_plot": plot_path}
    if result.get("calibration"):
        written["reliability_plot"] = out / "reliability.png"
        save_png(written["reliability_plot"], reliability_diagram(result["calibration"]))
    return written
