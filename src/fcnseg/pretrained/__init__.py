"""Pretrained models: the reference's .caffemodel files, published weights, and the Hub.

- :mod:`fcnseg.pretrained.caffemodel`: read ``.caffemodel`` files (the ``caffe`` extra);
- :mod:`fcnseg.pretrained.reference`: the reference models, one table entry each;
- :mod:`fcnseg.pretrained.convert`: a ``.caffemodel`` to an fcnseg model;
- :mod:`fcnseg.pretrained.fetch`: downloads from the official sources, converted and cached;
- :mod:`fcnseg.pretrained.hub`: pretrained folders, the Hub, and :func:`resolve_checkpoint`.

The package imports none of its modules: :mod:`fcnseg.models` reads the published-weights table
from :mod:`~fcnseg.pretrained.fetch`, while :mod:`~fcnseg.pretrained.hub` builds on
:mod:`fcnseg.checkpoint`, which builds on the models.
"""
