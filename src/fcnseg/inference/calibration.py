"""Uncertainty maps and temperature scaling (Guo et al., 2017) make probabilities honest.
The logits are divided by one T > 0 fitted on held-out pixels to minimise the negative
log-likelihood; every label stays. :func:`calibrate_checkpoint` writes T into a checkpoint
(``checkpoint["temperature"]``), which the :class:`~fcnseg.inference.Segmenter` applies."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from fcnseg.checkpoint import build_model_from_checkpoint, load_checkpoint, write_checkpoint
from fcnseg.data.band_images import fit_to_model
from fcnseg.data.build import build_dataset, eval_split
from fcnseg.data.collate import collate_segmentation
from fcnseg.data.modalities import spec_for_inputs
from fcnseg.data.transforms import build_eval_transform
from fcnseg.inference.class_match import ClassMatch, RelabeledDataset, match_classes
from fcnseg.inference.runner import InferenceRunner
from fcnseg.inference.sliding import forward_logits
from fcnseg.metrics import expected_calibration_error
from fcnseg.weightfiles.artifacts import artifact_kind

#: What ``uncertainty_maps`` can compute: the entropy, and 1 − the largest probability.
UNCERTAINTY_KINDS = ("entropy", "maxprob")

#: The smallest and largest temperature :func:`fit_temperature` returns.
TEMPERATURE_RANGE = (0.01, 100.0)
#: Pixels kept for fitting by default: 1e6 pixels × C float32 logits (84 MB for 21 classes).
DEFAULT_MAX_PIXELS = 1_000_000


#: Probabilities (C×rows×W) a map is computed from at a time: float64 temporaries of 8 MiB.
_STRIP_VALUES = 1 << 20


def _by_strips(per_pixel: Any, probs: np.ndarray) -> np.ndarray:
    """The H×W float32 map ``per_pixel`` gives of C×H×W ``probs``, a strip of rows at a time."""
    c, h, w = np.shape(probs)
    out, rows = np.empty((h, w), np.float32), max(1, _STRIP_VALUES // max(c * w, 1))
    for y in range(0, h, rows):
        out[y:y + rows] = per_pixel(probs[:, y:y + rows])
    return out


def entropy(probs: np.ndarray) -> np.ndarray:
    """Per-pixel entropy ``-Σ_c p_c log p_c`` in nats of C×H×W probabilities (0 to ``log C``)."""
    def of(strip: np.ndarray) -> np.ndarray:
        p = np.asarray(strip, dtype=np.float64)
        return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=0)  # 0·log 0 = 0
    return _by_strips(of, probs)


def maxprob_uncertainty(probs: np.ndarray) -> np.ndarray:
    """Per-pixel ``1 − max_c p_c`` of C×H×W probabilities (0 to ``1 − 1/C``)."""
    return _by_strips(lambda p: 1.0 - np.asarray(p, dtype=np.float32).max(axis=0), probs)


def uncertainty_maps(probs: np.ndarray, kinds: Sequence[str] = UNCERTAINTY_KINDS
                     ) -> dict[str, tuple[np.ndarray, float, str]]:
    """For each of ``kinds`` (:func:`entropy`, :func:`maxprob_uncertainty`), ``(H×W map, its
    largest possible value, a title)`` of C×H×W probabilities."""
    c = int(np.asarray(probs).shape[0])
    known = {"entropy": (entropy, math.log, "uncertainty: entropy (nats)"),
             "maxprob": (maxprob_uncertainty, lambda n: 1.0 - 1.0 / n,
                         "uncertainty: 1 - max probability")}
    if unknown := [kind for kind in kinds if kind not in known]:
        raise ValueError(f"unknown uncertainty {unknown[0]!r}; known: {UNCERTAINTY_KINDS}")
    return {kind: (known[kind][0](probs), known[kind][1](c) if c > 1 else 1.0, known[kind][2])
            for kind in kinds}


class TemperatureScaled(nn.Module):
    """A model whose logits are divided by ``temperature``: what an export holds when the
    checkpoint carries a fitted temperature."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        check_temperature(temperature)
        self.model = model
        self.temperature = float(temperature)
        for name in ("input_convention", "geometry", "arch", "num_classes"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_logits(self.model, x) / self.temperature


def check_temperature(temperature: float) -> None:
    """A ValueError unless ``temperature`` is a positive finite number (a model's T)."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")


@dataclass(frozen=True)
class TemperatureFit:
    """:func:`fit_temperature`'s temperature and mean NLL per pixel before (T = 1) and after."""

    temperature: float
    nll_before: float
    nll_after: float
    pixels: int


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *,
                    max_iter: int = 100) -> TemperatureFit:
    """The temperature T minimising the mean NLL of ``softmax(logits / T)`` of P×C ``logits``
    and P ``labels``: ``log T`` optimised by L-BFGS in float64 within ``TEMPERATURE_RANGE`` (on
    pixels all predicted right the NLL keeps falling as T goes to 0)."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"fit_temperature needs P×C logits and P labels, got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if labels.numel() == 0:
        raise ValueError("fit_temperature: no pixels to fit on (all ignored?)")
    z = logits.detach().double()
    y = labels.detach().long().to(z.device)
    log_t = torch.zeros((), dtype=torch.float64, device=z.device, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    low, high = (math.log(t) for t in TEMPERATURE_RANGE)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.clamp(low, high).exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    temperature = float(log_t.detach().clamp(low, high).exp())
    with torch.no_grad():
        before = float(F.cross_entropy(z, y))
        after = float(F.cross_entropy(z / temperature, y))
    if not math.isfinite(temperature) or after > before:  # never make it worse than T = 1
        temperature, after = 1.0, before
    return TemperatureFit(temperature, before, after, int(y.numel()))


def collect_logits(runner: InferenceRunner, loader: Any, *, ignore_index: int | None = 255,
                   max_pixels: int = DEFAULT_MAX_PIXELS, seed: int = 0,
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P×C float32 logits, P int64 labels)`` on the CPU of a seeded random sample of the
    scored pixels of ``runner`` over ``loader``'s ``(images, labels)``: at most
    ``ceil(max_pixels / N)`` of each of the N images, so memory stays bounded."""
    per_image = max(1, math.ceil(max_pixels / max(len(loader.dataset), 1)))
    gen = torch.Generator().manual_seed(seed)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    with runner.session():
        for images, labels in tqdm(loader, desc="calibrate", unit="batch",
                                   disable=not progress, leave=False):
            logits = runner.forward(images).float().cpu()
            if logits.shape[0] != labels.shape[0] or logits.shape[-2:] != labels.shape[-2:]:
                raise ValueError(f"model output {tuple(logits.shape)} does not cover labels "
                                 f"{tuple(labels.shape)}")
            kept += [_sample_pixels(z, y, ignore_index, per_image, gen)
                     for z, y in zip(logits, labels.long(), strict=True)]
    if not kept:
        raise ValueError("no images to calibrate on")
    logits = torch.cat([z for z, _ in kept])
    labels = torch.cat([y for _, y in kept])
    bad = (labels < 0) | (labels >= logits.shape[1])
    if bad.any():
        raise ValueError(f"label values outside [0, {logits.shape[1]}) that are not the ignore "
                         f"index ({ignore_index}): {sorted(set(labels[bad].tolist()))[:10]}")
    return logits, labels


