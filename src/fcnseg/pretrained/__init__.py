"""Pretrained models: :mod:`~fcnseg.pretrained.convert` (a ``.caffemodel`` to an fcnseg model),
:mod:`~fcnseg.pretrained.fetch` (published weights, converted and cached) and
:mod:`~fcnseg.pretrained.hub` (pretrained folders, the Hub, ``from_pretrained``).

The tables and readers models and checkpoints need live below them in :mod:`fcnseg.weightfiles`,
which the earlier names ``fcnseg.pretrained.reference``, ``.published``, ``.resolve``,
``.caffemodel`` and ``.caffe_proto`` still import. The package imports none of its modules."""
