"""The console script, run as a user would: real processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.demo import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "blockspace"


@pytest.mark.slow
def test_demo_runs_and_prints_slots():
    out = subprocess.run(
        [str(BIN), "demo", "--slots", "3", "--slot-ms", "500", "--searchers", "4"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    slot_lines = [line for line in lines if line.startswith("slot ")]
    assert len(slot_lines) >= 3
    summary = [line for line in lines if line.startswith("summary:")]
    assert summary and " 0 refused" in summary[0], out.stdout
    assert "winners" in slot_lines[0] and "revenue" in slot_lines[0]


@pytest.mark.slow
def test_serve_answers_health_and_json_rpc():
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--slot-ms", "500"],
        cwd=ROOT, env={**os.environ, "BLOCKSPACE_ROLLUPS": "[10, 167001]"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.json()["rollups"] == [10, 167001]
        reply = httpx.post(f"http://127.0.0.1:{port}/",
                           content=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}').json()
        assert reply["result"] == "0xa"  # the first configured rollup is the default
        # Slots close on the real clock: eth_blockNumber advances.
        first = int(httpx.post(f"http://127.0.0.1:{port}/", content=(
            b'{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}')).json()["result"], 16)
        time.sleep(1.1)
        second = int(httpx.post(f"http://127.0.0.1:{port}/", content=(
            b'{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber"}')).json()["result"], 16)
        assert second >= first + 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bad_flags_exit_nonzero():
    out = subprocess.run([str(BIN), "serve", "--store", "postgres://x"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "store" in out.stderr
