"""One committee member's signing logic, without a transport: proposal bytes in, partial out.

``Member.sign_proposal`` runs the checks of ``committee.checks`` in their order on every rollup's
part of the slot, rebuilds the slot root from the parts' blocks, consults and updates the
durable slashing protection, and only then signs the slot signing root. The signer process
(``committee.signer``) serves it over HTTP; the in-process committee of ``blockspace demo`` calls
it directly. Both run the same code.

Fault injection (TEST ONLY, ``fault=``; the signer process reads ``BLOCKSPACE_SIGNER_FAULT``):
``wrong_share`` signs with a share that is not its own, ``garbage`` answers 96 random bytes,
``other_block`` signs a different slot root but claims the proposed one, ``equivocate`` ignores
its slashing protection (signs a second slot root for a slot it signed). Each passes every check
first, so it behaves like a member that lies only at the last step. Production never sets it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from auction.transactions import decode_transaction
from auction.types import Tx
from committee import bls, threshold
from committee.checks import (
    KnownBlock,
    MemberConfig,
    check_atomicity,
    check_block,
    check_fairness,
    check_parent,
    check_shape,
    check_slot,
    check_slot_evidence,
    check_timing,
    compute_expected_results,
    compute_slot_event_ids,
)
from committee.errors import DoubleSign, Locked
from committee.proposal import Proposal, SlotProposal, parse_proposal
from committee.protection import HeadMove, ProtectionStore, SignedRecord
from committee.signing import compute_slot_signing_root
from committee.threshold import KeyShare
from node.collector import paused_gc

log = logging.getLogger("blockspace.member")

FAULTS: Final[tuple[str, ...]] = ("wrong_share", "garbage", "other_block", "equivocate")
# Public txs a member remembers having decoded, per rollup it serves: the pending pool and as
# many arrivals (a tx carried from slot to slot is then decoded once, not in every proposal).
DECODED_TXS_PER_POOL: Final[int] = 2
# Losing bids fully re-derived per proposal, drawn at random (docs/committee.md).
DEFAULT_EVIDENCE_SAMPLE: Final[int] = 16


@dataclass(frozen=True, slots=True)
class MemberReply:
    """A released partial signature, with where the member's time went."""

    index: int
    slot: int
    slot_root: bytes
    signing_root: bytes
    partial: bytes
    repeated: bool  # the same slot root was signed before: this is the stored partial
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "slot": self.slot,
            "slot_root": "0x" + self.slot_root.hex(),
            "signing_root": "0x" + self.signing_root.hex(),
            "partial": "0x" + self.partial.hex(),
            "repeated": self.repeated,
            "timings_ms": self.timings_ms,
        }


