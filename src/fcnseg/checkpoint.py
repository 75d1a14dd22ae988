"""Self-describing checkpoints.

A checkpoint is one ``torch.save`` file, always read back with ``weights_only=True`` (no code
runs on load). Besides ``model_state_dict`` (the PyTorch FCN port's key, so its tools read ours)
it records ``model`` (``arch``, ``build_kwargs``, ``input_convention``), ``classes`` (``names``,
``palette``, ``ignore_index``, and for several heads ``heads``: ``{head: class names}``, the
first head's being ``names``), ``recipe``, ``iteration``, ``epoch``, ``metrics`` and an optional
training ``state`` for resume. Writes are atomic: a crash leaves the previous file intact.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.conventions import CAFFE_BGR, InputConvention, get_convention
from fcnseg.data.palette import VOC_CLASSES, distinct_palette, voc_palette
from fcnseg.models import build_model
from fcnseg.models.builders import check_build_kwargs
from fcnseg.models.exported import artifact_model
from fcnseg.models.identity import ModelIdentity
from fcnseg.models.preprocess import Preprocess
from fcnseg.models.trunk import BackboneError
from fcnseg.models.weights import load_exactly
from fcnseg.utils.files import atomic_write
from fcnseg.utils.safe_load import safe_load
from fcnseg.utils.typing import PathLike
from fcnseg.utils.validate import expect_mapping, fields_of
from fcnseg.weightfiles.artifacts import ArtifactError, artifact_kind, read_artifact
from fcnseg.weightfiles.resolve import (
    CONFIG_FORMAT,
    CONFIG_NAME,
    FORMAT,
    METADATA_KEY,
    HubError,
    checkpoint_dict,
    checkpoint_source,
    resolve_checkpoint,
    safetensors_metadata,
    write_safetensors,
)

__all__ = ["CheckpointContents", "CheckpointError", "NotACheckpoint", "as_checkpoint",
           "build_model_from_checkpoint", "checkpoint_payload", "class_extras_of",
           "describe_model", "head_class_names", "load_checkpoint", "no_such_checkpoint",
           "palette_rows", "pretrained_config", "save_checkpoint", "save_checkpoint_safetensors",
           "save_safetensors_checkpoint", "write_checkpoint", "write_model_safetensors"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or lacks a required field."""


class NotACheckpoint(CheckpointError):
    """The file holds no checkpoint: ``readable`` says whether torch could load it at all (a
    state dict of weights alone) or not (another kind of file, or a damaged one)."""

    def __init__(self, message: str, *, readable: bool) -> None:
        super().__init__(message)
        self.readable = readable


def describe_model(model: nn.Module) -> dict[str, Any]:
    """The JSON-able description of a model that :func:`build_model_from_checkpoint` rebuilds:
    its :class:`~fcnseg.models.ModelIdentity`, or for other models their ``arch``,
    ``build_kwargs`` and ``input_convention`` attributes; with the settings of its
    :class:`~fcnseg.models.preprocess.Preprocess` under ``preprocess``, by input."""
    identity = getattr(model, "identity", None)
    preprocess = getattr(model, "preprocess", None)
    if isinstance(identity, ModelIdentity):
        desc = identity.describe()
        if isinstance(preprocess, Preprocess):  # what the model does to raw pixels, for readers
            desc["preprocess"] = preprocess.describe()
        return desc
    arch = getattr(model, "arch", None)
    build_kwargs = getattr(model, "build_kwargs", None)
    if arch is None or build_kwargs is None:
        raise CheckpointError(f"{type(model).__name__} does not describe itself (needs .arch and "
                              f".build_kwargs); build it with fcnseg.models.build_model or a "
                              f"builder function")
    conv: InputConvention = getattr(model, "input_convention", CAFFE_BGR)
    return {"arch": arch, "build_kwargs": dict(build_kwargs),
            "input_convention": conv.to_dict()}


