"""The committee's rules stay pure: what a member decides, and what a verifier checks, is a
function of its inputs (no sockets, files, clocks or processes), like auction/ and ordering/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["checks.py", "endorsement.py", "evidence.py", "opening.py", "proposal.py", "records.py",
        "signing.py", "verify.py", "wire.py"]
FORBIDDEN = {
    "fastapi", "starlette", "redis", "websockets", "asyncio", "httpx", "uvicorn", "socket",
    "subprocess", "os", "time", "random", "datetime", "threading", "multiprocessing", "sqlite3",
    "api", "pydantic_settings", "prometheus_client",
}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("name", PURE)
def test_committee_rules_are_pure(name: str) -> None:
    bad = _imports(ROOT / "committee" / name) & FORBIDDEN
    assert not bad, f"committee/{name} imports {sorted(bad)}"


def test_pure_modules_import_only_pure_committee_modules() -> None:
    shell = {"member", "signer", "coordinator", "protection", "local", "commands", "keeping"}
    for name in PURE:
        tree = ast.parse((ROOT / "committee" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "committee":
                assert not {a.name for a in node.names} & shell, name
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("committee."):
                assert node.module.split(".")[1] not in shell, f"{name} imports {node.module}"
