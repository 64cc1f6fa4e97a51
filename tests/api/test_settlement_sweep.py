"""The settlement sweep: an engine killed between a slot's signature and its settlement (step 8)
leaves the slot's payments undebited; the next engine on the store settles them at start,
exactly once, however many sweeps and settlements run after it. Both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.searcher import bundle_params
from auction.ledger import OPERATOR_REVENUE, PAYMENT
from auction.presets import MAINNET, Rollup
from auction.slots import compute_deadline_ms
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.settings import Settings
from node.stores.base import Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock
from tests.factories import CHAIN, key, signed_request, tx

pytestmark = pytest.mark.timeout(120)

TOKEN = "sweep-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SEARCHERS = [key(51), key(52), key(53)]
SLOTS = [START_SLOT, START_SLOT + 1, START_SLOT + 2]
SWEEP_DB = 12


class KilledBeforeSettlement(Engine):
    """An engine that dies after each slot is signed and published, before step 8: nothing of
    its settlement (nor of its sweep) ever runs."""

    async def settle(self, slot: int) -> None:
        return None

    async def sweep_settlement(self, from_slot: int | None = None) -> int:
        return 0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    server = request.getfixturevalue("redis_server")
    return RedisStore(f"redis://127.0.0.1:{server.port}/{SWEEP_DB}")


def engine_of(cls: type[Engine], store: Store, clock: FakeClock) -> Engine:
    return cls(store=store, rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET, slot_ms=SLOT_MS,
               clock_ms=clock, metrics=Metrics(), escrow=StoreEscrow(store))


@pytest.fixture
def killed(store: Store) -> Iterator[tuple[TestClient, Engine, FakeClock]]:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = engine_of(KilledBeforeSettlement, store, clock)
    settings = Settings(operator_token=SecretStr(TOKEN), deposits=True)
    with TestClient(create_app(settings, engine=engine)) as c:
        if isinstance(store, RedisStore):
            c.portal.call(store.connect)
            c.portal.call(store.redis.flushdb)
        c.portal.call(lambda: engine.start(run_clock=False))
        yield c, engine, clock
        if isinstance(store, RedisStore):
            c.portal.call(store.aclose)


def balances(client: TestClient, address: str) -> tuple[int, int]:
    doc = client.get(f"/v1/ledger/balances/{address}").json()
    return int(doc["balance_wei"]), int(doc["held_wei"])


def payment_entries(client: TestClient) -> list[dict[str, Any]]:
    doc = client.get("/v1/ledger/entries", params={"limit": 500}).json()
    return [e for e in doc["entries"] if e["kind"] == PAYMENT]


def test_a_restart_settles_what_a_killed_engine_signed_exactly_once(killed) -> None:
    client, dead, clock = killed
    for i, k in enumerate(SEARCHERS):
        answer = client.post("/v1/ledger/deposits", headers=AUTH,
                             json={"address": k.address, "amount_wei": str(10**17),
                                   "ref": f"d{i}"})
        assert answer.status_code == 200, answer.text
    for slot in SLOTS:
        for i, k in enumerate(SEARCHERS):
            body, sig = signed_request(k, "eth_sendBundle", [bundle_params(
                [tx(k)], slot, bid_wei=(i + 1) * 10**15 + slot)])
            answer = client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
            assert "result" in answer.json(), answer.text
    clock.ms = compute_deadline_ms(dead.clock, SLOTS[-1]) + 1
    paid: dict[str, int] = {}
    for slot in SLOTS:
        [result] = client.portal.call(dead.close_slot, slot)
        for w in result.block.bundles:
            paid[w.searcher] = paid.get(w.searcher, 0) + w.payment_wei
    assert sum(paid.values()) > 0
    # Killed before settling: every block signed (final as built), nothing debited
    assert payment_entries(client) == []
    assert all(balances(client, k.address)[1] > 0 for k in SEARCHERS)

    # The restart: a new engine on the same store sweeps it at start
    store = dead.store
    fresh = engine_of(Engine, store, clock)
    client.portal.call(lambda: fresh.start(run_clock=False))
    for k in SEARCHERS:
        assert balances(client, k.address) == (10**17 - paid.get(k.address, 0), 0)
    assert balances(client, OPERATOR_REVENUE)[0] == sum(paid.values())
    # Once per block: more sweeps, settlements and restarts change nothing
    client.portal.call(fresh.sweep_settlement)
    client.portal.call(fresh.settle, SLOTS[-1])
    again = engine_of(Engine, store, clock)
    client.portal.call(lambda: again.start(run_clock=False))
    assert balances(client, OPERATOR_REVENUE)[0] == sum(paid.values())
    entries = payment_entries(client)
    assert sum(-int(e["amount_wei"]) for e in entries) == sum(paid.values())
    assert {e["cause"]["slot"] for e in entries} == set(SLOTS)