def _sample_pixels(logits: torch.Tensor, label: torch.Tensor, ignore_index: int | None,
                   count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``count`` of an image's scored pixels, at random: their (P×C logits, P labels)."""
    flat_y = label.reshape(-1)
    flat_z = logits.reshape(logits.shape[0], -1)
    where = torch.nonzero(flat_y != ignore_index).squeeze(1) \
        if ignore_index is not None else torch.arange(flat_y.numel())
    if where.numel() > count:
        where = where[torch.randperm(where.numel(), generator=gen)[:count]]
    return flat_z[:, where].T.contiguous(), flat_y[where]


def save_with_temperature(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str],
                          temperature: float, info: Mapping[str, Any] | None = None) -> Path:
    """Write ``checkpoint`` with ``temperature`` (and ``info`` as ``calibration``) to ``out``
    (which may be ``checkpoint``) atomically, in the format of its name (:func:`output_format`)."""
    check_temperature(temperature)
    out = Path(out)
    fmt = output_format(out)
    ckpt = load_checkpoint(checkpoint)
    ckpt["temperature"] = float(temperature)
    ckpt["calibration"] = dict(info or {})
    if fmt == "safetensors":
        from fcnseg.checkpoint import save_checkpoint_safetensors

        return save_checkpoint_safetensors(out, ckpt)
    ckpt.pop("path", None)  # added on load; the file's own location is not stored
    ckpt.pop("source", None)  # likewise the pretrained files it was read from
    return write_checkpoint(out, ckpt)


#: Names of torch checkpoints (``.pth.tar`` is the PyTorch FCN port's).
TORCH_SUFFIXES = (".pt", ".pth", ".tar", ".ckpt", ".bin")


