"""A live ``blockspace serve`` for the compat tests, and a searcher's calls to it.

Signing here uses eth-account directly, not ``api/searcher.py``: an independent implementation
of the X-Flashbots-Signature scheme checks the server's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from websockets.sync.client import ClientConnection

from auction.presets import DEFAULT_CHAIN_ID

CLIENTS_DIR = Path(__file__).parent / "clients"
SLOT_MS = 1000
SERVER_START_TIMEOUT_S = 20.0
CLIENT_TIMEOUT_S = 60.0
CHAIN_ID = DEFAULT_CHAIN_ID


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BlockspaceServer:
    """A ``blockspace serve`` process we started (memory store, short slots)."""

    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("blockspace")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "api.cli", "serve"]


def start_server(workdir: Path) -> BlockspaceServer:
    """Start ``blockspace serve`` on a free port (memory store, short slots); wait until it
    answers /healthz."""
    port = _free_port()
    log_path = workdir / "serve.log"
    # Flags say everything; BLOCKSPACE_* from the caller's shell must not change the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKSPACE_")}
    cmd = _serve_command() + [
        "--host", "127.0.0.1",
        "--port", str(port),
        "--slot-ms", str(SLOT_MS),
        "--store", "memory",
        "--preset", "mainnet",
        "--rollup", str(CHAIN_ID),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = BlockspaceServer(port=port, log_path=log_path, proc=proc)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"blockspace serve exited:\n{server.log_tail()}", pytrace=False)
        try:
            if httpx.get(f"{server.url}healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"blockspace serve did not answer:\n{server.log_tail()}", pytrace=False)
        time.sleep(0.05)


def sign_body(private_key: str, body: bytes) -> str:
    """X-Flashbots-Signature for ``body``: EIP-191 over "0x" + hex(keccak256(body))."""
    account = Account.from_key(private_key)
    message = encode_defunct(text="0x" + keccak(body).hex())
    signature = bytes(Account.sign_message(message, private_key).signature)
    return f"{account.address}:0x{signature.hex()}"


def call(
    server: BlockspaceServer, method: str, params: list[Any], *, key: str | None = None
) -> dict[str, Any]:
    """One JSON-RPC call over HTTP; signed when ``key`` is given."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Flashbots-Signature"] = sign_body(key, body)
    response = httpx.post(server.url, content=body, headers=headers, timeout=10.0)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def get_bundle_stats(
    server: BlockspaceServer, key: str, bundle_hash: str, slot: int
) -> dict[str, Any]:
    """flashbots_getBundleStatsV2 as the searcher holding ``key``; fails on an error answer."""
    answer = call(
        server,
        "flashbots_getBundleStatsV2",
        [{"bundleHash": bundle_hash, "blockNumber": hex(slot)}],
        key=key,
    )
    assert "result" in answer, f"stats for {bundle_hash} at slot {slot}: {answer}"
    stats: dict[str, Any] = answer["result"]
    return stats


def compute_flashbots_bundle_hash(raw_txs: list[str]) -> str:
    """keccak256 of the concatenated transaction hashes, computed here, not by the server."""
    hashes = b"".join(keccak(bytes.fromhex(raw.removeprefix("0x"))) for raw in raw_txs)
    return "0x" + keccak(hashes).hex()


class SlotWatcher:
    """A websocket subscribed to slot closes, so a test waits on the server's own event."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ws.send(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "bs_subscribe", "params": ["slots"]})
        )
        ack = json.loads(self.ws.recv(timeout=10))
        assert ack.get("result") == "slots", ack
        self.closed: dict[int, dict[str, Any]] = {}

    def wait_closed(self, slot: int, timeout_s: float = 15.0) -> dict[str, Any]:
        """The server's announcement that ``slot`` closed (its result is stored by then)."""
        deadline = time.monotonic() + timeout_s
        while slot not in self.closed:
            if any(s > slot for s in self.closed):
                raise AssertionError(f"slot {slot} closed before the watcher subscribed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"slot {slot} was not announced closed in {timeout_s} s")
            msg = json.loads(self.ws.recv(timeout=remaining))
            if msg.get("method") == "bs_subscription":
                result = msg["params"]["result"]
                if result.get("closed"):
                    self.closed[int(result["slot"])] = result
        return self.closed[slot]


def run_client(cmd: list[str], *, cwd: Path, server: BlockspaceServer) -> dict[str, Any]:
    """Run a client script; its last stdout line is a JSON report."""
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"client timed out after {CLIENT_TIMEOUT_S} s\nstdout: {exc.stdout!r}\n"
            f"stderr: {exc.stderr!r}\nserver log:\n{server.log_tail()}"
        ) from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"client exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
            f"server log:\n{server.log_tail()}"
        )
    report: dict[str, Any] = json.loads(lines[-1])
    return report
