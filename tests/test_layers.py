"""The package's import graph points one way: no cycles, core layers only look down.

Built with ``ast`` from the source, function-level and ``TYPE_CHECKING``
imports included: a lazy import hides a cycle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nearnb"

#: The run core, lowest first. A module may import only from its own layer or below.
CORE_LAYERS: list[set[str]] = [
    {
        "nearnb.compactdelta",
        "nearnb.events",
        "nearnb.config",
        "nearnb.tools",
        "nearnb.tool_text",
        "nearnb.near_models",
        "nearnb.wirepack",
        "nearnb.logcolumns",
    },
    {
        "nearnb.sinks",
        "nearnb.eventseq",
        "nearnb.logrows",
        "nearnb.stepstate",
        "nearnb.reducer",
        "nearnb.projection",
        "nearnb.accumulator",
    },
    {
        "nearnb.runlog",
        "nearnb.dburl",
        "nearnb.storeschema",
        "nearnb.storebase",
        "nearnb.store",
        "nearnb.pgstore",
        "nearnb.replayfile",
    },
    {
        "nearnb.persist",
        "nearnb.bus",
        "nearnb.bus_redis",
        "nearnb.bus_watch",
        "nearnb.messages",
        "nearnb.recording",
        "nearnb.export",
        "nearnb.modelchoice",
        "nearnb.agents",
        "nearnb.agentdata",
        "nearnb.embeddings",
        "nearnb.vectorindex",
        "nearnb.vectorstores",
    },
    {"nearnb.streaming", "nearnb.writer", "nearnb.env_base", "nearnb.near_clients"},
    {
        "nearnb.env_files",
        "nearnb.env_tools",
        "nearnb.env_compat",
        "nearnb.env_data",
        "nearnb.env_agents",
    },
    {"nearnb.environment"},
    {"nearnb._compat", "nearnb.execution"},
    {"nearnb.result", "nearnb.children", "nearnb.runhandle"},
    {"nearnb.runs"},
]
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in modules:
                        deps.add(full)
                    elif target in modules:
                        deps.add(target)
            elif isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names if alias.name in modules)
        deps.discard(name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first == last), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_layers_only_import_downwards() -> None:
    graph = import_graph()
    level = {module: i for i, layer in enumerate(CORE_LAYERS) for module in layer}
    assert set(level) <= set(graph), set(level) - set(graph)
    upward = [
        f"{module} (layer {level[module]}) imports {dep} (layer {level[dep]})"
        for module in level
        for dep in graph[module]
        if dep in level and level[dep] > level[module]
    ]
    assert not upward, upward
    outside = [
        f"{module} imports {dep}"
        for module in level
        for dep in graph[module]
        if dep not in level and not dep.startswith("nearnb.providers")
    ]
    assert not outside, f"the core imports views, the hub or the API: {outside}"


def test_modules_stay_small() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
