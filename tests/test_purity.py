"""The core (auction/, ordering/) stays pure: no I/O, web, clock or process frameworks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "fastapi", "starlette", "redis", "websockets", "asyncio", "httpx", "uvicorn", "socket",
    "subprocess", "os", "time", "random", "datetime", "threading", "multiprocessing",
    "api", "node", "committee", "requests", "pydantic_settings", "prometheus_client",
}
# A solver may read a monotonic clock for its documented safety cutoff only (ordering/solver.py).
ALLOWED = {("ordering/solver.py", "time")}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


CORE_FILES = sorted(p for pkg in ("auction", "ordering") for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_is_pure(path):
    rel = str(path.relative_to(ROOT))
    bad = {m for m in _imports(path) & FORBIDDEN if (rel, m) not in ALLOWED}
    assert not bad, f"{rel} imports {sorted(bad)}"