class DecodedTxs:
    """A bounded memo of ``decode_transaction`` by raw bytes (oldest forgotten first).

    Decoding is a pure function of the bytes, so a remembered result is exactly what decoding
    again would give; refusals are not remembered. Thread-safe (proposals may be checked
    concurrently)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.misses = 0  # decodings done (not remembered)
        self._txs: OrderedDict[bytes, Tx] = OrderedDict()
        self._lock = threading.Lock()

    def decode(self, raw: bytes) -> Tx:
        with self._lock:
            tx = self._txs.get(raw)
            if tx is not None:
                self._txs.move_to_end(raw)
                return tx
        tx = decode_transaction(raw)
        with self._lock:
            self.misses += 1
            self._txs[raw] = tx
            while len(self._txs) > self.size:
                self._txs.popitem(last=False)
        return tx


class Member:
    """A member: its share, its own configuration, its slashing protection."""

    def __init__(
        self,
        share: KeyShare,
        config: MemberConfig,
        protection: ProtectionStore,
        *,
        evidence_sample: int = DEFAULT_EVIDENCE_SAMPLE,
        fault: str | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        threshold.check_signing_threshold(config.committee.n, config.committee.t)
        if share.committee_id != config.committee.committee_id or share.index != config.index:
            raise ValueError("the share does not belong to this member's committee and index")
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        self.share = share
        self.config = config
        self.protection = protection
        self.evidence_sample = evidence_sample
        self.fault = fault
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        # The sample must be unpredictable to the coordinator: OS randomness, not a seed.
        self._rng = random.SystemRandom()
        self.decoded_txs = DecodedTxs(
            DECODED_TXS_PER_POOL
            * sum(r.policy.max_pending_public_txs for r in config.rollups.values())
        )

    @property
    def index(self) -> int:
        return self.share.index

    def sign_proposal(self, data: bytes) -> MemberReply:
        """Check a proposal and return this member's partial; raise a ``Refusal`` otherwise."""
        with paused_gc():
            return self._sign_proposal(data)

    def _sign_proposal(self, data: bytes) -> MemberReply:
        cfg = self.config
        cid = cfg.committee.committee_id
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        parsed = parse_proposal(data)
        head = parsed.head
        # 1. shape, membership and completeness: on the headers, before decoding the logs.
        for part in head.parts:
            check_shape(part)
        check_slot(cfg, head)
        slot_root = head.compute_slot_root()
        root = compute_slot_signing_root(cid, head.slot, slot_root)
        # 2. slashing protection: the same slot root again gets the same partial, at any time
        # (that is how a slot that missed its deadline is completed).
        previous = self.protection.get_signed(cid, head.slot)
        if previous is not None and self.fault != "equivocate":
            if previous.slot_root == slot_root:
                return self._reply(head.slot, previous, True, timings)
            raise DoubleSign(
                f"already signed slot root 0x{previous.slot_root.hex()} for slot {head.slot}",
                signed_slot_root="0x" + previous.slot_root.hex(),
            )
        # 3. timing (the parts share the slot's).
        check_timing(cfg, head.parts[0], self._clock_ms())
        proposal = parsed.decode_rest()
        timings["decode"] = (time.perf_counter() - t0) * 1e3
        # 4, every rollup's part; 5, the slot's evidence, each bundle once however many logs
        # hold a copy; 6-7, the whole slot re-run at once (cross-rollup bundles couple the
        # rollups), every block compared and checked, and atomicity across blocks.
        t1 = time.perf_counter()
        moves = [self._check_part(part) for part in proposal.parts]
        t2 = time.perf_counter()
        check_slot_evidence(cfg, proposal, self._sample(proposal), decode=self.decoded_txs.decode)
        t3 = time.perf_counter()
        timings["checks"] = (t2 - t1) * 1e3
        timings["evidence"] = (t3 - t2) * 1e3
        expected = compute_expected_results(cfg, proposal)
        for part in proposal.parts:
            check_block(cfg, part, expected[part.rollup])
            check_fairness(cfg.rollups[part.rollup], part, part.block)
        check_atomicity(proposal)
        t4 = time.perf_counter()
        timings["repack"] = (t4 - t3) * 1e3
        # A check that outlived the signing deadline must not lock this member to a slot its
        # coordinator gave up on: refuse rather than sign late (unless asked to complete it).
        check_timing(cfg, proposal.parts[0], self._clock_ms())
        # Sign, and make the record (and the new heads) durable before the partial leaves.
        partial = self._partial(root, proposal.slot)
        record = SignedRecord(slot_root, root, partial, self._clock_ms())
        stored = self.protection.record_signed(cid, proposal.slot, record, moves)
        if stored is None:
            raise Locked(
                "this member signed another slot meanwhile; it signs only children of its heads",
                rollups=[m.rollup for m in moves],
            )
        if stored.slot_root != slot_root and self.fault != "equivocate":
            raise DoubleSign(
                f"already signed slot root 0x{stored.slot_root.hex()} for slot {proposal.slot}",
                signed_slot_root="0x" + stored.slot_root.hex(),
            )
        released = record if self.fault == "equivocate" else stored
        timings["sign"] = (time.perf_counter() - t4) * 1e3
        return self._reply(proposal.slot, released, False, timings)

    def _check_part(self, part: Proposal) -> HeadMove:
        """Check one rollup's parent and carried pool (the lock); return how signing the slot
        moves that rollup's head."""
        cfg = self.config
        known = self.protection.get_head(cfg.committee.committee_id, part.rollup)
        if self.fault == "equivocate":
            known = None  # the test fault ignores its lock as it ignores its protection
        adopt = check_parent(cfg, part, known)
        block = part.block
        return HeadMove(
            part.rollup,
            KnownBlock(part.slot, block.block_hash, block.pending_root),
            adopt or known,
        )

    def _sample(self, proposal: SlotProposal) -> frozenset[str]:
        """A fresh random sample of the slot's bids to re-derive in full: ``evidence_sample``
        per rollup's part, drawn over the slot's bundles (a cross-rollup bundle is one)."""
        ids = compute_slot_event_ids(proposal)
        size = min(self.evidence_sample * len(proposal.parts), len(ids))
        return frozenset(self._rng.sample(ids, size))

    def _reply(
        self,
        slot: int,
        record: SignedRecord,
        repeated: bool,
        timings: dict[str, float],
    ) -> MemberReply:
        return MemberReply(
            index=self.index,
            slot=slot,
            slot_root=record.slot_root,
            signing_root=record.signing_root,
            partial=record.partial,
            repeated=repeated,
            timings_ms={k: round(v, 3) for k, v in timings.items()},
        )

    def _partial(self, root: bytes, slot: int) -> bytes:
        """This member's partial of ``root`` (or, under a test fault, a lie about it)."""
        if self.fault == "wrong_share":
            wrong = self.share.secret + 1 if self.share.secret + 1 < bls.CURVE_ORDER else 1
            return bls.sign(wrong, root)
        if self.fault == "garbage":
            return bytes(self._rng.getrandbits(8) for _ in range(bls.SIGNATURE_LENGTH))
        if self.fault == "other_block":
            cid = self.config.committee.committee_id
            other = compute_slot_signing_root(cid, slot, b"\xee" * 32)
            return threshold.partial_sign(self.share, other)
        return threshold.partial_sign(self.share, root)
