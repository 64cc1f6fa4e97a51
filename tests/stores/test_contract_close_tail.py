"""The store contract for closing a slot log from where this process's offset reads ended
(``close_slot_parts_from``, decision 164), on every store (memory, Redis, Redis Cluster).

Whatever the store answers, what a reader held before the returned offsets plus what it returns
is the closed log, both parts, exactly as ``close_slot`` / ``read_log`` / ``read_sealed_log``
give it. The store returns only the tail when the chain of both-part reads from index 0 ended
at the offsets asked for and the log up to there is what they handed out; otherwise (no reads,
other offsets, a chain broken by a jump or a plaintext-only read, a log written anew, even
with the same entry ids) the whole log.
"""

from __future__ import annotations

import random

import pytest

from auction.errors import CloseFenced, SlotClosed
from auction.types import LoggedEvent, LoggedSealedBid
from node.stores.base import ClosedLog, Store
from node.stores.fencing import CloseLease
from node.stores.memory import MemoryStore
from tests.stores.bids import ROLLUP, make_bid
from tests.stores.test_contract_fencing import leases
from tests.stores.test_contract_offset import WIDE, append_mixed

pytestmark = pytest.mark.anyio

SLOT = 7


async def follow(
    store: Store, held: list[LoggedEvent], held_sealed: list[LoggedSealedBid]
) -> None:
    """One reader's round, as the engine's follower reads: both parts, from where it stopped."""
    new, new_sealed = await store.read_log_parts_from(ROLLUP, SLOT, len(held), len(held_sealed))
    held += new
    held_sealed += new_sealed


async def close_and_check(
    store: Store,
    held: list[LoggedEvent],
    held_sealed: list[LoggedSealedBid],
    lease: CloseLease | None = None,
) -> ClosedLog:
    """Close from what ``held`` ends at; check the stitched log is the closed log, byte for byte
    of every entry (the stores' equality is the decoded event's: fields and evidence bytes)."""
    closed = await store.close_slot_parts_from(ROLLUP, SLOT, len(held), len(held_sealed), lease)
    assert (closed.start, closed.sealed_start) in {(0, 0), (len(held), len(held_sealed))}
    whole = await store.read_log(ROLLUP, SLOT)
    sealed = await store.read_sealed_log(ROLLUP, SLOT)
    assert held[: closed.start] + closed.events == whole
    assert held_sealed[: closed.sealed_start] + closed.sealed == sealed
    assert await store.close_slot(ROLLUP, SLOT) == whole  # closing again: the same log
    with pytest.raises(SlotClosed):
        await store.append_bid(make_bid(10_000, slot=SLOT), WIDE)
    return closed


@pytest.mark.parametrize("seed", range(4))
async def test_the_close_returns_only_the_tail_past_a_chain_of_reads(
    store: Store, seed: int
) -> None:
    rng = random.Random(seed)
    held: list[LoggedEvent] = []
    held_sealed: list[LoggedSealedBid] = []
    n = 0
    for _ in range(rng.randrange(1, 8)):
        burst = rng.randrange(0, 7)
        await append_mixed(store, n, burst)
        n += burst
        await follow(store, held, held_sealed)
    tail = rng.randrange(0, 6)  # arrived after the last read
    await append_mixed(store, n, tail)
    closed = await close_and_check(store, held, held_sealed)
    if held or held_sealed:
        assert (closed.start, closed.sealed_start) == (len(held), len(held_sealed))
        assert len(closed.events) + len(closed.sealed) == tail


async def test_without_reads_the_close_returns_the_whole_log(store: Store) -> None:
    await append_mixed(store, 0, 12)
    closed = await store.close_slot_parts_from(ROLLUP, SLOT, 0, 0)
    assert closed == ClosedLog(0, 0, await store.read_log(ROLLUP, SLOT),
                               await store.read_sealed_log(ROLLUP, SLOT))  # fmt: skip


@pytest.mark.parametrize("off", [(-1, 0), (1, 0), (0, -1), (0, 1)])
async def test_offsets_the_reads_did_not_end_at_get_the_whole_log(
    store: Store, off: tuple[int, int]
) -> None:
    """Offsets other than where the reads ended (a reader that lost entries, or claims more
    than it read) are never vouched for."""
    await append_mixed(store, 0, 12)
    held: list[LoggedEvent] = []
    held_sealed: list[LoggedSealedBid] = []
    await follow(store, held, held_sealed)
    assert held and held_sealed
    closed = await store.close_slot_parts_from(ROLLUP, SLOT, len(held) + off[0],
                                               len(held_sealed) + off[1])  # fmt: skip
    assert (closed.start, closed.sealed_start) == (0, 0)
    assert closed.events == await store.read_log(ROLLUP, SLOT)
    assert closed.sealed == await store.read_sealed_log(ROLLUP, SLOT)


