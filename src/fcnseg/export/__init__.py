"""Export to ONNX and TorchScript, each verified against PyTorch before the file is written."""

from fcnseg.export.common import DEFAULT_ATOL, ExportError, SampleCheck, metadata_strings
from fcnseg.export.onnx_export import EXPORTERS, OnnxExport, OnnxOptions, export_onnx
from fcnseg.export.torchscript import TorchScriptExport, export_torchscript
from fcnseg.weightfiles.artifacts import read_onnx_metadata, read_torchscript_metadata

__all__ = ["DEFAULT_ATOL", "EXPORTERS", "ExportError", "OnnxExport", "OnnxOptions", "SampleCheck",
           "TorchScriptExport", "export_onnx", "export_torchscript", "metadata_strings",
           "read_onnx_metadata", "read_torchscript_metadata"]
