"""Pretrained models come from :mod:`~fcnseg.pretrained.convert`, ``fetch`` and ``hub``.
``convert`` turns a ``.caffemodel`` into an fcnseg model, ``fetch`` converts and caches published
weights, and ``hub`` reads pretrained folders and the Hub (``from_pretrained``).

The tables and readers models and checkpoints need live below them in :mod:`fcnseg.weightfiles`,
which the earlier names ``fcnseg.pretrained.reference``, ``.published``, ``.resolve``,
``.caffemodel`` and ``.caffe_proto`` still import. The package imports none of its modules."""
