"""Receipts on the wire: every acknowledged bid, cancel and public tx gets the operator's signed
receipt beside the JSON-RPC result (HTTP and websocket); a refusal gets none; the closed slot's
event list (``GET /v1/blocks/{rollup}/{slot}/events``) names exactly the receipted events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.searcher import bundle_params, cross_bundle_params
from auction.encoding import compute_bid_set_root
from auction.hashing import keccak256, to_hex
from auction.presets import MAINNET, Rollup
from auction.receipts import SignedReceipt, receipt_from_json, verify_receipt
from auction.results import compute_event_id
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock, close_slot_of
from tests.factories import CHAIN, key, signed_request, tx

pytestmark = pytest.mark.timeout(60)

OP = 10
K = key(31)
UUID = "22222222-2222-4222-8222-222222222222"


def post_signed(client: TestClient, method: str, params: list[Any]) -> tuple[dict, bytes]:
    body, sig = signed_request(K, method, params)
    answer = client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
    assert answer.status_code == 200
    return answer.json(), body


def checked(engine: Engine, doc: dict[str, Any]) -> SignedReceipt:
    """The receipt of ``doc``, verified against the engine's operator address."""
    signed = receipt_from_json(doc)
    assert engine.intake.receipter is not None
    verify_receipt(signed, engine.intake.receipter.operator)
    return signed


def test_an_acknowledged_bundle_gets_a_receipt_beside_the_flashbots_result(client, engine):
    answer, body = post_signed(client, "eth_sendBundle",
                               [bundle_params([tx(K)], START_SLOT, bid_wei=10**15)])
    assert list(answer["result"]) == ["bundleHash"] and "receipts" not in answer
    r = checked(engine, answer["receipt"]).receipt
    [logged] = client.portal.call(engine.store.read_log, CHAIN, START_SLOT)
    assert (r.kind, r.rollup, r.slot) == ("bid", CHAIN, START_SLOT)
    assert r.event_id == compute_event_id(logged) and r.request_hash == to_hex(keccak256(body))
    assert r.committee_id == bytes(32) and r.received_ms == engine.now_ms()


def test_a_cross_rollup_bundle_gets_one_receipt_per_rollup_it_is_logged_in(client, engine):
    params = cross_bundle_params({CHAIN: [tx(K)], OP: [tx(K, chain_id=OP)]}, START_SLOT,
                                 bid_wei=10**15)
    answer, _ = post_signed(client, "eth_sendBundle", [params])
    receipts = [checked(engine, d).receipt for d in answer["receipts"]]
    assert answer["receipt"] == answer["receipts"][0]
    assert [r.rollup for r in receipts] == sorted([CHAIN, OP])
    assert len({r.event_id for r in receipts}) == 1


def test_a_cancel_gets_a_receipt_for_the_slot_it_is_logged_in(client, engine):
    post_signed(client, "eth_sendBundle",
                [bundle_params([tx(K)], START_SLOT, bid_wei=10**15, replacement_uuid=UUID)])
    answer, _ = post_signed(client, "eth_cancelBundle", [{"replacementUuid": UUID}])
    assert answer["result"] is True
    r = checked(engine, answer["receipt"]).receipt
    log = client.portal.call(engine.store.read_log, CHAIN, START_SLOT)
    assert (r.kind, r.slot) == ("cancel", START_SLOT)
    assert r.event_id == compute_event_id(log[-1])
    # A cancel that finds nothing to cancel logs nothing: no receipt
    nothing, _ = post_signed(client, "eth_cancelBundle", [{"replacementUuid": UUID[:-1] + "3"}])
    assert nothing["result"] is False and "receipt" not in nothing


def test_a_public_tx_gets_a_receipt_once(client, engine):
    raw = tx(key(32))
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                         "params": ["0x" + raw.hex()]})
    first = client.post("/", content=body).json()
    r = checked(engine, first["receipt"]).receipt
    assert (r.kind, r.event_id, r.request_hash) == ("public_tx", first["result"], first["result"])
    again = client.post("/", content=body).json()
    assert again["result"] == first["result"] and "receipt" not in again


def test_a_refused_bundle_gets_no_receipt(client):
    answer, _ = post_signed(client, "eth_sendBundle",
                            [bundle_params([tx(K)], START_SLOT - 1, bid_wei=10**15)])
    assert "error" in answer and "receipt" not in answer


def test_the_websocket_answer_carries_the_receipt(client, engine):
    body = K.request("eth_sendBundle", [bundle_params([tx(K)], START_SLOT, bid_wei=10**15)])
    with client.websocket_connect("/ws") as ws:
        ws.send_text(K.ws_frame(body))
        for _ in range(5):
            msg = orjson.loads(ws.receive_text())
            if "id" in msg:
                break
    assert checked(engine, msg["receipt"]).receipt.kind == "bid"


def test_the_closed_slots_event_list_names_the_receipted_events(client, engine):
    answer, _ = post_signed(client, "eth_sendBundle",
                            [bundle_params([tx(K)], START_SLOT, bid_wei=10**15)])
    assert client.get(f"/v1/blocks/{CHAIN}/{START_SLOT}/events").status_code == 404  # open
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    events = client.get(f"/v1/blocks/{CHAIN}/{START_SLOT}/events").json()
    assert events["event_ids"] == [answer["receipt"]["event_id"]]
    assert compute_bid_set_root(events["event_ids"]) == result.block.bid_set_root
    info = client.get("/v1/operator").json()
    assert info["operator"] == answer["receipt"]["operator"]
    assert info["committee_id"] == "0x" + "00" * 32


def test_receipts_off_answers_the_plain_flashbots_shape(clock: FakeClock) -> None:
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics(), receipts=False)
    with TestClient(create_app(engine=engine)) as c:
        c.portal.call(lambda: engine.start(run_clock=False))  # type: ignore[union-attr]
        answer, _ = post_signed(c, "eth_sendBundle",
                                [bundle_params([tx(K)], START_SLOT, bid_wei=10**15)])
        assert set(answer) == {"jsonrpc", "id", "result"}
        assert c.get("/v1/operator").json()["operator"] is None
