"""The module graph of ``loragate/``: no import circle (lazy imports inside functions count:
they are circles that only hide until a call), and the stages that must not know each other
do not, transitively.

The graph is read from the source with ``ast``, so it sees every import a call could run,
not only the ones an import at start-up happens to run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import loragate

PACKAGE = Path(loragate.__file__).parent


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` (module ``name``) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            # `from a.b import c` imports the module a.b.c if there is one, else a.b
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
                break
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(root, path): path for path in root.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for other in graph[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def write_package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "pkg"
    for name, body in modules.items():
        path = package / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    return package


def test_loragate_has_no_import_circle() -> None:
    circles = import_circles(import_graph(PACKAGE))
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize(("stage", "other"), [("training", "packaging"),
                                              ("packaging", "training")])
def test_training_and_packaging_never_reach_each_other(stage: str, other: str) -> None:
    graph = import_graph(PACKAGE)
    offenders = [
        f"{name} reaches {target}"
        for name in sorted(graph) if name.startswith(f"loragate.{stage}.")
        for target in sorted(reachable(graph, name))
        if target.startswith(f"loragate.{other}.") or target == f"loragate.{other}"
    ]
    assert not offenders, "\n".join(offenders)


def test_a_circle_through_a_lazy_import_is_found(tmp_path: Path) -> None:
    """The check can fail: a circle closed only by an import inside a function is one."""
    package = write_package(tmp_path, {
        "__init__": "",
        "a": "from pkg.b import helper\n",
        "b": "def helper():\n    from pkg import a\n    return a\n",
        "c": "import pkg.a\n",
    })
    assert import_circles(import_graph(package)) == [["pkg.a", "pkg.b"]]


def test_relative_and_submodule_imports_are_edges(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__": "",
        "stage/__init__": "",
        "stage/x": "from . import y\nfrom ..other import z\n",
        "stage/y": "",
        "other/__init__": "",
        "other/z": "",
    })
    graph = import_graph(package)
    assert graph["pkg.stage.x"] == {"pkg.stage.y", "pkg.other.z"}
    assert reachable(graph, "pkg.stage.x") == {"pkg.stage.y", "pkg.other.z"}
