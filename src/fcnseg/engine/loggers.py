"""A run's records can go elsewhere besides ``metrics.jsonl`` (``train.loggers``):
``tensorboard`` (scalars, per-class IU and the validation previews made here), ``csv``
(``metrics.csv``, one row per record) and ``mlflow`` (the optional extra ``fcnseg[mlflow]``)."""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.data.rasters import display_rgb
from fcnseg.inference.runner import InferenceRunner
from fcnseg.utils.files import atomic_write

#: The columns of metrics.csv before one ``iu_<class>`` column per class.
CSV_COLUMNS = ("iteration", "epoch", "split", "loss", "lr", "images_per_s", "pixel_acc",
               "mean_acc", "mean_iu", "fw_iu")


def _scalars(record: Mapping[str, Any],
             class_name: Callable[[str], str] = str) -> dict[str, float]:
    """The numbers of a record as ``<split>/<key>`` (``train/loss``, ``val/mean_iu`` ...) and
    ``val_iu/<class>``; an event's (the time budget's plan) as ``<event>/<key>``."""
    prefix = record.get("event") or record.get("split", "train")
    values = {f"{prefix}/{k}": float(v) for k, v in record.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)
              and k not in ("iteration", "epoch")}
    for name, iu in (record.get("class_iu") or {}).items():
        if iu is not None:
            values[f"val_iu/{class_name(name)}"] = float(iu)
    return values


#: How the names of the TensorBoard event files fcnseg writes begin.
EVENT_FILE_PREFIX = "events.out.tfevents."


