"""Exported models run as PyTorch models; the names for it are kept here for older code.
They are :mod:`fcnseg.weightfiles.artifacts`'s (the files and their metadata) and
:mod:`fcnseg.models.exported`'s (the module that runs one)."""

from fcnseg.models.exported import ArtifactModel, artifact_model
from fcnseg.weightfiles.artifacts import (
    RAW_PIXELS,
    ArtifactError,
    artifact_kind,
    onnx_session,
    read_artifact,
)
