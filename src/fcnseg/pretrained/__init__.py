"""Pretrained models: the reference's .caffemodel files, published weights, and the Hub.

- :mod:`fcnseg.pretrained.caffemodel`: read ``.caffemodel`` files (the ``caffe`` extra);
- :mod:`fcnseg.pretrained.reference`: the reference models, one table entry each;
- :mod:`fcnseg.pretrained.published`: the published weights and where they come from (a table);
- :mod:`fcnseg.pretrained.convert`: a ``.caffemodel`` to an fcnseg model;
- :mod:`fcnseg.pretrained.fetch`: downloads from the official sources, converted and cached;
- :mod:`fcnseg.pretrained.resolve`: :func:`resolve_checkpoint`, every form ``--checkpoint``
  takes (pretrained folders, ``.safetensors``, ``hf://``) as a local checkpoint file;
- :mod:`fcnseg.pretrained.hub`: writing pretrained folders, the Hub upload, ``from_pretrained``.

The package imports none of its modules, and they sit on both sides of the models: the tables
and the resolver below them (:mod:`fcnseg.models` reads the published-weights table,
:mod:`fcnseg.checkpoint` the resolver), fetching, conversion and the Hub above them and
:mod:`fcnseg.checkpoint`.
"""
