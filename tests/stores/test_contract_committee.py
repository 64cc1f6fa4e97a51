"""The committee part of the Store contract (node/stores/base.py), on MemoryStore and RedisStore.

Signed blocks and failure records exclude each other and are written once, for every rollup of
a slot together or for none; partials are kept per (committee, member, signing root) and a
member's second signing root for a slot yields equivocation evidence exactly once, atomically
with the write; evidence pages newest first.
"""

from __future__ import annotations

import pytest

from auction.encoding import ZERO_HASH
from auction.types import Block, WinningBundle
from committee.records import (
    EVIDENCE_EQUIVOCATION,
    EVIDENCE_INVALID_PARTIAL,
    FAILED_NOT_ENOUGH_PARTIALS,
    FailedSlot,
    MemberEvidence,
    PartialRecord,
    SignedBlock,
    compute_signed_slot,
)
from committee.sealedset import OpeningRecord
from node.stores.base import Store

pytestmark = pytest.mark.anyio

ROLLUP = 167_001
OTHER = 10
COMMITTEE = bytes(range(32))
OTHER_COMMITTEE = bytes(range(1, 33))


def _h(n: int) -> str:
    return "0x" + n.to_bytes(32, "big").hex()


def block(slot: int, rollup: int = ROLLUP) -> Block:
    winner = WinningBundle(_h(1), _h(2), "0x" + "aa" * 20, 10**21 + slot, 10**21, 21_000)
    return Block(
        rollup=rollup,
        slot=slot,
        parent_hash=ZERO_HASH,
        bundles=(winner,),
        txs=(b"\x02\x01" * 40,),
        gas_used=21_000,
        revenue_wei=2**200 + slot,  # wei beyond 64 bits survives
        bid_set_root=_h(3),
        block_hash=_h(1000 + slot + rollup),
        public_tx_count=0,
        carried_root=ZERO_HASH,
        pending_root=_h(4),
    )


def signed_slot(
    slot: int, *, signers: tuple[int, ...] = (1, 2, 3), rollups: tuple[int, ...] = (ROLLUP,)
) -> list[SignedBlock]:
    """A slot's signed blocks, one per rollup, with their proofs under one slot root."""
    return compute_signed_slot(
        [block(slot, r) for r in rollups],
        COMMITTEE,
        bytes([0xA0]) + bytes(95),
        [(i, bytes([0x80 + i]) + bytes(95)) for i in signers],
        deadline_ms=1_700_000_000_000 + slot,
        published_ms=1_700_000_000_100 + slot,
    )


def signed(slot: int, *, signers: tuple[int, ...] = (1, 2, 3)) -> SignedBlock:
    (one,) = signed_slot(slot, signers=signers)
    return one


def failed(slot: int, rollup: int = ROLLUP) -> FailedSlot:
    return FailedSlot(
        rollup=rollup, slot=slot, committee_id=COMMITTEE, block_hash=_h(2000 + slot),
        reason=FAILED_NOT_ENOUGH_PARTIALS, valid=(1,), refused=((2, "unknown_parent"),),
        invalid=(3,), missing=(4,), deadline_ms=5, published_ms=6,
    )


def partial(slot: int, member: int, root: int, *, committee: bytes = COMMITTEE,
            received_ms: int = 0) -> PartialRecord:
    return PartialRecord(
        rollup=ROLLUP, slot=slot, member=member, committee_id=committee,
        block_hash=_h(root), signing_root=root.to_bytes(32, "big"),
        partial=bytes([0x90 + member]) + root.to_bytes(95, "big"),
        received_ms=received_ms or 1_700_000_000_000 + root,
    )


def invalid(slot: int, member: int) -> MemberEvidence:
    return MemberEvidence(
        kind=EVIDENCE_INVALID_PARTIAL, rollup=ROLLUP, slot=slot, member=member,
        committee_id=COMMITTEE, detail="bad", recorded_ms=7, block_hash=_h(slot),
        signing_root=bytes(32), partial=b"\xff" * 3,
    )


