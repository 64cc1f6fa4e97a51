"""Flooding the public pool over JSON-RPC: refused with stable codes, counted, others still in."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from api.engine import Engine
from auction.presets import MAINNET, Policy, Rollup
from auction.transactions import decode_transaction
from node.metrics import Metrics
from node.settings import settings_from_flags
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock, close_slot_of
from tests.factories import CHAIN, key, tx

# A small pool, so that the old engine's limit is reachable in a test.
FLOOD = MAINNET.policy.with_(max_pending_public_txs=32)
# A block holds one public tx, so the close has to evict.
TIGHT = MAINNET.policy.with_(gas_limit=21_000, max_pending_public_txs=4,
                             max_public_txs_per_sender=2)


@pytest.fixture
def engine(request: pytest.FixtureRequest, clock: FakeClock) -> Engine:
    policy: Policy = request.param
    return Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN, policy=policy)},
                  preset=MAINNET, slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())


def send_raw(client: TestClient, raw: bytes) -> dict:
    body = ('{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x'
            + raw.hex() + '"]}')
    r = client.post("/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    return r.json()


def code(reply: dict) -> str:
    return reply["error"]["data"]["code"] if "error" in reply else "ok"


def rejected(engine: Engine, code: str) -> float:
    return engine.metrics.registry.get_sample_value(
        "blockspace_requests_rejected_total", {"transport": "http", "code": code}) or 0.0


@pytest.mark.parametrize("engine", [FLOOD], indirect=True)
def test_one_unfunded_key_cannot_fill_the_pool(client: TestClient, engine: Engine) -> None:
    # The finding: one key filled the pool with zero-fee and whole-block txs, and nothing left.
    # Regression: the old engine took all 32 and then refused everyone with public_pool_full.
    attacker = key(90)
    zero_fee = [send_raw(client, tx(attacker, nonce=n, tip_gwei=0)) for n in range(16)]
    whole_block = [send_raw(client, tx(attacker, nonce=16 + n, gas=30_000_000))
                   for n in range(16)]
    assert {code(r) for r in zero_fee} == {"fee_too_low"}
    assert {code(r) for r in whole_block} == {"tx_gas_too_high"}
    # Paying txs from the same key: its cap, then refused.
    paying = [send_raw(client, tx(attacker, nonce=100 + n)) for n in range(20)]
    cap = FLOOD.max_public_txs_per_sender
    assert [code(r) for r in paying] == ["ok"] * cap + ["sender_limit_exceeded"] * (20 - cap)
    # Someone else's fair tx is still accepted, and included.
    fair = tx(key(91))
    assert send_raw(client, fair)["result"] == decode_transaction(fair).hash
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert decode_transaction(fair).hash in {decode_transaction(t).hash for t in result.block.txs}
    # Every refusal is counted under its code (published once the slot closed: decision 23).
    assert rejected(engine, "fee_too_low") == 16
    assert rejected(engine, "tx_gas_too_high") == 16
    assert rejected(engine, "sender_limit_exceeded") == 20 - cap


@pytest.mark.parametrize("engine", [TIGHT], indirect=True)
def test_full_pool_takes_a_better_fee_and_the_close_evicts_the_cheapest(
    client: TestClient, engine: Engine
) -> None:
    a = [tx(key(92), nonce=n, tip_gwei=1) for n in range(2)]
    b = [tx(key(93), nonce=n, tip_gwei=1) for n in range(2)]
    for raw in [*a, *b]:
        assert code(send_raw(client, raw)) == "ok"
    # Full: a tx paying no more than the cheapest is refused, with the fee that would do.
    reply = send_raw(client, tx(key(94), tip_gwei=1))
    assert code(reply) == "public_pool_full"
    assert reply["error"]["data"]["min_fee_per_gas_wei"] == str(10**9 + 1)
    c, d = tx(key(94), tip_gwei=3), tx(key(95), tip_gwei=4)
    assert code(send_raw(client, c)) == "ok" and code(send_raw(client, d)) == "ok"
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    # The block holds the first tx; of the five left, the newest of the cheapest is evicted.
    h = [decode_transaction(raw).hash for raw in [*a, *b, c, d]]
    assert [decode_transaction(t).hash for t in result.block.txs] == [h[0]]
    assert [p.tx.hash for p in result.pending] == [h[1], h[2], h[4], h[5]]


def test_settings_refuse_an_inclusion_list_the_pool_would_forget(capsys) -> None:
    # Txs would be evicted at 300 slots, before they were due at 400: refused at start.
    assert settings_from_flags("serve", {"inclusion_after_slots": 400}) is None
    assert "max_public_tx_age_slots" in capsys.readouterr().err
    assert settings_from_flags("serve", {"inclusion_after_slots": 300}) is not None
