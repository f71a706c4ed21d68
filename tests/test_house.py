"""The house rules that the code itself can check: no import cycle, files and functions short.

The import graph has one node per module (a package is its `__init__`) and an edge for every
import statement a module's source holds, wherever it stands: at the top, inside a function
(a lazy import dodging a cycle is still a cycle) or under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("roadmap", "experiments", "analysis")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 50
LONG_REASON = "Long because"  # how a docstring says why its function may run longer


def _modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `path` imports, anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in modules
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 50  # the walk does see the imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"], ["d"]]


def test_the_builder_names_no_harness_module() -> None:
    modules = _modules()
    for name, path in modules.items():
        if name.split(".")[0] == "roadmap":
            harness = {m for m in _imports(path, modules) if not m.startswith("roadmap")}
            assert not harness, f"{name} imports {sorted(harness)}"


# What the run-record layer may not import: training, sweeps, the benchmark, the data check,
# analysis, the private submitit access and the command line.
RECORD_LAYER_FORBIDDEN = (
    "experiments.train",
    "experiments.sweep",
    "experiments.bench",
    "experiments.data",
    "experiments.submitit_private",
    "analysis",
    "roadmap.cli",
)


def _forbidden(imported: set[str]) -> list[str]:
    return sorted(
        m for m in imported for f in RECORD_LAYER_FORBIDDEN if m == f or m.startswith(f + ".")
    )


def test_the_record_layer_imports_neither_training_nor_analysis() -> None:
    modules = _modules()
    records = [n for n in modules if n == "experiments.runs" or n.startswith("experiments.runs.")]
    assert records
    for name in records:
        bad = _forbidden(_imports(modules[name], modules))
        assert not bad, f"{name} imports {bad}"


def test_the_forbidden_import_check_sees_one() -> None:
    assert _forbidden({"experiments.train.trainer", "roadmap.errors"}) == [
        "experiments.train.trainer"
    ]
    assert _forbidden({"experiments.runs.records", "experiments.trainer_x"}) == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_files_and_functions_are_short(name: str) -> None:
    path = _modules()[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_FILE_LINES, f"{path}: over {MAX_FILE_LINES} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            reason = LONG_REASON in (ast.get_docstring(node) or "")
            assert length <= MAX_FUNCTION_LINES or reason, (
                f"{path}:{node.lineno} {node.name} has {length} lines and no "
                f"'{LONG_REASON} ...' in its docstring"
            )
