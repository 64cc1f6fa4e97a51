"""Compiling the solver: each kernel once, with progress; nothing reported on a warm start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordering.joint import JOINT_KERNELS
from ordering.packer import warm_up
from ordering.solver import PACK_KERNELS, VCG_KERNELS

ROOT = Path(__file__).resolve().parents[2]

_COLD = """
import json, sys
from numba.core import event
compiled = []

class Record(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        func = ev.data["dispatcher"].py_func
        if func.__module__.startswith("ordering."):
            compiled.append(func.__name__)

event.register("numba:compile", Record())
from ordering.packer import warm_up
calls = []
warm_up(progress=lambda done, total: calls.append([done, total]))
print(json.dumps({"compiled": compiled, "calls": calls}))
"""


def test_warm_start_reports_no_progress() -> None:
    warm_up()  # compiled or loaded: from here on everything is in memory
    calls: list[tuple[int, int]] = []
    warm_up(progress=lambda done, total: calls.append((done, total)))
    assert calls == []


@pytest.mark.slow
def test_cold_compile_compiles_each_kernel_once_and_reports_each(tmp_path: Path) -> None:
    # An empty numba cache: a first run on a new machine (about a minute of CPU)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _COLD], capture_output=True, text=True,
                         timeout=900, cwd=ROOT, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.splitlines()[-1])
    # Verify that no kernel compiled twice (an int literal argument makes a second copy)
    assert sorted(data["compiled"]) == sorted(PACK_KERNELS + VCG_KERNELS + JOINT_KERNELS)
    total = len(PACK_KERNELS) + len(VCG_KERNELS) + len(JOINT_KERNELS)
    assert data["calls"] == [[done, total] for done in range(total + 1)]
