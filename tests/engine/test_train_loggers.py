"""train.loggers: metrics.csv, per-class IU and validation previews in TensorBoard, MLflow."""

from __future__ import annotations

import csv
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from _train_helpers import tiny_recipe

from fcnseg.engine import load_config
from fcnseg.engine.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(loggers: list[str], iterations: int = 4) -> dict:
    return tiny_recipe(train={"iterations": iterations, "eval_every": 2, "log_every": 1,
                              "checkpoint_every": 2, "loggers": loggers})


def _csv(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_csv_holds_every_record_with_per_class_iu(tmp_path: Path) -> None:
    train(load_config(_recipe(["csv"])), out=tmp_path / "run")
    rows = _csv(tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["split"]) for r in rows] == \
        [(str(r["iteration"]), r.get("split", "train")) for r in records]
    val = [r for r in rows if r["split"] == "val"]
    val_records = [r for r in records if r.get("split") == "val"]
    assert len(val) == 2
    for row, record in zip(val, val_records, strict=True):
        assert float(row["mean_iu"]) == pytest.approx(record["mean_iu"])
        iu = [float(row[k]) for k in row if k.startswith("iu_") and row[k] != ""]
        assert iu and sum(iu) / len(iu) == pytest.approx(record["mean_iu"])
    assert not (tmp_path / "run" / "tensorboard").exists()  # not asked for


def test_a_resumed_run_continues_metrics_csv_without_repeating_rows(tmp_path: Path) -> None:
    train(load_config(_recipe(["csv"], iterations=4)), out=tmp_path / "run")
    train(load_config(_recipe(["csv"], iterations=6)), out=tmp_path / "run", resume=True)
    rows = [(r["iteration"], r["split"]) for r in _csv(tmp_path / "run")]
    assert rows == [(str(i), s) for i in range(1, 7)
                    for s in (("train", "val") if i % 2 == 0 else ("train",))]


