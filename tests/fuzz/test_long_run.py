"""The fuzz tests again with ten times the examples (fresh random inputs each run), as a slow
test: the normal suite keeps each fuzz test short; CI also runs this longer hunt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCALE = 10


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_tests_hold_for_ten_times_the_examples() -> None:
    env = {**os.environ, "BLOCKSPACE_FUZZ_SCALE": str(SCALE)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-p", "no:cacheprovider",
         "-m", "not slow", "-W", "ignore::hypothesis.errors.HypothesisWarning"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
