"""Weight files and what describes them live here; nothing here builds a model.
They are the reference (Caffe) and published models, ``.caffemodel`` files, the forms
``--checkpoint`` takes (``resolve``) and exported models (``artifacts``). :mod:`fcnseg.models`
and :mod:`fcnseg.checkpoint` import these modules, never the other way round."""
