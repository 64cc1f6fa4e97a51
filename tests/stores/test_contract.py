"""The Store contract (node/stores/base.py), run against every implementation.

Each test takes the parametrized ``store`` fixture: once a MemoryStore, once a RedisStore on a
real server. The randomized test at the end runs both side by side on the same operations and
requires the same answers and the same book: the two stores are observationally equivalent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.searcher import SearcherKey
from auction import constants as C
from auction.book import compute_book
from auction.errors import SearcherLimitExceeded, SlotClosed
from auction.results import compute_slot_result
from auction.types import Bid, Cancel, LoggedEvent, SlotResult
from node.stores.base import IntakeLimits, Store
from tests.redis_server import RedisServer
from tests.stores.bids import (
    MINIMAL_ROLLUP,
    PARENT_HASH,
    ROLLUP,
    deadline_ms,
    log_cancel,
    make_bid,
    make_cancel,
    make_signed_bid,
    make_signed_cancel,
    parse_seq,
)
from tests.stores.conftest import STORE_DB, db_url, open_test_store

WIDE = IntakeLimits(max_bundles=10_000, max_bytes=10**9)
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
UUID_1 = "11111111222233334444555555555555"
UUID_2 = "66666666777788889999aaaaaaaaaaaa"


def ids(log: list[LoggedEvent]) -> list[tuple[str, str]]:
    """A log as (kind, identity): bid id for bids, searcher/uuid for cancels."""
    out = []
    for e in log:
        ev = e.event
        if isinstance(ev, Bid):
            out.append(("bid", ev.bid_id))
        else:
            out.append(("cancel", f"{ev.searcher}/{ev.replacement_uuid}"))
    return out


def check_log(log: list[LoggedEvent]) -> None:
    """Invariants of any slot log: seqs strictly increase, a bid id appears at most once."""
    seqs = [parse_seq(e.seq) for e in log]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    bid_ids = [e.event.bid_id for e in log if isinstance(e.event, Bid)]
    assert len(bid_ids) == len(set(bid_ids))


# --- append ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_append_returns_increasing_seqs(store: Store) -> None:
    seqs = [await store.append_bid(make_bid(n), WIDE) for n in range(50)]
    parsed = [parse_seq(s) for s in seqs]
    assert parsed == sorted(parsed)
    assert len(set(parsed)) == len(parsed)


@pytest.mark.anyio
async def test_log_order_is_append_order(store: Store) -> None:
    appended: list[Bid | Cancel] = []
    seqs = []
    for n in range(12):
        bid = make_bid(n, searcher=ALICE if n % 2 else BOB, replacement_uuid=UUID_1)
        seqs.append(await store.append_bid(bid, WIDE))
        appended.append(bid)
        if n % 4 == 3:
            cancel = make_cancel(ALICE, UUID_1, n=n)
            assert await log_cancel(store, cancel, [7]) == [7]
            appended.append(cancel)
    log = await store.read_log(ROLLUP, 7)
    assert [e.event for e in log] == appended
    assert [e.seq for e in log if isinstance(e.event, Bid)] == seqs
    check_log(log)


@pytest.mark.anyio
async def test_reappend_same_bid_id_returns_first_seq_and_adds_nothing(store: Store) -> None:
    bid = make_bid(1)
    first = await store.append_bid(bid, WIDE)
    await store.append_bid(make_bid(2), WIDE)
    assert await store.append_bid(bid, WIDE) == first
    log = await store.read_log(ROLLUP, 7)
    assert ids(log) == [("bid", bid.bid_id), ("bid", make_bid(2).bid_id)]


@pytest.mark.anyio
async def test_concurrent_reappends_of_one_bid_get_one_seq(store: Store) -> None:
    bid = make_bid(1)
    seqs = await asyncio.gather(*(store.append_bid(bid, WIDE) for _ in range(100)))
    assert len(set(seqs)) == 1
    assert [e.seq for e in await store.read_log(ROLLUP, 7)] == [seqs[0]]


@pytest.mark.anyio
async def test_append_after_close_raises_slot_closed_and_is_not_logged(store: Store) -> None:
    logged = make_bid(1)
    await store.append_bid(logged, WIDE)
    await store.close_slot(ROLLUP, 7)
    with pytest.raises(SlotClosed):
        await store.append_bid(make_bid(2), WIDE)
    # Closed wins over idempotency: a logged bid resent after close is refused, not re-acked
    with pytest.raises(SlotClosed):
        await store.append_bid(logged, WIDE)
    assert ids(await store.read_log(ROLLUP, 7)) == [("bid", logged.bid_id)]


@pytest.mark.anyio
async def test_close_of_a_slot_never_bid_on_refuses_later_bids(store: Store) -> None:
    assert await store.close_slot(ROLLUP, 9) == []
    with pytest.raises(SlotClosed):
        await store.append_bid(make_bid(1, slot=9), WIDE)
    assert await store.read_log(ROLLUP, 9) == []


@pytest.mark.anyio
async def test_200_concurrent_appends_all_acknowledged_and_logged_once(store: Store) -> None:
    bids = [make_bid(n, searcher=f"0x{n % 7:040x}") for n in range(200)]
    seqs = await asyncio.gather(*(store.append_bid(b, WIDE) for b in bids))
    assert len(set(seqs)) == 200
    log = await store.read_log(ROLLUP, 7)
    check_log(log)
    assert len(log) == 200
    by_id = {e.event.bid_id: e for e in log if isinstance(e.event, Bid)}
    for bid, seq in zip(bids, seqs, strict=True):
        assert by_id[bid.bid_id].seq == seq
        assert by_id[bid.bid_id].event == bid


# --- close ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_close_slot_returns_whole_log_and_is_repeatable(store: Store) -> None:
    for n in range(5):
        await store.append_bid(make_bid(n, replacement_uuid=UUID_1), WIDE)
    await log_cancel(store, make_cancel("0x" + "aa" * 20, UUID_1), [7])
    before = await store.read_log(ROLLUP, 7)
    closed = await store.close_slot(ROLLUP, 7)
    assert closed == before
    assert len(closed) == 6
    assert await store.close_slot(ROLLUP, 7) == closed
    assert await store.read_log(ROLLUP, 7) == closed


@pytest.mark.anyio
async def test_close_slot_leaves_other_slots_open(store: Store) -> None:
    await store.append_bid(make_bid(1, slot=7), WIDE)
    await store.close_slot(ROLLUP, 7)
    seq = await store.append_bid(make_bid(2, slot=8), WIDE)
    assert [e.seq for e in await store.read_log(ROLLUP, 8)] == [seq]


# --- searcher limits ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_bundle_limit_enforced_atomically_under_concurrency(store: Store) -> None:
    limits = IntakeLimits(max_bundles=10, max_bytes=10**9)
    attempts = [make_bid(n, searcher=ALICE) for n in range(50)]
    results = await asyncio.gather(
        *(store.append_bid(b, limits) for b in attempts), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, SearcherLimitExceeded)]
    assert len(accepted) == 10 and len(refused) == 40
    # Another searcher is unaffected: it gets its own full allowance
    for n in range(10):
        await store.append_bid(make_bid(100 + n, searcher=BOB), limits)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(200, searcher=BOB), limits)
    log = await store.read_log(ROLLUP, 7)
    assert sum(1 for e in log if e.event.searcher == ALICE) == 10
    assert len(log) == 20


@pytest.mark.anyio
async def test_byte_limit_counts_bundle_sizes(store: Store) -> None:
    limits = IntakeLimits(max_bundles=100, max_bytes=350)
    for n in range(3):
        await store.append_bid(make_bid(n, searcher=ALICE, size_bytes=100), limits)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(3, searcher=ALICE, size_bytes=100), limits)
    # Exactly up to the limit is allowed
    await store.append_bid(make_bid(4, searcher=ALICE, size_bytes=50), limits)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(5, searcher=ALICE, size_bytes=1), limits)
    await store.append_bid(make_bid(6, searcher=BOB, size_bytes=350), limits)


@pytest.mark.anyio
async def test_refused_bid_leaves_counters_unchanged(store: Store) -> None:
    limits = IntakeLimits(max_bundles=3, max_bytes=300)
    await store.append_bid(make_bid(1, searcher=ALICE, size_bytes=100), limits)
    # Refused for bytes: had it counted a bundle or its bytes, the bids below would not fit
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(2, searcher=ALICE, size_bytes=250), limits)
    await store.append_bid(make_bid(3, searcher=ALICE, size_bytes=100), limits)
    await store.append_bid(make_bid(4, searcher=ALICE, size_bytes=100), limits)
    # Refused for bundles, then nothing else fits either
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(5, searcher=ALICE, size_bytes=1), limits)
    assert len(await store.read_log(ROLLUP, 7)) == 3


@pytest.mark.anyio
async def test_reappend_does_not_count_against_limits(store: Store) -> None:
    limits = IntakeLimits(max_bundles=2, max_bytes=10**9)
    bid = make_bid(1, searcher=ALICE)
    first = await store.append_bid(bid, limits)
    for _ in range(5):
        assert await store.append_bid(bid, limits) == first
    await store.append_bid(make_bid(2, searcher=ALICE), limits)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(3, searcher=ALICE), limits)


# --- cancel ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancel_goes_only_into_open_slots_with_a_log(store: Store) -> None:
    await store.append_bid(make_bid(1, slot=10, searcher=ALICE, replacement_uuid=UUID_1), WIDE)
    await store.append_bid(make_bid(2, slot=12, searcher=ALICE, replacement_uuid=UUID_1), WIDE)
    await store.close_slot(ROLLUP, 12)
    # Slot 13's only bid was refused (too large): the slot has no log
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(
            make_bid(3, slot=13, searcher=ALICE, size_bytes=500),
            IntakeLimits(max_bundles=10, max_bytes=100),
        )
    cancel = make_cancel(ALICE, UUID_1)
    assert await log_cancel(store, cancel, [10, 11, 12, 13, 14]) == [10]
    assert [e.event for e in await store.read_log(ROLLUP, 10)][-1] == cancel
    for slot in (11, 13, 14):
        assert await store.read_log(ROLLUP, slot) == []
    assert len(await store.read_log(ROLLUP, 12)) == 1


@pytest.mark.anyio
async def test_cancel_ends_the_live_bid_in_the_book(store: Store) -> None:
    kept = make_bid(1, searcher=ALICE, replacement_uuid=UUID_2)
    cancelled = make_bid(2, searcher=ALICE, replacement_uuid=UUID_1)
    await store.append_bid(kept, WIDE)
    await store.append_bid(cancelled, WIDE)
    await log_cancel(store, make_cancel(ALICE, UUID_1), [7])
    book = compute_book(await store.close_slot(ROLLUP, 7))
    assert [e.event.bid_id for e in book.live] == [kept.bid_id]
    assert book.superseded == {cancelled.bid_id: C.OUTCOME_CANCELLED}


# --- find_bid_seq ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_find_bid_seq_by_bid_id_and_by_searcher_bundle_hash(store: Store) -> None:
    bundle_hash = "0x" + "ee" * 32
    first = make_bid(1, searcher=ALICE, bundle_hash=bundle_hash)
    # The same bundle signed again (another bid id): the bundle key keeps the first seq
    again = make_bid(2, searcher=ALICE, bundle_hash=bundle_hash)
    other = make_bid(3, searcher=BOB, bundle_hash=bundle_hash)
    s1 = await store.append_bid(first, WIDE)
    s2 = await store.append_bid(again, WIDE)
    s3 = await store.append_bid(other, WIDE)
    assert await store.find_bid_seq(ROLLUP, 7, first.bid_id) == s1
    assert await store.find_bid_seq(ROLLUP, 7, again.bid_id) == s2
    assert await store.find_bid_seq(ROLLUP, 7, f"{ALICE}:{bundle_hash}") == s1
    assert await store.find_bid_seq(ROLLUP, 7, f"{BOB}:{bundle_hash}") == s3
    assert await store.find_bid_seq(ROLLUP, 7, "0x" + "00" * 32) is None
    assert await store.find_bid_seq(ROLLUP, 8, first.bid_id) is None
    assert await store.find_bid_seq(ROLLUP + 1, 7, first.bid_id) is None


@pytest.mark.anyio
async def test_refused_bid_is_not_findable(store: Store) -> None:
    refused = make_bid(1, searcher=ALICE, size_bytes=500)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(refused, IntakeLimits(max_bundles=10, max_bytes=100))
    assert await store.find_bid_seq(ROLLUP, 7, refused.bid_id) is None
    assert await store.find_bid_seq(ROLLUP, 7, f"{ALICE}:{refused.bundle_hash}") is None


# --- results --------------------------------------------------------------------------------


def signed_log_bids() -> tuple[list[Bid], Cancel]:
    """Real signed bids for slot 20: replacements, a cancel, and bids that lose."""
    keys = [SearcherKey.from_seed(i) for i in range(3)]
    bids = [
        make_signed_bid(keys[0], 20, nonce=0, bid_wei=5 * 10**15, replacement_uuid=UUID_1),
        make_signed_bid(keys[0], 20, nonce=1, bid_wei=6 * 10**15, replacement_uuid=UUID_1),
        make_signed_bid(keys[1], 20, nonce=0, bid_wei=3 * 10**15, replacement_uuid=UUID_2),
        make_signed_bid(keys[1], 20, nonce=1, bid_wei=2 * 10**15),
        make_signed_bid(keys[2], 20, nonce=0),  # bids its priority tips
        make_signed_bid(keys[2], 20, nonce=1, gas=900_000, bid_wei=1),  # does not fit
    ]
    return bids, make_signed_cancel(keys[1], 20, UUID_2)


async def closed_slot_result(store: Store) -> SlotResult:
    bids, cancel = signed_log_bids()
    for bid in bids[:3]:
        await store.append_bid(bid, WIDE)
    assert await log_cancel(store, cancel, [20]) == [20]
    for bid in bids[3:]:
        await store.append_bid(bid, WIDE)
    log = await store.close_slot(ROLLUP, 20)
    return compute_slot_result(MINIMAL_ROLLUP, 20, deadline_ms(20), PARENT_HASH, log)


@pytest.mark.anyio
async def test_result_round_trips_exactly(store: Store) -> None:
    result = await closed_slot_result(store)
    outcomes = {o.outcome for o in result.outcomes}
    assert {C.OUTCOME_WON, C.OUTCOME_REPLACED, C.OUTCOME_CANCELLED} <= outcomes
    result = dataclasses.replace(result, solve_ms=1.2345678901234567, extra={"note": ["x", 1]})
    assert await store.save_result(result)
    stored = await store.get_result(ROLLUP, 20)
    assert stored == result
    assert stored is not None and stored.extra == result.extra
    assert await store.latest_result(ROLLUP) == result


@pytest.mark.anyio
async def test_save_result_once_second_returns_false_and_first_kept(store: Store) -> None:
    result = await closed_slot_result(store)
    other = dataclasses.replace(result, solver="other", winning_bids_wei=1)
    assert await store.save_result(result) is True
    assert await store.save_result(other) is False
    assert await store.get_result(ROLLUP, 20) == result
    assert await store.list_result_slots(ROLLUP, from_slot=None, to_slot=None, limit=10) == [20]


def result_for(base: SlotResult, slot: int, rollup: int = ROLLUP) -> SlotResult:
    """``base`` moved to another slot, one without a log (its bids then stay in the result)."""
    return dataclasses.replace(base, slot=slot, rollup=rollup)


@pytest.mark.anyio
async def test_results_queries_newest_first_with_range_and_limit(store: Store) -> None:
    base = await closed_slot_result(store)
    assert await store.get_result(ROLLUP, 31) is None
    assert await store.latest_result(ROLLUP + 5) is None
    for slot in (31, 35, 33, 40, 32):  # saved out of order
        assert await store.save_result(result_for(base, slot))
    assert await store.latest_result(ROLLUP) == result_for(base, 40)
    assert await store.get_result(ROLLUP, 33) == result_for(base, 33)

    async def slots(lo: int | None, hi: int | None, limit: int) -> list[int]:
        return await store.list_result_slots(ROLLUP, from_slot=lo, to_slot=hi, limit=limit)

    assert await slots(None, None, 100) == [40, 35, 33, 32, 31]
    assert await slots(None, None, 2) == [40, 35]
    assert await slots(32, 35, 100) == [35, 33, 32]
    assert await slots(32, 35, 1) == [35]
    assert await slots(33, None, 100) == [40, 35, 33]
    assert await slots(None, 32, 100) == [32, 31]
    assert await slots(36, 39, 100) == []
    assert await slots(None, None, 0) == []


# --- rollups --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rollups_are_isolated(store: Store) -> None:
    other = ROLLUP + 1
    limits = IntakeLimits(max_bundles=1, max_bytes=10**9)
    a = make_bid(1, rollup=ROLLUP, searcher=ALICE, replacement_uuid=UUID_1)
    b = make_bid(1, rollup=other, searcher=ALICE, replacement_uuid=UUID_1)
    seq_a = await store.append_bid(a, limits)
    # The limit counts per rollup: the same searcher still bids on the other rollup
    seq_b = await store.append_bid(b, limits)
    assert await store.find_bid_seq(ROLLUP, 7, b.bid_id) is None
    assert await store.find_bid_seq(other, 7, b.bid_id) == seq_b
    assert await store.close_slot(ROLLUP, 7) == [LoggedEvent(seq_a, a)]
    # Closing slot 7 of one rollup leaves slot 7 of the other open
    assert await log_cancel(store, make_cancel(ALICE, UUID_1, rollup=other), [7]) == [7]
    assert ids(await store.read_log(other, 7)) == [
        ("bid", b.bid_id),
        ("cancel", f"{ALICE}/{UUID_1}"),
    ]
    base = compute_slot_result(MINIMAL_ROLLUP, 7, deadline_ms(7), PARENT_HASH, [])
    assert await store.save_result(result_for(base, 7, ROLLUP))
    assert await store.save_result(result_for(base, 7, other))
    assert await store.get_result(other, 7) == result_for(base, 7, other)
    assert await store.list_result_slots(other + 1, from_slot=None, to_slot=None, limit=5) == []


# --- observational equivalence --------------------------------------------------------------

SLOTS = (50, 51, 52)
SEARCHERS = (ALICE, BOB, "0x" + "c2" * 20)
UUIDS = (None, UUID_1, UUID_2)
RANDOM_LIMITS = IntakeLimits(max_bundles=3, max_bytes=600)


def pool_bid(slot: int, searcher: int, variant: int) -> Bid:
    """One of a small pool of bids, so a random run resends, replaces and overflows limits."""
    return make_bid(
        variant,
        slot=slot,
        searcher=SEARCHERS[searcher],
        replacement_uuid=UUIDS[variant % 3],
        # variant 5 never fits the byte limit: a slot's first bid can be refused
        size_bytes=700 if variant == 5 else 90 + 60 * variant,
    )


bid_ops = st.tuples(
    st.just("bid"),
    st.sampled_from(SLOTS),
    st.integers(0, len(SEARCHERS) - 1),
    st.integers(0, 5),
)
cancel_ops = st.tuples(
    st.just("cancel"),
    st.integers(0, len(SEARCHERS) - 1),
    st.sampled_from(UUIDS[1:]),
    st.lists(st.sampled_from(SLOTS), min_size=1, max_size=3, unique=True),
)
close_ops = st.tuples(st.just("close"), st.sampled_from(SLOTS))
operations = st.lists(
    st.one_of(bid_ops, bid_ops, bid_ops, cancel_ops, close_ops), min_size=1, max_size=40
)


async def apply(store: Store, op: tuple[Any, ...], seqs: dict[str, str]) -> object:
    """Run one operation; return what a caller observes, minus store-specific seq values."""
    if op[0] == "bid":
        bid = pool_bid(op[1], op[2], op[3])
        try:
            seq = await store.append_bid(bid, RANDOM_LIMITS)
        except (SlotClosed, SearcherLimitExceeded) as exc:
            return exc.code
        # A resent bid must get the seq of its first acknowledgement
        assert seqs.setdefault(bid.bid_id, seq) == seq
        return "ok"
    if op[0] == "cancel":
        cancel = make_cancel(SEARCHERS[op[1]], op[2])
        try:
            return await log_cancel(store, cancel, list(op[3]), RANDOM_LIMITS)
        except SearcherLimitExceeded as exc:  # a cancel counts against the quota too
            return exc.code
    log = await store.close_slot(ROLLUP, op[1])
    assert log == await store.read_log(ROLLUP, op[1])
    return ids(log)


def book_view(log: list[LoggedEvent]) -> tuple[object, ...]:
    book = compute_book(log)
    return (
        [e.event.bid_id for e in book.live],  # type: ignore[union-attr]
        book.superseded,
        [e.event.bid_id for e in book.bids],  # type: ignore[union-attr]
    )


async def run_side_by_side(url: str, ops: list[tuple[Any, ...]]) -> None:
    memory, redis = await open_test_store("memory"), await open_test_store(url)
    seqs: dict[Store, dict[str, str]] = {memory: {}, redis: {}}
    try:
        for op in ops:
            assert await apply(memory, op, seqs[memory]) == await apply(redis, op, seqs[redis])
        for slot in SLOTS:
            logs = [await s.read_log(ROLLUP, slot) for s in (memory, redis)]
            for store, log in zip((memory, redis), logs, strict=True):
                check_log(log)
                for e in log:
                    if isinstance(e.event, Bid):
                        assert await store.find_bid_seq(ROLLUP, slot, e.event.bid_id) == e.seq
            assert [e.event for e in logs[0]] == [e.event for e in logs[1]]
            assert book_view(logs[0]) == book_view(logs[1])
    finally:
        await redis.aclose()


@pytest.mark.redis
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_stores_are_observationally_equivalent(
    redis_server: RedisServer, ops: list[tuple[Any, ...]]
) -> None:
    anyio.run(run_side_by_side, db_url(redis_server, STORE_DB), ops)


@pytest.mark.anyio
async def test_retried_cancel_is_logged_once(store):
    bid = make_bid(1, searcher=ALICE, replacement_uuid="c" * 32)
    await store.append_bid(bid, WIDE)
    cancel = make_cancel(ALICE, "c" * 32)
    assert await log_cancel(store, cancel, [bid.slot]) == [bid.slot]
    assert await log_cancel(store, cancel, [bid.slot]) == [bid.slot]
    log = await store.read_log(bid.rollup, bid.slot)
    assert sum(isinstance(e.event, type(cancel)) for e in log) == 1


@pytest.mark.anyio
async def test_a_result_keeps_its_bids_whether_or_not_its_log_is_stored(store: Store) -> None:
    result = await closed_slot_result(store)  # slot 20 has its log in the store
    elsewhere = result_for(result, 21)  # slot 21 has none: a replay, a benchmark
    assert await store.save_result(result) and await store.save_result(elsewhere)
    assert await store.get_result(ROLLUP, 20) == result
    assert await store.get_result(ROLLUP, 21) == elsewhere


@pytest.mark.anyio
async def test_cancels_that_go_nowhere_still_count_against_the_quota(store: Store) -> None:
    # Each is remembered for its replay window, so a flood of them must be bounded like bids
    # (found in review: they filled Redis, and made the memory store's purge quadratic).
    limits = IntakeLimits(max_bundles=5, max_bytes=10**9)
    for n in range(5):
        assert await log_cancel(store, make_cancel(ALICE, UUID_1, n=n), [7], limits) == []
    with pytest.raises(SearcherLimitExceeded):
        await log_cancel(store, make_cancel(ALICE, UUID_1, n=99), [7], limits)
    # A resend of one already seen answers as before and counts nothing more
    assert await log_cancel(store, make_cancel(ALICE, UUID_1, n=0), [7], limits) == []
    # Another searcher's quota is its own
    assert await log_cancel(store, make_cancel(BOB, UUID_1, n=1), [7], limits) == []