async def test_signed_block_is_written_once_and_read_back(store: Store) -> None:
    assert await store.latest_signed_block(ROLLUP) is None
    assert await store.save_signed_blocks([signed(5)])
    assert not await store.save_signed_blocks([signed(5, signers=(2, 3, 4))])
    assert await store.get_signed_block(ROLLUP, 5) == signed(5)
    assert await store.get_signed_block(ROLLUP, 6) is None
    assert await store.get_signed_block(10, 5) is None


async def test_latest_signed_block_is_the_highest_slot(store: Store) -> None:
    for slot in (7, 9, 8):
        await store.save_signed_blocks([signed(slot)])
    latest = await store.latest_signed_block(ROLLUP)
    assert latest is not None and latest.block.slot == 9


async def test_signed_and_failed_exclude_each_other(store: Store) -> None:
    assert await store.save_failed_slots([failed(3)])
    assert not await store.save_signed_blocks([signed(3)])
    assert not await store.save_failed_slots([failed(3)])
    assert await store.get_signed_block(ROLLUP, 3) is None
    assert await store.get_failed_slot(ROLLUP, 3) == failed(3)
    assert await store.save_signed_blocks([signed(4)])
    assert not await store.save_failed_slots([failed(4)])
    assert await store.get_failed_slot(ROLLUP, 4) is None


async def test_partials_are_kept_and_repeats_ignored(store: Store) -> None:
    assert await store.record_partial(partial(1, 2, 10)) is None
    assert await store.record_partial(partial(1, 2, 10)) is None  # same root again
    assert await store.record_partial(partial(1, 1, 10)) is None
    assert await store.list_partials(ROLLUP, 1) == [partial(1, 1, 10), partial(1, 2, 10)]
    assert await store.list_partials(ROLLUP, 2) == []


async def test_second_root_of_a_member_is_equivocation(store: Store) -> None:
    await store.record_partial(partial(1, 2, 10))
    evidence = await store.record_partial(partial(1, 2, 11))
    assert evidence is not None and evidence.kind == EVIDENCE_EQUIVOCATION
    assert (evidence.member, evidence.slot) == (2, 1)
    assert evidence.first == partial(1, 2, 10) and evidence.second == partial(1, 2, 11)
    listed = await store.list_evidence(ROLLUP, before=None, limit=10)
    assert [e for _, e in listed] == [evidence]
    # Detected once per new root; a third root is a new piece of evidence against the first.
    assert await store.record_partial(partial(1, 2, 11)) is None
    third = await store.record_partial(partial(1, 2, 12))
    assert third is not None and third.first == partial(1, 2, 10)
    assert len(await store.list_evidence(ROLLUP, before=None, limit=10)) == 2


async def test_partials_of_other_slots_or_committees_are_not_equivocation(store: Store) -> None:
    await store.record_partial(partial(1, 2, 10))
    assert await store.record_partial(partial(2, 2, 11)) is None
    assert await store.record_partial(partial(1, 2, 11, committee=OTHER_COMMITTEE)) is None
    assert await store.list_evidence(ROLLUP, before=None, limit=10) == []


async def test_evidence_pages_newest_first(store: Store) -> None:
    ids = [await store.save_evidence(invalid(s, 3)) for s in range(5)]
    assert ids == sorted(ids, key=lambda i: tuple(int(x) for x in i.split("-")))
    first = await store.list_evidence(ROLLUP, before=None, limit=2)
    assert [e.slot for _, e in first] == [4, 3]
    rest = await store.list_evidence(ROLLUP, before=first[-1][0], limit=10)
    assert [e.slot for _, e in rest] == [2, 1, 0]
    assert rest[0][1] == invalid(2, 3)
    assert await store.list_evidence(10, before=None, limit=10) == []


