"""The data API over the whole path: signed bundles in through JSON-RPC, the engine closes slots,
the history is read back over HTTP. Runs on both stores (embedded and a real redis-server)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.engine import Engine
from api.history import HistoryRetention
from api.searcher import SearcherKey, bundle_params, cross_bundle_params
from auction.presets import MAINNET, Rollup
from auction.types import Evidence
from node.metrics import Metrics
from node.settings import Settings
from node.stores.base import Store
from node.stores.redis import RedisStore
from tests.factories import CHAIN, key, signed_request, tx
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

SLOT_MS = 2000
START_SLOT = 1_000
OTHER = 10
GWEI = 10**9


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@dataclass
class Api:
    http: httpx.AsyncClient
    engine: Engine
    clock: FakeClock
    app: FastAPI

    async def send(
        self, k: SearcherKey, slot: int, bid_wei: int, *, gas: int = 21_000, chain: int = CHAIN
    ) -> dict[str, Any]:
        body, sig = signed_request(
            k,
            "eth_sendBundle",
            [bundle_params([tx(k, gas=gas, chain_id=chain)], slot, bid_wei=bid_wei)],
        )
        path = "/" if chain == CHAIN else f"/rollup/{chain}"
        r = await self.http.post(path, content=body, headers={"X-Flashbots-Signature": sig})
        reply: dict[str, Any] = r.json()
        return reply

    async def close(self, slot: int) -> None:
        """Close ``slot`` (every rollup's: one slot across the deployment)."""
        self.clock.ms = max(self.clock.ms, (slot + 1) * SLOT_MS + 5)
        await self.engine.close_slot(slot)

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        r = await self.http.get(path, params=params)
        return r.status_code, r.json()


def make_engine(store: Store, clock: FakeClock) -> Engine:
    policy = MAINNET.policy
    return Engine(
        store=store,
        rollups={CHAIN: Rollup(CHAIN, policy=policy), OTHER: Rollup(OTHER, policy=policy)},
        preset=MAINNET,
        slot_ms=SLOT_MS,
        clock_ms=clock,
        metrics=Metrics(),
    )


@pytest.fixture
async def api(store: Store) -> AsyncIterator[Api]:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = make_engine(store, clock)
    app = create_app(Settings(), engine=engine)
    async with app.router.lifespan_context(app):
        await engine.start(run_clock=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Api(http, engine, clock, app)


A, B, C3 = key(1), key(2), key(3)


async def three_searchers_one_slot(api: Api, slot: int = START_SLOT) -> None:
    """A wins twice, B once; C's bid is refused (below the reserve: zero)."""
    api.clock.ms = slot * SLOT_MS + 5
    assert "result" in await api.send(A, slot, 3 * GWEI * 21_000)
    assert "result" in await api.send(A, slot, 2 * GWEI * 21_000)
    assert "result" in await api.send(B, slot, 1 * GWEI * 21_000)
    refused = await api.send(C3, slot, 0)
    assert refused["error"]["data"]["code"] == "bid_too_low"


# --- sealed until close ------------------------------------------------------------------------


async def test_nothing_about_a_slot_is_visible_before_it_closes(api: Api) -> None:
    await three_searchers_one_slot(api)
    s = START_SLOT
    assert await api.get(f"/v1/data/slots/{CHAIN}/{s}") == (404, await _404(api, s))
    assert (await api.get("/v1/data/slots"))[1] == {"data": [], "next_cursor": None}
    assert (await api.get("/v1/data/bids", slot=s))[1]["data"] == []
    assert (await api.get("/v1/data/bids", searcher=A.address))[1]["data"] == []
    assert (await api.get("/v1/data/bids", outcome="rejected"))[1]["data"] == []
    assert (await api.get(f"/v1/data/searchers/{A.address}"))[1]["bids"] == 0
    assert (await api.get("/v1/data/stats"))[1]["slots"] == 0
    r = await api.http.get("/v1/data/export/bids.csv", params={"from_slot": 0, "to_slot": s})
    assert r.text.count("\n") == 1  # the header only
    await api.close(s)
    status, body = await api.get(f"/v1/data/slots/{CHAIN}/{s}")
    assert status == 200 and len(body["bids"]) == 4


async def _404(api: Api, slot: int) -> dict[str, Any]:
    return {
        "code": "slot_not_found",
        "message": f"slot {slot} of rollup {CHAIN} has no history: not closed yet, trimmed, "
        "or never run",
        "data": {"slot": slot},
    }


# --- what is recorded ---------------------------------------------------------------------------


async def test_slot_detail_has_every_bid_the_block_order_and_the_refusal(api: Api) -> None:
    await three_searchers_one_slot(api)
    await api.close(START_SLOT)
    status, body = await api.get(f"/v1/data/slots/{CHAIN}/{START_SLOT}")
    assert status == 200
    summary = body["summary"]
    assert summary["bids"] == 4 and summary["winners"] == 3
    assert summary["outcomes"] == {
        "won": 3,
        "lost": 0,
        "cancelled": 0,
        "replaced": 0,
        "rejected": 1,
    }
    assert summary["revenue_wei"] == str(6 * GWEI * 21_000)
    assert summary["clearing_price_wei_per_gas"] == str(GWEI)  # the lowest winning bid per gas
    assert summary["wins_top1_share"] == pytest.approx(2 / 3, abs=1e-6)
    assert [e["bid_wei"] for e in body["block"]] == [str(b * GWEI * 21_000) for b in (3, 2, 1)]
    for e in body["block"]:
        assert {**e, "position": None, "bid_index": None} == {
            **body["bids"][e["bid_index"]],
            "position": None,
            "bid_index": None,
        }
    refused = [b for b in body["bids"] if b["outcome"] == "rejected"]
    assert refused == [
        {
            "rollup": CHAIN,
            "slot": START_SLOT,
            "searcher": C3.address,
            "bundle_hash": refused[0]["bundle_hash"],
            "bid_wei": "0",
            "gas": None,
            "received_ms": START_SLOT * SLOT_MS + 5,
            "outcome": "rejected",
            "payment_wei": "0",
            "code": "bid_too_low",
            "seq": None,
            "replacement_uuid": None,
            "tx_count": 1,
            "rollups": [CHAIN],
            "cross": False,
        }
    ]
    assert refused[0]["bundle_hash"].startswith("0x") and len(refused[0]["bundle_hash"]) == 66
    # Every logged bid points at its evidence in the slot's log
    log = await api.engine.store.read_log(CHAIN, START_SLOT)
    assert sorted(b["seq"] for b in body["bids"] if b["seq"]) == sorted(e.seq for e in log)


async def test_refusals_for_closed_or_far_slots_are_not_filed(api: Api) -> None:
    await api.close(START_SLOT)
    api.clock.ms = (START_SLOT + 1) * SLOT_MS + 5
    late = await api.send(A, START_SLOT, GWEI * 21_000)  # its slot is closed
    assert late["error"]["data"]["code"] == "slot_closed"
    far = await api.send(A, START_SLOT + 10_000, GWEI * 21_000)
    assert far["error"]["data"]["code"] == "slot_too_far_ahead"
    assert await api.engine.store.list_refusals(CHAIN, START_SLOT) == []
    assert await api.engine.store.list_refusals(CHAIN, START_SLOT + 10_000) == []


async def test_refusal_on_a_rollup_endpoint_is_filed_under_that_rollup(api: Api) -> None:
    slot = START_SLOT
    reply = await api.send(A, slot, 0, chain=OTHER)
    assert reply["error"]["data"]["code"] == "bid_too_low"
    await api.close(slot)
    _, body = await api.get("/v1/data/bids", rollup=OTHER, outcome="rejected")
    assert [(b["rollup"], b["searcher"], b["code"]) for b in body["data"]] == [
        (OTHER, A.address, "bid_too_low")
    ]
    assert (await api.get("/v1/data/bids", rollup=CHAIN, outcome="rejected"))[1]["data"] == []


async def test_searcher_record(api: Api) -> None:
    await three_searchers_one_slot(api)
    await api.close(START_SLOT)
    _, a = await api.get(f"/v1/data/searchers/{A.address.upper().replace('0X', '0x')}")
    assert a["searcher"] == A.address
    assert a["bids"] == 2 and a["wins"] == 2 and a["win_rate"] == 1.0
    assert a["total_paid_wei"] == str(5 * GWEI * 21_000)
    # Clearing price 1 gwei/gas: A overpaid (3 - 1) + (2 - 1) gwei/gas on 21,000 gas, twice
    assert a["average_overpayment_wei"] == str(3 * GWEI * 21_000 // 2)
    _, c = await api.get(f"/v1/data/searchers/{C3.address}")
    assert c["outcomes"]["rejected"] == 1 and c["win_rate"] is None
    assert c["average_overpayment_wei"] is None
    _, nobody = await api.get(f"/v1/data/searchers/0x{'00' * 20}", rollup=OTHER)
    assert nobody["bids"] == 0 and nobody["rollup"] == OTHER


async def test_stats_concentration_fairness_and_failed_slots(api: Api) -> None:
    await three_searchers_one_slot(api, START_SLOT)
    await api.close(START_SLOT)
    await three_searchers_one_slot(api, START_SLOT + 1)
    await api.close(START_SLOT + 1)
    await api.engine.store.record_committee(CHAIN, START_SLOT + 1, {"status": "failed"})
    _, stats = await api.get("/v1/data/stats", rollup=CHAIN)
    assert stats["slots"] == 2 and stats["bids"] == 8 and stats["rejected"] == 2
    assert stats["revenue_wei"] == str(12 * GWEI * 21_000)
    wins = stats["wins_concentration"]
    assert wins["top1_share"] == pytest.approx(2 / 3, abs=1e-6)
    assert wins["top2_share"] == pytest.approx(1.0)
    assert wins["hhi"] == pytest.approx((2 / 3) ** 2 + (1 / 3) ** 2, abs=1e-6)
    assert stats["gas_concentration"]["hhi"] == pytest.approx(5 / 9, abs=1e-6)
    assert stats["failed_slots"] == 1
    assert stats["price_of_fairness_wei"] == "0"
    _, only_first = await api.get("/v1/data/stats", from_slot=START_SLOT, to_slot=START_SLOT)
    # every rollup's slot closes together: the other rollup's (empty) slot counts too
    assert only_first["slots"] == 2 and only_first["failed_slots"] == 0
    _, ours = await api.get("/v1/data/stats", rollup=CHAIN, from_slot=START_SLOT,
                            to_slot=START_SLOT)
    assert ours["slots"] == 1 and ours["bids"] == 4


# --- paging and exports ---------------------------------------------------------------------------


async def test_http_pages_walk_every_bid_once_while_slots_close(api: Api) -> None:
    for i in range(4):
        await three_searchers_one_slot(api, START_SLOT + i)
        await api.close(START_SLOT + i)
    _, everything = await api.get("/v1/data/bids", rollup=CHAIN, limit=200)
    seen: list[tuple[int, str | None, str]] = []
    cursor = None
    next_slot = START_SLOT + 4
    while True:
        params: dict[str, Any] = {"rollup": CHAIN, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        status, page = await api.get("/v1/data/bids", **params)
        assert status == 200
        seen.extend((b["slot"], b["seq"], b["searcher"]) for b in page["data"])
        await three_searchers_one_slot(api, next_slot)  # a new slot closes between pages
        await api.close(next_slot)
        next_slot += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert {(b["slot"], b["seq"], b["searcher"]) for b in everything["data"]} <= set(seen)


async def test_csv_exports_match_the_json(api: Api) -> None:
    for i in range(3):
        await three_searchers_one_slot(api, START_SLOT + i)
        await api.close(START_SLOT + i)
    params = {"from_slot": START_SLOT, "to_slot": START_SLOT + 2, "rollup": CHAIN}
    r = await api.http.get("/v1/data/export/bids.csv", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 12
    _, detail = await api.get(f"/v1/data/slots/{CHAIN}/{START_SLOT}")
    first = {k: "" if v is None else str(v) for k, v in detail["bids"][0].items()}
    # The rollups a bundle spans are one cell, space-separated
    first["rollups"] = " ".join(map(str, detail["bids"][0]["rollups"]))
    assert {k: rows[0][k] for k in rows[0]} == {k: first[k] for k in rows[0]}
    r = await api.http.get("/v1/data/export/slots.csv", params=params)
    slots = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(s["slot"]) for s in slots] == [START_SLOT, START_SLOT + 1, START_SLOT + 2]
    assert slots[0]["revenue_wei"] == detail["summary"]["revenue_wei"]
    assert slots[0]["rejected"] == "1"


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/v1/data/slots", {"limit": 0}, 400, "limit"),
        ("/v1/data/slots", {"limit": 201}, 400, "limit"),
        ("/v1/data/slots", {"limit": 10**30}, 400, "limit"),
        ("/v1/data/slots", {"limit": "ten"}, 400, "limit"),
        ("/v1/data/slots", {"from_slot": -1}, 400, "from_slot"),
        ("/v1/data/slots", {"from_slot": 9, "to_slot": 3}, 400, "from_slot"),
        ("/v1/data/slots", {"to_slot": 2**60}, 400, "to_slot"),
        ("/v1/data/slots", {"cursor": "garbage"}, 400, "cursor"),
        ("/v1/data/slots", {"cursor": "1-2.3"}, 400, "cursor"),  # a bids cursor
        ("/v1/data/slots", {"cursor": "x" * 500}, 400, "cursor"),
        ("/v1/data/slots", {"rollup": 999}, 404, None),
        ("/v1/data/slots", {"rollup": -5}, 400, "rollup"),
        ("/v1/data/bids", {}, 400, "rollup"),
        ("/v1/data/bids", {"searcher": "0x1234"}, 400, "searcher"),
        ("/v1/data/bids", {"searcher": "0x" + "zz" * 20}, 400, "searcher"),
        ("/v1/data/bids", {"outcome": "pending"}, 400, "outcome"),
        ("/v1/data/bids", {"rollup": CHAIN, "cursor": "1000.167001"}, 400, "cursor"),
        ("/v1/data/searchers/0xabc", {}, 400, "address"),
        ("/v1/data/searchers/" + "0x" + "11" * 20, {"rollup": 7}, 404, None),
        ("/v1/data/stats", {"from_slot": 0, "to_slot": 200_000}, 400, "to_slot"),
        ("/v1/data/stats", {"from_slot": 5, "to_slot": 1}, 400, "from_slot"),
        ("/v1/data/slots/167001/-1", {}, 400, "slot"),
        ("/v1/data/slots/167001/abc", {}, 400, "slot"),
        ("/v1/data/slots/5/1", {}, 404, None),
        ("/v1/data/slots/167001/999999", {}, 404, None),
        ("/v1/data/export/bids.csv", {"from_slot": 1}, 400, "to_slot"),
        ("/v1/data/export/bids.csv", {"from_slot": 0, "to_slot": 10**6}, 400, "to_slot"),
        ("/v1/data/export/slots.csv", {"from_slot": 3, "to_slot": 1}, 400, "from_slot"),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    api: Api, path: str, params: dict[str, Any], status: int, field: str | None
) -> None:
    r = await api.http.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == ("invalid_params" if status == 400 else body["code"])
    assert body["message"]
    if field is not None:
        assert body["data"]["field"] == field
        assert field in body["message"]
    # Counted by code, like refused JSON-RPC requests
    counted = api.engine.metrics.registry.get_sample_value(
        "blockspace_requests_rejected_total", {"transport": "data", "code": body["code"]}
    )
    assert counted == 1


# --- retention ------------------------------------------------------------------------------------


async def test_retention_by_slots_trims_old_slots_after_closes(store: Store) -> None:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = make_engine(store, clock)
    app = create_app(Settings(history_retention_slots=2), engine=engine)
    async with app.router.lifespan_context(app):
        await engine.start(run_clock=False)
        retention: HistoryRetention = app.state.retention
        for i in range(5):
            clock.ms = (START_SLOT + i + 1) * SLOT_MS + 5
            await engine.close_slot(START_SLOT + i)
            await retention.wait()
        slots = await store.list_history_slots(CHAIN, from_slot=None, to_slot=None, limit=10)
        assert slots == [START_SLOT + 4, START_SLOT + 3]
        assert await store.get_result(CHAIN, START_SLOT) is None
    # Uninstalled with the app
    assert retention.after_close not in engine.result_hooks


async def test_retention_by_days_uses_the_clock(store: Store) -> None:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = make_engine(store, clock)
    retention = HistoryRetention.install(engine, keep_slots=None, keep_days=1 / 86_400)  # 1 s
    assert retention is not None
    await engine.start(run_clock=False)
    for i in range(4):
        clock.ms = (START_SLOT + i + 1) * SLOT_MS + 5
        await engine.close_slot(START_SLOT + i)
        await retention.wait()
    # At the last close "now" is slot START+4; one second back is within slot START+3
    slots = await store.list_history_slots(CHAIN, from_slot=None, to_slot=None, limit=10)
    assert slots == [START_SLOT + 3]


async def test_retention_trims_in_the_background_while_intake_goes_on(store: Store) -> None:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = make_engine(store, clock)
    await engine.start(run_clock=False)
    for i in range(60):
        clock.ms = (START_SLOT + i + 1) * SLOT_MS + 5
        await engine.close_slot(START_SLOT + i)
    retention = HistoryRetention(
        store,
        keep_slots=1,
        keep_days=None,
        slot_at=lambda ms: ms // SLOT_MS,
        now_ms=clock,
        batch=2,
    )
    last = await store.get_result(CHAIN, START_SLOT + 59)
    assert last is not None
    await retention.after_close(last)  # returns at once: trimming runs as a task
    task = next(iter(retention._tasks.values()))
    assert not task.done()
    open_slot = engine.open_slot()
    accepted = 0
    for n in range(10):
        params = [bundle_params([tx(A)], open_slot, bid_wei=GWEI * 21_000 + n)]
        body, sig = signed_request(A, "eth_sendBundle", params)
        await engine.intake.submit_bundle(
            params,
            searcher=A.address,
            evidence=Evidence(body, sig),
            endpoint_rollup=None,
            transport="test",
        )
        accepted += 1
        await asyncio.sleep(0)
    # Intake went on while the trim was still running, and the trim then finished
    assert accepted == 10 and not task.done()
    await retention.wait()
    assert await store.list_history_slots(CHAIN, from_slot=None, to_slot=None, limit=99) == [
        START_SLOT + 59
    ]
    assert retention.trimmed == 59


def test_retention_needs_a_limit() -> None:
    with pytest.raises(ValueError):
        HistoryRetention(
            None,  # type: ignore[arg-type]
            keep_slots=None,
            keep_days=None,
            slot_at=lambda ms: ms,
            now_ms=lambda: 0,
        )


# --- store outage -----------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_dead_store_is_a_503_not_a_500(fresh_redis: RedisServer) -> None:
    store = RedisStore(fresh_redis.url, socket_timeout_s=0.5, connect_timeout_s=0.5)
    await store.connect()
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = make_engine(store, clock)
    app = create_app(Settings(), engine=engine)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                fresh_redis.kill()
                for path in ("/v1/data/slots", f"/v1/data/searchers/{A.address}", "/v1/data/stats"):
                    r = await http.get(path)
                    assert r.status_code == 503, (path, r.text)
                    assert r.json()["code"] == "store_unavailable"
    finally:
        await store.aclose()


# --- cross-rollup bundles ------------------------------------------------------------------------


async def test_a_cross_bundle_is_listed_under_each_rollup_with_filters_and_stats(api: Api) -> None:
    slot = START_SLOT
    api.clock.ms = slot * SLOT_MS + 5
    await three_searchers_one_slot(api, slot)
    # A cross-rollup bundle over both rollups: 40,000 gas on CHAIN, 21,000 on OTHER
    legs = {CHAIN: [tx(C3, gas=40_000)], OTHER: [tx(C3, chain_id=OTHER)]}
    bid = 9 * GWEI * 61_000
    body, sig = signed_request(C3, "eth_sendBundle", [cross_bundle_params(legs, slot, bid_wei=bid)])
    r = await api.http.post("/", content=body, headers={"X-Flashbots-Signature": sig})
    bundle_hash = r.json()["result"]["bundleHash"]
    await api.close(slot)
    copies = {}
    for rollup in (CHAIN, OTHER):
        status, page = await api.get("/v1/data/bids", rollup=rollup, cross="true")
        assert status == 200
        (copy,) = page["data"]
        assert copy["bundle_hash"] == bundle_hash and copy["outcome"] == "won"
        assert copy["rollups"] == [OTHER, CHAIN] and copy["cross"] is True
        copies[rollup] = copy
        # Verify the single-rollup bids are the rest, naming only their rollup
        _, singles = await api.get("/v1/data/bids", rollup=rollup, cross="false")
        assert all(b["rollups"] == [rollup] and not b["cross"] for b in singles["data"])
        assert bundle_hash not in {b["bundle_hash"] for b in singles["data"]}
    assert copies[CHAIN]["gas"] == 40_000 and copies[OTHER]["gas"] == 21_000
    # First price: the shares of the payment sum to the bid
    assert int(copies[CHAIN]["payment_wei"]) + int(copies[OTHER]["payment_wei"]) == bid
    # spans: under CHAIN, the bundles that also span OTHER; every winner across the deployment
    _, spanning = await api.get("/v1/data/bids", rollup=CHAIN, spans=OTHER)
    assert [b["bundle_hash"] for b in spanning["data"]] == [bundle_hash]
    _, won = await api.get("/v1/data/bids", outcome="won", cross="true")
    assert sorted(b["rollup"] for b in won["data"]) == [OTHER, CHAIN]
    # Stats: per rollup, its shares; over the deployment, the whole payment once
    _, stats = await api.get("/v1/data/stats")
    assert int(stats["cross_revenue_wei"]) == bid
    assert stats["cross_revenue_share"] == pytest.approx(bid / int(stats["revenue_wei"]), 1e-6)
    _, other = await api.get("/v1/data/stats", rollup=OTHER)
    assert other["cross_revenue_wei"] == copies[OTHER]["payment_wei"]
    assert other["cross_revenue_share"] == 1.0  # the only winner on OTHER
    _, detail = await api.get(f"/v1/data/slots/{CHAIN}/{slot}")
    assert detail["summary"]["cross_revenue_wei"] == copies[CHAIN]["payment_wei"]
    assert [e["cross"] for e in detail["block"]].count(True) == 1


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"rollup": CHAIN, "cross": "maybe"}, 400, "invalid_params"),
        ({"rollup": CHAIN, "spans": -1}, 400, "invalid_params"),
        ({"rollup": CHAIN, "spans": "ten"}, 400, "invalid_params"),
        ({"rollup": CHAIN, "spans": 8453}, 404, "unknown_rollup"),
        ({"cross": "true"}, 400, "invalid_params"),  # still needs one of the four filters
    ],
)
async def test_bad_cross_filters_are_refused_with_stable_codes(
    api: Api, params: dict[str, Any], status: int, code: str
) -> None:
    got, body = await api.get("/v1/data/bids", **params)
    assert (got, body["code"]) == (status, code)
