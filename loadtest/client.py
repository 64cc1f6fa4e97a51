"""The load client: pre-encoded frames over raw asyncio connections, in worker processes.

Why raw: on a 2-core machine the client competes with the server for CPU, so every microsecond
the client spends per request is taken from the thing being measured. Frames are therefore
encoded before the clock starts (JSON envelope, websocket header and a random RFC 6455 mask per
frame, or the whole HTTP/1.1 request), and the run loop only writes bytes, parses reply frames
and reads each reply's id. Per request it costs a few microseconds, a fraction of what a
``websockets`` client costs.

Flow control: each connection keeps at most ``window`` requests in flight and sends the next as
soon as a reply frees a place. Latency is per request, from the write that carried it to the
read that carried the reply with its id. Every reply is either accepted (``result``) or counted
by its stable error code (``error.data.code``); requests unanswered when the run ends are
``lost``. Notifications (frames without an id) are counted and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import pickle
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from loadtest.corpus import SignedBid

# After the send deadline, how long replies to requests already sent are still awaited.
GRACE_S = 5.0


@dataclass
class ClientPlan:
    """What one client process sends: its connections and each one's requests (corpus rows)."""

    transport: str  # "ws" | "http"
    host: str
    ports: list[int]  # per connection
    path: str
    corpus_path: str
    connections: list[list[int]]  # per connection: indices into the corpus, in send order
    window: int
    seconds: float


@dataclass
class ClientResult:
    sent: int = 0
    accepted: int = 0
    lost: int = 0
    notifications: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: array = field(default_factory=lambda: array("d"))
    t_go: float = 0.0  # time.monotonic(): the same clock in every process on Linux
    t_last: float = 0.0
    cpu_s: float = 0.0
    setup_error: str = ""


def encode_ws_frame(bid: SignedBid) -> bytes:
    """The wire bytes of one masked text frame carrying the signed call."""
    payload = orjson.dumps({"signature": bid.signature, "body": bid.body.decode()})
    return Frame(Opcode.TEXT, payload).serialize(mask=True)


def encode_http_request(bid: SignedBid, host: str, port: int, path: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"X-Flashbots-Signature: {bid.signature}\r\nContent-Length: {len(bid.body)}\r\n\r\n"
    )
    return head.encode() + bid.body


class _Conn(asyncio.Protocol):
    """One connection's request loop; subclasses parse their transport's replies."""

    def __init__(
        self, wires: list[bytes], rids: list[int], window: int, result: ClientResult
    ) -> None:
        self.wires, self.rids, self.window, self.result = wires, rids, window, result
        self.next = 0
        self.sent_at: dict[Any, float] = {}
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deadline = float("inf")
        self.upgraded = False

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed during setup"))
        if not self.done.done():
            self.done.set_result(None)

    # --- the loop --------------------------------------------------------------------------

    def start(self, deadline: float) -> None:
        self.deadline = deadline
        self._send(self.window)
        self._check_done()

    def _send(self, n: int) -> None:
        if n <= 0 or self.next >= len(self.wires) or time.monotonic() >= self.deadline:
            return
        end = min(self.next + n, len(self.wires))
        now = time.monotonic()
        for i in range(self.next, end):
            self.sent_at[self.rids[i]] = now
        assert self.transport is not None
        self.transport.write(b"".join(self.wires[self.next : end]))
        self.result.sent += end - self.next
        self.next = end

    def _reply(self, payload: bytes, now: float) -> int:
        """Account one reply; return 1 if it answered one of our requests."""
        msg = orjson.loads(payload)
        rid = msg.get("id")
        t0 = self.sent_at.pop(rid, None)
        if t0 is None:
            if "method" in msg:
                self.result.notifications += 1
            else:
                self.result.errors["unmatched_reply"] += 1
            return 0
        r = self.result
        r.latencies_ms.append((now - t0) * 1000.0)
        r.t_last = now
        if "result" in msg:
            r.accepted += 1
        else:
            err = msg.get("error")
            err = err if isinstance(err, dict) else {}
            data = err.get("data")
            data = data if isinstance(data, dict) else {}
            r.errors[str(data.get("code") or err.get("code"))] += 1
        return 1

    def _check_done(self) -> None:
        finished = self.next >= len(self.wires) or time.monotonic() >= self.deadline
        if finished and not self.sent_at and not self.done.done():
            self.done.set_result(None)


