"""Cross-rollup bundles over HTTP and the websocket (issue 13, stage 2a: intake).

The engine of ``tests/api/conftest.py`` serves two rollups, CHAIN and 10. ``POST /`` and ``/ws``
take bundles of both chains and log them in both rollups' slot logs; a rollup's own endpoint
refuses them with ``cross_rollup_not_allowed_here``; a refusal logs nothing anywhere.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine, compute_cross_payments
from api.searcher import bundle_params, cross_bundle_params, nonce_request
from auction.presets import MAINNET, Policy, Rollup
from auction.types import Bid
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock
from tests.api.test_websocket import recv_until, subscribe
from tests.factories import CHAIN, key, signed_request, tx

pytestmark = pytest.mark.timeout(60)

OP = 10
K = key(21)


def post(client: TestClient, params: dict[str, Any], path: str = "/") -> dict[str, Any]:
    body, sig = signed_request(K, "eth_sendBundle", [params])
    answer = client.post(path, content=body, headers={"X-Flashbots-Signature": sig})
    assert answer.status_code == 200
    return answer.json()


def logged(client: TestClient, engine: Engine, rollup: int) -> list[Bid]:
    log = client.portal.call(engine.store.read_log, rollup, START_SLOT)  # type: ignore[union-attr]
    return [e.event for e in log if isinstance(e.event, Bid)]


def cross_params(**kw: Any) -> dict[str, Any]:
    return cross_bundle_params({CHAIN: [tx(K), tx(K)], OP: [tx(K, chain_id=OP)]}, START_SLOT,
                               bid_wei=10**15, **kw)


def rejected(engine: Engine, code: str) -> float:
    """``blockspace_requests_rejected`` for ``code`` over every transport, as published."""
    text = generate_latest(engine.metrics.registry).decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("blockspace_requests_rejected_total") and f'"{code}"' in line)


def test_a_cross_bundle_to_post_root_is_logged_in_both_rollups(client, engine) -> None:
    answer = post(client, cross_params())
    assert answer["result"]["rollups"] == [OP, CHAIN]
    mine, theirs = logged(client, engine, CHAIN), logged(client, engine, OP)
    assert len(mine) == len(theirs) == 1
    assert answer["result"]["bundleHash"] == mine[0].bundle_hash == theirs[0].bundle_hash
    assert (len(mine[0].txs), len(theirs[0].txs)) == (2, 1)
    assert mine[0].spans == (OP,) and theirs[0].spans == (CHAIN,)


def test_a_single_rollup_answer_keeps_the_flashbots_shape(client) -> None:
    answer = post(client, bundle_params([tx(K)], START_SLOT, bid_wei=10**15))
    assert list(answer["result"]) == ["bundleHash"]


@pytest.mark.parametrize("rollup", [CHAIN, OP])
def test_a_cross_bundle_to_a_rollups_endpoint_is_refused_and_logged_nowhere(
    client, engine, rollup: int
) -> None:
    answer = post(client, cross_params(), f"/rollup/{rollup}")
    assert answer["error"]["code"] == -32022
    assert answer["error"]["data"]["code"] == "cross_rollup_not_allowed_here"
    assert logged(client, engine, CHAIN) == logged(client, engine, OP) == []
    # Counted like every refusal, once its slot closed
    engine.metrics.slot_closed(CHAIN, START_SLOT)
    assert rejected(engine, "cross_rollup_not_allowed_here") == 1


def test_a_leg_for_an_unserved_rollup_refuses_the_bundle(client, engine) -> None:
    params = bundle_params([tx(K), tx(K, chain_id=OP), tx(K, chain_id=1)], START_SLOT,
                           bid_wei=10**15)
    answer = post(client, params)
    assert answer["error"]["data"]["code"] == "unknown_rollup"
    assert logged(client, engine, CHAIN) == logged(client, engine, OP) == []


@pytest.mark.parametrize(
    ("change", "code", "number"),
    [
        ({"rollups": [CHAIN]}, "leg_chain_mismatch", -32023),
        ({"rollups": [CHAIN, OP, 8453]}, "empty_leg", -32024),
        ({"rollups": [1, 2, 3, 4, 5]}, "too_many_rollups", -32025),
    ],
)
def test_bad_rollups_fields_get_their_codes(client, engine, change, code, number) -> None:
    answer = post(client, {**cross_params(), **change})
    assert (answer["error"]["code"], answer["error"]["data"]["code"]) == (number, code)
    assert logged(client, engine, CHAIN) == logged(client, engine, OP) == []
    # The engine goes on taking bids
    assert "result" in post(client, cross_params())


def test_a_refused_cross_bundle_is_filed_in_the_lowest_served_rollups_history(
    client, engine
) -> None:
    post(client, {**cross_params(), "rollups": [CHAIN]})
    refusals = client.portal.call(engine.store.list_refusals, OP, START_SLOT)  # type: ignore[union-attr]
    assert [(r.code, r.rollup) for r in refusals] == [("leg_chain_mismatch", OP)]
    assert client.portal.call(engine.store.list_refusals, CHAIN, START_SLOT) == []  # type: ignore[union-attr]


def test_a_full_quota_in_one_rollup_refuses_the_bundle_in_both() -> None:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    tight = Policy(max_bundles_per_searcher_per_slot=1)
    rollups = {CHAIN: Rollup(CHAIN), OP: Rollup(OP, policy=tight)}
    engine = Engine(store=MemoryStore(), rollups=rollups, preset=MAINNET, slot_ms=SLOT_MS,
                    clock_ms=clock, metrics=Metrics())
    with TestClient(create_app(engine=engine)) as client:
        assert "result" in post(client, bundle_params([tx(K, chain_id=OP)], START_SLOT,
                                                      bid_wei=10**15), f"/rollup/{OP}")
        answer = post(client, cross_params())
        assert answer["error"]["data"]["code"] == "searcher_limit_exceeded"
        assert answer["error"]["data"]["rollup"] == OP
        assert logged(client, engine, CHAIN) == []
        assert len(logged(client, engine, OP)) == 1
        # CHAIN's quota is untouched: a bundle there alone is taken
        assert "result" in post(client, bundle_params([tx(K)], START_SLOT, bid_wei=10**15))


def test_websocket_takes_cross_bundles_and_the_rollup_socket_refuses_them(client, engine) -> None:
    body = K.request("eth_sendBundle", [cross_params()])
    with client.websocket_connect("/ws") as ws:
        ws.send_text(K.ws_frame(body))
        reply = orjson.loads(ws.receive_text())
    assert reply["result"]["rollups"] == [OP, CHAIN]
    assert len(logged(client, engine, CHAIN)) == len(logged(client, engine, OP)) == 1
    other = K.request("eth_sendBundle", [cross_params()])
    with client.websocket_connect(f"/rollup/{OP}/ws") as ws:
        ws.send_text(K.ws_frame(other))
        reply = orjson.loads(ws.receive_text())
    assert reply["error"]["data"]["code"] == "cross_rollup_not_allowed_here"
    assert len(logged(client, engine, CHAIN)) == len(logged(client, engine, OP)) == 1


def test_a_searcher_gets_one_consistent_outcome_per_cross_bundle(client, engine) -> None:
    k = key(22)
    # Two cross bundles whose CHAIN legs spend the same nonce: the better bid wins on both
    # rollups, the other loses on both; a third is replaced by a later version under its uuid.
    def legs(chain_nonce: int, op_nonce: int, gas: int = 21_000) -> dict[int, list[bytes]]:
        return {CHAIN: [tx(k, nonce=chain_nonce, gas=gas)],
                OP: [tx(k, nonce=op_nonce, chain_id=OP)]}

    win = cross_bundle_params(legs(5, 6), START_SLOT, bid_wei=3 * 10**15)
    lose = cross_bundle_params(legs(5, 7, gas=22_000), START_SLOT, bid_wei=10**15)
    uuid = "0b2c7f52-6d3b-4d2f-9f0e-5a1e3c6b7d80"
    old = cross_bundle_params(legs(8, 9), START_SLOT, bid_wei=10**15, replacement_uuid=uuid)
    new = cross_bundle_params(legs(10, 11), START_SLOT, bid_wei=2 * 10**15, replacement_uuid=uuid)
    with client.websocket_connect("/ws") as ws:
        subscribe(ws, k, engine.now_ms())
        hashes = {}
        for name, params in (("win", win), ("lose", lose), ("old", old), ("new", new)):
            ws.send_text(k.ws_frame(k.request("eth_sendBundle", [params])))
            hashes[name] = recv_until(ws, lambda m: "id" in m)["result"]["bundleHash"]
        results = client.portal.call(engine.close_slot, START_SLOT)
        ws.send_text(nonce_request("done"))  # answered after the notifications already queued
        events = []
        while True:
            m = orjson.loads(ws.receive_text())
            if m.get("id") == "done":
                break
            if m.get("method") == "bs_subscription":
                events.append(m["params"]["result"])
    outcomes = [e for e in events if e["event"] != "received"]
    by_hash = {e["bundleHash"]: e for e in outcomes}
    # Verify one outcome per bundle, naming both rollups, from the lowest rollup's result
    assert len(outcomes) == len(by_hash) == 4
    assert all(e["rollups"] == [OP, CHAIN] and e["rollup"] == OP for e in outcomes)
    assert {n: by_hash[h]["event"] for n, h in hashes.items()} == {
        "win": "won", "lose": "lost", "old": "replaced", "new": "won"}  # fmt: skip
    # The whole payment, the shares of both rollups summed; nothing for a bundle that lost
    paid = compute_cross_payments(results)
    whole = {o.bid.bundle_hash: paid[o.bid.bid_id] for r in results for o in r.outcomes
             if o.bid.bid_id in paid}  # fmt: skip
    for name in ("win", "new"):
        assert int(by_hash[hashes[name]]["paymentWei"]) == whole[hashes[name]] > 0
    assert by_hash[hashes["lose"]]["paymentWei"] == "0"
    # The outcome agrees with every rollup's result
    for r in results:
        for o in r.outcomes:
            assert by_hash[o.bid.bundle_hash]["event"] == o.outcome
