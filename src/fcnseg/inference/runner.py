"""This is the one way Segmenter, evaluation, calibration and benchmarks run a model.
It runs on its device, fast paths on, in inference mode, under autocast, channels-last if faster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from fcnseg.inference.sliding import PredictFn, forward_logits
from fcnseg.models.fastpath import optimize
from fcnseg.models.preprocess import Preprocess, raw_pixel_model
from fcnseg.utils.batches import to_device
from fcnseg.utils.hardware import default_channels_last, resolve_device, resolve_precision
from fcnseg.utils.precision import autocast


class InferenceRunner:
    """A model ready to predict.

    Args:
        model: a segmentation model (or an exported one, with a ``runtime`` attribute).
        device: where to run (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``).
        precision: ``"auto"`` (:func:`fcnseg.utils.hardware.auto_precision`), ``"fp32"``,
            ``"bf16"`` or ``"fp16"`` (autocast); ``"fp32"`` for an export (its own precision).
        channels_last: run channels-last; None decides by device and precision
            (:func:`fcnseg.utils.hardware.default_channels_last`), never for an export nor
            an unprepared model.
        prepare: put the model in its fast inference set-up on the device
            (:func:`fcnseg.models.optimize`); False runs it as it is, where it is.
        raw_pixels: the inputs are raw pixels (a bare network runs behind its convention's
            preprocessing); False: normalised already (a model with its own is refused).
    """

    def __init__(self, model: nn.Module, *, device: str | torch.device = "cpu",
                 precision: str | None = "auto", channels_last: bool | None = None,
                 prepare: bool = True, raw_pixels: bool = True) -> None:
        if raw_pixels:
            model = raw_pixel_model(model)
        elif isinstance(getattr(model, "preprocess", None), Preprocess):
            raise ValueError("raw_pixels=False: the model normalises its input itself (it has "
                             "its preprocessing), so its input must be raw pixels; give it a "
                             "bare network (preprocess=False) for normalised input")
        self.device = resolve_device(device)
        #: The runtime of an exported model (``"onnxruntime"``, ``"torchscript"``), else None.
        self.runtime: str | None = getattr(model, "runtime", None)
        #: The precision the model runs in: "fp32", "bf16" or "fp16" ("auto" resolved).
        self.precision = "fp32" if self.runtime else resolve_precision(precision, self.device)
        if channels_last is None:
            channels_last = (prepare and self.runtime is None
                             and default_channels_last(self.device, self.precision))
        self.channels_last = bool(channels_last)
        self.model = (optimize(model, "inference", device=self.device,
                               channels_last=self.channels_last) if prepare else model)

    @property
    def reported_precision(self) -> str:
        """The precision to report: an export's own (``int8`` when quantized), else this."""
        return getattr(self.model, "precision", self.precision) if self.runtime else \
            self.precision

    @property
    def optimizations(self) -> list[str]:
        """What :func:`fcnseg.models.optimize` (and the export) did to the model."""
        return list(getattr(self.model, "optimizations", []))

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Eval and inference mode for a run of batches; the model's mode is restored after."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.model.train(was_training)

    def forward(self, x: Any, predict_fn: PredictFn | None = None,
                model: nn.Module | None = None) -> Any:
        """``predict_fn(model, x)`` (default :func:`~fcnseg.inference.sliding.forward_logits`) of
        a batch (or ``{modality: tensor}``) on the device under autocast, by this runner's
        model unless ``model`` (e.g. compiled) is given. Call it inside :meth:`session`."""
        x = to_device(x, self.device, channels_last=self.channels_last)
        with autocast(self.device, self.precision):
            return (predict_fn or forward_logits)(self.model if model is None else model, x)

    def __call__(self, x: Any, predict_fn: PredictFn | None = None) -> Any:
        """:meth:`forward` of one batch in its own :meth:`session`."""
        with self.session():
            return self.forward(x, predict_fn)
