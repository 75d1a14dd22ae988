"""YAML parser errors as one line: where (line, column) and what is wrong."""

from __future__ import annotations

import yaml


def yaml_problem(error: yaml.YAMLError) -> str:
    """``line L, column C: PROBLEM`` for a PyYAML error (1-based), instead of its several lines."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    text = " ".join(str(problem).split())
    if context:
        # "while parsing a flow sequence" that started here: where the mistake usually is.
        text += f" ({' '.join(str(context).split())}"
        text += f" started at {_where(context_mark)})" if context_mark is not None else ")"
    return text if mark is None else f"{_where(mark)}: {text}"


def _where(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"
