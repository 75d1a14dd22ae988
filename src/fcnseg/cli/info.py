"""``fcnseg info CHECKPOINT``: what a checkpoint describes, as a short summary or as JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from fcnseg.checkpoint import NotACheckpoint, load_checkpoint
from fcnseg.cli import options
from fcnseg.cli.info_files import (
    DATA_KINDS,
    DESCRIBED,
    annotation_record,
    data_file_record,
    data_file_summary,
    first_few,
    looks_like_torch_file,
)
from fcnseg.cli.info_outputs import (
    OUTPUT_SUMMARIES,
    output_document_record,
    output_file_record,
    output_folder_record,
)
from fcnseg.conventions import bands_count, input_text, nodata_text, normalisation_text
from fcnseg.engine.budget import format_duration, parse_duration
from fcnseg.metrics import other_heads_text
from fcnseg.models.builders import NOT_RECORDED, builder_defaults
from fcnseg.models.exported import int8_dot_products
from fcnseg.models.weights import WeightsError, read_weights, vgg16_torchvision_keys
from fcnseg.utils.validate import fields_of
from fcnseg.weightfiles.artifacts import RAW_PIXELS, graph_changed_text, read_onnx_metadata
from fcnseg.weightfiles.resolve import CONFIG_NAME, checkpoint_files

NAME = "info"
HELP = ("Show what a checkpoint describes: architecture, geometry, classes, input convention, "
        "metrics, size (--json: the full record); also the other files fcnseg reads and writes "
        "(backbone weights, ONNX exports, Caffe .caffemodel files, run files, label maps, rasters, "
        "CSV tables, annotation files, predicted probabilities (.npz), raster resume records, "
        "dataset.yaml, bench reports, predict's output list and folder, TensorBoard event "
        "files).")

#: Scalar metrics shown in the summary, in this order, with their names in the paper.
METRICS = {"mean_iu": "mean IU", "pixel_acc": "pixel acc", "mean_acc": "mean acc",
           "fw_iu": "f.w. IU"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_checkpoint_or_path(p, help="the checkpoint")
    p.add_argument("--json", action="store_true",
                   help="print the full record (model, classes with palette, iteration, "
                        "metrics, recipe, size) as JSON")


def record(path: str) -> dict[str, Any]:
    """Everything ``fcnseg info --json`` prints about the file at ``path``: a checkpoint, or
    another file fcnseg writes (backbone weights, an ONNX export), with ``kind`` saying which;
    a dataset folder (not a pretrained one) by its ``dataset.yaml``, predict's output folder by
    what it left there."""
    if not (Path(path) / CONFIG_NAME).is_file():  # not a pretrained folder
        if (Path(path) / "dataset.yaml").is_file():
            path = str(Path(path) / "dataset.yaml")
        elif (outputs := output_folder_record(Path(path))) is not None:
            return outputs
    try:
        ckpt = load_checkpoint(path)
    except NotACheckpoint as e:  # (a checkpoint with bad metadata stays that error)
        file = Path(path)
        if file.is_file() and file.stat().st_size == 0:
            raise ValueError(f"{path}: an empty file (0 bytes): nothing to describe") from None
        if file.is_file():
            base = {"path": str(path), "file_bytes": file.stat().st_size}
            other = output_file_record(file, base) or other_file_record(file, base) or (
                data_file_record(file, base) if not e.readable else None)
            if other is not None:
                return other
        # Only a file written as torch.save writes may be a damaged checkpoint; a valid file
        # of another kind is never called corrupt.
        if not e.readable and not looks_like_torch_file(file):
            raise ValueError(f"{path}: not a file fcnseg info describes (it describes "
                             f"{DESCRIBED})") from None
        raise
    names = list(ckpt["classes"]["names"])
    state = ckpt.get("model_state_dict") or {}
    artifact = fields_of(ckpt.get("artifact"))  # an export: no training state, its own weights
    training = {} if artifact else {
        "iteration": ckpt.get("iteration"), "epoch": ckpt.get("epoch"),
        # The length a time budget chose (train.time_budget); None without one.
        "planned_iterations": fields_of(ckpt.get("state")).get("planned_iterations")}
    return {
        "kind": artifact.get("kind", "checkpoint"), "path": str(path),
        **({"precision": "int8" if artifact.get("quantization") else "fp32"} if artifact else {}),
        # A pretrained folder or hf:// is the size of its files, not of the cached copy.
        "file_bytes": sum(os.path.getsize(f) for f in checkpoint_files(path)),
        "parameters": artifact.get("parameters") if artifact else
        sum(int(t.numel()) for t in state.values() if hasattr(t, "numel")),
        "model": ckpt.get("model"),
        "classes": {**ckpt["classes"], "palette": list(ckpt["classes"]["palette"])[: len(names)]},
        **training, "metrics": ckpt.get("metrics") or {}, "recipe": ckpt.get("recipe") or {},
        # ``fcnseg calibrate``'s temperature (None: uncalibrated); an export's format and int8
        "temperature": ckpt.get("temperature"), "artifact": ckpt.get("artifact"),
    }


def other_file_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    """The record (``base`` and more) of a run file, an ONNX export or weights without a model
    description (a backbone file); None for anything else."""
    if file.suffix.lower() in (".json", ".jsonl", ".yaml", ".yml"):
        return _document_record(file, base)
    if file.suffix.lower() == ".caffemodel":  # the model it holds, read without its weights
        from fcnseg.pretrained.convert import describe_caffemodel
        from fcnseg.weightfiles.caffemodel import CaffeModelError

        try:
            return {**base, "kind": "caffemodel", **describe_caffemodel(file)}
        except CaffeModelError as e:
            raise ValueError(str(e)) from None
    if file.suffix == ".onnx":
        try:
            metadata = read_onnx_metadata(file)
        except Exception:  # not ONNX after all: say what the checkpoint reader said
            return None
        return {**base, "kind": "onnx", "metadata": metadata}
    try:
        state, convention = read_weights(file)
    except WeightsError:
        return None
    vgg16 = set(vgg16_torchvision_keys().values()) <= set(state)
    return {**base, "kind": "backbone" if vgg16 else "state_dict",
            "architecture": "VGG16 (torchvision layout)" if vgg16 else None,
            "input_convention": convention,
            "tensors": len(state),
            "parameters": sum(int(t.numel()) for t in state.values())}


def _caffemodel_summary(rec: dict[str, Any]) -> list[str]:
    layers = f"{rec['layers_with_weights']} layers with weights ({rec['layer_format']} format)"
    convert = f"fcnseg convert {rec['path']} --out MODEL.pt"
    if rec.get("problem"):
        return [f"contents:    Caffe model, {layers}; {rec['problem']}",
                f"convert:     {convert} --arch ARCH"]
    what = (f"the reference model {rec['reference']}" if rec.get("reference")
            else f"an FCN of fcnseg's {rec['arch']}")
    lines = [f"contents:    Caffe model: {what} ({rec['arch']}"
             + (f", {rec['dataset']}" if rec.get("dataset") else "") + f"); {layers}"]
    if rec.get("class_names"):
        lines.append(f"classes:     {len(rec['class_names'])}: {first_few(rec['class_names'], 8)}")
    elif rec.get("num_classes"):
        lines.append(f"classes:     {rec['num_classes']} (unnamed)")
    published = {f"published_{k}": v for k, v in (rec.get("published") or {}).items()}
    if any(isinstance(v, (int, float)) for v in published.values()):
        lines.append(f"metrics:     {_metrics_text(published)}")
    target = "backbone weights" if rec["arch"] == "vgg16" else "a checkpoint"
    return [*lines, f"convert:     {convert} (into {target} fcnseg runs)"]


def _document_record(file: Path, base: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a JSON/YAML document fcnseg or a labelling tool writes; None for others."""
    suffix = file.suffix.lower()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        if suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif suffix == ".json":
            records = json.loads(text)
        else:
            records = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        if suffix == ".json":  # annotations too are JSON: say what is wrong with it
            raise ValueError(f"{file}: not valid JSON ({e})") from None
        return None
    doc = fields_of(records)
    output = output_document_record(file, doc, base)
    if output is not None:
        return output
    if suffix == ".jsonl" and records and all(map(fields_of, records)):
        val = [r for r in records if r.get("split") == "val"]
        train = [r for r in records if "loss" in r]
        best = max(val, key=lambda r: r.get("mean_iu") or 0.0, default=None)
        return {**base, "kind": "training_log", "records": len(records),
                "last_iteration": max((r.get("iteration") or 0 for r in records), default=0),
                "last_loss": train[-1]["loss"] if train else None,
                "evaluations": len(val), "best": best}
    if fields_of(doc.get("metrics")) and "per_class" in doc:
        heads = {h: {k: v for k, v in fields_of(scores).items() if k in METRICS}
                 for h, scores in fields_of(doc.get("heads")).items()}
        return {**base, "kind": "evaluation_report",
                "metrics": {**doc["metrics"], **({"heads": heads} if heads else {})},
                "num_images": doc.get("num_images"),
                "checkpoint": fields_of(doc.get("checkpoint")).get("path"),
                "dataset": fields_of(doc.get("dataset")).get("name"),
                "precision": doc.get("precision")}
    model, data = fields_of(doc.get("model")), fields_of(doc.get("data"))
    if model and data:
        return {**base, "kind": "recipe", "name": doc.get("name"), "arch": model.get("arch"),
                "dataset": fields_of(data.get("train")).get("name"),
                "iterations": fields_of(doc.get("train")).get("iterations")}
    return annotation_record(records, base) if suffix == ".json" else None


