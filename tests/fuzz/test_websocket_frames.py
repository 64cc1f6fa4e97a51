"""Fuzzing the websocket transport (``api.websocket``): frame splitting and the signed-frame
path, over a real connection (starlette's TestClient, as tests/api/test_websocket.py).

Inputs: random bytes and text frames; arbitrary JSON frames; signed frames
(``{"signature", "body"}``) built from valid requests of every method, then changed (the body's
request edited and re-signed, the signature dropped, retyped or spoilt, fields added or
removed, the body given as an object); bare requests and ``bs_subscribe`` calls with edited
params; a frame over the size limit.

Property: every frame gets exactly one reply (a JSON-RPC answer with a result or an error with
a stable code, never ``internal_error``), and after any sequence of frames the connection still
answers. ``_split_frame`` returns a body and a signature or raises a refusal with a stable code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.websocket import _split_frame
from auction import errors as E
from auction.presets import MAINNET
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.json_values import json_values, mutated, to_json_bytes
from tests.fuzz.requests import (
    CODE_NUMBERS,
    FUZZER,
    NOW_MS,
    ROLLUPS,
    SLOT_MS,
    TEMPLATES,
    check_answer,
    hex_of,
    request,
)
from tests.fuzz.signed_txs import sign_fields

pytestmark = pytest.mark.timeout(timeout_s(120))

FUZZ = fuzz(60)
# A reply slower than this is missing (replies take milliseconds).
REPLY_TIMEOUT_S = 10.0
PROBE_ID = "probe"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(store=MemoryStore(), rollups=ROLLUPS, preset=MAINNET, slot_ms=SLOT_MS,
                  clock_ms=lambda: NOW_MS, metrics=Metrics())


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=engine)) as c:
        yield c


def receive(ws: Any, timeout_s: float = REPLY_TIMEOUT_S) -> Any:
    """The next frame the server sends, as JSON; fails (rather than hangs) if none comes."""

    async def next_message() -> Any:
        with anyio.fail_after(timeout_s):
            return await ws._send_rx.receive()  # the session's outgoing queue (no public timeout)

    message = ws.portal.call(next_message)
    assert message["type"] == "websocket.send", f"the server closed the connection: {message}"
    return orjson.loads(message.get("text") or message["bytes"])


def exchange(
    client: TestClient, frames: list[str | bytes], timeout_s: float = REPLY_TIMEOUT_S
) -> list[Any]:
    """Send ``frames`` then a probe on one connection; return the replies to the frames, after
    checking each one and that the probe is answered too."""
    probe = orjson.dumps(request("eth_chainId", [], PROBE_ID))
    replies: list[Any] = []
    with client.websocket_connect("/ws") as ws:
        for frame in frames:
            if isinstance(frame, bytes):
                ws.send_bytes(frame)
            else:
                ws.send_text(frame)
        ws.send_bytes(probe)
        probe_answered = False
        while len(replies) < len(frames) or not probe_answered:
            message = receive(ws, timeout_s)
            if isinstance(message, dict) and message.get("method") == "bs_subscription":
                continue  # a notification (a bid was received), not a reply
            if isinstance(message, dict) and message.get("id") == PROBE_ID and not probe_answered:
                assert message["result"] == hex(next(iter(ROLLUPS)))
                probe_answered = True
                continue
            check_answer(message, batch=True)
            replies.append(message)
    return replies


def signed_frame(request_body: bytes, **changes: Any) -> bytes:
    """A frame carrying ``request_body`` signed by the fuzzer, with ``changes`` (``...``
    removes a field)."""
    frame: dict[str, Any] = {
        "signature": FUZZER.sign_body(request_body), "body": request_body.decode()
    }
    frame.update(changes)
    return to_json_bytes({k: v for k, v in frame.items() if v is not ...})


@st.composite
def signed_frames(draw: st.DrawFn) -> bytes:
    """A signed frame around a (possibly edited) request, the frame itself possibly edited."""
    template = draw(st.sampled_from(TEMPLATES))
    doc = draw(st.one_of(st.just(template), mutated(template, under=("params",)),
                         mutated(template)), label="request")
    body = to_json_bytes(doc)
    change = draw(st.sampled_from(["none"] * 3 + ["signature", "body", "extra", "jsonrpc"]))
    if change == "signature":
        return signed_frame(body, signature=draw(st.one_of(json_values(), st.just(...))))
    if change == "body":
        return signed_frame(body, body=draw(st.one_of(json_values(), st.just(doc))))
    if change == "extra":
        return signed_frame(body, **{draw(st.sampled_from(["id", "method", "x"])): 1})
    if change == "jsonrpc":
        return signed_frame(body, jsonrpc="2.0")  # then it is read as a bare request
    return signed_frame(body)


subscribe_calls = st.sampled_from([
    request("bs_subscribe", ["slots"]), request("bs_subscribe", ["blocks"]),
    request("bs_unsubscribe", []),
]).flatmap(lambda r: st.one_of(st.just(r), mutated(r))).map(to_json_bytes)

frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    json_values().map(to_json_bytes),
    json_values().map(lambda v: to_json_bytes(v).decode()),
    signed_frames(),
    st.sampled_from(TEMPLATES).flatmap(mutated).map(to_json_bytes),
    subscribe_calls,
)


@FUZZ
@given(sequence=st.lists(frames, min_size=1, max_size=4))
@example(sequence=[b""])
@example(sequence=[""])
@example(sequence=[b'{"body": {"jsonrpc": "2.0"}}', b'{"body": "x", "signature": 5}'])
def test_every_frame_gets_a_reply_and_the_connection_keeps_answering(
    client: TestClient, engine: Engine, sequence: list[str | bytes]
) -> None:
    replies = exchange(client, sequence)
    assert len(replies) == len(sequence)
    assert engine.metrics.system_faults.labels("websocket")._value.get() == 0
    assert engine.metrics.system_faults.labels("rpc")._value.get() == 0


@FUZZ
@given(frame=st.one_of(st.binary(max_size=200), json_values().map(to_json_bytes),
                       signed_frames()))
def test_split_frame_returns_a_body_or_refuses(frame: bytes) -> None:
    try:
        body, signature = _split_frame(frame)
    except (E.ParseError, E.InvalidRequest, E.RequestTooLarge) as exc:
        assert exc.code in CODE_NUMBERS
        return
    assert isinstance(body, bytes)
    assert signature is None or isinstance(signature, str)


def test_an_oversized_frame_is_refused_and_the_connection_keeps_answering(
    client: TestClient,
) -> None:
    for frame in (b"[" * 1_048_577, "x" * 1_048_577):
        (reply,) = exchange(client, [frame])
        assert reply["error"]["data"]["code"] == "request_too_large"


def test_a_big_int_in_error_data_does_not_stop_the_connection(client: TestClient) -> None:
    """A tx for chain 2**100 is refused with the chain id in the error data (issue 9, finding
    10): the writer must still send that reply and answer the probe after it."""
    raw, _ = sign_fields(2, [2**100, 0, 1, 10**9, 21_000, b"\x11" * 20, 0, b"", []], 2**100)
    frame = orjson.dumps(request("eth_sendRawTransaction", [hex_of(raw)]))
    (reply,) = exchange(client, [frame], timeout_s=2.0)
    assert reply["error"]["data"]["code"] == "unknown_rollup"