@dataclass
class CheckpointContents:
    """What a checkpoint records besides the model: the fields of :func:`save_checkpoint`."""

    class_names: Sequence[str]
    palette: Sequence[Sequence[int]] | Any | None = None
    ignore_index: int = 255
    recipe: Mapping[str, Any] | None = None
    iteration: int = 0
    epoch: int = 0
    metrics: Mapping[str, Any] | None = None
    state: Mapping[str, Any] | None = None
    head_classes: Mapping[str, Sequence[str]] | None = None
    background: str | None = None
    trained_in: str | None = None
    coco_categories: Mapping[str, Mapping[str, Any]] | None = None


def save_checkpoint(path: PathLike, model: nn.Module,
                    contents: CheckpointContents | None = None, /, **fields: Any) -> Path:
    """Write a self-describing checkpoint atomically and return its path.

    It records ``contents``, or the :class:`CheckpointContents` the keyword ``fields`` make:
    ``class_names`` (required, in output order); ``palette`` (256×3 or one row per class RGB;
    default :func:`fcnseg.data.palette.distinct_palette`); ``ignore_index`` (255); ``recipe``,
    ``iteration``, ``epoch``, ``metrics`` and ``state`` (for resume); ``head_classes`` (``{head:
    class names}`` of a multi-head model, ``class_names`` being its first head's; other heads
    default to ``class_0`` ...); ``background`` (the class pictures leave as the photo);
    ``trained_in`` (the absolute folder where the recipe's relative dataset paths are looked
    for after the current one, :mod:`fcnseg.dataset_paths`); ``coco_categories`` (``{class:
    {id, supercategory}}``: the COCO categories the classes were imported from, which
    ``predict --format coco`` writes back).

    Raises:
        TypeError: ``class_names`` missing or a field unknown (one line naming it).
        CheckpointError: a field loading would refuse (class names not one per class, a bad
            palette colour, ...), in one line, before anything is written.
    """
    return write_checkpoint(path, checkpoint_payload(model, contents, **fields))


def write_checkpoint(path: PathLike, payload: Mapping[str, Any]) -> Path:
    """Write what :func:`checkpoint_payload` made, atomically (temporary file, fsync, rename:
    a failure leaves the previous file intact)."""
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(dict(payload), f)
    return path


def checkpoint_payload(model: nn.Module, contents: CheckpointContents | None = None, /,
                       **fields: Any) -> dict[str, Any]:
    """What :func:`save_checkpoint` writes, as a dict (see it for the arguments). Tensors of
    a CPU model are the model's own: copy them to write the payload while training goes on."""
    if contents is None:
        known = [f.name for f in dataclasses.fields(CheckpointContents)]
        unknown = [k for k in fields if k not in known]
        if unknown:  # named as the caller wrote it
            raise TypeError(f"save_checkpoint: unknown field {unknown[0]!r}; the fields are "
                            f"{', '.join(known)}")
        if "class_names" not in fields:
            raise TypeError("save_checkpoint: class_names is required: the names of the "
                            "model's classes, in output order (save_checkpoint(path, model, "
                            "class_names=[...]))")
        contents = CheckpointContents(**fields)
    elif fields:
        contents = dataclasses.replace(contents, **fields)
    model_to_save = getattr(model, "module", model)  # unwrap DDP / DataParallel
    palette = contents.palette
    if palette is None:
        palette = distinct_palette(contents.class_names, contents.ignore_index,
                                   contents.background)
    classes = _class_table(model_to_save, contents.class_names, palette,
                           contents.ignore_index, CheckpointError)
    names = classes["names"]
    heads = _head_classes(model_to_save, names, contents.head_classes)
    if heads is not None:
        classes["heads"] = heads
    classes.update(class_extras_of({"coco_categories": contents.coco_categories,
                                    "background": contents.background}, names))
    return checkpoint_dict(
        {k: v.detach().cpu() for k, v in model_to_save.state_dict().items()},
        describe_model(model_to_save), classes, recipe=dict(contents.recipe or {}),
        iteration=int(contents.iteration), epoch=int(contents.epoch),
        metrics=dict(contents.metrics or {}), state=dict(contents.state or {}),
        **({"trained_in": str(contents.trained_in)} if contents.trained_in else {}))


