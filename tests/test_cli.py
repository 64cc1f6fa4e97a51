"""The console script, run as a user would: real processes on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.cli import build_parser, serve_settings
from api.demo import compute_kernel_total, free_port
from ordering.problem import PAYMENT_FIRST_PRICE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "blockspace"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("deposits", "flags"),
    [("false", []), ("true", []), ("false", ["--no-committee-streaming", "--encrypt"])],
    ids=["streaming", "deposits", "whole_log_encrypted"],
)
def test_demo_runs_and_prints_slots(deposits: str, flags: list[str]) -> None:
    """With deposits enforced the demo funds its searchers (it plays the bridge): none of their
    bids is refused either way; every slot is signed, streaming (the default) or not."""
    out = subprocess.run(
        [str(BIN), "demo", "--slots", "3", "--slot-ms", "500", "--searchers", "4", *flags],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "BLOCKSPACE_DEPOSITS": deposits},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    slot_lines = [line for line in lines if line.startswith("slot ")]
    assert len(slot_lines) >= 3
    summary = [line for line in lines if line.startswith("summary:")]
    assert summary and " 0 refused" in summary[0], out.stdout
    signed = re.search(r"signed (\d+)/(\d+)", summary[0])
    assert signed is not None and signed[1] == signed[2], summary[0]
    assert "winners" in slot_lines[0] and "revenue" in slot_lines[0]
    (said,) = [line for line in lines if line.startswith("blockspace demo: 4 searchers")]
    assert ("streaming re-checks off" in said) == ("--no-committee-streaming" in flags), said


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


def _demo_process(*flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    # python -m from the checkout (the console script may belong to another install)
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "demo", *flags],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_demo_says_what_it_does_before_the_first_compile_ends(tmp_path: Path) -> None:
    # An empty numba cache: the first run on a new machine, which compiles the solver
    proc = _demo_process("--slots", "1", env={"NUMBA_CACHE_DIR": str(tmp_path)})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("blockspace demo: starting the engine, a committee of 4")
        second = proc.stdout.readline()
        assert second.startswith("compiling the solver (first run only, about ")
        total = compute_kernel_total({PAYMENT_FIRST_PRICE})  # the demo's rollups pay first price
        assert second.rstrip().endswith(f" 0/{total} kernels")
        # Verify that both lines came while compiling: the last kernel is not in the cache yet
        assert not list(tmp_path.rglob("solver._solve-*.nbi"))
    finally:
        proc.kill()  # mid-compile: nothing to shut down
        proc.wait(timeout=30)


@pytest.mark.slow
def test_demo_keep_serving_serves_the_dashboard_until_terminated() -> None:
    proc = _demo_process("--slots", "1", "--slot-ms", "500", "--searchers", "2", "--keep-serving")
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the solver is compiled (or loaded) first: up to minutes
            lines.append(line)
            if line.startswith("serving http://"):
                break
        assert any(line.startswith("slot ") for line in lines), lines
        base = lines[-1].split()[1]
        dashboard = [line for line in lines if line.startswith("dashboard: ")]
        assert dashboard == [f"dashboard: {base}/dashboard\n"]
        # Verify that the server still answers after the slots: the dashboard page
        r = httpx.get(f"{base}/dashboard", timeout=10)
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert proc.poll() is None
        proc.terminate()
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "summary: 1 slots" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_demo_with_three_rollups_prints_slot_roots_blocks_and_cross_bundles():
    # python -m from the checkout, like _demo_process, but run to the end
    out = subprocess.run(
        [sys.executable, "-m", "api.cli", "demo", "--rollups", "3", "--slots", "4",
         "--slot-ms", "1000", "--searchers", "4"],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "rollups 167001, 10, 8453 (one auction per slot" in lines[1], lines[1]
    slot_lines = [line for line in lines if line.startswith("slot ")]
    assert len(slot_lines) >= 4
    for line in slot_lines:
        # One line per slot: the signed slot root, a block per rollup, the cross bundles won
        assert re.search(r"root 0x[0-9a-f]{12}", line), line
        for chain in (167001, 10, 8453):
            assert re.search(rf"  {chain}: \d+ bids \d+ won 0x[0-9a-f]{{8}}", line), line
        assert re.search(r"cross won \d+ \(\d+\.\d% of revenue", line) and "signed by" in line
    (summary,) = [line for line in lines if line.startswith("summary:")]
    assert " 0 refused" in summary and "signed 12/12" in summary, summary
    found = re.search(r"cross-rollup bundles (\d+) sent, (\d+) won, (\d+\.\d)% of revenue", summary)
    assert found is not None, summary
    sent, won, share = int(found[1]), int(found[2]), float(found[3])
    # Arbitrageurs compete for the hot pool on both of their rollups: some win, not all
    assert sent > won > 0 and 0 < share < 100


def test_warm_up_leaves_every_kernel_loadable_from_the_cache():
    """`blockspace warm-up` (run by scripts/test before pytest) fills numba's cache: a second run
    in a fresh process loads everything and compiles nothing."""
    run = [str(BIN), "warm-up"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    assert "done in" in second.stdout
    assert "kernels compiled" not in second.stdout, second.stdout


def test_committee_streaming_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming re-checks are the default (decision 161); ``--no-committee-streaming`` (or
    BLOCKSPACE_COMMITTEE_STREAMING=false, which the flag overrides) turns them off."""
    parser = build_parser()
    monkeypatch.delenv("BLOCKSPACE_COMMITTEE_STREAMING", raising=False)
    on = serve_settings(parser.parse_args(["serve"]))
    off = serve_settings(parser.parse_args(["serve", "--no-committee-streaming"]))
    assert on is not None and on.committee_streaming
    assert off is not None and not off.committee_streaming
    monkeypatch.setenv("BLOCKSPACE_COMMITTEE_STREAMING", "false")
    from_env = serve_settings(parser.parse_args(["serve"]))
    flag_wins = serve_settings(parser.parse_args(["serve", "--committee-streaming"]))
    assert from_env is not None and not from_env.committee_streaming
    assert flag_wins is not None and flag_wins.committee_streaming
    assert parser.parse_args(["demo"]).committee_streaming is True
    assert parser.parse_args(["demo", "--no-committee-streaming"]).committee_streaming is False
