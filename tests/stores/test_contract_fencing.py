"""Close leases and fencing tokens, part of the Store contract (node/stores/fencing.py), on every
store: one holder at a time, a new token on each takeover, and every guarded write of a stale
holder refused with ``CloseFenced``, changing nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from auction.errors import CloseFenced, SlotClosed
from auction.history import compute_slot_history
from auction.types import SlotResult
from node.stores.base import Store
from node.stores.fencing import CloseLease
from tests.stores.bids import make_bid
from tests.stores.test_contract import WIDE, closed_slot_result
from tests.stores.test_contract_committee import OTHER, ROLLUP, failed, signed_slot

pytestmark = pytest.mark.anyio

SHORT_LEASE_MS = 60


async def take_over(store: Store, rollup: int, slot: int, owner: str) -> int:
    """Claim the lease as ``owner`` once the current holder's lease has run out."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        token = await store.claim_close(rollup, slot, owner, 10_000)
        if token:
            return token
        await asyncio.sleep(0.01)
    raise AssertionError("the lease never expired")


async def test_one_holder_at_a_time_and_renewal_keeps_the_token(store: Store) -> None:
    first = await store.claim_close(ROLLUP, 5, "a", 10_000)
    assert first > 0
    assert await store.claim_close(ROLLUP, 5, "b", 10_000) == 0
    assert await store.claim_close(ROLLUP, 5, "a", 10_000) == first  # renewed, same token
    # Leases are per (rollup, slot): another slot is free.
    assert await store.claim_close(ROLLUP, 6, "b", 10_000) > 0


async def test_an_expired_lease_is_taken_over_with_a_higher_token(store: Store) -> None:
    old = await store.claim_close(ROLLUP, 5, "a", SHORT_LEASE_MS)
    new = await take_over(store, ROLLUP, 5, "b")
    assert new > old
    # The stale holder cannot renew its way back: the lease is b's now.
    assert await store.claim_close(ROLLUP, 5, "a", 10_000) == 0


async def test_a_stale_close_log_is_refused_and_closes_nothing(store: Store) -> None:
    bid = make_bid(1, slot=5)
    await store.append_bid(bid, WIDE)
    stale = CloseLease(ROLLUP, 5, await store.claim_close(ROLLUP, 5, "a", SHORT_LEASE_MS))
    fresh = CloseLease(ROLLUP, 5, await take_over(store, ROLLUP, 5, "b"))
    with pytest.raises(CloseFenced) as refused:
        await store.close_slot(ROLLUP, 5, stale)
    assert refused.value.data["seen"] == fresh.token
    # Nothing changed: intake is still open.
    await store.append_bid(make_bid(2, slot=5), WIDE)
    # The lease's token fences every rollup's log of the slot (the lease is the lowest's).
    with pytest.raises(CloseFenced):
        await store.close_slot(OTHER, 5, dataclasses.replace(stale, rollup=ROLLUP))
    log = await store.close_slot(ROLLUP, 5, fresh)
    assert len(log) == 2
    with pytest.raises(SlotClosed):
        await store.append_bid(make_bid(3, slot=5), WIDE)


async def leases(store: Store, slot: int) -> tuple[CloseLease, CloseLease]:
    stale = CloseLease(ROLLUP, slot, await store.claim_close(ROLLUP, slot, "a", SHORT_LEASE_MS))
    fresh = CloseLease(ROLLUP, slot, await take_over(store, ROLLUP, slot, "b"))
    return stale, fresh


def with_history(result: SlotResult) -> tuple[SlotResult, object]:
    return result, compute_slot_history(result, [], recorded_ms=1, gas_limit=30_000_000)


@pytest.mark.parametrize("history", [False, True])
async def test_a_stale_result_write_after_the_takeover_is_refused(
    store: Store, history: bool
) -> None:
    result = await closed_slot_result(store)  # slot 20
    stale, fresh = await leases(store, 20)
    await store.raise_fences(fresh, [ROLLUP])
    other = dataclasses.replace(result, solver="stale")
    h = compute_slot_history(other, [], recorded_ms=1, gas_limit=30_000_000) if history else None
    with pytest.raises(CloseFenced):
        await store.save_result(other, history=h, lease=stale)
    assert await store.get_result(ROLLUP, 20) is None
    assert await store.list_history_slots(ROLLUP, from_slot=None, to_slot=None, limit=5) == []
    assert await store.save_result(result, lease=fresh)
    assert await store.get_result(ROLLUP, 20) == result
    # The stale holder cannot raise the fence back either.
    with pytest.raises(CloseFenced):
        await store.raise_fences(stale, [ROLLUP])


async def test_a_stale_write_before_the_takeover_raised_its_fence_is_seen_by_the_new_holder(
    store: Store,
) -> None:
    result = await closed_slot_result(store)
    stale, fresh = await leases(store, 20)
    # The stale holder wrote before the new one raised the fence: the write stands ...
    assert await store.save_result(result, lease=stale)
    await store.raise_fences(fresh, [ROLLUP])
    # ... and is what the new holder reads and keeps (written once), never a second result.
    assert await store.save_result(dataclasses.replace(result, solver="new"), lease=fresh) is False
    assert await store.get_result(ROLLUP, 20) == result
    with pytest.raises(CloseFenced):
        await store.save_result(dataclasses.replace(result, solver="again"), lease=stale)


async def test_stale_committee_writes_are_refused_after_the_takeover(store: Store) -> None:
    stale, fresh = await leases(store, 9)
    await store.raise_fences(fresh, [ROLLUP])
    blocks = signed_slot(9)
    with pytest.raises(CloseFenced):
        await store.claim_proposal(9, [(ROLLUP, blocks[0].block.block_hash)], stale)
    with pytest.raises(CloseFenced):
        await store.save_signed_blocks(blocks, stale)
    with pytest.raises(CloseFenced):
        await store.save_failed_slots([failed(9)], lease=stale)
    assert await store.get_signed_block(ROLLUP, 9) is None
    assert await store.get_failed_slot(ROLLUP, 9) is None
    assert await store.list_proposed(ROLLUP, 0, 10) == []
    # The new holder's writes go through; an unfenced one (a pending slot's completion) too.
    assert await store.claim_proposal(9, [(ROLLUP, blocks[0].block.block_hash)], fresh)
    assert await store.claim_proposal(9, [(ROLLUP, blocks[0].block.block_hash)])
    assert await store.save_signed_blocks(blocks, fresh)
    assert await store.get_signed_block(ROLLUP, 9) == blocks[0]


async def test_fences_are_per_slot(store: Store) -> None:
    stale, fresh = await leases(store, 9)
    await store.raise_fences(fresh, [ROLLUP])
    # A token of slot 9 says nothing about slot 10.
    ten = CloseLease(ROLLUP, 10, await store.claim_close(ROLLUP, 10, "a", 10_000))
    await store.raise_fences(ten, [ROLLUP])
    assert await store.save_failed_slots([failed(10)], lease=ten)
