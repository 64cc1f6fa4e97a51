"""The store contract for reading a slot log from an offset (``read_log_from``,
``read_log_parts_from``), on every store (memory, Redis, Redis Cluster: the ``store`` fixture).

``read_log_from(rollup, slot, start)`` is ``read_log(rollup, slot)[start:]`` whatever happened
to the log between two reads (appends by this client or another, sealed bids among the
plaintext events, a log trimmed and written anew), ``[]`` from the end on, and ``ValueError``
for a negative offset (never Python's read-from-the-end).
"""

from __future__ import annotations

import random

import pytest

from auction.types import Bid, PublicTx
from node.stores.base import IntakeLimits, Store
from tests.stores.bids import ROLLUP, log_cancel, make_bid, make_cancel
from tests.stores.test_contract import closed_slot_result
from tests.stores.test_contract_sealed import make_sealed

WIDE = IntakeLimits(max_bundles=10_000, max_bytes=10**9)
ALICE = "0x" + "a1" * 20
UUID = "11111111222233334444555555555555"


async def append_mixed(store: Store, first: int, count: int, *, sealed: bool = True) -> None:
    """``count`` events from number ``first`` on: bids (some replacing), a cancel, and (when
    ``sealed``) sealed bids, which the plaintext reads skip."""
    for n in range(first, first + count):
        if sealed and n % 5 == 2:
            await store.append_sealed_bid(make_sealed(n, encapsulation=bytes([n % 251]) * 80,
                                                      searcher=f"0x{n:040x}"), WIDE)  # fmt: skip
        elif n % 7 == 6:
            await log_cancel(store, make_cancel(ALICE, UUID, n=n), [7])
        else:
            bid = make_bid(n, searcher=ALICE if n % 3 else "0x" + "aa" * 20,
                           replacement_uuid=UUID if n % 3 else None)  # fmt: skip
            await store.append_bid(bid, WIDE)


@pytest.mark.anyio
async def test_read_log_from_is_the_log_cut_at_every_offset(store: Store) -> None:
    await append_mixed(store, 0, 24)
    whole = await store.read_log(ROLLUP, 7)
    sealed = await store.read_sealed_log(ROLLUP, 7)
    assert len(whole) > 10 and sealed
    for start in [*range(len(whole) + 3), 10**9]:
        assert await store.read_log_from(ROLLUP, 7, start) == whole[start:]
        for sealed_start in (0, 1, len(sealed), len(sealed) + 1):
            assert await store.read_log_parts_from(ROLLUP, 7, start, sealed_start) == (
                whole[start:], sealed[sealed_start:])


@pytest.mark.anyio
async def test_a_reader_following_the_log_gets_each_entry_once_in_order(store: Store) -> None:
    """A reader that asks from where it stopped, appends landing between its reads: what it
    read, concatenated, is the log and the sealed log, every time."""
    rng = random.Random(7)
    held, held_sealed = [], []
    n = 0
    for _ in range(12):
        burst = rng.randrange(0, 6)
        await append_mixed(store, n, burst)
        n += burst
        if rng.random() < 0.5:
            held += await store.read_log_from(ROLLUP, 7, len(held))
        else:
            new, new_sealed = await store.read_log_parts_from(ROLLUP, 7, len(held),
                                                              len(held_sealed))  # fmt: skip
            held += new
            held_sealed += new_sealed
            assert held_sealed == await store.read_sealed_log(ROLLUP, 7)
        assert held == await store.read_log(ROLLUP, 7)
    assert await store.read_log_from(ROLLUP, 7, len(held)) == []
    closed = await store.close_slot(ROLLUP, 7)
    assert closed == held and await store.read_log_from(ROLLUP, 7, 3) == closed[3:]


