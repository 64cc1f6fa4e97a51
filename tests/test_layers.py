"""Layers import downwards only, and no two modules import each other (issue 10).

The layers, bottom first (docs/architecture.md):

0. ``ordering``: the packing problem and its solvers (imports nothing of this project above);
1. ``auction``: the auction's rules, pure (types, intake, results, history, fairness);
2. the committee's pure rules: threshold BLS, key files, what is signed, proposals, checks;
3. ``node``: the shell both kinds of process share: settings, wire errors, HTTP limits, stores,
   notifications, metrics;
4. the committee's shell: members, their protection files, signer processes, the coordinator;
5. ``api``: the engine process (intake, the slot clock, JSON-RPC, websocket, data API, CLI).

A module may import its own layer and the layers below. Every import counts, type-only ones too:
a cycle that only type checkers see is still a concept without a home.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTEE_CORE = {"bls", "threshold", "keyfiles", "wire", "signing", "records", "proposal",
                  "sealedset", "reopening", "opening", "encryption", "encryption_errors",
                  "checks", "verify", "errors", "evidence", "endorsement"}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[0]
    if top == "committee":
        return 2 if len(parts) > 1 and parts[1] in COMMITTEE_CORE else 4
    return {"ordering": 0, "auction": 1, "node": 3, "api": 5}[top]


PACKAGES = ("ordering", "auction", "committee", "node", "api")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (a ``from package import name`` naming a module
    counts as importing that module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import mod`` imports mod; ``from mod import name`` imports mod
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in paths.items():
        graph[name] = {m for m in project_imports(path, modules) if m != name}
    return graph


GRAPH = import_graph()


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module: str) -> None:
    up = sorted(m for m in GRAPH[module] if layer_of(m) > layer_of(module))
    assert not up, f"{module} (layer {layer_of(module)}) imports {up}"


def test_no_two_modules_import_each_other_even_indirectly() -> None:
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_table_knows_every_module() -> None:
    for module in GRAPH:
        assert 0 <= layer_of(module) <= 5