def _run_file_summary(rec: dict[str, Any]) -> list[str]:
    if rec["kind"] == "training_log":
        best = rec["best"]
        scores = (f"best mean IU {100 * best['mean_iu']:.2f} at iteration {best['iteration']}"
                  if best and isinstance(best.get("mean_iu"), (int, float)) else
                  "no evaluation yet")
        if best and other_heads_text(best):  # SIFT Flow's geometric head, at that iteration
            scores += f" ({other_heads_text(best)})"
        loss = f", last loss {rec['last_loss']:.4g}" if rec["last_loss"] is not None else ""
        return [f"contents:    training log (metrics.jsonl): {rec['records']} records up to "
                f"iteration {rec['last_iteration']}{loss}",
                f"metrics:     {rec['evaluations']} evaluations; {scores} (percent)"]
    if rec["kind"] == "evaluation_report":
        return [f"contents:    evaluation report of {rec['checkpoint'] or 'a checkpoint'} on "
                f"{rec['dataset'] or 'a dataset'} ({rec['num_images']} images, precision "
                f"{rec['precision'] or 'not recorded'})",
                f"metrics:     {_metrics_text(rec['metrics'])}"]
    return [f"contents:    training recipe {rec['name'] or ''}: {rec['arch']} on {rec['dataset']}, "
            f"{rec['iterations']} iterations (fcnseg train --recipe {rec['path']})"]


