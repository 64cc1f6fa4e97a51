"""Fuzzing the JSON-RPC surface: ``api.rpc`` (parse, check, dispatch on a real engine) and the
intake rules it hands params to (``auction.bundles``).

Inputs: random bytes; arbitrary JSON values as bodies, batches and params; valid requests of
every method with one or two parts changed (wrong types at any field, integers up to 2**300,
negative numbers, floats, nested arrays, unicode), signed by a real key after the change so
signed methods get past authentication into the intake rules.

Property: every answer is a JSON-RPC 2.0 object (or a list of them for a batch) with the
request's id and either a result or an error whose ``data.code`` is a stable code and whose
numeric code is the one ``api/errors.py`` maps that code to; never ``internal_error`` (an
internal error is a bug); the answer serializes with orjson; afterwards the engine still
accepts a valid bid. ``compute_bid`` / ``compute_cancel`` / ``compute_public_tx`` /
``parse_quantity`` return or raise a ``BlockspaceError`` with a stable code, nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from api.engine import Engine
from api.rpc import dispatch
from api.searcher import bundle_params
from auction import errors as E
from auction.bundles import compute_bid, compute_cancel, compute_public_tx, parse_quantity
from auction.intake import check_request, parse_request
from auction.presets import MAINNET
from auction.types import Evidence
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.factories import CHAIN, tx
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.json_values import json_values, mutated, to_json_bytes
from tests.fuzz.requests import (
    CLOCK,
    CODE_NUMBERS,
    FUZZER,
    HONEST,
    NOW_MS,
    ROLLUPS,
    SLOT_MS,
    START_SLOT,
    TEMPLATES,
    check_answer,
    hex_of,
    request,
)

pytestmark = pytest.mark.timeout(timeout_s(120))

FUZZ = fuzz(120)

# --- the engine -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def fresh_engine() -> Engine:
    return Engine(store=MemoryStore(), rollups=ROLLUPS, preset=MAINNET, slot_ms=SLOT_MS,
                  clock_ms=lambda: NOW_MS, metrics=Metrics())


def answer(loop: asyncio.AbstractEventLoop, engine: Engine, body: bytes, signature: str | None,
           endpoint_rollup: int | None = None) -> Any:
    response, _ = loop.run_until_complete(
        dispatch(engine, body, signature, endpoint_rollup=endpoint_rollup, transport="http")
    )
    return response


_honest_nonces = iter(range(10**6, 2 * 10**6))


def check_engine_unharmed(loop: asyncio.AbstractEventLoop, engine: Engine) -> None:
    """A valid bid is still accepted after whatever came before."""
    params = [bundle_params([tx(HONEST, nonce=next(_honest_nonces))], START_SLOT, bid_wei=10**15)]
    body = HONEST.request("eth_sendBundle", params)
    reply = answer(loop, engine, body, HONEST.sign_body(body))
    assert "bundleHash" in reply.get("result", {}), reply
    assert engine.metrics.system_faults.labels("rpc")._value.get() == 0


# --- dispatch ---------------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=200), signed=st.booleans())
@example(body=b"", signed=False)
@example(body=b"[]", signed=False)
@example(body=b"[1]", signed=False)
@example(body=b"1e400", signed=False)
def test_random_bodies_are_answered(loop, body: bytes, signed: bool) -> None:
    engine = fresh_engine()
    check_answer(answer(loop, engine, body, FUZZER.sign_body(body) if signed else None),
                 batch=True)
    check_engine_unharmed(loop, engine)


@FUZZ
@given(value=json_values(), signed=st.booleans())
def test_arbitrary_json_bodies_are_answered(loop, value: Any, signed: bool) -> None:
    engine = fresh_engine()
    body = to_json_bytes(value)
    check_answer(answer(loop, engine, body, FUZZER.sign_body(body) if signed else None),
                 batch=True)
    check_engine_unharmed(loop, engine)


@FUZZ
@given(data=st.data(), template=st.sampled_from(TEMPLATES),
       endpoint=st.sampled_from([None, CHAIN, 10, 999, 2**100]))
def test_mutated_signed_requests_are_answered(loop, data: st.DataObject, template: dict,
                                              endpoint: int | None) -> None:
    engine = fresh_engine()
    # Mostly the params (the intake rules), sometimes the envelope.
    under = data.draw(st.sampled_from([("params",), ("params",), ("params",), ()]))
    doc = data.draw(mutated(template, under=under), label="request")
    body = to_json_bytes(doc)
    reply = answer(loop, engine, body, FUZZER.sign_body(body), endpoint)
    check_answer(reply, _request_id(body), batch=True)
    check_engine_unharmed(loop, engine)


def _request_id(body: bytes) -> Any:
    """The id an answer must echo, as the server reads it (... when it cannot read one)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    rid = doc.get("id")
    try:
        check_request(doc)
    except E.InvalidRequest:
        return ...  # an invalid id may be echoed or not
    return rid