async def test_a_slot_is_proposed_once_and_then_failed_only_if_it_can_never_be_signed(
    store: Store,
) -> None:
    a, b = _h(1), _h(2)
    assert await store.claim_proposal(40, [(ROLLUP, a)])
    assert await store.claim_proposal(40, [(ROLLUP, a)])  # the same block again
    assert not await store.claim_proposal(40, [(ROLLUP, b)])  # never a second block for the slot
    # Members may be locked to the proposed block: only "it can never be signed" fails it
    assert not await store.save_failed_slots([failed(40)])
    assert await store.save_failed_slots([failed(40)], proposed_ok=True)
    # A failed slot is never proposed
    assert await store.save_failed_slots([failed(41)])
    assert not await store.claim_proposal(41, [(ROLLUP, a)])
    assert await store.claim_proposal(45, [(ROLLUP, b)])
    assert await store.claim_proposal(43, [(ROLLUP, a)])
    assert await store.list_proposed(ROLLUP, 41, 10) == [(43, a), (45, b)]
    assert await store.list_proposed(ROLLUP, 0, 2) == [(40, a), (43, a)]
    assert await store.list_proposed(ROLLUP + 1, 0, 10) == []


async def test_a_slots_signed_blocks_are_written_for_every_rollup_or_none(store: Store) -> None:
    both = signed_slot(20, rollups=(ROLLUP, OTHER))
    assert [b.block.rollup for b in both] == [OTHER, ROLLUP]  # leaf order
    assert len({b.slot_root for b in both}) == 1
    assert await store.save_signed_blocks(both)
    assert await store.get_signed_block(OTHER, 20) == both[0]
    assert await store.get_signed_block(ROLLUP, 20) == both[1]
    assert not await store.save_signed_blocks(signed_slot(20, rollups=(ROLLUP, OTHER)))
    # One rollup's slot already failed: nothing is written for the other either.
    assert await store.save_failed_slots([failed(21, OTHER)])
    assert not await store.save_signed_blocks(signed_slot(21, rollups=(ROLLUP, OTHER)))
    assert await store.get_signed_block(ROLLUP, 21) is None
    assert (await store.latest_signed_block(ROLLUP)).block.slot == 20  # type: ignore[union-attr]


async def test_a_slots_failure_records_are_written_for_every_rollup_or_none(store: Store) -> None:
    assert await store.save_failed_slots([failed(30, OTHER), failed(30)])
    assert await store.get_failed_slot(OTHER, 30) == failed(30, OTHER)
    assert await store.get_failed_slot(ROLLUP, 30) == failed(30)
    # One rollup signed, or proposed: nothing is written for the other.
    assert await store.save_signed_blocks(signed_slot(31))
    assert not await store.save_failed_slots([failed(31, OTHER), failed(31)])
    assert await store.get_failed_slot(OTHER, 31) is None
    assert await store.claim_proposal(32, [(ROLLUP, _h(5))])
    assert not await store.save_failed_slots([failed(32, OTHER), failed(32)])
    assert await store.get_failed_slot(OTHER, 32) is None


async def test_a_slots_proposal_is_claimed_for_every_rollup_or_none(store: Store) -> None:
    a, b = _h(1), _h(2)
    assert await store.claim_proposal(50, [(OTHER, a), (ROLLUP, b)])
    assert await store.claim_proposal(50, [(OTHER, a), (ROLLUP, b)])  # the same blocks again
    # Another block for one rollup: refused, and nothing claimed for the other rollup's slot.
    assert not await store.claim_proposal(50, [(OTHER, a), (ROLLUP, a)])
    assert await store.claim_proposal(51, [(ROLLUP, b)])
    assert not await store.claim_proposal(51, [(OTHER, a), (ROLLUP, a)])
    assert await store.list_proposed(OTHER, 51, 10) == []
    assert await store.list_proposed(ROLLUP, 50, 10) == [(50, b), (51, b)]


async def test_a_slot_opening_is_kept_once_and_read_back(store: Store) -> None:
    first = OpeningRecord(b"\x01" * 32, b"\x02" * 96, b"\x03" * 96, ("0x" + "ab" * 32,))
    other = OpeningRecord(b"\x04" * 32, b"\x05" * 96, b"\x06" * 96)
    assert await store.get_slot_opening(7) is None
    assert await store.save_slot_opening(7, first) is True
    assert await store.save_slot_opening(7, other) is False  # the first stays
    assert await store.get_slot_opening(7) == first
    assert await store.save_slot_opening(8, other) is True
    assert await store.get_slot_opening(8) == other