def _convention_text(convention: dict[str, Any]) -> str:
    text = convention.get("name") or "not recorded"
    if convention.get("bands"):  # raw band values, standardised band by band
        nodata = convention.get("nodata")
        return _bands_text(convention, "raw values, each band minus its mean, over its std",
                           f"; nodata {nodata:g}" if nodata is not None else "")
    if convention.get("channel_order"):
        scale = "0-1" if convention.get("scale") not in (1, 1.0) else "0-255"
        text += f" ({convention['channel_order']} {scale}, minus the mean"
        text += ", over the std)" if any(s != 1 for s in convention.get("std") or []) else ")"
    return text


def input_line(model: dict[str, Any], artifact: dict[str, Any] | None) -> str:
    """What ``model(x)`` of a checkpoint, or the graph of an exported file (``artifact``: its
    record or metadata), takes: raw pixels normalised inside, or input the caller normalises."""
    convention = fields_of(model.get("input_convention"))
    if not convention:
        return "not recorded"
    where = "the graph" if artifact else "the model"
    raw = not artifact or artifact.get("input_pixels") == RAW_PIXELS
    names = artifact.get("input_names") if artifact else \
        list(fields_of(model.get("preprocess")))
    if isinstance(names, list) and len(names) > 1:  # one input per modality
        meaning = _RAW_INPUTS if raw else _NORMALISED_INPUTS
        return "; ".join(f"{m} {meaning.get(m, 'as stored')}" for m in names) + (
            f" (normalisation inside {where})" if raw else "")
    try:
        if convention.get("bands"):
            shape = f"N×{len(convention['bands'])}×H×W float32"
            return _bands_text(convention, f"raw values, {shape}, each band minus its mean, "
                               f"over its std inside {where} (do not normalise them)" if raw
                               else f"{shape} normalised by the caller: "
                               f"{normalisation_text(convention)}",
                               _nodata_note(convention, artifact, where if raw else None))
        return input_text(convention, raw_pixels=raw, inside=where)
    except (ValueError, TypeError):  # a convention recorded incompletely: as recorded
        return _convention_text(convention)