def _class_table(model: nn.Module, class_names: Sequence[str], palette: Any, ignore_index: int,
                 error: type[Exception]) -> dict[str, Any]:
    """``{names, palette, ignore_index}``, checked against the model's number of classes."""
    names = [str(n) for n in class_names]
    if len(names) != getattr(model, "num_classes", len(names)):
        raise error(f"{len(names)} class names given for a model with {model.num_classes} "
                    f"classes")
    pal = palette_rows(palette, max(len(names), ignore_index + 1), error)
    return {"names": names, "palette": pal, "ignore_index": int(ignore_index)}


def palette_rows(palette: Any, count: int, error: type[Exception]) -> list[list[int]]:
    """The first ``count`` colours of ``palette`` as ``[r, g, b]`` ints, each checked as
    loading checks them (so that a checkpoint or export is never written unreadable): one
    line, ``palette: colour 2 is [300, 0, 0]: expected [r, g, b] integers in 0-255``."""
    rows = []
    for i, rgb in enumerate(list(palette)[:count]):
        listed = isinstance(rgb, Iterable) and not isinstance(rgb, str)
        values = list(rgb) if listed else []
        if len(values) != 3 or not all(
                isinstance(v, numbers.Real) and float(v).is_integer() and 0 <= v <= 255
                for v in values):
            shown = (f"[{', '.join(str(v.item() if hasattr(v, 'item') else v) for v in values)}]"
                     if listed else repr(rgb)[:60])
            raise error(f"palette: colour {i} is {shown}: expected [r, g, b] integers in 0-255")
        rows.append([int(v) for v in values])
    return rows


def _head_classes(model: nn.Module, names: list[str],
                  given: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]] | None:
    """``{head: class names}`` for a multi-head model (None for one head), checked."""
    counts = dict(getattr(model, "head_classes", {}) or {})
    if len(counts) < 2:
        if given is not None and len(given) > 1:
            raise CheckpointError(f"head_classes names {len(given)} heads for a model with one")
        return None
    first = next(iter(counts))
    heads = {h: ([str(n) for n in given[h]] if given is not None and h in given else
                 names if h == first else [f"class_{i}" for i in range(c)])
             for h, c in counts.items()}
    unknown = sorted(set(given or {}) - set(counts))
    if unknown:
        raise CheckpointError(f"head_classes names heads {unknown}; the model's heads are "
                              f"{list(counts)}")
    for h, c in counts.items():
        if len(heads[h]) != c:
            raise CheckpointError(f"{len(heads[h])} class names given for head {h!r} with "
                                  f"{c} classes")
    if heads[first] != names:
        raise CheckpointError(f"class_names must be those of the first head ({first!r})")
    return heads


def head_class_names(ckpt: Mapping[str, Any]) -> dict[str, list[str]]:
    """The class names of each head of a checkpoint's model: ``classes.heads``, or
    ``{"out": classes.names}`` for a single-head model."""
    classes = ckpt["classes"]
    heads = classes.get("heads")
    if heads:
        return {str(h): list(n) for h, n in heads.items()}
    return {"out": list(classes["names"])}


# The PyTorch FCN port stores "arch" as its class name.
_PORT_ARCHS = {"FCN32s": "fcn32s", "FCN16s": "fcn16s", "FCN8s": "fcn8s",
               "FCN8sAtOnce": "fcn8s_atonce"}