class TensorBoardLog:
    """TensorBoard events in ``folder``: every number of every record, and validation
    previews. Events from ``purge_step`` on (about to be redone by a resumed run) are dropped;
    ``replay``: records at ``purge_step`` that are not redone, written again."""

    def __init__(self, folder: Path, purge_step: int, fresh: bool = False,
                 replay: Sequence[Mapping[str, Any]] = ()) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional: fcnseg[tensorboard]

        if fresh:  # new curves, as a new metrics.jsonl: drop an earlier attempt's events
            for stale in folder.glob(f"{EVENT_FILE_PREFIX}*"):
                if stale.is_file():
                    stale.unlink()
        self.writer = SummaryWriter(str(folder), purge_step=purge_step)
        for record in replay:
            self.write(record)

    def write(self, record: Mapping[str, Any]) -> None:
        for key, value in _scalars(record).items():
            self.writer.add_scalar(key, value, record["iteration"])

    def images(self, iteration: int, strips: Sequence[Any]) -> None:
        """Validation previews (image | truth | prediction)."""
        for k, strip in enumerate(strips):
            self.writer.add_image(f"val_predictions/{k}", strip, iteration, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def _row(record: Mapping[str, Any], classes: Sequence[str]) -> list[Any]:
    per_class = record.get("class_iu") or {}
    split = record.get("split", "train" if "loss" in record else "")
    return ([split if c == "split" else record.get(c, "") for c in CSV_COLUMNS]
            + [per_class.get(name, "") for name in classes])


class CsvLog:
    """``metrics.csv``: a row per log step and per evaluation; a resumed run rewrites it from
    the records kept (those of ``metrics.jsonl`` up to the checkpoint)."""

    def __init__(self, path: Path, classes: Sequence[str], kept: Sequence[Mapping[str, Any]]):
        self.path, self.classes = path, list(classes)
        header = [*CSV_COLUMNS, *(f"iu_{name}" for name in self.classes)]
        with atomic_write(path, "w") as f:
            csv.writer(f).writerows([header, *(_row(record, self.classes) for record in kept
                                               if "event" not in record)])
        self.file = path.open("a", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file)

    def write(self, record: Mapping[str, Any]) -> None:
        if "event" in record:
            return  # time budget, divergence: in metrics.jsonl only
        self.writer.writerow(_row(record, self.classes))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class MlflowLog:
    """An MLflow run: the recipe as parameters once, then every number of every record as a
    metric at its iteration. The tracking URI is ``MLFLOW_TRACKING_URI`` or the run folder's
    ``mlruns``; a resumed run continues its MLflow run (id kept in ``mlflow_run_id``).
    ``redo_from``: the first step a resumed run redoes (None for a new run); MLflow cannot drop
    points, so those the run already holds are not logged again. A store that cannot be used
    raises :func:`tracking_store_error`'s ValueError."""

    def __init__(self, out: Path, recipe: Mapping[str, Any], redo_from: int | None) -> None:
        self.mlflow = mlflow = _import_mlflow()
        users = os.environ.get("MLFLOW_TRACKING_URI")
        self.uri = users or (out / "mlruns").resolve().as_uri()
        # fcnseg's own store is a file store, which MLflow 3.x refuses unless
        # MLFLOW_ALLOW_FILE_STORE is set: allowed around fcnseg's own calls only
        self.allowed = {} if users else {"MLFLOW_ALLOW_FILE_STORE": "true"}
        self.started = False
        try:
            with _environ(self.allowed):
                if not users:
                    mlflow.set_tracking_uri(self.uri)
                    # which sets MLFLOW_TRACKING_URI too: the next run in this process would
                    # take it for the user's and log into this run's folder
                    os.environ.pop("MLFLOW_TRACKING_URI", None)
                self.held = self._start(out, recipe, redo_from)
        except Exception as e:
            if self.started:
                with contextlib.suppress(Exception), _environ(self.allowed):
                    mlflow.end_run()
            raise tracking_store_error(self.uri, e, users is None) from None

    def _start(self, out: Path, recipe: Mapping[str, Any],
               redo_from: int | None) -> set[tuple[str, int]]:
        """Start (or continue) the run; the points a resumed run already holds from
        ``redo_from`` on."""
        id_file = out / "mlflow_run_id"
        resume = redo_from is not None
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else None
        run = self.mlflow.start_run(run_id=run_id, run_name=out.name)
        self.started = True
        id_file.write_text(run.info.run_id)
        if run_id is None:
            self.mlflow.log_params({k: str(v)[:500] for k, v in _flat(recipe).items()})
            return set()
        client = self.mlflow.MlflowClient()
        return {(key, int(point.step)) for key in client.get_run(run_id).data.metrics
                for point in client.get_metric_history(run_id, key) if point.step >= redo_from}

    def write(self, record: Mapping[str, Any]) -> None:
        step = int(record.get("iteration", 0))
        values = {k: v for k, v in _scalars(record, _metric_name).items()
                  if (k, step) not in self.held}
        if values:
            with _environ(self.allowed):
                self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        with _environ(self.allowed):
            self.mlflow.end_run()


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in the environment for the block, where not set already (the user's wins)."""
    added = [key for key in values if key not in os.environ]
    os.environ.update({key: values[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def tracking_store_error(uri: str, error: BaseException, own: bool = False) -> ValueError:
    """The one line that says the MLflow tracking store ``uri`` cannot be used (``error``, in
    short) and what to do; ``own``: the store is the run folder's ``mlruns``."""
    text = str(error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    refused = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        reason = "this MLflow refuses file stores unless MLFLOW_ALLOW_FILE_STORE=true"
    elif "failed with exception" in text and refused:  # a server MLflow could not reach
        reason = f"no answer ({refused.group(1).strip()})"
    elif "unsupported URI" in text:  # e.g. sqlite: with mlflow-skinny, which has no SQLAlchemy
        reason = (f"this MLflow cannot open {uri.split(':', 1)[0]}: stores (mlflow-skinny has "
                  f"no database support: pip install mlflow)")
    if len(reason) > 200:
        reason = reason[:199] + "…"
    where = f"the run folder's store {uri}" if own else f"MLFLOW_TRACKING_URI={uri}"
    return ValueError(
        f"train.loggers: mlflow cannot use {where}: {reason}; set MLFLOW_TRACKING_URI to a "
        f"running tracking server (http://HOST:5000) or to sqlite:///PATH/mlflow.db (with "
        f"pip install mlflow), or leave mlflow out of train.loggers")


def _metric_name(name: str) -> str:
    """MLflow allows letters, digits and ``_-. /`` in names."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in str(name))


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_loggers(names: Sequence[str]) -> None:
    """Raise the one-line error of a logger in ``names`` that cannot run here, before any
    logger writes a file (TensorBoard, when not installed, is left out quietly instead)."""
    if "mlflow" in names:
        _import_mlflow()


#: The retries of the first request to a tracking server: MLflow's own (7, with backoff) wait
#: about 4 minutes on a server that is down before they give up.
_FIRST_REQUEST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def check_tracking_store(names: Sequence[str]) -> None:
    """Where ``names`` holds mlflow and ``MLFLOW_TRACKING_URI`` is set: raise
    :func:`tracking_store_error` when that store cannot be read, early and within seconds for
    a server that does not answer."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if "mlflow" not in names or not uri:
        return
    mlflow = _import_mlflow()
    try:
        with _environ(_FIRST_REQUEST):
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as e:
        raise tracking_store_error(uri, e) from None


def _import_mlflow() -> Any:
    try:
        import mlflow  # optional: fcnseg[mlflow]
    except ImportError:
        raise ValueError("train.loggers: mlflow is not installed; pip install 'fcnseg[mlflow]' "
                         "or leave it out of the list") from None
    return mlflow


def open_loggers(names: Sequence[str], out: Path, *, classes: Sequence[str],
                 kept: Sequence[Mapping[str, Any]], recipe: Mapping[str, Any],
                 resume_at: int | None, eval_pending: bool = False) -> list[Any]:
    """The loggers named in ``names``; TensorBoard only where it is installed. ``resume_at``:
    the iteration a resumed run continues from (None for a new run); ``eval_pending``: its
    evaluation at ``resume_at`` is redone (``kept`` holds no record of it)."""
    # A resumed run redoes the steps past its checkpoint, and the checkpoint's own when its
    # evaluation is pending: every logger keeps one point per step of those.
    redo_from = None if resume_at is None else resume_at + (0 if eval_pending else 1)
    loggers: list[Any] = []
    try:
        # MLflow first: its store may refuse before TensorBoard and metrics.csv touch files
        if "mlflow" in names:
            loggers.append(MlflowLog(out, recipe, redo_from))
        if "tensorboard" in names:
            # TensorBoard drops every event from the purge step on: the records kept at that
            # step (the training record of a redone evaluation's step) are written again
            replay = [r for r in kept if redo_from is not None and r.get("iteration") == redo_from]
            with contextlib.suppress(ImportError):  # tensorboard not installed
                loggers.append(TensorBoardLog(out / "tensorboard",
                                              1 if redo_from is None else redo_from,
                                              fresh=resume_at is None, replay=replay))
        if "csv" in names:
            loggers.append(CsvLog(out / "metrics.csv", classes, kept))
    except BaseException:
        for logger in loggers:
            with contextlib.suppress(Exception):
                logger.close()
        raise
    return loggers


#: Pixels of white between the panels of a validation preview.
PREVIEW_GAP = 2


def prediction_previews(model: nn.Module, dataset: Any, palette: np.ndarray, *,
                        count: int = 4, device: torch.device | None = None) -> list[np.ndarray]:
    """Up to ``count`` validation samples as H×(3W+4)×3 uint8 strips: image | truth |
    prediction, :data:`PREVIEW_GAP` white columns apart, labels in the dataset's palette.
    Empty for data whose samples are not one image and one label map."""
    base, indices = dataset, list(range(len(dataset)))
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):  # a Subset
        base, indices = dataset.dataset, list(dataset.indices)
    load = getattr(base, "load", None)
    if load is None:
        return []
    colours = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    strips = []
    runner = InferenceRunner(model, device=device or "cpu", precision="fp32", prepare=False)
    with runner.session():
        for position, index in enumerate(indices[:count]):
            image, label = load(index)
            inputs = dataset[position][0]
            if not (isinstance(image, np.ndarray) and isinstance(label, np.ndarray)
                    and isinstance(inputs, torch.Tensor) and image.ndim == 3):
                return []
            scores = runner.forward(inputs.unsqueeze(0))
            if not isinstance(scores, torch.Tensor):
                return []
            pred = scores[0].argmax(0).cpu().numpy()
            h, w = label.shape
            pred = pred[:h, :w]
            picture = display_rgb(image, getattr(base, "bands", None),
                                  getattr(base, "rgb_bands", None))
            # truth and prediction share their colours: without a gap one runs into the other
            gap = np.full((h, PREVIEW_GAP, 3), 255, np.uint8)
            strips.append(np.concatenate([picture, gap, colours[label.clip(0, 255)], gap,
                                          colours[pred]], axis=1))
    return strips