def _nodata_note(convention: dict[str, Any], artifact: dict[str, Any] | None,
                 inside: str | None) -> str:
    """What becomes of a multi-band input's pixels without data: taken for the band means
    ``inside`` the model or graph (None: the caller normalises), or, in a graph exported
    before graphs did that (its recorded input says nothing of it), filled by the caller."""
    nodata = convention.get("nodata")
    if nodata is not None and inside and artifact and "band means" not in str(
            artifact.get("input", "")):
        return (f"; nodata {nodata:g}: fill pixels whose every band is {nodata:g} with the "
                f"band means first")
    return nodata_text(nodata, inside)


def _bands_text(convention: dict[str, Any], takes: str, nodata_note: str) -> str:
    """A multi-band model's bands, what it ``takes`` of them, its ``nodata_note`` and sample
    types."""
    bands = list(convention["bands"])
    types = convention.get("sample_types")
    return (f"{bands_count(len(bands))} ({', '.join(bands)}): {takes}{nodata_note}"
            + (f"; trained on {', '.join(types)} images" if types else ""))


def _trained_text(rec: dict[str, Any]) -> str:
    """How the weights came to be: converted, trained (iteration, epoch, recipe), or unknown."""
    recipe = rec.get("recipe") or {}
    if recipe.get("converted_from"):
        reference = f", reference {recipe['reference']}" if recipe.get("reference") else ""
        return f"converted from {recipe['converted_from']}{reference} (not trained by fcnseg)"
    name = recipe.get("name")
    if not rec.get("iteration") and not name:
        return "no training recorded"
    ema = fields_of(recipe.get("train")).get("ema")
    return (f"iteration {rec.get('iteration')}, epoch {rec.get('epoch')}"
            + (f", recipe {name}" if name else "")
            + (f"; weights: the EMA average of the trained ones (train.ema {ema})"
               if ema else ""))


#: Builder arguments the model line leaves out: shown elsewhere, or used in training alone.
_NOT_SHOWN = ("num_classes", "geometry", "dropout", "input_convention", *NOT_RECORDED)


def model_text(model: dict[str, Any]) -> str:
    """A checkpoint's model in a line: the architecture, its geometry where it has one (the
    VGG trunks), and the builder arguments its recipe set to other than their defaults."""
    arch = str(model.get("arch") or "unknown architecture")
    kwargs = fields_of(model.get("build_kwargs"))
    defaults = builder_defaults(arch)
    parts = [arch] + ([f"geometry {kwargs['geometry']}"] if kwargs.get("geometry") else [])
    parts += [f"{k} {v}" for k, v in kwargs.items()
              if k not in _NOT_SHOWN and (k not in defaults or defaults[k] != v)]
    return ", ".join(parts)


