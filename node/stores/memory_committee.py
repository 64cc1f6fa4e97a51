"""The signing committee's records in the embedded store (mixed into ``MemoryStore``).

Same contract as the Redis layout (``node/stores/redis_committee.py``): a slot has at most one of
a signed block or a failure record per rollup, written once for every rollup of the slot
together and never expiring; partials are kept per (slot, member, signing root); evidence gets
``<ms>-<n>`` ids in write order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sortedcontainers import SortedDict

from committee.records import (
    FailedSlot,
    MemberEvidence,
    PartialRecord,
    SignedBlock,
    compute_equivocation,
)
from committee.sealedset import OpeningRecord
from node.stores.fencing import CloseLease


@dataclass
class _RollupCommittee:
    signed: SortedDict = field(default_factory=SortedDict)  # slot -> SignedBlock
    failed: dict[int, FailedSlot] = field(default_factory=dict)
    # slot -> (committee id, member) -> signing root -> record, in arrival order
    partials: dict[int, dict[tuple[bytes, int], dict[bytes, PartialRecord]]] = field(
        default_factory=dict
    )
    evidence: SortedDict = field(default_factory=SortedDict)  # (ms, n) -> MemberEvidence
    proposed: SortedDict = field(default_factory=SortedDict)  # slot -> block hash


class MemoryCommittee:
    """The committee methods of ``MemoryStore``; see ``node.stores.base.Store`` for the contract."""

    # Created on first use so MemoryStore.__init__ needs no change.
    _committee_state: dict[int, _RollupCommittee] | None = None
    _evidence_last_id: tuple[int, int] = (0, 0)
    _openings: dict[int, OpeningRecord] | None = None

    if TYPE_CHECKING:

        def _pass_fence(  # provided by MemoryFences
            self, tag: str, slot: int, lease: CloseLease | None, where: str
        ) -> None: ...

    def _committee(self, rollup: int) -> _RollupCommittee:
        if self._committee_state is None:
            self._committee_state = {}
        c = self._committee_state.get(rollup)
        if c is None:
            c = self._committee_state[rollup] = _RollupCommittee()
        return c

    def _next_evidence_id(self) -> tuple[int, int]:
        now = int(time.time() * 1000)
        last_ms, last_n = self._evidence_last_id
        eid = (now, 0) if now > last_ms else (last_ms, last_n + 1)
        self._evidence_last_id = eid
        return eid

    async def save_signed_blocks(
        self, blocks: Sequence[SignedBlock], lease: CloseLease | None = None
    ) -> bool:
        # One process, no awaits in between: the checks and the writes are one atomic step.
        if blocks:
            self._pass_fence("c", blocks[0].block.slot, lease, "save_signed")
        for b in blocks:
            c = self._committee(b.block.rollup)
            if b.block.slot in c.signed or b.block.slot in c.failed:
                return False
        for b in blocks:
            self._committee(b.block.rollup).signed[b.block.slot] = b
        return True

    async def get_signed_block(self, rollup: int, slot: int) -> SignedBlock | None:
        return self._committee(rollup).signed.get(slot)

    async def latest_signed_block(self, rollup: int) -> SignedBlock | None:
        signed = self._committee(rollup).signed
        return signed.peekitem(-1)[1] if signed else None

    async def save_failed_slots(
        self,
        failed: Sequence[FailedSlot],
        *,
        proposed_ok: bool = False,
        lease: CloseLease | None = None,
    ) -> bool:
        if failed:
            self._pass_fence("c", failed[0].slot, lease, "save_failed")
        for f in failed:
            c = self._committee(f.rollup)
            if f.slot in c.signed or f.slot in c.failed:
                return False
            if f.slot in c.proposed and not proposed_ok:
                return False
        for f in failed:
            self._committee(f.rollup).failed[f.slot] = f
        return True

    async def claim_proposal(
        self, slot: int, blocks: Sequence[tuple[int, str]], lease: CloseLease | None = None
    ) -> bool:
        self._pass_fence("c", slot, lease, "claim_proposal")
        for rollup, block_hash in blocks:
            c = self._committee(rollup)
            if slot in c.failed or c.proposed.get(slot, block_hash) != block_hash:
                return False
        for rollup, block_hash in blocks:
            self._committee(rollup).proposed[slot] = block_hash
        return True

    async def list_proposed(self, rollup: int, from_slot: int, limit: int) -> list[tuple[int, str]]:
        proposed = self._committee(rollup).proposed
        return [(s, proposed[s]) for s in proposed.irange(minimum=from_slot)][:limit]

    async def get_failed_slot(self, rollup: int, slot: int) -> FailedSlot | None:
        return self._committee(rollup).failed.get(slot)

    async def record_partial(self, partial: PartialRecord) -> MemberEvidence | None:
        c = self._committee(partial.rollup)
        key = (partial.committee_id, partial.member)
        by_root = c.partials.setdefault(partial.slot, {}).setdefault(key, {})
        if partial.signing_root in by_root:
            return None
        first = next(iter(by_root.values()), None)
        by_root[partial.signing_root] = partial
        if first is None:
            return None
        evidence = compute_equivocation(first, partial, partial.received_ms)
        if evidence is not None:
            c.evidence[self._next_evidence_id()] = evidence
        return evidence

    async def list_partials(self, rollup: int, slot: int) -> list[PartialRecord]:
        members = self._committee(rollup).partials.get(slot, {})
        records = [p for by_root in members.values() for p in by_root.values()]
        return sorted(records, key=lambda p: (p.member, p.received_ms))

    async def save_evidence(self, evidence: MemberEvidence) -> str:
        eid = self._next_evidence_id()
        self._committee(evidence.rollup).evidence[eid] = evidence
        return f"{eid[0]}-{eid[1]}"

    async def list_evidence(
        self, rollup: int, *, before: str | None, limit: int
    ) -> list[tuple[str, MemberEvidence]]:
        evidence = self._committee(rollup).evidence
        if before is None:
            ids = evidence.irange(reverse=True)
        else:
            ms, n = before.split("-")
            ids = evidence.irange(maximum=(int(ms), int(n)), inclusive=(True, False), reverse=True)
        out: list[tuple[str, MemberEvidence]] = []
        for eid in ids:
            if len(out) >= limit:
                break
            out.append((f"{eid[0]}-{eid[1]}", evidence[eid]))
        return out

    async def save_slot_opening(self, slot: int, record: OpeningRecord) -> bool:
        if self._openings is None:
            self._openings = {}
        if slot in self._openings:
            return False
        self._openings[slot] = record
        return True

    async def get_slot_opening(self, slot: int) -> OpeningRecord | None:
        return (self._openings or {}).get(slot)
