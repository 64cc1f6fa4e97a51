"""The store contract for cross-rollup bundles (``append_bid_copies``), on both stores.

A cross-rollup bundle is logged as one copy per rollup it spans, in one atomic step: every
spanned log takes its copy under its own limits, or none does and nothing is counted.
"""

from __future__ import annotations

import asyncio

import pytest

from auction.errors import SearcherLimitExceeded, SlotClosed, SlotFull
from auction.types import Bid
from node.stores.base import IntakeLimits, Store
from tests.stores.bids import OTHER_ROLLUP, ROLLUP, make_bid, make_cross_copies

WIDE = IntakeLimits(max_bundles=10_000, max_bytes=10**9)
BOTH = (OTHER_ROLLUP, ROLLUP)


async def logged_ids(store: Store, rollup: int, slot: int = 7) -> list[str]:
    return [e.event.bid_id for e in await store.read_log(rollup, slot)  # type: ignore[union-attr]
            if isinstance(e.event, Bid)]


@pytest.mark.anyio
async def test_copies_are_logged_in_every_spanned_log(store: Store) -> None:
    copies = make_cross_copies(1)
    seqs = await store.append_bid_copies(copies, [WIDE, WIDE])
    for copy, seq in zip(copies, seqs, strict=True):
        log = await store.read_log(copy.rollup, 7)
        assert [(e.seq, e.event) for e in log] == [(seq, copy)]
        # Found by id and by <searcher>:<bundle hash> in each log
        assert await store.find_bid_seq(copy.rollup, 7, copy.bid_id) == seq
        owner = f"{copy.searcher}:{copy.bundle_hash}"
        assert await store.find_bid_seq(copy.rollup, 7, owner) == seq


@pytest.mark.anyio
async def test_reappending_copies_returns_their_seqs_and_counts_nothing(store: Store) -> None:
    copies = make_cross_copies(1, size_bytes=100)
    tight = IntakeLimits(max_bundles=2, max_bytes=10**6)
    first = await store.append_bid_copies(copies, [tight, tight])
    assert await store.append_bid_copies(copies, [tight, tight]) == first
    for r in BOTH:
        assert len(await store.read_log(r, 7)) == 1
    # One more bid still fits each rollup's quota of 2: the resend counted nothing
    for r in BOTH:
        await store.append_bid(make_bid(50, rollup=r), tight)


@pytest.mark.anyio
async def test_searcher_quota_full_in_one_rollup_refuses_the_bundle_in_all(store: Store) -> None:
    tight = IntakeLimits(max_bundles=2, max_bytes=10**6)
    for n in (1, 2):
        await store.append_bid(make_bid(n, rollup=OTHER_ROLLUP), tight)
    copies = make_cross_copies(3)
    with pytest.raises(SearcherLimitExceeded) as info:
        await store.append_bid_copies(copies, [tight, tight])
    assert info.value.data["rollup"] == OTHER_ROLLUP
    # Nothing logged anywhere, nothing counted: ROLLUP still takes two bids of the searcher
    assert await logged_ids(store, ROLLUP) == []
    assert len(await logged_ids(store, OTHER_ROLLUP)) == 2
    assert await store.find_bid_seq(ROLLUP, 7, copies[0].bid_id) is None
    for n in (4, 5):
        await store.append_bid(make_bid(n, rollup=ROLLUP), tight)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_bid(make_bid(6, rollup=ROLLUP), tight)


@pytest.mark.anyio
async def test_each_rollup_counts_the_bundle_under_its_own_limits(store: Store) -> None:
    # The signed request's bytes count in each spanned rollup; only OTHER's limit is tight
    copies = make_cross_copies(1, size_bytes=600)
    tight = IntakeLimits(max_bundles=100, max_bytes=1000)
    await store.append_bid_copies(copies, [tight, WIDE])
    for r in BOTH:  # 600 bytes are counted in both rollups
        with pytest.raises(SearcherLimitExceeded):
            await store.append_bid(make_bid(2, rollup=r, size_bytes=600), tight)
    await store.append_bid(make_bid(3, rollup=ROLLUP, size_bytes=300), tight)
    # ... and the limits given are each copy's own rollup's: swapped, the other rollup refuses
    with pytest.raises(SearcherLimitExceeded) as info:
        await store.append_bid_copies(make_cross_copies(4, size_bytes=600), [WIDE, tight])
    assert info.value.data["rollup"] == ROLLUP


@pytest.mark.anyio
async def test_a_full_slot_in_one_rollup_refuses_the_bundle_in_all(store: Store) -> None:
    full = IntakeLimits(max_bundles=100, max_bytes=10**6, max_slot_events=1)
    await store.append_bid(make_bid(1, rollup=ROLLUP, searcher="0x" + "bb" * 20), full)
    with pytest.raises(SlotFull) as info:
        await store.append_bid_copies(make_cross_copies(2), [full, full])
    assert info.value.data["rollup"] == ROLLUP
    assert await logged_ids(store, OTHER_ROLLUP) == []


@pytest.mark.anyio
async def test_a_closed_slot_in_one_rollup_refuses_the_bundle_in_all(store: Store) -> None:
    await store.close_slot(ROLLUP, 7)
    with pytest.raises(SlotClosed):
        await store.append_bid_copies(make_cross_copies(1), [WIDE, WIDE])
    assert await logged_ids(store, OTHER_ROLLUP) == []
    assert await store.close_slot(ROLLUP, 7) == []


@pytest.mark.anyio
async def test_concurrent_bundles_against_a_quota_are_logged_in_both_or_neither(
    store: Store,
) -> None:
    # Quota 5 in OTHER (where single bids compete too), wide in ROLLUP
    tight = IntakeLimits(max_bundles=5, max_bytes=10**6)

    async def cross(n: int) -> str | None:
        try:
            await store.append_bid_copies(make_cross_copies(n), [tight, WIDE])
            return "ok"
        except SearcherLimitExceeded:
            return None

    async def single(n: int) -> None:
        try:
            await store.append_bid(make_bid(n, rollup=OTHER_ROLLUP), tight)
        except SearcherLimitExceeded:
            pass

    await asyncio.gather(*(cross(n) for n in range(20)), *(single(n) for n in range(100, 110)))
    other, mine = await logged_ids(store, OTHER_ROLLUP), await logged_ids(store, ROLLUP)
    assert len(other) == 5
    crossed = {c.bid_id for n in range(20) for c in make_cross_copies(n)}
    assert set(mine) == set(other) & crossed  # every logged bundle is in both logs
    assert len(mine) == len(set(mine))


@pytest.mark.anyio
async def test_copies_spanning_three_rollups_and_a_replacement_uuid(store: Store) -> None:
    uuid = "0123456789abcdef0123456789abcdef"
    copies = make_cross_copies(1, rollups=(1, 2, 3), replacement_uuid=uuid)
    await store.append_bid_copies(copies, [WIDE] * 3)
    for r in (1, 2, 3):
        assert await logged_ids(store, r) == [copies[0].bid_id]
    # The uuid is known in every spanned log: a cancel bound to one rollup goes into it
    from tests.stores.bids import log_cancel, make_cancel

    assert await log_cancel(store, make_cancel(copies[0].searcher, uuid, rollup=2), [7]) == [7]