@FUZZ
@given(items=st.lists(st.one_of(st.sampled_from(TEMPLATES), json_values()), min_size=1,
                      max_size=5))
def test_batches_are_answered(loop, items: list[Any]) -> None:
    engine = fresh_engine()
    body = to_json_bytes(items)
    check_answer(answer(loop, engine, body, None), batch=True)
    check_engine_unharmed(loop, engine)


def test_every_template_is_valid(loop) -> None:
    """The fuzzing starts from requests the engine accepts (else it would only test refusals)."""
    engine = fresh_engine()
    for template in TEMPLATES:
        body = to_json_bytes(template)
        reply = answer(loop, engine, body, FUZZER.sign_body(body))
        if template["method"] == "flashbots_getBundleStatsV2":
            assert reply["error"]["data"]["code"] == "bundle_not_found"  # an unknown hash
        else:
            assert "result" in reply, (template["method"], reply)


def test_error_data_with_a_big_int_serializes(loop) -> None:
    """A transaction for chain 2**100 is refused as unknown_rollup; the answer must serialize."""
    from tests.fuzz.signed_txs import sign_fields

    raw, _ = sign_fields(2, [2**100, 0, 1, 10**9, 21_000, b"\x11" * 20, 0, b"", []], 2**100)
    body = to_json_bytes(request("eth_sendRawTransaction", [hex_of(raw)]))
    reply = answer(loop, fresh_engine(), body, None)
    assert reply["error"]["data"]["code"] == "unknown_rollup"
    orjson.dumps(reply)


# --- parse_request / check_request ------------------------------------------------------------


@FUZZ
@given(value=json_values())
def test_check_request_accepts_or_refuses(value: Any) -> None:
    try:
        req = check_request(value)
    except E.InvalidRequest:
        return
    assert req["jsonrpc"] == "2.0" and isinstance(req["method"], str)


@FUZZ
@given(body=st.one_of(st.binary(max_size=100), json_values().map(to_json_bytes)))
def test_parse_request_accepts_or_refuses(body: bytes) -> None:
    try:
        parse_request(body)
    except (E.ParseError, E.InvalidRequest, E.RequestTooLarge):
        pass


# --- the intake rules on arbitrary params -----------------------------------------------------


def _evidence(params: Any, method: str) -> Evidence:
    body = to_json_bytes(request(method, params))
    return Evidence(body, FUZZER.sign_body(body))


def _refusal_code(call: Any) -> str | None:
    try:
        call()
    except E.BlockspaceError as exc:
        assert exc.code in CODE_NUMBERS, exc.code
        return exc.code
    return None


PARAM_TEMPLATES = [t["params"] for t in TEMPLATES if t["params"]]


@FUZZ
@given(data=st.data())
def test_intake_rules_refuse_with_a_stable_code(data: st.DataObject) -> None:
    params = data.draw(st.one_of(json_values(), st.sampled_from(PARAM_TEMPLATES).flatmap(mutated)),
                       label="params")
    _refusal_code(lambda: compute_bid(
        params, searcher=FUZZER.address, evidence=_evidence(params, "eth_sendBundle"),
        rollups=ROLLUPS, clock=CLOCK, now_ms=NOW_MS, max_slots_ahead=MAINNET.max_slots_ahead,
    ))
    _refusal_code(lambda: compute_cancel(
        params, searcher=FUZZER.address, evidence=_evidence(params, "eth_cancelBundle"),
        rollup=CHAIN, clock=CLOCK, now_ms=NOW_MS, max_slots_ahead=MAINNET.max_slots_ahead,
    ))
    _refusal_code(lambda: compute_public_tx(params, rollups=ROLLUPS, now_ms=NOW_MS))


@FUZZ
@given(value=json_values(), decimal=st.booleans())
@example(value="0x1_0", decimal=False)
@example(value="\u00b2", decimal=True)
@example(value="1" * 5000, decimal=True)
def test_parse_quantity_reads_or_refuses(value: Any, decimal: bool) -> None:
    try:
        out = parse_quantity(value, "q", allow_decimal_string=decimal)
    except E.InvalidParams as exc:
        assert exc.data == {"field": "q"}
        return
    assert out is None or (isinstance(out, int) and 0 <= out < 2**256)
