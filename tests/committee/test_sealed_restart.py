"""A slot with sealed bids whose closer stops before the slot is signed (issue 14, decision 141).

The closer opened the slot (the committee committed to its ciphertext set and released the key)
and stored its result, then died. Whoever builds the slot's proposal next (the restarted
process, or another one completing the pending slot) must carry the same opening: it rebuilds
it from the opening record the closer kept in the store, or, if the closer died before keeping
it, collects the key again from the members, who answer a repeated release for the set they
committed to at any time. Members then re-open the slot and sign it as if nothing happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import LoggedEvent, SlotResult
from committee.records import SignedBlock
from committee.sealedset import OpeningRecord
from committee.verify import verify_signed_block
from node.escrow import StoreEscrow
from node.stores import keys
from node.stores.base import Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT, key
from tests.committee.test_coordinator import COMMITTEE_DB, Clock, Harness
from tests.committee.test_sealed_close import open_slot_with_bids
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis_store = RedisStore(f"redis://127.0.0.1:{server.port}/{COMMITTEE_DB}")
    await redis_store.connect()
    await redis_store.redis.flushdb()
    yield redis_store
    await redis_store.aclose()


async def forget_opening(store: Store, slot: int) -> None:
    """The closer died after the key release and before it kept the opening record."""
    if isinstance(store, RedisStore):
        await store.redis.delete(keys.slot_opening(slot))
    else:
        assert isinstance(store, MemoryStore) and store._openings is not None
        del store._openings[slot]


async def started(dealt: Dealt, tmp_path: Path, store: Store) -> Harness:
    """The closer: an engine on ``store`` at the start of SLOT, with in-process members."""
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {}, store)
    await h.engine.start(run_clock=False)
    return h


async def close_without_signing(h: Harness) -> dict[str, Any]:
    """Open SLOT's bids, store its result, and stop before proposing it (the process dies)."""

    async def dies(results: Sequence[SlotResult], entries: dict[int, Sequence[LoggedEvent]],
                   lease: Any = None) -> None:  # fmt: skip
        return None

    h.coordinator.sign = dies  # type: ignore[method-assign]
    ids = await open_slot_with_bids(h)
    await h.engine.close_slot(SLOT)
    assert await h.store.get_result(ROLLUP, SLOT) is not None
    assert await h.store.get_signed_block(ROLLUP, SLOT) is None
    await h.coordinator.aclose()
    return ids


async def restarted(h: Harness, tmp_path: Path) -> Harness:
    """A new engine process on the same store, the same members (their commitments on disk)."""
    new = Harness(h.dealt, tmp_path, h.clock, {}, h.store)
    await new.engine.start(run_clock=False)
    return new


def assert_sealed_winners(signed: SignedBlock | None, ids: dict[str, Any], dealt: Dealt) -> None:
    assert isinstance(signed, SignedBlock)
    verify_signed_block(signed, dealt.committee)
    assert set(ids.values()) <= {w.bid_id for w in signed.block.bundles}
    assert signed.slot_proof.ciphertext_root is not None


@pytest.mark.parametrize("lost", [False, True], ids=["record", "record_lost"])
async def test_a_restarted_process_signs_a_sealed_slot_its_closer_opened(
    dealt: Dealt, tmp_path: Path, store: Store, lost: bool
) -> None:
    h = await started(dealt, tmp_path, store)
    ids = await close_without_signing(h)
    record = await store.get_slot_opening(SLOT)
    assert record is not None and record.unfunded == ()
    if lost:
        await forget_opening(store, SLOT)
    new = await restarted(h, tmp_path)
    try:
        assert new.coordinator.openings == {}
        await new.coordinator.recover()  # within the signing window: it proposes and signs
        assert_sealed_winners(await store.get_signed_block(ROLLUP, SLOT), ids, dealt)
        # The opening it proposed is the closer's: same root, key and certificate
        assert OpeningRecord.of(new.coordinator.openings[SLOT]) == record
        assert await store.get_slot_opening(SLOT) == record  # kept again when it was lost
    finally:
        await new.coordinator.aclose()


async def test_a_pending_sealed_slot_is_completed_after_a_restart(
    dealt: Dealt, tmp_path: Path, store: Store
) -> None:
    # Past its signing window the restarted process finds the slot pending (some members may
    # have signed it): it completes it before building the next slot, on top of it.
    h = await started(dealt, tmp_path, store)
    clock = h.clock
    ids = await close_without_signing(h)
    new = await restarted(h, tmp_path)
    try:
        clock.ms = compute_deadline_ms(CLOCK, SLOT) + 3 * 1000 * 60
        await new.coordinator.recover()
        assert await store.get_signed_block(ROLLUP, SLOT) is None  # pending, not failed
        assert await store.get_failed_slot(ROLLUP, SLOT) is None
        nxt = await new.run_slot(SLOT + 1)
        completed = await store.get_signed_block(ROLLUP, SLOT)
        assert_sealed_winners(completed, ids, dealt)
        assert isinstance(nxt, SignedBlock) and completed is not None
        assert nxt.block.parent_hash == completed.block.block_hash
    finally:
        await new.coordinator.aclose()