@pytest.mark.anyio
async def test_another_client_appending_between_reads(store_url: str, store: Store) -> None:
    """Another engine process (its own client on the same store) appends between this one's
    reads: this reader still gets exactly the entries after its offset."""
    other = store if store_url == "memory" else await open_test_store_shared(store_url)
    try:
        held = []
        for round_ in range(6):
            writer = other if round_ % 2 else store
            await append_mixed(writer, 10 * round_, 4 + round_)
            held += await store.read_log_from(ROLLUP, 7, len(held))
            assert held == await other.read_log(ROLLUP, 7)
    finally:
        if other is not store:
            await other.aclose()


async def open_test_store_shared(url: str) -> Store:
    """A second client on the test store's database, not flushing it (another process)."""
    from node.stores.redis import RedisStore

    other = RedisStore(url)
    await other.connect()
    return other


@pytest.mark.anyio
async def test_bad_offsets_have_defined_answers(store: Store) -> None:
    await append_mixed(store, 0, 6, sealed=False)
    whole = await store.read_log(ROLLUP, 7)
    for bad in (-1, -len(whole), -(10**9)):
        with pytest.raises(ValueError):
            await store.read_log_from(ROLLUP, 7, bad)
        with pytest.raises(ValueError):
            await store.read_log_parts_from(ROLLUP, 7, bad, 0)
        with pytest.raises(ValueError):
            await store.read_log_parts_from(ROLLUP, 7, 0, bad)
    assert await store.read_log_from(ROLLUP, 7, len(whole)) == []
    assert await store.read_log_from(ROLLUP, 7, len(whole) + 5) == []
    assert await store.read_log_parts_from(ROLLUP, 7, len(whole) + 5, 9) == ([], [])
    assert await store.read_log_from(ROLLUP, 99, 0) == []  # a log nobody wrote
    assert await store.read_log_from(ROLLUP, 99, 4) == []
    # asking beyond the end leaves nothing behind: the next read from the end is exact
    await append_mixed(store, 6, 3, sealed=False)
    assert await store.read_log_from(ROLLUP, 7, len(whole)) == (await store.read_log(
        ROLLUP, 7))[len(whole):]  # fmt: skip


@pytest.mark.anyio
async def test_a_log_trimmed_and_written_anew_is_read_by_index(store: Store) -> None:
    """The slot's log removed (``trim_history``) and written again with other entries: a
    reader that held part of the old log gets the new log from its offset, never the old
    one's continuation."""
    result = await closed_slot_result(store)  # slot 20's log, closed, with a result
    assert await store.save_result(result)
    old = await store.read_log(ROLLUP, 20)
    assert await store.read_log_from(ROLLUP, 20, 2) == old[2:]  # a reader at the end of it
    assert await store.trim_history(ROLLUP, 21, 10) == [20]
    assert await store.read_log_from(ROLLUP, 20, len(old)) == []
    for n in range(len(old) + 3):
        await store.append_bid(make_bid(100 + n, slot=20), WIDE)
    new = await store.read_log(ROLLUP, 20)
    assert new[len(old):] == await store.read_log_from(ROLLUP, 20, len(old))
    assert [e.event.bid_id for e in new if isinstance(e.event, Bid)] == [
        make_bid(100 + n, slot=20).bid_id for n in range(len(old) + 3)]


@pytest.mark.anyio
async def test_public_txs_are_read_from_an_offset_like_any_entry(store: Store) -> None:
    from auction.types import Tx

    txs = [
        Tx(raw=bytes([n]) * 40, hash="0x" + f"{n:02x}" * 32, tx_type=2, chain_id=ROLLUP,
           sender="0x" + "cd" * 20, nonce=n, gas_limit=21_000, priority_fee_wei=10**9,
           max_fee_wei=10**10, to="0x" + "bb" * 20, access_keys=())
        for n in range(1, 4)
    ]  # fmt: skip
    await store.append_bid(make_bid(1), WIDE)
    for tx in txs:
        await store.append_public_tx(PublicTx(rollup=ROLLUP, tx=tx, received_ms=1), 7)
    whole = await store.read_log(ROLLUP, 7)
    assert [type(e.event) for e in await store.read_log_from(ROLLUP, 7, 1)] == [PublicTx] * 3
    assert await store.read_log_from(ROLLUP, 7, 2) == whole[2:]
