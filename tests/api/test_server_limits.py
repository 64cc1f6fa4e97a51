"""HTTP limits of ``blockspace serve`` against slowloris, on a real server process: a request
must arrive whole within the read timeout, and connections over the caps are refused while
honest requests are still answered."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.demo import free_port

ROOT = Path(__file__).resolve().parents[2]
READ_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 8
MAX_PER_CLIENT = 3
KEEP_ALIVE_S = 30.0
CHAIN_ID_CALL = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "BLOCKSPACE_HTTP_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "BLOCKSPACE_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "BLOCKSPACE_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(MAX_PER_CLIENT),
        "BLOCKSPACE_HTTP_KEEP_ALIVE_S": str(KEEP_ALIVE_S),
    }
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as out:
        # python -m from the checkout: the code under test is this worktree's
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--slot-ms", "1000"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            select.select([], [], [], 0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _request(body: bytes = CHAIN_ID_CALL) -> bytes:
    return (b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body


def _trickle(s: socket.socket, data: bytes, every_s: float = 0.05) -> tuple[float, bytes, int]:
    """Send ``data`` a byte at a time, one every ``every_s``, until the server answers or closes
    (waiting on the socket, never blind). Returns (seconds, what came back, bytes sent)."""
    t0 = time.monotonic()
    for sent, byte in enumerate(data):
        readable, _, _ = select.select([s], [], [], every_s)
        if readable:
            return time.monotonic() - t0, _read_all(s), sent
        try:
            s.send(bytes([byte]))
        except OSError:
            return time.monotonic() - t0, b"", sent
    raise AssertionError("the whole request went through a byte at a time")


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def _answered(port: int, source: str = "127.0.0.1") -> bool:
    with _connect(port, source) as s:
        s.sendall(_request())
        return _read_reply(s).startswith(b"HTTP/1.1 200")


def _read_reply(s: socket.socket) -> bytes:
    """One HTTP reply on a kept-alive connection (headers and content-length body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += s.recv(65536)
    return buf


def _wait_answered(port: int, source: str = "127.0.0.1", timeout_s: float = 10) -> None:
    """Until the server takes a request again from ``source`` (closed connections are released
    when the server sees them go, a moment after the client closes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if _answered(port, source):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not take requests again"
        select.select([], [], [], 0.05)


def test_headers_sent_byte_by_byte_are_cut_off_after_the_read_timeout(port):
    with _connect(port) as s:
        seconds, reply, sent = _trickle(s, _request() + b" " * 10_000)
    assert READ_TIMEOUT_S * 0.9 <= seconds < READ_TIMEOUT_S + 3, seconds
    assert sent < len(_request())  # cut off while still in the headers
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408"), reply


def test_a_body_sent_byte_by_byte_is_cut_off_after_the_read_timeout(port):
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","pad":"' + b"x" * 2000 + b'"}'
    request = _request(body)
    headers_end = request.index(b"\r\n\r\n") + 4
    with _connect(port) as s:
        s.sendall(request[:headers_end])
        seconds, reply, _ = _trickle(s, request[headers_end:])
    assert READ_TIMEOUT_S * 0.9 <= seconds < READ_TIMEOUT_S + 3, seconds
    assert reply.startswith(b"HTTP/1.1 408"), reply


def test_an_idle_connection_is_closed_after_the_read_timeout(port):
    with _connect(port) as s:
        t0 = time.monotonic()
        readable, _, _ = select.select([s], [], [], READ_TIMEOUT_S + 5)
        assert readable and _read_all(s) == b""  # closed without a word: nothing was asked
    assert READ_TIMEOUT_S * 0.9 <= time.monotonic() - t0 < READ_TIMEOUT_S + 3


def test_a_kept_alive_connection_gets_a_fresh_read_timeout_per_request(port):
    with _connect(port) as s:
        for _ in range(3):
            s.sendall(_request())
            assert _read_reply(s).startswith(b"HTTP/1.1 200")
            # idle longer than the read timeout between requests: keep-alive governs that
            readable, _, _ = select.select([s], [], [], READ_TIMEOUT_S * 1.5)
            assert not readable


def test_connections_over_the_per_client_cap_are_refused_others_answered(port):
    _wait_answered(port)
    held = []
    try:
        for _ in range(MAX_PER_CLIENT):  # honest keep-alive connections, each answered once
            s = _connect(port)
            s.sendall(_request())
            assert _read_reply(s).startswith(b"HTTP/1.1 200")
            held.append(s)
        with _connect(port) as over:
            over.sendall(_request())
            assert _read_all(over).startswith(b"HTTP/1.1 503")
        assert _answered(port, source="127.0.0.2")  # another client is still served
        held[0].sendall(_request())  # and so are the held connections
        assert _read_reply(held[0]).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
    _wait_answered(port)


def test_connections_over_the_total_cap_are_refused_while_open_ones_are_answered(port):
    _wait_answered(port)
    held = []
    try:
        for i in range(MAX_CONNECTIONS):  # one slow client per address fills the server
            s = _connect(port, source=f"127.0.1.{i + 1}")
            s.sendall(_request())
            assert _read_reply(s).startswith(b"HTTP/1.1 200")
            held.append(s)
        with _connect(port, source="127.0.2.1") as over:
            over.sendall(_request())
            assert _read_all(over).startswith(b"HTTP/1.1 503")
        held[-1].sendall(_request())
        assert _read_reply(held[-1]).startswith(b"HTTP/1.1 200")
        held.pop().close()
        _wait_answered(port, source="127.0.2.1")  # a place freed is taken again
    finally:
        for s in held:
            s.close()


def test_websockets_outlive_the_read_timeout_and_count_against_the_cap(port):
    from websockets.sync.client import connect

    source = "127.0.0.3"
    _wait_answered(port, source)
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws",
                                               sock=_connect(port, source)))
                   for _ in range(MAX_PER_CLIENT)]
        with _connect(port, source) as over:
            over.sendall(_request())
            assert _read_all(over).startswith(b"HTTP/1.1 503")
        # Past the read timeout, the websockets are still served
        readable, _, _ = select.select([sockets[0].socket], [], [], READ_TIMEOUT_S * 1.5)
        assert not readable
        sockets[0].send(CHAIN_ID_CALL.decode())
        assert '"result"' in sockets[0].recv(timeout=10)
    _wait_answered(port, source)  # their places are given back when they end
