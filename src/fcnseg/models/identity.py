"""What a model is, recorded once when it is built: architecture, build arguments, convention.

Checkpoints store :meth:`ModelIdentity.describe` and rebuild the model with
``build_model(arch, **build_kwargs)``; loading weights of another convention replaces it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fcnseg.conventions import InputConvention, get_convention
from fcnseg.models.preprocess import BareInput, Preprocess


@dataclass
class ModelIdentity:
    """``arch`` (a :data:`~fcnseg.models.MODEL_BUILDERS` name), the builder's recorded keyword
    arguments and the input convention of the weights."""

    arch: str
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    input_convention: InputConvention | str | Mapping[str, Any] = "caffe_bgr"

    def __post_init__(self) -> None:
        self.build_kwargs = dict(self.build_kwargs)
        self.input_convention = get_convention(self.input_convention)  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        """The JSON-able description that checkpoints store: ``build_kwargs`` name the
        convention too, so that ``build_model(arch, **build_kwargs)`` rebuilds this model."""
        conv = self.input_convention.to_dict()  # type: ignore[union-attr]
        return {"arch": self.arch, "build_kwargs": {**self.build_kwargs, "input_convention": conv},
                "input_convention": conv}


class DescribedModel:
    """Mixin exposing ``self.identity``'s ``arch``, ``build_kwargs`` and ``input_convention``
    (setting it also sets the model's preprocessing)."""

    identity: ModelIdentity

    @property
    def arch(self) -> str:
        return self.identity.arch

    @property
    def build_kwargs(self) -> dict[str, Any]:
        return self.identity.build_kwargs

    @property
    def input_convention(self) -> InputConvention:
        return self.identity.input_convention  # type: ignore[return-value]

    @input_convention.setter
    def input_convention(self, value: InputConvention | str | Mapping[str, Any]) -> None:
        conv = get_convention(value)  # type: ignore[arg-type]
        self.identity.input_convention = conv
        preprocess = getattr(self, "preprocess", None)
        if isinstance(preprocess, Preprocess):  # not when replaced by nn.Identity()
            preprocess.set_convention(conv)
        elif isinstance(preprocess, BareInput):  # what it tells raw pixels by
            preprocess.convention = conv
