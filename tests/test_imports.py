"""The package's import graph: no module imports, directly or through others, one that imports
it back, counting imports inside functions too (a lazy import hides a cycle, it does not break
it)."""

from __future__ import annotations

import ast
from pathlib import Path

import fcnseg

PACKAGE = Path(fcnseg.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """``{module: the fcnseg modules it imports}``, at the top or inside functions."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def known(name: str) -> str | None:  # the module a dotted name lives in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges |= {m for m in map(known, targets) if m and m != name}
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first again at the end), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return [*path[path.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_import_graph_reads_imports_inside_functions_too() -> None:
    graph = _import_graph()
    # fetch imports the .caffemodel converter in a function (protobuf is an optional extra).
    assert "fcnseg.pretrained.convert" in graph["fcnseg.pretrained.fetch"]
    assert "fcnseg.models.builders" in graph["fcnseg.models"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    cycle = _cycle(_import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


#: What each part of the package must not import, by the layering README.md describes: data
#: moves one way (file → dataset → model → loss/metrics → checkpoint), weight files sit below
#: the models, published weights and the Hub above them, the command line on top of all.
ABOVE = {
    "fcnseg.data": ("models", "engine", "inference", "export", "serve", "pretrained",
                    "checkpoint", "weightfiles", "bench", "cli"),
    "fcnseg.weightfiles": ("models", "checkpoint", "pretrained", "engine", "inference",
                           "export", "serve", "bench", "cli"),
    "fcnseg.models": ("data", "checkpoint", "pretrained", "engine", "inference", "export",
                      "serve", "bench", "cli"),
    "fcnseg.checkpoint": ("pretrained", "engine", "inference", "export", "serve", "bench", "cli"),
    "fcnseg.pretrained": ("engine", "inference", "export", "serve", "bench", "cli"),
    "fcnseg.inference": ("engine", "export", "serve", "bench", "cli"),
    "fcnseg.engine": ("export", "serve", "bench", "cli"),
}


def test_no_part_of_the_package_imports_one_above_it() -> None:
    graph = _import_graph()
    upward = [f"{module} -> {dep}" for module, deps in sorted(graph.items())
              for part, above in ABOVE.items()
              if module == part or module.startswith(part + ".")
              for dep in sorted(deps)
              if any(dep == f"fcnseg.{a}" or dep.startswith(f"fcnseg.{a}.") for a in above)]
    assert not upward, "\n".join(upward)
