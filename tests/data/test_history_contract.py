"""The history part of the Store contract, on both stores (embedded and a real redis-server).

Every test takes the parametrized ``store`` fixture; the last one runs the same random
operations on both stores side by side and requires the same answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from typing import Any

import pytest

from api.data import page_bids, page_slots, parse_bid_cursor, parse_slot_cursor
from auction import constants as C
from auction.history import (
    BidRecord,
    SlotHistory,
    StatsPart,
    compute_slot_history,
    compute_stats,
    compute_tallies,
)
from auction.results import compute_slot_result
from node.stores.base import Store
from node.stores.redis import RedisStore
from tests.data.slots import (
    FAIR_POLICY,
    OTHER_ROLLUP,
    ROLLUPS,
    SEARCHERS,
    WIDE,
    close_with_history,
    random_bids,
    refusal,
)
from tests.redis_server import RedisServer
from tests.stores.bids import PARENT_HASH, ROLLUP, deadline_ms, make_bid
from tests.stores.conftest import STORE_DB, db_url, open_test_store

pytestmark = pytest.mark.anyio


def hid_key(hid: str) -> tuple[int, int]:
    ms, n = hid.split("-")
    return int(ms), int(n)


async def all_bids(
    store: Store,
    rollup: int = ROLLUP,
    *,
    searcher: str | None = None,
    outcome: str | None = None,
    slot: int | None = None,
) -> list[BidRecord]:
    """Every bid matching the filters, by walking pages of 7."""
    out: list[BidRecord] = []
    before = None
    last = None
    while True:
        page = await store.list_history_bids(
            rollup,
            searcher=searcher,
            outcome=outcome,
            slot=slot,
            before=before,
            inclusive=False,
            limit=7,
        )
        for hid, record in page:
            # Verify ids strictly decrease across pages
            assert last is None or hid_key(hid) < last
            last = hid_key(hid)
            out.append(record)
        if len(page) < 7:
            return out
        before = page[-1][0]


# --- writing -----------------------------------------------------------------------------------


async def test_history_exists_exactly_when_the_result_does(store: Store) -> None:
    rng = random.Random(1)
    for ev in random_bids(rng, 7, 20):
        if hasattr(ev, "bid_id"):
            await store.append_bid(ev, WIDE)  # type: ignore[arg-type]
    # Before the close nothing of the slot is readable
    assert await store.list_history_slots(ROLLUP, from_slot=None, to_slot=None, limit=10) == []
    assert await store.get_slot_details(ROLLUP, [7]) == [None]
    assert await all_bids(store, slot=7) == []
    assert await store.list_stats_parts(ROLLUP, from_slot=None, to_slot=None) == []
    entries = await store.close_slot(ROLLUP, 7)
    result = compute_slot_result(ROLLUPS[ROLLUP], 7, deadline_ms(7), PARENT_HASH, entries)
    history = compute_slot_history(result, [], recorded_ms=1, gas_limit=FAIR_POLICY.gas_limit)
    assert await store.save_result(result, history=history)
    assert await store.list_history_slots(ROLLUP, from_slot=None, to_slot=None, limit=10) == [7]
    assert await store.get_result(ROLLUP, 7) == result
    # A second save (another engine's result) changes neither the result nor the history
    other = dataclasses.replace(history, bids=history.bids[:1], summary={**history.summary, "x": 1})
    assert not await store.save_result(dataclasses.replace(result, solver="other"), history=other)
    (detail,) = await store.get_slot_details(ROLLUP, [7])
    assert detail is not None and detail.bids == history.bids
    assert detail.summary == {**history.summary, "committee": None}


async def test_slot_detail_round_trips_every_field(store: Store) -> None:
    rng = random.Random(2)
    history = await close_with_history(
        store, 7, random_bids(rng, 7, 40), refusals=[refusal(7, n) for n in range(3)]
    )
    (detail,) = await store.get_slot_details(ROLLUP, [7])
    assert detail is not None
    assert detail.bids == history.bids  # dataclass equality: every field, exact
    assert detail.block == history.block
    assert detail.summary == {**history.summary, "committee": None}
    # Arrival order, refusals merged in
    assert [b.received_ms for b in detail.bids] == sorted(b.received_ms for b in detail.bids)
    assert Counter(b.outcome for b in detail.bids)[C.OUTCOME_REJECTED] >= 3
    # The fairness cap binds: the best block without it is worth more
    assert int(history.summary["price_of_fairness_wei"]) > 0


async def test_refusals_fold_into_the_history_once(store: Store) -> None:
    for n in range(5):
        store.record_refusal(refusal(7, n))
    store.record_refusal(refusal(8, 99))
    assert [r.bid_wei for r in await store.list_refusals(ROLLUP, 7)] == list(range(5))
    history = await close_with_history(store, 7, [make_bid(1, slot=7)])
    assert [b.code for b in history.bids if b.outcome == C.OUTCOME_REJECTED] == ["bid_too_low"] * 5
    assert await store.list_refusals(ROLLUP, 7) == []  # folded in, gone from the pending list
    assert [r.bid_wei for r in await store.list_refusals(ROLLUP, 8)] == [99]


async def test_refusals_per_slot_are_capped(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import node.stores.memory_history as memory_history
    import node.stores.redis_history as redis_history

    monkeypatch.setattr(memory_history, "MAX_REFUSALS_PER_SLOT", 10)
    monkeypatch.setattr(redis_history, "MAX_REFUSALS_PER_SLOT", 10)
    for n in range(25):
        store.record_refusal(refusal(7, n))
    assert len(await store.list_refusals(ROLLUP, 7)) == 10


async def test_committee_record_and_failed_slots(store: Store) -> None:
    for slot in (7, 8, 9):
        await close_with_history(store, slot, [make_bid(1, slot=slot)])
    assert await store.record_committee(ROLLUP, 8, {"status": "failed", "reason": "timeout"})
    assert await store.record_committee(ROLLUP, 9, {"status": "signed", "signers": [1, 2, 3]})
    assert not await store.record_committee(ROLLUP, 10, {"status": "signed"})  # no history
    assert await store.count_failed_slots(ROLLUP, from_slot=None, to_slot=None) == 1
    assert await store.count_failed_slots(ROLLUP, from_slot=9, to_slot=None) == 0
    summaries = await store.get_slot_summaries(ROLLUP, [7, 8, 9, 10])
    assert [s and s["committee"] for s in summaries] == [
        None,
        {"status": "failed", "reason": "timeout"},
        {"status": "signed", "signers": [1, 2, 3]},
        None,
    ]
    # A later record wins: a retried signing that succeeds clears the failure
    assert await store.record_committee(ROLLUP, 8, {"status": "signed"})
    assert await store.count_failed_slots(ROLLUP, from_slot=None, to_slot=None) == 0


# --- reading -----------------------------------------------------------------------------------


async def test_every_filter_matches_a_brute_force_scan(store: Store) -> None:
    rng = random.Random(3)
    histories: list[SlotHistory] = []
    for slot in range(7, 13):
        refusals = [refusal(slot, n) for n in range(rng.randrange(3))]
        histories.append(
            await close_with_history(store, slot, random_bids(rng, slot, 30), refusals=refusals)
        )
    # Newest first: the last slot written first, each slot's bids in reverse arrival order
    everything = [b for h in reversed(histories) for b in reversed(h.bids)]
    assert await all_bids(store) == everything
    for searcher in SEARCHERS:
        want = [b for b in everything if b.searcher == searcher]
        assert await all_bids(store, searcher=searcher) == want
        for outcome in C.OUTCOMES:
            want_both = [b for b in want if b.outcome == outcome]
            assert await all_bids(store, searcher=searcher, outcome=outcome) == want_both
    for outcome in C.OUTCOMES:
        assert await all_bids(store, outcome=outcome) == [
            b for b in everything if b.outcome == outcome
        ]
    assert await all_bids(store, slot=9, outcome=C.OUTCOME_WON) == [
        b for b in everything if b.slot == 9 and b.outcome == C.OUTCOME_WON
    ]
    assert await all_bids(store, slot=9, searcher=SEARCHERS[1]) == [
        b for b in everything if b.slot == 9 and b.searcher == SEARCHERS[1]
    ]
    assert await all_bids(store, slot=99) == []
    assert await all_bids(store, searcher="0x" + "ee" * 20) == []


async def test_slot_listing_ranges_and_order(store: Store) -> None:
    for slot in (3, 5, 8, 13):
        await close_with_history(store, slot, [make_bid(1, slot=slot)])

    async def slots(**kw: object) -> list[int]:
        return await store.list_history_slots(ROLLUP, **kw)  # type: ignore[arg-type]

    assert await slots(from_slot=None, to_slot=None, limit=10) == [13, 8, 5, 3]
    assert await slots(from_slot=4, to_slot=8, limit=10) == [8, 5]
    assert await slots(from_slot=None, to_slot=None, limit=2) == [13, 8]
    assert await slots(from_slot=4, to_slot=None, limit=10, descending=False) == [5, 8, 13]


def stats_of(parts: list[StatsPart]) -> dict[str, object]:
    return compute_stats(parts, failed_slots=0, first_slot=None, last_slot=None)


async def test_stats_over_any_range_equal_the_sum_of_its_slots(store: Store) -> None:
    # Slots across several stats buckets (Redis pre-aggregates 100 slots per bucket), with gaps
    rng = random.Random(9)
    rows = {}
    for slot in range(150, 480):
        if rng.random() < 0.15:
            continue  # a slot without history (missed), inside buckets
        h = await close_with_history(store, slot, random_bids(rng, slot, rng.randrange(4)))
        rows[slot] = h.stats

    async def check(lo: int | None, hi: int | None) -> None:
        want = [StatsPart.of_row(r) for s, r in rows.items() if (lo or 0) <= s <= (hi or 10**9)]
        got = await store.list_stats_parts(ROLLUP, from_slot=lo, to_slot=hi)
        assert stats_of(got) == stats_of(want), (lo, hi)

    for lo, hi in [(None, None), (150, 479), (200, 299), (199, 300), (250, 260), (0, 1000)]:
        await check(lo, hi)
    for _ in range(10):
        lo = rng.randrange(100, 500)
        await check(lo, lo + rng.randrange(300))
    # Trimming takes a slot back out of its bucket
    trimmed = await store.trim_history(ROLLUP, 320, 1000)
    for slot in trimmed:
        rows.pop(slot)
    for lo, hi in [(None, None), (300, 399), (310, 420)]:
        await check(lo, hi)


async def test_tallies_match_the_records_and_survive_huge_sums(store: Store) -> None:
    rng = random.Random(4)
    histories = [
        await close_with_history(store, slot, random_bids(rng, slot, 25)) for slot in range(7, 11)
    ]
    for searcher in SEARCHERS:
        want: Counter[str] = Counter()
        for h in histories:
            want.update(h.tallies.get(searcher, {}))
        assert await store.get_searcher_tally(ROLLUP, searcher) == {
            k: v for k, v in want.items() if v
        }
    # Wei sums pass 2**64 (Redis counters are 64-bit) and overpayment may be negative (VCG)
    huge = {"bids": 1, "won": 1, "paid_wei": 2**200 + 12_345, "overpaid_wei": -(2**70 + 5)}
    base = histories[0]
    bid = make_bid(1, slot=20, searcher=SEARCHERS[0])
    await store.append_bid(bid, WIDE)
    entries = await store.close_slot(ROLLUP, 20)
    result = compute_slot_result(ROLLUPS[ROLLUP], 20, deadline_ms(20), PARENT_HASH, entries)
    odd = dataclasses.replace(base, slot=20, bids=(), tallies={SEARCHERS[3]: huge})
    before = await store.get_searcher_tally(ROLLUP, SEARCHERS[3])
    assert await store.save_result(result, history=odd)
    after = await store.get_searcher_tally(ROLLUP, SEARCHERS[3])
    assert after["paid_wei"] == before.get("paid_wei", 0) + huge["paid_wei"]
    assert after["overpaid_wei"] == before.get("overpaid_wei", 0) + huge["overpaid_wei"]


async def test_pages_across_rollups_return_every_item_once_while_slots_arrive(
    store: Store,
) -> None:
    rng = random.Random(5)
    rollups = [ROLLUP, OTHER_ROLLUP]
    for slot in range(7, 12):
        for r in rollups:
            await close_with_history(store, slot, random_bids(rng, slot, 12, rollup=r), rollup=r)
    at_start_bids: list[BidRecord] = []
    at_start_slots: list[tuple[int, int]] = []
    for r in rollups:
        at_start_bids.extend(await all_bids(store, r))
        at_start_slots.extend(
            (s, r)
            for s in await store.list_history_slots(r, from_slot=None, to_slot=None, limit=99)
        )
    new_slot = 12

    async def close_another() -> None:
        # A new slot closes between two pages, alternating rollups
        nonlocal new_slot
        r = rollups[new_slot % 2]
        await close_with_history(store, new_slot, random_bids(rng, new_slot, 5, rollup=r), rollup=r)
        new_slot += 1

    seen_bids: list[BidRecord] = []
    bid_cursor = None
    while True:
        bids, next_bid = await page_bids(
            store, rollups, slot=None, searcher=None, outcome=None, cursor=bid_cursor, limit=9
        )
        seen_bids.extend(bids)
        await close_another()
        if next_bid is None:
            break
        bid_cursor = parse_bid_cursor(next_bid)
    seen_slots: list[tuple[int, int]] = []
    slot_cursor = None
    while True:
        summaries, next_slot = await page_slots(
            store, rollups, from_slot=None, to_slot=None, cursor=slot_cursor, limit=3
        )
        seen_slots.extend((s["slot"], s["rollup"]) for s in summaries)
        await close_another()
        if next_slot is None:
            break
        slot_cursor = parse_slot_cursor(next_slot)
    # Everything that existed at the start came exactly once (newer slots may or may not)
    assert len(seen_slots) == len(set(seen_slots))
    assert set(at_start_slots) <= set(seen_slots)
    seen_keys = Counter((b.rollup, b.slot, b.seq, b.searcher, b.received_ms) for b in seen_bids)
    for b in at_start_bids:
        assert seen_keys[(b.rollup, b.slot, b.seq, b.searcher, b.received_ms)] == 1


# --- retention ---------------------------------------------------------------------------------


async def test_trim_removes_whole_slots_and_takes_back_their_counts(store: Store) -> None:
    rng = random.Random(6)
    histories = {
        slot: await close_with_history(
            store, slot, random_bids(rng, slot, 20), refusals=[refusal(slot, 1)]
        )
        for slot in range(7, 12)
    }
    await store.record_committee(ROLLUP, 8, {"status": "failed"})
    assert await store.trim_history(ROLLUP, before_slot=10, max_slots=2) == [7, 8]
    assert await store.trim_history(ROLLUP, before_slot=10, max_slots=5) == [9]
    assert await store.trim_history(ROLLUP, before_slot=10, max_slots=5) == []
    kept = [10, 11]
    assert await store.list_history_slots(ROLLUP, from_slot=None, to_slot=None, limit=9) == [
        11,
        10,
    ]
    for slot in (7, 8, 9):
        assert await store.get_result(ROLLUP, slot) is None
        assert await store.read_log(ROLLUP, slot) == []
        assert await store.get_slot_details(ROLLUP, [slot]) == [None]
    assert await store.count_failed_slots(ROLLUP, from_slot=None, to_slot=None) == 0
    assert (
        await store.list_result_slots(ROLLUP, from_slot=None, to_slot=None, limit=9) == kept[::-1]
    )
    remaining = [b for s in reversed(kept) for b in reversed(histories[s].bids)]
    assert await all_bids(store) == remaining
    for searcher in SEARCHERS:
        assert await all_bids(store, searcher=searcher) == [
            b for b in remaining if b.searcher == searcher
        ]
        want: Counter[str] = Counter()
        for s in kept:
            want.update(
                compute_tallies(
                    histories[s].bids, int(histories[s].summary["clearing_price_wei_per_gas"])
                ).get(searcher, {})
            )
        assert await store.get_searcher_tally(ROLLUP, searcher) == {
            k: v for k, v in want.items() if v
        }
    if isinstance(store, RedisStore):
        # Nothing of a trimmed slot is left behind in Redis
        names = [k.decode() if isinstance(k, bytes) else k for k in await store.redis.keys("*")]
        leftover = [k for k in names if any(k.endswith(f":{s}") for s in (7, 8, 9))]
        assert leftover == []


async def test_two_concurrent_trims_take_counts_back_once(store: Store) -> None:
    rng = random.Random(7)
    for slot in range(7, 10):
        await close_with_history(store, slot, random_bids(rng, slot, 15))
    kept = await store.get_slot_details(ROLLUP, [9])
    assert kept[0] is not None
    await asyncio.gather(store.trim_history(ROLLUP, 9, 5), store.trim_history(ROLLUP, 9, 5))
    for searcher in SEARCHERS:
        want = compute_tallies(
            kept[0].bids, int(kept[0].summary["clearing_price_wei_per_gas"])
        ).get(searcher, {})
        assert await store.get_searcher_tally(ROLLUP, searcher) == want


# --- both stores give the same answers -------------------------------------------------------


@pytest.mark.redis
async def test_memory_and_redis_give_the_same_answers(redis_server: RedisServer) -> None:
    memory = await open_test_store("memory")
    redis = await open_test_store(db_url(redis_server, STORE_DB))
    try:
        rng_seed = 8
        for store in (memory, redis):
            rng = random.Random(rng_seed)
            for slot in range(7, 15):
                refusals = [refusal(slot, n) for n in range(rng.randrange(3))]
                await close_with_history(store, slot, random_bids(rng, slot, 20), refusals=refusals)
                if rng.random() < 0.3:
                    await store.record_committee(ROLLUP, slot, {"status": "failed"})
            await store.trim_history(ROLLUP, 9, 1)

        def unseq(records: list[BidRecord]) -> list[BidRecord]:
            # Seqs are the stores' own log positions (times): the one field that may differ
            return [dataclasses.replace(r, seq=None) for r in records]

        cases: list[dict[str, Any]] = [
            {},
            {"outcome": "won"},
            {"searcher": SEARCHERS[2]},
            {"slot": 12},
        ]
        for filters in cases:
            assert unseq(await all_bids(memory, **filters)) == unseq(
                await all_bids(redis, **filters)
            )
        for searcher in SEARCHERS:
            assert await memory.get_searcher_tally(ROLLUP, searcher) == (
                await redis.get_searcher_tally(ROLLUP, searcher)
            )
        args = {"from_slot": None, "to_slot": None}
        assert stats_of(await memory.list_stats_parts(ROLLUP, **args)) == stats_of(
            await redis.list_stats_parts(ROLLUP, **args)
        )
        assert await memory.count_failed_slots(ROLLUP, **args) == await redis.count_failed_slots(
            ROLLUP, **args
        )
        slots = await memory.list_history_slots(ROLLUP, from_slot=None, to_slot=None, limit=99)
        assert slots == await redis.list_history_slots(
            ROLLUP, from_slot=None, to_slot=None, limit=99
        )
        for m, r in zip(
            await memory.get_slot_details(ROLLUP, slots),
            await redis.get_slot_details(ROLLUP, slots),
            strict=True,
        ):
            assert m is not None and r is not None
            assert m.summary == r.summary
            assert unseq(list(m.bids)) == unseq(list(r.bids))
            assert m.block == r.block
    finally:
        await memory.aclose()
        await redis.aclose()