async def test_a_read_that_jumps_breaks_the_chain(store: Store) -> None:
    """A read that does not continue the last one (it starts elsewhere than 0 or where the last
    ended): what the reader holds before it was not handed out by one chain; the whole log."""
    await append_mixed(store, 0, 10)
    await store.read_log_parts_from(ROLLUP, SLOT, 0, 0)
    await append_mixed(store, 10, 6)
    held = (await store.read_log(ROLLUP, SLOT))[:2]
    held_sealed = (await store.read_sealed_log(ROLLUP, SLOT))[:1]
    await follow(store, held, held_sealed)  # from (2, 1): not where the last read ended
    closed = await close_and_check(store, held, held_sealed)
    assert (closed.start, closed.sealed_start) == (0, 0)


async def test_a_plaintext_only_read_is_no_link_of_the_chain(store: Store) -> None:
    """``read_log_from`` hands out no sealed bids: a reader that used it cannot be vouched for
    at the plaintext count it reached (it holds none of the sealed bids read past)."""
    await append_mixed(store, 0, 10)
    held: list[LoggedEvent] = []
    held_sealed: list[LoggedSealedBid] = []
    await follow(store, held, held_sealed)
    await append_mixed(store, 10, 10)
    held += await store.read_log_from(ROLLUP, SLOT, len(held))
    closed = await close_and_check(store, held, held_sealed)
    assert (closed.start, closed.sealed_start) == (0, 0)


async def test_a_fenced_close_changes_nothing(store: Store) -> None:
    await append_mixed(store, 0, 8, sealed=False)
    held: list[LoggedEvent] = []
    held_sealed: list[LoggedSealedBid] = []
    await follow(store, held, held_sealed)
    stale, fresh = await leases(store, SLOT)
    with pytest.raises(CloseFenced):
        await store.close_slot_parts_from(ROLLUP, SLOT, len(held), 0, stale)
    await store.append_bid(make_bid(500, slot=SLOT), WIDE)  # still open
    closed = await close_and_check(store, held, held_sealed, fresh)
    assert closed.events  # the bid logged after the refusal, at least


async def test_a_log_written_anew_with_the_same_ids_is_returned_whole(store: Store) -> None:
    """After the reads, the log is written anew holding other bytes under the very ids the
    reader holds (a failover to a replica that missed entries, whose clock lags, then new
    appends; or anyone writing the store): the ids and the count match, the bytes do not;
    the whole log."""
    await append_mixed(store, 0, 12, sealed=False)
    held: list[LoggedEvent] = []
    held_sealed: list[LoggedSealedBid] = []
    await follow(store, held, held_sealed)
    assert len(held) >= 3
    if isinstance(store, MemoryStore):
        log = store._logs[ROLLUP, SLOT]
        swapped = [LoggedEvent(a.seq, b.event) for a, b in zip(held, [held[1], held[0], *held[2:]],
                                                              strict=True)]  # fmt: skip
        log.events = swapped
    else:
        from node.stores import keys

        key = keys.slot_log(ROLLUP, SLOT)
        raw = await store.redis.xrange(key)
        values = [fields for _, fields in raw]
        values[0], values[1] = values[1], values[0]
        await store.redis.delete(key)
        for (seq, _), fields in zip(raw, values, strict=True):
            await store.redis.xadd(key, fields, id=seq)
    closed = await close_and_check(store, held, held_sealed)
    assert (closed.start, closed.sealed_start) == (0, 0)
    assert closed.events[0].event == held[1].event  # the store's bytes, not what was read


async def test_a_log_that_lost_its_last_entries_is_returned_whole(store: Store) -> None:
    """A restart or failover lost the newest entries the reader had read; new ones arrived
    since (the count may be the same again): the whole log, as the store holds it."""
    await append_mixed(store, 0, 10, sealed=False)
    held: list[LoggedEvent] = []
    held_sealed: list[LoggedSealedBid] = []
    await follow(store, held, held_sealed)
    if isinstance(store, MemoryStore):
        log = store._logs[ROLLUP, SLOT]
        log.events = log.events[:-2]  # a new list, as a reloaded store would have
    else:
        from node.stores import keys

        key = keys.slot_log(ROLLUP, SLOT)
        for seq, _ in (await store.redis.xrange(key))[-2:]:
            await store.redis.xdel(key, seq)
    await append_mixed(store, 100, 2, sealed=False)
    closed = await close_and_check(store, held, held_sealed)
    assert (closed.start, closed.sealed_start) == (0, 0)