class _WsConn(_Conn):
    def handshake(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        assert self.transport is not None
        self.transport.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(bytes(buf[:200]).decode("latin1")))
                return
            del buf[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        now = time.monotonic()
        pos, n, freed = 0, len(buf), 0
        while n - pos >= 2:
            b0, ln = buf[pos], buf[pos + 1] & 0x7F
            hdr = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hdr = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hdr = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < hdr + ln:
                break
            opcode = b0 & 0x0F
            payload = bytes(buf[pos + hdr : pos + hdr + ln])
            pos += hdr + ln
            if opcode in (1, 2):
                freed += self._reply(payload, now)
            elif opcode == 9:  # ping: answer with a masked pong
                assert self.transport is not None
                self.transport.write(Frame(Opcode.PONG, payload).serialize(mask=True))
            elif opcode == 8:  # close
                assert self.transport is not None
                self.transport.close()
                return
        del buf[:pos]
        self._send(freed)
        self._check_done()


class _HttpConn(_Conn):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.ready.set_result(None)  # no handshake

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        now = time.monotonic()
        freed = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            i = head.find(b"content-length:")
            if i < 0:  # chunked replies are not expected from either server; stop this connection
                self.result.errors["reply_without_content_length"] += 1
                assert self.transport is not None
                self.transport.close()
                return
            j = head.find(b"\r\n", i)
            length = int(head[i + 15 : j if j > 0 else None])
            if len(buf) < end + 4 + length:
                break
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            freed += self._reply(body, now)
        self._send(freed)
        self._check_done()


async def _run(plan: ClientPlan, ready: Any, go: Any, cap: Any) -> ClientResult:
    result = ClientResult()
    with open(plan.corpus_path, "rb") as f:
        corpus: list[SignedBid] = pickle.load(f)
    loop = asyncio.get_running_loop()
    conns: list[_Conn] = []
    try:
        for rows, port in zip(plan.connections, plan.ports, strict=True):
            bids = [corpus[i] for i in rows]
            if plan.transport == "ws":
                wires = [encode_ws_frame(b) for b in bids]
            else:
                wires = [encode_http_request(b, plan.host, port, plan.path) for b in bids]
            rids = [b.rid for b in bids]
            cls: type[_Conn] = _WsConn if plan.transport == "ws" else _HttpConn
            _, conn = await loop.create_connection(
                functools.partial(cls, wires, rids, plan.window, result), plan.host, port
            )
            if isinstance(conn, _WsConn):
                conn.handshake(plan.host, port, plan.path)
                await asyncio.wait_for(conn.ready, 10)
            conns.append(conn)
    except Exception as exc:
        result.setup_error = f"{type(exc).__name__}: {exc}"
    del corpus
    ready.set()
    await loop.run_in_executor(None, go.wait)
    plan.seconds = cap.value
    if result.setup_error:
        return result
    cpu0 = time.process_time()
    result.t_go = time.monotonic()
    deadline = result.t_go + plan.seconds
    for c in conns:
        c.start(deadline)

    def check_all() -> None:
        for c in conns:
            c._check_done()

    loop.call_at(loop.time() + plan.seconds + 0.001, check_all)
    await asyncio.wait([c.done for c in conns], timeout=plan.seconds + GRACE_S)
    result.cpu_s = time.process_time() - cpu0
    for c in conns:
        result.lost += len(c.sent_at)
        if c.transport is not None:
            c.transport.close()
    return result


def client_process(plan: ClientPlan, ready: Any, go: Any, cap: Any, out: Any) -> None:
    """Entry point of one client process: set up, signal ``ready``, wait for ``go``, run.

    ``cap`` (a shared double) holds the time cap in seconds, read at ``go``.
    """
    try:
        result = asyncio.run(_run(plan, ready, go, cap))
    except Exception as exc:  # report, never hang the runner
        result = ClientResult(setup_error=f"{type(exc).__name__}: {exc}")
        ready.set()
    out.put(result)