def _length_text(train: dict[str, Any], planned: int | None) -> list[str]:
    """The run's length: the recipe's, or the one its time budget chose (and the cap)."""
    budget = train.get("time_budget")
    if not train.get("iterations"):
        return []
    if budget in (None, 0):
        return [f"{train['iterations']} iterations"]
    with contextlib.suppress(ValueError):  # else shown as recorded
        budget = format_duration(parse_duration(budget))
    if planned is None:  # stopped before the budget chose, or an older checkpoint
        return [f"at most {train['iterations']} iterations (time budget {budget})"]
    return [f"{planned} iterations (chosen by a {budget} time budget; at most "
            f"{train['iterations']})"]


def _recipe_text(recipe: dict[str, Any], planned: int | None = None) -> str | None:
    """The recipe in a line; None when there is none (a converted model)."""
    data, train = fields_of(recipe.get("data")), fields_of(recipe.get("train"))
    source = fields_of(data.get("train"))
    parts = []
    if source.get("name"):
        parts.append(" ".join(str(source[k]) for k in ("name", "root") if source.get(k))
                     + (f" (split {source['split']})" if source.get("split") else ""))
    size = _length_text(train, planned)
    size += [f"{label} {data[key]}" for key, label in (("batch_size", "batch"),
                                                       ("crop_size", "crop")) if data.get(key)]
    parts += [", ".join(size)] if size else []
    optim, schedule = fields_of(recipe.get("optim")), fields_of(recipe.get("schedule"))
    if optim.get("name"):
        parts.append(f"{optim['name']}" + (f" lr {optim['lr']}" if "lr" in optim else "")
                     + (f", {schedule['name']} schedule" if schedule.get("name") else ""))
    loss = fields_of(recipe.get("loss"))
    if loss.get("name"):
        weights = loss.get("class_weights")
        weights = "given per class" if isinstance(weights, list) else weights
        parts.append(f"loss {loss['name']}" + (
            f", class weights {weights}" if weights not in (None, "none") else ""))
    return "; ".join(parts) or None


