"""The code stays lint-clean and type-clean: ruff and mypy run as part of the suite.

Both tools are pinned in the ``dev`` extra (a new release may add checks; upgrade them on
purpose). mypy takes tens of seconds from a cold cache, hence ``slow``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check_passes() -> None:
    out = _run(str(BIN / "ruff"), "check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_passes() -> None:
    packages = ("api", "node", "committee", "auction", "ordering", "bench", "loadtest")
    out = _run(str(BIN / "mypy"), *packages)
    assert out.returncode == 0, out.stdout + out.stderr