def no_such_checkpoint(path: PathLike, field: str = "") -> str:
    """One line for a missing checkpoint: the recipe ``field`` naming it, ``path`` as given, and
    the absolute path looked for (a ~ is not expanded) when it differs or a field is named."""
    looked = Path(path).absolute()
    where = f" (looked for {looked})" if field or str(looked) != str(path) else ""
    return f"{field + ': ' if field else ''}{path}: no such checkpoint{where}"


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Read a checkpoint safely and check its fields. Also accepts the PyTorch FCN port's
    ``.pth.tar`` (as Caffe-geometry VOC models), pretrained folders, fcnseg ``.safetensors``
    files, ``hf://user/repo[@revision]`` (through :func:`resolve_checkpoint`), and exported
    models (ONNX, int8 ONNX, TorchScript: their metadata with an ``artifact`` entry and no
    weights). Malformed metadata is a :class:`CheckpointError` naming the file and the field."""
    source = checkpoint_source(path)
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(no_such_checkpoint(path))
    if artifact_kind(path) is not None:  # an ONNX or TorchScript export: its metadata
        try:
            ckpt = read_artifact(path)
        except ArtifactError as e:
            raise CheckpointError(str(e)) from None
    else:
        ckpt = safe_load(path, functools.partial(NotACheckpoint, readable=False), "a checkpoint",
                         lambda e: f"{path}: cannot be read as a checkpoint "
                                   f"({type(e).__name__}); the file may be truncated or corrupt, "
                                   f"or hold objects that are not loaded for safety")
        if "model_state_dict" not in fields_of(ckpt):
            raise NotACheckpoint(f"{path}: not a checkpoint (no 'model_state_dict')",
                                 readable=True)
        if ckpt.get("format") != FORMAT:
            ckpt = _from_port(path, ckpt)
    _check_metadata(source["config"] if source else path, ckpt, in_config=source is not None)
    desc = ckpt["model"]  # build_kwargs of older files lack the convention the model records
    desc["build_kwargs"] = {"input_convention": desc["input_convention"], **desc["build_kwargs"]}
    ckpt["path"] = str(path)
    if source is not None:  # errors name the user's files, not the cached copy at ``path``
        ckpt["source"] = source
    return ckpt


def as_checkpoint(checkpoint: PathLike | Mapping[str, Any]) -> Mapping[str, Any]:
    """A checkpoint given as a file (read by :func:`load_checkpoint`) or already loaded."""
    if isinstance(checkpoint, Mapping):
        return checkpoint
    return load_checkpoint(checkpoint)


def _from_port(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    arch = _PORT_ARCHS.get(str(ckpt.get("arch")))
    if arch is None:
        raise CheckpointError(f"{path}: not an fcnseg checkpoint and its 'arch' "
                              f"({ckpt.get('arch')!r}) is none of the PyTorch FCN port's "
                              f"{sorted(_PORT_ARCHS)}")
    return checkpoint_dict(
        ckpt["model_state_dict"],
        {"arch": arch, "build_kwargs": {"num_classes": 21, "geometry": "caffe"},
         "input_convention": CAFFE_BGR.to_dict()},
        {"names": list(VOC_CLASSES), "palette": voc_palette().tolist(), "ignore_index": 255},
        iteration=int(ckpt.get("iteration", 0)), epoch=int(ckpt.get("epoch", 0)),
        metrics={"mean_iu": float(ckpt.get("best_mean_iu", float("nan")))})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_metadata(path: Path | str, ckpt: Mapping[str, Any], in_config: bool = False) -> None:
    """One line naming the file and the field for malformed metadata (``in_config``: as the
    fields of a pretrained config.json, which has the model's at the top)."""
    def bad(field: str, problem: str) -> CheckpointError:
        if in_config:
            field = field.removeprefix("model.")
        return CheckpointError(f"{path}: {field}: {problem}"[:400])

    def refused(message: str) -> CheckpointError:  # expect_mapping's "FIELD: expected ..."
        return bad(*message.split(": ", 1))

    for section, keys in (("model", ("arch", "build_kwargs", "input_convention")),
                          ("classes", ("names", "palette", "ignore_index"))):
        missing = [k for k in keys
                   if k not in expect_mapping(ckpt.get(section), section, error=refused)]
        if missing:
            raise CheckpointError(f"{path}: checkpoint section {section!r} lacks {missing}")
    model, classes = ckpt["model"], ckpt["classes"]
    if not isinstance(model["arch"], str):
        raise bad("model.arch", f"expected a model name, got {model['arch']!r}")
    expected = "a mapping of argument names to values"
    kwargs = expect_mapping(model["build_kwargs"], "model.build_kwargs", expected, error=refused)
    if not all(isinstance(k, str) for k in kwargs):
        raise bad("model.build_kwargs", f"expected {expected}")
    try:
        get_convention(model["input_convention"])
    except (ValueError, TypeError) as e:
        raise bad("model.input_convention", str(e)) from None
    names = classes["names"]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise bad("classes.names", "expected a list of class-name strings")
    num_classes = kwargs.get("num_classes")
    if not _is_int(num_classes) or num_classes < 1:
        raise bad("model.build_kwargs.num_classes", f"expected a positive int, got "
                                                    f"{num_classes!r}")
    if len(names) != num_classes:
        raise bad("classes.names", f"{len(names)} names for a model with "
                                   f"build_kwargs.num_classes={num_classes}")
    palette = classes["palette"]
    if not isinstance(palette, list | tuple) or not all(
            isinstance(c, list | tuple) and len(c) == 3
            and all(_is_int(v) and 0 <= v <= 255 for v in c) for c in palette):
        raise bad("classes.palette", "expected a list of [r, g, b] integers in 0-255")
    if not _is_int(classes["ignore_index"]):
        raise bad("classes.ignore_index",
                  f"expected an integer label value, got {classes['ignore_index']!r}")
    background = classes.get("background")
    if background is not None and (not isinstance(background, str) or background not in names):
        raise bad("classes.background", f"expected one of the class names, got {background!r}")
    _check_class_extras(classes, names, bad, refused)


def _check_class_extras(classes: Mapping[str, Any], names: Sequence[str],
                        bad: Callable[[str, str], CheckpointError],
                        refused: Callable[[str], CheckpointError]) -> None:
    """The optional fields of a checkpoint's ``classes``: ``coco_categories`` and ``heads``."""
    coco = classes.get("coco_categories")
    if coco is not None and not all(
            isinstance(n, str) and _is_int(fields_of(c).get("id")) for n, c in
            expect_mapping(coco, "classes.coco_categories", error=refused).items()):
        raise bad("classes.coco_categories", "expected class names mapped to {id: integer, "
                                             "supercategory: text}")
    heads = classes.get("heads")
    if heads is not None:
        expected = "a mapping of head names to class-name lists"
        heads = expect_mapping(heads, "classes.heads", expected, error=refused)
        if not all(isinstance(h, str) and isinstance(n, list | tuple)
                   and all(isinstance(c, str) for c in n) for h, n in heads.items()):
            raise bad("classes.heads", f"expected {expected}")
        first = next(iter(heads.values()), None)
        if first is not None and list(first) != list(names):
            raise bad("classes.heads", "the first head's class names differ from classes.names")


def _check_sizes(where: Any, arch: str, kwargs: Mapping[str, Any],
                 state_dict: Mapping[str, torch.Tensor], extra: Mapping[str, Any],
                 fields: str = "model.") -> None:
    """Compare the weights' shapes with a model built on the meta device, so that absurd
    sizes in the metadata fail before anything is allocated."""
    try:
        with torch.device("meta"):
            shapes = build_model(arch, **kwargs, **extra).state_dict()
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: {fields}build_kwargs: {e}") from e
    except Exception:  # noqa: BLE001 - user factories may not run on the meta device
        return  # the real build below reports its own errors
    mismatched = sorted(k for k in set(shapes) & set(state_dict)
                        if shapes[k].shape != state_dict[k].shape)
    if not mismatched:
        return
    num_classes = kwargs.get("num_classes")  # the build_kwargs fields the mismatch points at
    if any(num_classes in shapes[k].shape and num_classes not in state_dict[k].shape
           for k in mismatched):
        pointed = f"num_classes={num_classes!r}"
    else:
        sizes = ("width", "fc_channels", "base_channels", "factory_kwargs")
        pointed = ", ".join(f"{k}={kwargs[k]!r}" for k in sizes if k in kwargs)
    key = mismatched[0]
    raise CheckpointError(
        f"{where}: {fields}build_kwargs ({pointed or 'the architecture'}) do not fit the "
        f"weights: shape mismatches in {len(mismatched)} tensors, e.g. {key}: file "
        f"{tuple(state_dict[key].shape)} vs {tuple(shapes[key].shape)} from the metadata")


def build_model_from_checkpoint(ckpt: PathLike | Mapping[str, Any], *, load_weights: bool = True,
                                backbone: nn.Module | None = None,
                                preprocess: bool = True) -> nn.Module:
    """Rebuild the model a checkpoint describes (in eval mode) and load its weights.

    The model takes raw pixels; ``preprocess=False`` gives the bare network, taking input
    normalised in the recorded convention. Before anything is built, ``build_kwargs`` are
    checked against the builder and (with ``load_weights``) the weights' shapes, and NaN or
    infinite weights are refused; each error names the file and the field or tensor.
    ``backbone``: for custom-backbone models (``fcnseg.models.fcn_from_backbone``), a freshly
    built backbone used instead of the factory the checkpoint records (or does not).
    """
    ckpt = as_checkpoint(ckpt)
    if ckpt.get("artifact"):  # an exported model runs in its own runtime
        return artifact_model(ckpt)
    source = ckpt.get("source") or {}
    where = source.get("config") or Path(ckpt.get("path", "<checkpoint>"))
    weights_where = source.get("weights") or where
    fields = "" if source else "model."  # a config.json has the model's fields at the top
    desc = ckpt["model"]
    arch = desc["arch"]
    kwargs = dict(desc["build_kwargs"])
    # The recorded convention is the weights' (it may differ from the builder's default); a
    # multi-band one sizes the first convolution.
    recorded = {**kwargs, "input_convention": desc["input_convention"]}
    extra: dict[str, Any] = {}
    if backbone is not None:
        if arch != "fcn_custom_backbone":
            raise CheckpointError(f"{where}: backbone= applies only to custom-backbone models, "
                                  f"not {arch!r}")
        extra["backbone"] = backbone
    try:
        check_build_kwargs(arch, kwargs)
    except ValueError as e:
        field = "" if str(e).startswith("build_kwargs") else "arch: "
        raise CheckpointError(f"{where}: {fields}{field}{e}") from None
    state_dict = ckpt["model_state_dict"]
    try:
        if load_weights:
            for key, t in state_dict.items():
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise CheckpointError(f"{weights_where}: tensor {key} holds NaN or infinite "
                                          f"values; these weights cannot give meaningful "
                                          f"predictions")
            _check_sizes(where, arch, recorded, state_dict, extra, fields)
        model = build_model(arch, **recorded, preprocess=preprocess, **extra)
    except BackboneError as e:
        raise CheckpointError(f"{where}: {e}") from e
    if load_weights:
        load_exactly(weights_where, model, state_dict)
    return model.eval()


# -- .safetensors checkpoints -------------------------------------------------------------


def pretrained_config(model: nn.Module, class_names: Sequence[str], palette: Any,
                      ignore_index: int, metrics: Mapping[str, Any] | None,
                      source: Mapping[str, Any] | None, *,
                      class_extras: Mapping[str, Any] | None = None,
                      **extra: Any) -> dict[str, Any]:
    """The ``config.json`` of a pretrained folder (and the metadata of a ``.safetensors``
    checkpoint) describing ``model`` with its classes (and :func:`class_extras_of` those of
    ``class_extras``), metrics, ``source`` and ``extra`` fields (a calibrated temperature)."""
    classes = _class_table(model, class_names, palette, ignore_index, HubError)
    desc = describe_model(model)
    classes.update(class_extras_of(class_extras or {}, class_names))
    return {"format": CONFIG_FORMAT,
            **{k: desc[k] for k in ("arch", "build_kwargs", "input_convention")},
            "classes": classes, "metrics": dict(metrics or {}), "source": dict(source or {}),
            **extra}


def class_extras_of(classes: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The ``coco_categories`` (for ``predict --format coco``) of a checkpoint's ``classes``
    for those of ``names``, and its ``background`` (one of ``names``, else a CheckpointError):
    what a pretrained config carries on."""
    coco = {n: dict(c) for n, c in fields_of(classes.get("coco_categories")).items()
            if n in names}
    background = classes.get("background")
    if background is not None and str(background) not in names:
        raise CheckpointError(f"background {background!r} is none of the classes {names}")
    return {**({"coco_categories": coco} if coco else {}),
            **({"background": str(background)} if background is not None else {})}


def write_model_safetensors(path: Path, model: nn.Module, metadata: dict[str, str]) -> None:
    """The model's state dict as a ``.safetensors`` file, written whole or not at all."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_safetensors(path, tensors, metadata)


def save_safetensors_checkpoint(
    path: PathLike, model: nn.Module, *, class_names: Sequence[str], palette: Any,
    ignore_index: int = 255, metrics: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None, background: str | None = None, **extra: Any,
) -> Path:
    """A model (a checkpoint: :func:`save_checkpoint_safetensors`) as one ``.safetensors``
    file whose metadata holds the ``config.json`` description (with ``background`` as
    :func:`save_checkpoint` takes it, and the ``extra`` fields: a calibrated temperature), so
    that ``--checkpoint FILE.safetensors`` works like a checkpoint."""
    config = pretrained_config(model, class_names, palette, ignore_index, metrics, source,
                               class_extras={"background": background}, **extra)
    # A value JSON has no type for (a NumPy float metric) is refused, never stored as text.
    write_model_safetensors(Path(path), model, {METADATA_KEY: json.dumps(config)})
    return Path(path)


def _converted_from(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The ``source`` the pretrained files a checkpoint was read from record, else {}."""
    files = ckpt.get("source") or {}
    config_file, weights = Path(str(files.get("config", ""))), str(files.get("weights", ""))
    try:
        if config_file.name == CONFIG_NAME and config_file.is_file():
            config = json.loads(config_file.read_text(encoding="utf-8"))
        elif weights.endswith(".safetensors") and Path(weights).is_file():
            config = json.loads(safetensors_metadata(weights).get(METADATA_KEY, "{}"))
        else:
            return {}
    except (OSError, ValueError):
        return {}
    return dict(fields_of(fields_of(config).get("source")))


def save_checkpoint_safetensors(path: PathLike, checkpoint: PathLike | Mapping[str, Any]) -> Path:
    """A checkpoint (file or loaded dict) as one ``.safetensors`` file, as ``fcnseg convert``
    writes them: its weights, and in the metadata its description, classes, metrics and any
    temperature and calibration (``fcnseg calibrate``). Written whole or not at all."""
    ckpt = as_checkpoint(checkpoint)
    model = build_model_from_checkpoint(ckpt)
    classes = ckpt["classes"]
    config = pretrained_config(model, classes["names"], classes["palette"],
                               int(classes["ignore_index"]), ckpt.get("metrics"),
                               _converted_from(ckpt), class_extras=classes,
                               **{k: ckpt[k] for k in ("temperature", "calibration") if k in ckpt})
    # What a checkpoint as loaded holds beyond JSON's types (a path, a tensor) is kept as text.
    write_model_safetensors(Path(path), model, {METADATA_KEY: json.dumps(config, default=str)})
    return Path(path)
