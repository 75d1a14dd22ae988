"""Pretrained models: the reference's .caffemodel files converted, published weights fetched,
and the Hub.

- :mod:`fcnseg.pretrained.convert`: a ``.caffemodel`` to an fcnseg model;
- :mod:`fcnseg.pretrained.fetch`: downloads from the official sources, converted and cached;
- :mod:`fcnseg.pretrained.hub`: writing pretrained folders, the Hub upload, ``from_pretrained``.

These build on models and checkpoints. What those read themselves (the published-weights and
reference tables, the ``.caffemodel`` reader, the checkpoint resolver) lives below them in
:mod:`fcnseg.weightfiles`, which the earlier names ``fcnseg.pretrained.reference``,
``.published``, ``.resolve``, ``.caffemodel`` and ``.caffe_proto`` still import.

The package imports none of its modules.
"""
