"""Searcher deposits over the wire: the operator API (authenticated), intake holds (a bid above
the free balance is refused), payments debited once per block at the close, withdrawals after
their delay, the read API; each bad input refused with its code and nothing changed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import SETTLE_WINDOW_SLOTS, Engine
from api.searcher import bundle_params
from auction.ledger import MAX_AMOUNT_WEI, OPERATOR_REVENUE, PAYMENT, compute_chain_key
from auction.presets import MAINNET, Rollup
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.settings import Settings
from node.stores.base import Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock
from tests.factories import CHAIN, key, signed_request, tx

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-operator-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DELAY_MS = 10_000
K = key(41)
K2 = key(42)
GWEI = 10**9


# The ledger API's tests on both stores; Redis gets a database of its own, flushed first.
LEDGER_DB = 11


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def ledger_store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    server = request.getfixturevalue("redis_server")
    return RedisStore(f"redis://127.0.0.1:{server.port}/{LEDGER_DB}")  # connected by the client


@pytest.fixture
def ledger_engine(clock: FakeClock, ledger_store: Store) -> Engine:
    store = ledger_store
    return Engine(store=store, rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET, slot_ms=SLOT_MS,
                  clock_ms=clock, metrics=Metrics(), escrow=StoreEscrow(store))


@pytest.fixture
def ledger_client(ledger_engine: Engine) -> Iterator[TestClient]:
    settings = Settings(operator_token=SecretStr(TOKEN), deposits=True,
                        withdrawal_delay_ms=DELAY_MS)
    app = create_app(settings, engine=ledger_engine)
    with TestClient(app) as c:
        store = ledger_engine.store
        if isinstance(store, RedisStore):  # connected on the client's event loop
            c.portal.call(store.connect)
            c.portal.call(store.redis.flushdb)
        c.portal.call(lambda: ledger_engine.start(run_clock=False))  # type: ignore[union-attr]
        yield c
        if isinstance(store, RedisStore):
            c.portal.call(store.aclose)


def send_bundle(client: TestClient, k: Any, slot: int, bid_wei: int, **kw: Any) -> dict:
    body, sig = signed_request(k, "eth_sendBundle",
                               [bundle_params([tx(k)], slot, bid_wei=bid_wei, **kw)])
    answer = client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
    assert answer.status_code == 200
    return answer.json()


def deposit(client: TestClient, address: str, amount: Any, ref: str, **kw: Any) -> Any:
    return client.post("/v1/ledger/deposits", headers=kw.get("headers", AUTH),
                       json={"address": address, "amount_wei": amount, "ref": ref})


def balance(client: TestClient, address: str) -> dict[str, int]:
    doc = client.get(f"/v1/ledger/balances/{address}").json()
    return {k: int(v) for k, v in doc.items() if k.endswith("_wei")}


def all_entries(client: TestClient, account: str | None = None) -> list[dict]:
    out: list[dict] = []
    before = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if account:
            params["account"] = account
        if before:
            params["before"] = before
        page = client.get("/v1/ledger/entries", params=params).json()
        out += page["entries"]
        if page["next"] is None:
            return out
        before = page["next"]


def test_a_bid_above_the_free_balance_is_refused(ledger_client, ledger_engine):
    answer = send_bundle(ledger_client, K, START_SLOT, 10**15)
    assert answer["error"]["code"] == -32047
    assert answer["error"]["data"]["code"] == "insufficient_deposit"
    assert answer["error"]["data"]["free_wei"] == "0"
    assert ledger_client.portal.call(ledger_engine.store.read_log, CHAIN, START_SLOT) == []
    assert deposit(ledger_client, K.address, str(10**15), "tx-1").status_code == 200
    assert "result" in send_bundle(ledger_client, K, START_SLOT, 10**15)
    assert balance(ledger_client, K.address) == {
        "balance_wei": 10**15, "held_wei": 10**15, "free_wei": 0
    }
    # A second bundle (its own chain) would need more than is free
    again = send_bundle(ledger_client, K, START_SLOT, 1)
    assert again["error"]["data"]["code"] == "insufficient_deposit"


def test_a_replacement_holds_the_chain_max_not_the_sum(ledger_client):
    deposit(ledger_client, K.address, str(10**15), "tx-1")
    uuid = "33333333-3333-4333-8333-333333333333"
    assert "result" in send_bundle(ledger_client, K, START_SLOT, 6 * 10**14,
                                   replacement_uuid=uuid)
    assert "result" in send_bundle(ledger_client, K, START_SLOT, 9 * 10**14,
                                   replacement_uuid=uuid)
    assert balance(ledger_client, K.address)["held_wei"] == 9 * 10**14


def test_close_debits_the_winners_once_and_releases_the_holds(ledger_client, ledger_engine):
    deposit(ledger_client, K.address, str(10**16), "tx-1")
    deposit(ledger_client, K2.address, str(10**16), "tx-2")
    send_bundle(ledger_client, K, START_SLOT, 3 * 10**15)
    send_bundle(ledger_client, K2, START_SLOT, 2 * 10**15)
    [result] = ledger_client.portal.call(ledger_engine.close_slot, START_SLOT)
    paid = {w.searcher: w.payment_wei for w in result.block.bundles}
    assert sum(paid.values()) > 0
    for k in (K, K2):
        assert balance(ledger_client, k.address) == {
            "balance_wei": 10**16 - paid.get(k.address, 0), "held_wei": 0,
            "free_wei": 10**16 - paid.get(k.address, 0),
        }
    assert balance(ledger_client, OPERATOR_REVENUE)["balance_wei"] == sum(paid.values())
    # Settling again (another process, a retry) changes nothing: once per block hash
    ledger_client.portal.call(ledger_engine.settle, START_SLOT)
    assert balance(ledger_client, OPERATOR_REVENUE)["balance_wei"] == sum(paid.values())
    payments = [e for e in all_entries(ledger_client) if e["kind"] == PAYMENT]
    assert {e["cause"]["block_hash"] for e in payments} == {result.block.block_hash}
    assert all(e["cause"]["slot"] == START_SLOT for e in payments)


def test_operator_calls_need_the_token(ledger_client):
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        answer = deposit(ledger_client, K.address, "5", "r", headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
        answer = ledger_client.post("/v1/ledger/withdrawals", headers=headers,
                                    json={"address": K.address, "amount_wei": "1"})
        assert answer.status_code == 401
        answer = ledger_client.post("/v1/ledger/bonds", headers=headers,
                                    json={"member": 1, "amount_wei": "1", "ref": "s"})
        assert answer.status_code == 401
    assert all_entries(ledger_client) == []


def test_operator_api_is_closed_without_a_configured_token(engine):
    app = create_app(Settings(), engine=engine)
    with TestClient(app) as c:
        answer = c.post("/v1/ledger/deposits", headers={"authorization": "Bearer "},
                        json={"address": K.address, "amount_wei": "5", "ref": "r"})
        assert answer.status_code == 401


@pytest.mark.parametrize("amount", [
    "-1", -1, "0", 0, str(MAX_AMOUNT_WEI + 1), MAX_AMOUNT_WEI + 1, "1.5", 1.5, "0x10", None,
    True, "", "1e18",
])
def test_bad_deposit_amounts_are_refused(ledger_client, amount):
    answer = deposit(ledger_client, K.address, amount, "r")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_amount"
    assert all_entries(ledger_client) == []


def test_bad_deposit_addresses_and_refs_are_refused(ledger_client):
    for address in ("0x12", K.address.upper(), "operator:revenue", 5):
        answer = deposit(ledger_client, address, "5", "r")  # type: ignore[arg-type]
        assert answer.json()["code"] == "invalid_account"
    assert ledger_client.post("/v1/ledger/deposits", headers=AUTH, content=b"{").status_code == 400
    assert deposit(ledger_client, K.address, "5", "").json()["code"] == "invalid_params"
    assert all_entries(ledger_client) == []


def test_the_same_deposit_reference_credits_once(ledger_client):
    assert deposit(ledger_client, K.address, "5", "tx-9").status_code == 200
    again = deposit(ledger_client, K.address, "5", "tx-9")
    assert again.status_code == 409 and again.json()["code"] == "already_applied"
    assert balance(ledger_client, K.address)["balance_wei"] == 5


def test_largest_deposit_is_exact(ledger_client):
    assert deposit(ledger_client, K.address, str(MAX_AMOUNT_WEI), "a").status_code == 200
    assert deposit(ledger_client, K.address, str(MAX_AMOUNT_WEI), "b").status_code == 200
    assert balance(ledger_client, K.address)["balance_wei"] == 2 * MAX_AMOUNT_WEI


def test_withdrawal_after_its_delay_up_to_the_free_balance(ledger_client, clock):
    deposit(ledger_client, K.address, str(10**16), "tx-1")
    send_bundle(ledger_client, K, START_SLOT, 4 * 10**15)  # holds 4e15
    url = "/v1/ledger/withdrawals"
    too_much = ledger_client.post(url, headers=AUTH,
                                  json={"address": K.address, "amount_wei": str(6 * 10**15 + 1)})
    assert too_much.status_code == 400
    assert too_much.json()["code"] == "withdrawal_exceeds_free_balance"
    ok = ledger_client.post(url, headers=AUTH,
                            json={"address": K.address, "amount_wei": str(6 * 10**15)})
    w = ok.json()["withdrawal"]
    assert w["ready_ms"] == w["requested_ms"] + DELAY_MS
    execute = f"{url}/{w['withdrawal_id']}/execute"
    early = ledger_client.post(execute, headers=AUTH)
    assert early.status_code == 400 and early.json()["code"] == "withdrawal_not_ready"
    assert balance(ledger_client, K.address)["balance_wei"] == 10**16
    clock.ms += DELAY_MS
    # Meanwhile another bid held more: the withdrawal now exceeds the free balance
    send_bundle(ledger_client, K, START_SLOT + 5, 10**15)
    late = ledger_client.post(execute, headers=AUTH)
    assert late.json()["code"] == "withdrawal_exceeds_free_balance"
    ledger_client.portal.call(ledger_client.app.state.engine.store.release_holds, START_SLOT + 5)
    done = ledger_client.post(execute, headers=AUTH)
    assert done.status_code == 200 and done.json()["entry"]["amount_wei"] == str(-6 * 10**15)
    twice = ledger_client.post(execute, headers=AUTH)
    assert twice.status_code == 409 and twice.json()["code"] == "already_applied"
    assert balance(ledger_client, K.address)["balance_wei"] == 4 * 10**15
    missing = ledger_client.post(f"{url}/w999/execute", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["code"] == "withdrawal_not_found"


def test_deposits_off_keep_intake_as_it_was(client, engine):
    assert engine.escrow is None
    assert "result" in send_bundle(client, K, START_SLOT, 10**15)
    client.portal.call(engine.close_slot, START_SLOT)
    assert balance(client, K.address)["balance_wei"] == 0


@pytest.mark.slow
def test_100_slots_debit_exactly_the_blocks_payments(ledger_client, ledger_engine, clock):
    """Random bids over 100 slots: every searcher's debits are exactly its payments in the
    slots' final blocks, the revenue their sum, and every balance the sum of its entries."""
    rng = random.Random(7)
    keys_ = [key(60 + i) for i in range(5)]
    for i, k in enumerate(keys_):
        deposit(ledger_client, k.address, str(10**18), f"d{i}")
    owed: dict[str, int] = {k.address: 0 for k in keys_}
    for n in range(100):
        slot = START_SLOT + n
        clock.ms = slot * SLOT_MS + 5
        for k in rng.sample(keys_, rng.randrange(0, 4)):
            send_bundle(ledger_client, k, slot, rng.randrange(10**12, 10**15))
        for result in ledger_client.portal.call(ledger_engine.close_slot, slot):
            for w in result.block.bundles:
                owed[w.searcher] += w.payment_wei
    for k in keys_:
        entries = all_entries(ledger_client, k.address)
        debits = -sum(int(e["amount_wei"]) for e in entries if e["kind"] == PAYMENT)
        assert debits == owed[k.address]
        doc = balance(ledger_client, k.address)
        assert doc["balance_wei"] == 10**18 - owed[k.address] == sum(
            int(e["amount_wei"]) for e in entries)
        assert doc["held_wei"] == 0
    assert balance(ledger_client, OPERATOR_REVENUE)["balance_wei"] == sum(owed.values()) > 0


def test_a_hold_left_after_its_slot_settled_is_swept(ledger_client, ledger_engine):
    """A bid held just as its slot closed (its append then refused with slot_closed) leaves a
    hold after the slot's release; the settlement of the slot SETTLE_WINDOW_SLOTS later sweeps
    it."""
    deposit(ledger_client, K.address, str(10**16), "tx-1")
    ledger_client.portal.call(ledger_engine.close_slot, START_SLOT)
    store = ledger_engine.store
    chain = compute_chain_key(K.address, None, "0x" + "ab" * 32)
    ledger_client.portal.call(store.hold_bid, START_SLOT, chain, K.address, 10**15)
    assert balance(ledger_client, K.address)["held_wei"] == 10**15
    ledger_client.portal.call(ledger_engine.settle, START_SLOT + SETTLE_WINDOW_SLOTS - 1)
    assert balance(ledger_client, K.address)["held_wei"] == 10**15
    ledger_client.portal.call(ledger_engine.settle, START_SLOT + SETTLE_WINDOW_SLOTS)
    assert balance(ledger_client, K.address)["held_wei"] == 0
