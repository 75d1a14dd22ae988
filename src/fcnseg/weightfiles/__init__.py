"""Weight files and what describes them, below the models and checkpoints that read them.

- :mod:`fcnseg.weightfiles.reference`: the reference (Caffe) models, one table entry each;
- :mod:`fcnseg.weightfiles.published`: the published weights and where they come from;
- :mod:`fcnseg.weightfiles.caffemodel`: read and write ``.caffemodel`` files (the ``caffe``
  extra), with :mod:`fcnseg.weightfiles.caffe_proto`;
- :mod:`fcnseg.weightfiles.resolve`: the checkpoint format, ``.safetensors`` files, and every
  form ``--checkpoint`` takes as a local checkpoint file (``resolve_checkpoint``);
- :mod:`fcnseg.weightfiles.artifacts`: exported models (ONNX, TorchScript): what kind a file is,
  its metadata as a checkpoint-shaped description, and ONNX Runtime sessions.

Nothing here builds a model: :mod:`fcnseg.models` and :mod:`fcnseg.checkpoint` import these
modules, never the other way round. The package imports none of its modules.
"""