async def test_a_stored_opening_that_does_not_verify_is_collected_again(
    dealt: Dealt, tmp_path: Path
) -> None:
    store = MemoryStore()
    h = await started(dealt, tmp_path, store)
    ids = await close_without_signing(h)
    good = await store.get_slot_opening(SLOT)
    assert good is not None and store._openings is not None
    # A record that is not the slot's (another slot's key under this slot's root)
    store._openings[SLOT] = OpeningRecord(good.ciphertext_root, good.commitment_signature,
                                          good.commitment_signature)  # fmt: skip
    new = await restarted(h, tmp_path)
    try:
        await new.coordinator.recover()
        assert_sealed_winners(await store.get_signed_block(ROLLUP, SLOT), ids, dealt)
        assert OpeningRecord.of(new.coordinator.openings[SLOT]) == good
        faults = new.engine.metrics.system_faults.labels("slot_opening")._value.get()
        assert faults == 1
    finally:
        await new.coordinator.aclose()


async def test_the_unfunded_bids_of_the_opening_survive_a_restart(
    dealt: Dealt, tmp_path: Path, store: Store
) -> None:
    # Deposits on: the ledger refused one opened bid at the close; the restarted process must
    # name the same bid unfunded, or members would refuse its proposal (opening_mismatch).
    h = await started(dealt, tmp_path, store)
    escrow = StoreEscrow(store)
    h.engine.escrow = h.engine.intake.escrow = escrow
    at = compute_slot_start_ms(CLOCK, SLOT)
    for seed, wei in ((31, 10**17), (32, 10**17), (41, 10 * 10**15), (42, 10 * 10**15)):
        await escrow.credit_deposit(key(seed).address, wei, ref=f"deposit-{seed}", at_ms=at)
    ids = await close_without_signing(h)
    record = await store.get_slot_opening(SLOT)
    assert record is not None and record.unfunded == (ids["alice_low"],)
    new = await restarted(h, tmp_path)
    new.engine.escrow = new.engine.intake.escrow = escrow
    try:
        await new.coordinator.recover()
        signed = await store.get_signed_block(ROLLUP, SLOT)
        assert isinstance(signed, SignedBlock)
        winners = {w.bid_id for w in signed.block.bundles}
        assert ids["alice_high"] in winners and ids["bob"] in winners
        assert ids["alice_low"] not in winners
    finally:
        await new.coordinator.aclose()


async def test_a_follower_takes_a_sealed_slot_nobody_proposed_as_pending_by_the_next_deadline(
    dealt: Dealt, tmp_path: Path, store: Store
) -> None:
    # The closer died between storing the slot's results and proposing it (the process test
    # kills it there: test_sealed_failover_processes.py, "stored"). A follower used to wait for
    # its outcome until its signing deadline plus the grace, past the next slot's deadline:
    # the next slot's close then started a second late, and its key release could run out of
    # its window (the next sealed slot failed, key_not_released). The follower now takes the
    # slot as pending once the next slot's auction has closed, and completes it first thing
    # when it builds the next slot, whose sealed bids it opens and gets signed on top of it.
    h = await started(dealt, tmp_path, store)
    ids = await close_without_signing(h)
    follower = await restarted(h, tmp_path)  # another engine process on the same store
    try:
        later = await open_slot_with_bids(follower, SLOT + 1)  # the clock: SLOT + 1's deadline
        # The clock stands still here: waiting out SLOT's window would take real seconds.
        await asyncio.wait_for(follower.engine.close_slot(SLOT), timeout=1.0)
        assert await store.get_signed_block(ROLLUP, SLOT) is None  # pending, not failed
        assert await store.get_failed_slot(ROLLUP, SLOT) is None
        pin = follower.coordinator._pinned
        assert pin is not None and pin.slot == SLOT and pin.proposal.sealed is not None
        await follower.engine.close_slot(SLOT + 1)
        completed = await store.get_signed_block(ROLLUP, SLOT)
        assert_sealed_winners(completed, ids, dealt)
        nxt = await store.get_signed_block(ROLLUP, SLOT + 1)
        assert_sealed_winners(nxt, later, dealt)
        assert completed is not None and nxt is not None
        assert nxt.block.parent_hash == completed.block.block_hash
    finally:
        await follower.coordinator.aclose()