def output_format(path: str | os.PathLike[str]) -> str:
    """``"safetensors"`` or ``"torch"``, as a file name says (another is one line naming it)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in TORCH_SUFFIXES or not suffix:
        return "torch"
    raise ValueError(f"{path}: a checkpoint is written as .pt (torch) or .safetensors, not "
                     f"{suffix}; choose a name with one of those")


def refuse_exported(checkpoint: str | os.PathLike[str], kind: str | None = None) -> None:
    """One line when ``checkpoint`` is an exported model (of ``kind`` where known)."""
    kind = kind or artifact_kind(checkpoint)
    if kind is not None:
        shown = {"onnx": "ONNX", "torchscript": "TorchScript"}.get(kind, kind)
        raise ValueError(f"{checkpoint}: an exported {shown} model cannot be calibrated; "
                         f"calibrate the checkpoint (.pt) it was exported from, then export "
                         f"(or quantize) that again")


@dataclass(frozen=True)
class CalibrateOptions:
    """How :func:`calibrate_checkpoint` runs: on ``device`` in float32, ``batch_size`` images a
    batch read by ``num_workers`` workers, at most ``max_pixels`` pixels kept
    (:func:`collect_logits`, by ``seed``) of the first ``limit`` images (None: all)."""

    device: str | torch.device = "cpu"
    batch_size: int = 1
    num_workers: int = 0
    max_pixels: int = DEFAULT_MAX_PIXELS
    limit: int | None = None
    seed: int = 0
    progress: bool = False


def _fitting_data(ckpt: Mapping[str, Any], dataset: Mapping[str, Any], checkpoint: str,
                  model: nn.Module) -> tuple[Any, ClassMatch, dict[str, Any]]:
    """The dataset to fit on (of the model's modalities), its :class:`ClassMatch` and its spec;
    refused in one line where it cannot be the checkpoint's."""
    input_names = tuple(getattr(model, "input_names", ("color",)))
    dataset = spec_for_inputs(dataset, input_names)
    data = build_dataset(dict(dataset), split=eval_split(dict(dataset)),
                         transform=build_eval_transform())
    where = str(dataset.get("root") or dataset.get("name"))
    fit_to_model(data, ckpt["model"]["input_convention"], where, checkpoint, own=True,
                 split=eval_split(dict(dataset)), input_names=input_names)
    match = match_classes(list(getattr(data, "classes", ()) or ()), ckpt["classes"]["names"],
                          dataset=where, model=checkpoint)
    return data, match, dataset


def calibrate_checkpoint(checkpoint: str | os.PathLike[str], dataset: Mapping[str, Any],
                         out: str | os.PathLike[str], options: CalibrateOptions | None = None,
                         **fields: Any) -> dict[str, Any]:
    """Fit a temperature on a dataset (a :func:`fcnseg.data.build_dataset` spec, by default its
    val split) from the checkpoint's raw logits and write the checkpoint with it to ``out``,
    as ``options`` (or its ``fields`` as keywords) say. Returns the fit (``temperature``,
    ``nll_before``, ``nll_after``, ``pixels``), ``ece_before``, ``ece_after``, ``num_images``,
    the ``dataset`` spec and ``written_temperature`` (1 where the fit raises the ECE)."""
    opts = replace(options or CalibrateOptions(), **fields)
    if opts.max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {opts.max_pixels}")
    refuse_exported(checkpoint)
    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("artifact"):  # e.g. a Hub repository holding an export
        refuse_exported(checkpoint, str(ckpt["artifact"].get("kind")))
    model = build_model_from_checkpoint(ckpt)
    data, match, dataset = _fitting_data(ckpt, dataset, str(checkpoint), model)
    ignore_index = int(getattr(data, "ignore_index", ckpt["classes"]["ignore_index"]))
    fill = getattr(data, "pad_values", None)
    if match.lookup is not None:
        data = RelabeledDataset(data, match)
    if opts.limit is not None:
        data = Subset(data, range(min(int(opts.limit), len(data))))
    runner = InferenceRunner(model, device=opts.device, precision="fp32")
    loader = DataLoader(data, batch_size=opts.batch_size, shuffle=False,
                        num_workers=opts.num_workers,
                        collate_fn=partial(collate_segmentation, ignore_index=ignore_index,
                                           fill=fill))
    logits, labels = collect_logits(runner, loader, ignore_index=ignore_index,
                                    max_pixels=opts.max_pixels, seed=opts.seed,
                                    progress=opts.progress)
    fit = fit_temperature(logits, labels)

    def ece(t: float) -> float:
        conf, pred = (logits / t).softmax(1).max(1)
        return expected_calibration_error(conf.numpy(), (pred == labels).numpy())

    result: dict[str, Any] = {**asdict(fit), "ece_before": ece(1.0),
                              "ece_after": ece(fit.temperature), "num_images": len(data),
                              "dataset": {**dataset, "split": eval_split(dict(dataset))},
                              **({"classes_matched_by_name": match.note} if match.note else {})}
    # One that makes the calibration error worse on the pixels it was fitted on is not shipped.
    result["written_temperature"] = (fit.temperature if result["ece_after"]
                                     <= result["ece_before"] else 1.0)
    save_with_temperature(checkpoint, out, result["written_temperature"], result)
    return result