def test_tensorboard_gets_per_class_iu_and_validation_previews(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(load_config(_recipe(["tensorboard"])), out=tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "val_iu/background" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("val_iu/background")] == [2, 4]
    images = events.Tags()["images"]
    assert sorted(images) == [f"val_predictions/{k}" for k in range(4)]  # 4 images
    picture = events.Images("val_predictions/0")[-1]
    assert (picture.width, picture.height) == (3 * 32 + 4, 32)  # image | truth | prediction


def test_mlflow_gets_the_recipe_and_every_number(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple] = []
    run = types.SimpleNamespace(info=types.SimpleNamespace(run_id="abc123"))
    fake = types.SimpleNamespace(
        set_tracking_uri=lambda uri: calls.append(("uri", uri)),
        start_run=lambda run_id=None, run_name=None: calls.append(("start", run_id)) or run,
        log_params=lambda params: calls.append(("params", params)),
        log_metrics=lambda values, step: calls.append(("metrics", step, values)),
        end_run=lambda: calls.append(("end",)))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    train(load_config(_recipe(["mlflow"])), out=tmp_path / "run")
    assert calls[0] == ("uri", (tmp_path / "run" / "mlruns").resolve().as_uri())
    assert calls[1] == ("start", None) and calls[-1] == ("end",)
    params = next(c[1] for c in calls if c[0] == "params")
    assert params["optim.lr"] == "0.05" and params["train.loggers"] == "['mlflow']"
    val = [c for c in calls if c[0] == "metrics" and "val/mean_iu" in c[2]]
    assert [c[1] for c in val] == [2, 4] and "val_iu/background" in val[0][2]
    assert (tmp_path / "run" / "mlflow_run_id").read_text() == "abc123"


def test_mlflow_missing_is_one_line_naming_the_field(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails
    with pytest.raises(ValueError, match=r"train.loggers: mlflow is not installed"):
        train(load_config(_recipe(["mlflow"])), out=tmp_path / "run")


def test_previews_keep_truth_and_prediction_apart_with_white_columns() -> None:
    from torch import nn

    from fcnseg.data import SyntheticSegmentation
    from fcnseg.data.transforms import build_eval_transform
    from fcnseg.engine.loggers import PREVIEW_GAP, prediction_previews

    class RawPixels(nn.Module):  # models take raw pixels
        def __init__(self, classes: int) -> None:
            super().__init__()
            self.score = nn.Conv2d(3, classes, 1)

        def forward(self, x):
            return self.score(x.float())

    dataset = SyntheticSegmentation(2, 24, seed=1, transform=build_eval_transform())
    model = RawPixels(dataset.num_classes).eval()
    [strip] = prediction_previews(model, dataset, dataset.palette, count=1)
    assert strip.shape == (24, 3 * 24 + 2 * PREVIEW_GAP, 3)
    for start in (24, 2 * 24 + PREVIEW_GAP):  # after the image, after the truth
        assert (strip[:, start:start + PREVIEW_GAP] == 255).all()


def test_a_missing_logger_fails_before_any_logger_file_is_written(tmp_path: Path,
                                                                   monkeypatch) -> None:
    pytest.importorskip("tensorboard")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails
    with pytest.raises(ValueError, match=r"train.loggers: mlflow is not installed"):
        train(load_config(_recipe(["tensorboard", "csv", "mlflow"])), out=tmp_path / "run")
    run = tmp_path / "run"
    assert not (run / "tensorboard").exists() and not (run / "metrics.csv").exists()


def _event_files(run: Path) -> list[Path]:
    return sorted((run / "tensorboard").glob("events.out.tfevents.*"))


def test_a_new_run_replaces_the_event_files_an_earlier_attempt_left(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    stale = run / "tensorboard" / "events.out.tfevents.1.old.1.0"
    stale.write_bytes(b"")
    other = run / "tensorboard" / "notes.txt"  # not fcnseg's: kept
    other.write_text("mine")
    train(load_config(_recipe(["tensorboard"], iterations=2)), out=run)
    assert not stale.exists() and other.exists()
    assert len(_event_files(run)) == 1


def test_a_resumed_run_keeps_the_event_files_it_continues(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    train(load_config(_recipe(["tensorboard"], iterations=2)), out=run)
    first = _event_files(run)
    train(load_config(_recipe(["tensorboard"], iterations=4)), out=run, resume=True)
    assert set(first) < set(_event_files(run))


def test_time_budget_figures_get_their_own_group_not_train() -> None:
    from fcnseg.engine.loggers import _scalars

    record = {"iteration": 2, "epoch": 0, "event": "time_budget", "iterations": 6,
              "step_s": 5.8, "eval_s": 2.8, "save_s": 3.4, "elapsed_s": 25.0, "budget_s": 60.0}
    assert sorted(_scalars(record)) == [f"time_budget/{k}" for k in
                                        ("budget_s", "elapsed_s", "eval_s", "iterations",
                                         "save_s", "step_s")]


def test_metrics_csv_leaves_out_the_time_budget_record_as_the_docs_say(tmp_path: Path) -> None:
    from fcnseg.engine.loggers import CsvLog

    log = CsvLog(tmp_path / "metrics.csv", ["background"], kept=[])
    log.write({"iteration": 2, "epoch": 0, "event": "time_budget", "iterations": 6})
    log.write({"iteration": 2, "epoch": 0, "loss": 1.0, "lr": 0.1})
    log.close()
    assert [r["split"] for r in _csv(tmp_path)] == ["train"]
    docs = (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    row = next(line for line in docs.splitlines() if line.startswith("| `metrics.csv`"))
    assert "time-budget" in row and "metrics.jsonl` only" in row


def test_a_resumed_run_redoing_an_evaluation_leaves_one_point_per_step(tmp_path: Path) -> None:
    # A run killed during its evaluation at iteration 2 left last.pt awaiting it (saved just
    # before it) and, in TensorBoard, whatever of the evaluation was written: the resumed run
    # redoes it and its point replaces the first.
    pytest.importorskip("tensorboard")
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(load_config(_recipe(["tensorboard"], iterations=2)), out=run)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt["state"]["eval_pending"] = True
    torch.save(ckpt, run / "last.pt")
    train(load_config(_recipe(["tensorboard"], iterations=4)), out=run, resume=True)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/mean_iu")] == [2, 4]
    assert [e.step for e in events.Scalars("val_iu/background")] == [2, 4]
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]


def _mlflow_holding(points: dict[str, list[tuple[int, float]]]) -> types.SimpleNamespace:
    """A stand-in for the mlflow module whose one run keeps its metric history in ``points``
    (key → [(step, value), ...]), as a tracking store does: a point logged again at a step
    is a second point there."""
    info = types.SimpleNamespace(run_id="abc123")

    def log_metrics(values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            points.setdefault(key, []).append((step, value))

    class MlflowClient:
        def get_run(self, run_id: str) -> types.SimpleNamespace:
            latest = {key: history[-1][1] for key, history in points.items()}
            return types.SimpleNamespace(info=info, data=types.SimpleNamespace(metrics=latest))

        def get_metric_history(self, run_id: str, key: str) -> list[types.SimpleNamespace]:
            return [types.SimpleNamespace(key=key, step=step, value=value)
                    for step, value in points.get(key, [])]

    return types.SimpleNamespace(
        set_tracking_uri=lambda uri: None,
        start_run=lambda run_id=None, run_name=None: types.SimpleNamespace(info=info),
        log_params=lambda params: None, log_metrics=log_metrics, end_run=lambda: None,
        MlflowClient=MlflowClient)


def _steps(points: dict[str, list[tuple[int, float]]], key: str) -> list[int]:
    return [step for step, _ in points[key]]


def test_mlflow_gets_one_point_per_step_when_a_resumed_run_redoes_its_evaluation(
        tmp_path: Path, monkeypatch) -> None:
    # last.pt saved just before the evaluation at iteration 2, which MLflow got before the
    # kill: the resumed run redoes it.
    import torch

    points: dict[str, list[tuple[int, float]]] = {}
    monkeypatch.setitem(sys.modules, "mlflow", _mlflow_holding(points))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    train(load_config(_recipe(["mlflow"], iterations=2)), out=run)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    ckpt["state"]["eval_pending"] = True
    torch.save(ckpt, run / "last.pt")
    train(load_config(_recipe(["mlflow"], iterations=4)), out=run, resume=True)
    assert _steps(points, "val/mean_iu") == [2, 4]
    assert _steps(points, "val_iu/background") == [2, 4]
    assert _steps(points, "train/loss") == [1, 2, 3, 4]


def test_mlflow_gets_one_point_per_step_when_a_resumed_run_redoes_steps_after_its_checkpoint(
        tmp_path: Path, monkeypatch) -> None:
    # The run went on to iteration 4 past its checkpoint at 2 (MLflow got those points),
    # then lost what followed the checkpoint: the resumed run redoes iterations 3 and 4.
    import shutil

    points: dict[str, list[tuple[int, float]]] = {}
    monkeypatch.setitem(sys.modules, "mlflow", _mlflow_holding(points))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    train(load_config(_recipe(["mlflow"], iterations=2)), out=run)
    shutil.copy(run / "last.pt", tmp_path / "at2.pt")
    train(load_config(_recipe(["mlflow"], iterations=4)), out=run, resume=True)
    shutil.copy(tmp_path / "at2.pt", run / "last.pt")
    train(load_config(_recipe(["mlflow"], iterations=4)), out=run, resume=True)
    assert _steps(points, "train/loss") == [1, 2, 3, 4]
    assert _steps(points, "val/mean_iu") == [2, 4]


def test_each_run_in_one_process_gets_its_own_mlruns(tmp_path: Path, monkeypatch) -> None:
    # mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI (for subprocesses), which must not
    # read as the user's choice when the next run starts.
    uris: list[str] = []

    def set_tracking_uri(uri: str) -> None:
        uris.append(uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri

    fake = _mlflow_holding({})
    fake.set_tracking_uri = set_tracking_uri
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # unset, and unset again after the test
    for name in ("a", "b"):
        train(load_config(_recipe(["mlflow"], iterations=2)), out=tmp_path / name)
    assert uris == [(tmp_path / name / "mlruns").resolve().as_uri() for name in ("a", "b")]


_FILE_STORE_REFUSED = (
    "The filesystem tracking backend (e.g., './mlruns') is in maintenance mode and will not "
    "receive further updates.\nIf the filesystem backend is required for your workflow, set "
    "`MLFLOW_ALLOW_FILE_STORE=true` to opt out of this exception.")


def _refusing_file_stores(call: Any) -> Any:
    """``call`` as MLflow 3.x makes it on a file store: refused unless allowed."""
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
            raise RuntimeError(_FILE_STORE_REFUSED)
        return call(*args, **kwargs)
    return guarded


def test_mlflow_logs_into_the_run_folders_store_that_current_mlflow_refuses_unless_allowed(
        tmp_path: Path, monkeypatch) -> None:
    points: dict[str, list[tuple[int, float]]] = {}
    fake = _mlflow_holding(points)
    for name in ("start_run", "log_params", "log_metrics", "end_run"):
        setattr(fake, name, _refusing_file_stores(getattr(fake, name)))
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    train(load_config(_recipe(["mlflow"], iterations=2)), out=tmp_path / "run")
    assert _steps(points, "train/loss") == [1, 2]
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # allowed for fcnseg's calls only


_NO_SERVER = (
    "API request to http://127.0.0.1:9/api/2.0/mlflow/experiments/search failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
    "/api/2.0/mlflow/experiments/search (Caused by NewConnectionError(\"HTTPConnection(host="
    "'127.0.0.1', port=9): Failed to establish a new connection: [Errno 111] Connection "
    "refused\"))")


def _mlflow_with_store(read: Any) -> types.SimpleNamespace:
    """A stand-in for mlflow whose client's first read of the store is ``read()``."""
    fake = _mlflow_holding({})

    class MlflowClient:
        def __init__(self, tracking_uri: str | None = None) -> None:
            self.tracking_uri = tracking_uri

        def search_experiments(self, max_results: int | None = None) -> list[Any]:
            return read()

    fake.MlflowClient = MlflowClient
    return fake


def _refuse(message: str) -> Any:
    def read() -> list[Any]:
        raise RuntimeError(message)
    return read


def test_a_tracking_server_that_does_not_answer_is_one_line_before_anything_is_written(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", _mlflow_with_store(_refuse(_NO_SERVER)))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(ValueError) as error:
        train(load_config(_recipe(["mlflow"], iterations=2)), out=tmp_path / "run")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("train.loggers: mlflow cannot use "
                              "MLFLOW_TRACKING_URI=http://127.0.0.1:9: no answer (Connection "
                              "refused); set MLFLOW_TRACKING_URI to a running tracking server")
    assert not (tmp_path / "run").exists()


def test_a_tracking_server_that_does_not_answer_is_given_up_in_seconds(
        tmp_path: Path, monkeypatch) -> None:
    # MLflow's own retries wait about 4 minutes on a server that is down
    seen: list[str | None] = []

    def read() -> list[Any]:
        seen.append(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES"))
        raise RuntimeError(_NO_SERVER)

    monkeypatch.setitem(sys.modules, "mlflow", _mlflow_with_store(read))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with pytest.raises(ValueError, match="no answer"):
        train(load_config(_recipe(["mlflow"], iterations=2)), out=tmp_path / "run")
    assert seen == ["2"]
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_a_users_file_store_that_mlflow_refuses_is_one_line_saying_how_to_allow_it(
        tmp_path: Path, monkeypatch) -> None:
    uri = (tmp_path / "store").as_uri()
    monkeypatch.setitem(sys.modules, "mlflow",
                        _mlflow_with_store(_refusing_file_stores(lambda: [])))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ValueError) as error:
        train(load_config(_recipe(["mlflow"], iterations=2)), out=tmp_path / "run")
    assert str(error.value).startswith(
        f"train.loggers: mlflow cannot use MLFLOW_TRACKING_URI={uri}: this MLflow refuses "
        f"file stores unless MLFLOW_ALLOW_FILE_STORE=true; set MLFLOW_TRACKING_URI to ")


def test_a_database_store_this_mlflow_cannot_open_is_one_line_saying_what_to_install(
        tmp_path: Path, monkeypatch) -> None:
    # mlflow-skinny has no SQLAlchemy: MLflow says so as a model registry error
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    unsupported = (f" Model registry functionality is unavailable; got unsupported URI '{uri}' "
                   f"for model registry data storage. Supported URI schemes are: ['', 'file', "
                   f"'databricks', 'databricks-uc', 'uc', 'http', 'https']. See https://www."
                   f"mlflow.org/docs/latest/tracking.html#storage for how to run an MLflow "
                   f"server against one of the supported backend storage locations.")
    monkeypatch.setitem(sys.modules, "mlflow", _mlflow_with_store(_refuse(unsupported)))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ValueError) as error:
        train(load_config(_recipe(["mlflow"], iterations=2)), out=tmp_path / "run")
    assert str(error.value).startswith(
        f"train.loggers: mlflow cannot use MLFLOW_TRACKING_URI={uri}: this MLflow cannot open "
        f"sqlite: stores (mlflow-skinny has no database support: pip install mlflow); ")


def test_a_tracking_store_that_refuses_a_resumed_run_leaves_the_run_folder_as_it_was(
        tmp_path: Path, monkeypatch) -> None:
    import shutil

    fake = _mlflow_holding({})
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    train(load_config(_recipe(["csv", "mlflow"], iterations=2)), out=run)
    shutil.copy(run / "last.pt", tmp_path / "at2.pt")
    train(load_config(_recipe(["csv", "mlflow"], iterations=4)), out=run, resume=True)
    shutil.copy(tmp_path / "at2.pt", run / "last.pt")  # records past the checkpoint
    files = ("metrics.jsonl", "metrics.csv", "recipe.yaml", "last.pt", "mlflow_run_id")
    before = {name: (run / name).read_bytes() for name in files}

    def start_run(run_id: str | None = None, run_name: str | None = None) -> Any:
        raise RuntimeError("RESOURCE_DOES_NOT_EXIST: Run 'abc123' not found")

    fake.start_run = start_run
    with pytest.raises(ValueError) as error:
        train(load_config(_recipe(["csv", "mlflow"], iterations=6)), out=run, resume=True)
    assert str(error.value).startswith(
        f"train.loggers: mlflow cannot use the run folder's store "
        f"{(run / 'mlruns').resolve().as_uri()}: RESOURCE_DOES_NOT_EXIST: Run 'abc123' not found;")
    assert {name: (run / name).read_bytes() for name in files} == before
