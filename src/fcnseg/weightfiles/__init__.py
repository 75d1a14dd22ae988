"""Weight files and what describes them: the reference (Caffe) and published models,
``.caffemodel`` files, the forms ``--checkpoint`` takes (``resolve``) and exported models
(``artifacts``). Nothing here builds a model: :mod:`fcnseg.models` and :mod:`fcnseg.checkpoint`
import these modules, never the other way round.
"""
