"""Liveness of the lock with crash faults only (from the review of the lock): an honest
coordinator must never leave honest members locked to a block that nobody completes.

A block is recorded as proposed (``Store.claim_proposal``) before any member sees it, so a
pending block is found again however old it is and whatever process restarted; and a slot that
was proposed is never published as failed by a process that merely lost track of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from auction.slots import compute_deadline_ms, compute_slot_start_ms
from committee.coordinator import MemberAnswer
from committee.records import FAILED_BLOCKED, FailedSlot, SignedBlock
from node.stores.memory import MemoryStore
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT
from tests.committee.test_coordinator import Clock, Harness, _second_engine

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class LostAnswer:
    """A member that signs the proposal, but whose answer never reaches the engine."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.index = inner.index

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        await self.inner.sign(body, timeout_s)  # the member signs and locks itself
        return MemberAnswer(self.index, error="unreachable: ReadError")

    async def aclose(self) -> None:
        pass


async def test_a_block_whose_answers_were_all_lost_is_completed_after_a_restart(
    dealt: Dealt, tmp_path: Path
) -> None:
    store = MemoryStore()  # stands for the shared Redis: it survives the engine process
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    h = Harness(dealt, tmp_path, clock, {}, store)
    await h.engine.start(run_clock=False)
    signed = await h.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    # Slot S+1: every member signs, every answer is lost: pending, with no partial stored.
    for i in range(1, 11):
        h.coordinator.members[i - 1] = LostAnswer(h.members[i - 1])
    assert await h.run_slot(SLOT + 1) is None
    await h.settle()
    assert await store.list_partials(ROLLUP, SLOT + 1) == []
    blocked = await h.run_slot(SLOT + 2)  # still partitioned: blocked
    assert isinstance(blocked, FailedSlot) and blocked.reason == FAILED_BLOCKED
    await h.settle()
    await h.coordinator.aclose()
    # A restarted engine process finds S+1 from its proposal record and completes it first.
    r = Harness(dealt, tmp_path, clock, {}, store)
    await r.engine.start(run_clock=False)
    await r.coordinator.recover()
    try:
        nxt = await r.run_slot(SLOT + 3)
    finally:
        await r.coordinator.aclose()
    completed = await store.get_signed_block(ROLLUP, SLOT + 1)
    assert completed is not None and completed.block.parent_hash == signed.block.block_hash
    assert isinstance(nxt, SignedBlock) and nxt.block.parent_hash == completed.block.block_hash


async def test_a_pending_block_from_long_ago_is_still_completed(
    dealt: Dealt, tmp_path: Path
) -> None:
    store = MemoryStore()
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    h = Harness(dealt, tmp_path, clock, {}, store)
    await h.engine.start(run_clock=False)
    assert isinstance(await h.run_slot(SLOT), SignedBlock)
    h.down(1, 2, 3, 4)
    assert await h.run_slot(SLOT + 1) is None  # pending: 6 of 7
    await h.settle()
    await h.coordinator.aclose()
    # The engine comes back more than a thousand slots later (beyond the clock's catch-up)
    r = Harness(dealt, tmp_path, clock, {}, store)
    await r.engine.start(run_clock=False)
    later = SLOT + 2 + 1100
    clock.ms = compute_deadline_ms(CLOCK, later) + 5
    try:
        first = await r.run_slot(later)
    finally:
        await r.coordinator.aclose()
    completed = await store.get_signed_block(ROLLUP, SLOT + 1)
    assert completed is not None
    assert isinstance(first, SignedBlock) and first.block.parent_hash == completed.block.block_hash


async def test_a_failed_close_in_another_process_never_lets_members_lock_to_a_failed_slot(
    dealt: Dealt, tmp_path: Path
) -> None:
    store = MemoryStore()
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    h = Harness(dealt, tmp_path, clock, {}, store)
    await h.engine.start(run_clock=False)
    other, coordinator = _second_engine(h)
    await other.start(run_clock=False)

    async def broken_prepare(slot: int) -> None:
        raise RuntimeError("a bug in another engine process")

    real_prepare = coordinator.prepare
    coordinator.prepare = broken_prepare  # type: ignore[method-assign]
    try:
        await h.bid(SLOT, 1)
        clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
        assert await other.close_or_fail(SLOT)  # the other process fails the slot
        # The closer does not propose a slot that has a failure record: nobody signs it (the
        # other process held the slot's close lease: this one follows its failure record).
        assert await h.engine.close_or_fail(SLOT)
        await h.settle()
        assert await store.list_partials(ROLLUP, SLOT) == []
        coordinator.prepare = real_prepare  # type: ignore[method-assign]
        nxt = await h.run_slot(SLOT + 1)
    finally:
        await coordinator.aclose()
        await h.coordinator.aclose()
    assert isinstance(nxt, SignedBlock)
