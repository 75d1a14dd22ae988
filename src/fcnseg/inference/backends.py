"""Exported models run as PyTorch models: the names of :mod:`fcnseg.weightfiles.artifacts`
(the files and their metadata) and :mod:`fcnseg.models.exported` (the module that runs one),
kept here for code written against this module."""

from fcnseg.models.exported import ArtifactModel, artifact_model
from fcnseg.weightfiles.artifacts import (
    RAW_PIXELS,
    ArtifactError,
    artifact_kind,
    onnx_session,
    read_artifact,
)