def _metrics_text(metrics: dict[str, Any]) -> str:
    """Measured scores (stored as fractions) and published ones (in percent), in percent."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not math.isnan(value)

    measured = [f"{label} {100 * metrics[key]:.2f}" for key, label in METRICS.items()
                if number(metrics.get(key))]
    published = [f"{label} {metrics['published_' + key]:.1f}" for key, label in METRICS.items()
                 if number(metrics.get("published_" + key))]
    published += [f"{key[len('published_'):-len(metric) - 1]} {label} {metrics[key]:.1f}"
                  for key in metrics for metric, label in METRICS.items()
                  if key.startswith("published_") and key.endswith("_" + metric)
                  and key != f"published_{metric}" and number(metrics[key])]
    parts = []
    if measured:
        heads = other_heads_text(metrics)  # SIFT Flow's geometric head
        parts.append(", ".join(measured) + (f"; {heads}" if heads else "") + " (percent)")
    if published:
        parts.append("published " + ", ".join(published) + " (percent; not measured here)")
    if isinstance(metrics.get("checkpoint"), dict):  # an int8 model: its float checkpoint's
        parts.append(f"its float checkpoint: {_metrics_text(metrics['checkpoint'])}")
    return "; ".join(parts) if parts else "none recorded"


def summary(rec: dict[str, Any]) -> str:
    """A few lines a person reads: what the model is, what it predicts, how well, how big."""
    if rec.get("kind") not in (None, "checkpoint") and not rec.get("artifact"):
        return other_summary(rec)
    model = rec.get("model") or {}
    convention = model.get("input_convention") or {}
    classes = rec["classes"]["names"]
    artifact = rec.get("artifact") or {}  # an exported model file
    size = f"{rec['file_bytes'] / 1e6:.1f} MB on disk"
    recipe = None if artifact else _recipe_text(fields_of(rec.get("recipe")),
                                                rec.get("planned_iterations"))
    lines = [
        f"{'model file' if artifact else 'checkpoint'}:  {rec['path']}",
        f"model:       {model_text(model)}",
        f"input:       {input_line(model, artifact)}",
        f"classes:     {len(classes)}: {first_few(classes, 8)}; ignore value "
        f"{rec['classes'].get('ignore_index')}",
        *heads_lines(rec["classes"]),
        *inputs_lines(artifact),
        f"exported:    {artifact_text(artifact, convention.get('bands'))}" if artifact
        else f"trained:     {_trained_text(rec)}",
        *([f"recipe:      {recipe}"] if recipe else []),
        f"metrics:     {_metrics_text(rec.get('metrics') or {})}",
    ]
    if rec.get("temperature") is not None:
        lines.append(f"calibrated:  temperature {rec['temperature']:.4g} "
                     f"(divides the logits before the softmax)")
    if artifact.get("quantization"):
        lines.append(f"int8:        {quantization_text(artifact['quantization'])}")
        lines.append(f"int8 CPUs:   {int8_cpus_text(artifact['quantization'])}")
    if artifact.get("changed"):
        lines.append(f"changed:     {graph_changed_text('the file').removeprefix('the file: ')}")
    if artifact.get("temperature") not in (None, 1, 1.0):
        lines.append(f"calibrated:  temperature {artifact['temperature']:.4g} "
                     f"(applied inside the graph)")
    if isinstance(rec.get("parameters"), int):
        size = f"{rec['parameters'] / 1e6:.2f} M parameters, {size}"
    return "\n".join([*lines, f"size:        {size}"])


#: What each modality's raw input holds, as an export with several inputs takes it.
_RAW_INPUTS = {"color": "RGB 0-255", "hha": "HHA 0-255 as stored",
               "depth": "millimetres, 0 where unknown"}
#: What each modality's input holds where the export takes normalised input.
_NORMALISED_INPUTS = {"color": "normalised per the input convention",
                      "hha": "minus the HHA mean", "depth": "log depth minus its mean"}


def heads_lines(classes: dict[str, Any]) -> list[str]:
    """The heads of a model with several (SIFT Flow's semantic and geometric), each with its
    classes, in a line; none for a model of one head."""
    heads = fields_of(classes.get("heads"))
    if len(heads) < 2:
        return []
    return ["heads:       " + "; ".join(f"{h} {len(n)} classes: {first_few(list(n), 8)}"
                                       for h, n in heads.items())]


def inputs_lines(artifact: dict[str, Any]) -> list[str]:
    """The named inputs of an export taking several (a NYUDv2 fusion model's), each with its
    shape and what its values are, in a line; none for an export of one input."""
    names = artifact.get("input_names") or []
    if len(names) < 2:
        return []
    meaning = _RAW_INPUTS if artifact.get("input_pixels") == "rgb_0_255" else _NORMALISED_INPUTS
    return ["inputs:      " + "; ".join(
        f"{m} N×{1 if m == 'depth' else 3}×H×W {meaning.get(m, 'as stored')}" for m in names)
        + " (float32, all of one size)"]


def artifact_text(artifact: dict[str, Any], bands: list[str] | None = None) -> str:
    """What an exported model file is, takes and answers, in a line (``bands``: a
    multi-band model's, whose raw values it takes instead of RGB pixels)."""
    kind = {"onnx": "ONNX", "torchscript": "TorchScript"}.get(artifact.get("kind"), "?")
    if artifact.get("quantization"):
        kind = "int8 " + kind
    raw = f"the raw values of its {bands_count(len(bands))}" if bands else "RGB pixels 0-255"
    if len(artifact.get("input_names") or []) > 1:
        raw = "one raw input per modality (see inputs)"
    takes = (f"{raw} (normalised inside)" if artifact.get("input_pixels") ==
             "rgb_0_255" else "normalised input")
    gives = "uint8 labels" if artifact.get("outputs") == "labels" else "float logits"
    if len(artifact.get("output_names") or []) > 1:
        gives += f" per head ({', '.join(artifact['output_names'])})"
    version = artifact.get("fcnseg_version")
    return f"{kind}; takes {takes}; answers {gives}" + (
        f"; written by fcnseg {version}" if version else "")


def quantization_text(quant: dict[str, Any]) -> str:
    """The quantization record of an int8 model, in a line."""
    kept = quant.get("keep_float") or []
    parts = [f"{quant.get('engine', '?')} {quant.get('format', '')}".strip(),
             f"calibrated on {quant.get('calibration_images', '?')} images",
             f"{len(kept)} layers in float" if kept else "every layer int8"]
    val = fields_of(quant.get("validation"))
    if val:
        parts.append(f"mean IU {100 * val['int8_mean_iu']:.2f} vs float "
                     f"{100 * val['float_mean_iu']:.2f}, pixel agreement "
                     f"{100 * val['pixel_agreement']:.2f}% on {val['images']} images")
    else:
        parts.append("accuracy not measured")
    return "; ".join(parts)


def int8_cpus_text(quant: dict[str, Any]) -> str:
    """On which CPUs an int8 model computes what its gate measured, and this CPU, in a line."""
    here = "this CPU has them" if int8_dot_products() else "this CPU has none"
    if quant.get("exact_without_vnni", quant.get("reduce_range")):
        return "7-bit weights (--reduce-range): exact on any x86 CPU, with or without VNNI"
    cpu = fields_of(quant.get("measured_on")).get("cpu") or "a CPU with them"
    return (f"full-range weights: exact only on CPUs with int8 dot products (AVX512-VNNI, "
            f"AVX-VNNI, AMX-INT8; measured on {cpu}; {here}); quantize with --reduce-range "
            f"for older CPUs")


def other_summary(rec: dict[str, Any]) -> str:
    """The summary of a file that is not a checkpoint (see :func:`other_file_record`)."""
    kind = rec["kind"]
    if kind in DATA_KINDS:
        lines = data_file_summary(rec)
    elif kind in OUTPUT_SUMMARIES:
        lines = OUTPUT_SUMMARIES[kind](rec)
    elif kind in ("training_log", "evaluation_report", "recipe"):
        lines = _run_file_summary(rec)
    elif kind == "caffemodel":
        lines = _caffemodel_summary(rec)
    elif kind == "onnx":
        meta = rec["metadata"]
        convention = fields_of(meta.get("input_convention"))
        lines = [f"contents:    ONNX export of {meta.get('arch', 'an fcnseg model')} "
                 f"({meta.get('precision', 'float32')} graph); run it with onnxruntime",
                 f"input:       {input_line({'input_convention': convention}, meta)}"]
        if meta.get("class_names"):
            classes = meta["class_names"]
            lines.append(f"classes:     {len(classes)}: {first_few(classes, 8)}")
    else:
        what = ("ImageNet VGG16 backbone weights in torchvision's layout (no classes): for "
                "load_backbone_weights or --set model.backbone_weights=PATH"
                if kind == "backbone" else
                f"a state dict of {rec['tensors']} tensors, no model description: for "
                "load_fcn_weights, or --set init=PATH")
        lines = [f"contents:    {what}",
                 f"input:       {rec.get('input_convention') or 'not recorded'}"]
    size = f"{rec['file_bytes'] / 1e6:.1f} MB on disk"
    if "parameters" in rec:  # weights
        size = f"{rec['parameters'] / 1e6:.2f} M parameters, {size}"
    return "\n".join([f"file:        {rec['path']}", *lines, f"size:        {size}"])


def run(args: argparse.Namespace) -> int:
    path = options.checkpoint_or_path(args, "info",
                                      "fcnseg info CHECKPOINT (or --checkpoint PATH)")
    rec = record(path)
    print(json.dumps(rec, indent=2, default=str) if args.json else summary(rec))
    return 0
