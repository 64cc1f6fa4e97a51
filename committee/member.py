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

import dataclasses
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from auction.results import compute_event_id
from auction.slots import compute_deadline_ms, compute_slot_at
from auction.transactions import decode_transaction
from auction.types import Bid, Block, LoggedEvent, LoggedSealedBid, Tx
from committee import bls, threshold
from committee.checks import (
    KnownBlock,
    MemberConfig,
    check_atomicity,
    check_block,
    check_fairness,
    check_header,
    check_parent,
    check_shape,
    check_slot,
    check_slot_evidence,
    check_streamed_event,
    check_timing,
    compute_expected_results,
    compute_slot_event_ids,
)
from committee.endorsement import Endorsement, unwrap_proposal, verify_endorsement
from committee.errors import (
    CommitmentMismatch,
    DoubleSign,
    InvalidEvidence,
    Locked,
    NotMember,
    OperatorSignatureMissing,
    SlotExpired,
    StreamGap,
    StreamMismatch,
)
from committee.evidence import compute_operator_equivocation_evidence
from committee.keeping import DEFAULT_KEPT_SLOTS, MemberKeeping, SignedLog
from committee.proposal import (
    ParsedProposal,
    Proposal,
    SignedHeader,
    SlotProposal,
    compute_opened_ids,
    compute_signed_header,
    is_opened_entry,
    parse_proposal,
)
from committee.protection import HeadMove, ProtectionStore, SignedRecord
from committee.reopening import check_sealed_entry
from committee.sealedset import compute_sealed_entry_bytes, compute_sealed_entry_hash
from committee.sealing import KeyRelease, check_sealed_proposal, release_key_share
from committee.signing import compute_slot_signing_root
from committee.stream import (
    ZERO_DIGEST,
    MemberStreams,
    SealedStreamBatch,
    SlotStream,
    StreamBatch,
    StreamLog,
    check_ascending,
    compute_entry_bytes,
    decode_stream_batch,
    parse_seq,
    stream_ack,
)
from committee.threshold import KeyShare
from node.collector import paused_gc

log = logging.getLogger("blockspace.member")

FAULTS: Final[tuple[str, ...]] = ("wrong_share", "garbage", "other_block", "equivocate")
# Public txs a member remembers having decoded, per rollup it serves: the pending pool and as
# many arrivals (a tx carried from slot to slot is then decoded once, not in every proposal).
DECODED_TXS_PER_POOL: Final[int] = 2
# Losing bids fully re-derived per proposal, drawn at random (docs/committee.md).
DEFAULT_EVIDENCE_SAMPLE: Final[int] = 16
# How a member checks each streamed bid as it arrives (docs/committee.md, "Streaming"): "full"
# re-derives every bid (ECDSA for its header and transactions), "sample" binds it to its signed
# bytes and leaves the full derivation to the deadline's rule (winners, replacements, a sample).
STREAM_CHECKS: Final[tuple[str, ...]] = ("full", "sample")


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
        stream_check: str = "full",
        operator: str | None = None,
        kept_slots: int = DEFAULT_KEPT_SLOTS,
        columnar: bool = True,
    ) -> None:
        threshold.check_signing_threshold(config.committee.n, config.committee.t)
        if share.committee_id != config.committee.committee_id or share.index != config.index:
            raise ValueError("the share does not belong to this member's committee and index")
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        if stream_check not in STREAM_CHECKS:
            raise ValueError(f"stream_check must be one of {', '.join(STREAM_CHECKS)}")
        self.stream_check = stream_check
        # Re-run a streamed slot from the encoding kept as it streamed in (False: from scratch,
        # for the benchmark's same-run comparison; the result is the same).
        self.columnar = columnar
        self.streams = MemberStreams()
        # The operator's address, pinned from this member's settings: every proposal must then
        # carry its endorsement (committee.endorsement). Unpinned, an endorsement is checked
        # against the address it names and kept, and an unendorsed proposal is accepted.
        self.operator = operator.lower() if operator else None
        self.keeping = MemberKeeping(kept_slots)
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
        # Per rollup, the newest block this member signed, as the next slot's parent
        # certificate carries it (``parse_proposal``'s ``own``: a parent naming it is not
        # decoded again). Kept as the block at the signature and made a header (a keccak per
        # transaction) when the next slot's first batch streams in, off the deadline (on the
        # whole-log path, which streams nothing, at the next proposal).
        self._signed_blocks: dict[int, Block] = {}
        self._signed_headers: dict[int, SignedHeader] = {}
        self._headers_lock = threading.Lock()

    @property
    def index(self) -> int:
        return self.share.index

    def clock_ms(self) -> int:
        """This member's own clock (the slot deadlines it enforces are by it)."""
        return self._clock_ms()

    def release_key_share(self, data: bytes) -> KeyRelease:
        """Commit to a slot's ciphertext set and release the key share (committee.sealing)."""
        return release_key_share(self, data)

    def sealed_checked(self, slot: int, entry_hashes: Sequence[bytes]) -> list[bool]:
        """Whether each sealed entry of ``slot`` (by ``compute_sealed_entry_hash``) is one this
        member re-derived as it streamed in (all False without a stream of the slot)."""
        stream = self.streams.get(slot)
        if stream is None:
            return [False] * len(entry_hashes)
        return stream.sealed_checked(entry_hashes)

    def sealed_prefix(
        self, slot: int, rollup: int, count: int
    ) -> tuple[list[tuple[LoggedSealedBid, bytes]], bytes] | None:
        """The first ``count`` sealed calls of ``rollup`` of ``slot`` this member checked as
        they streamed in, with their canonical bytes, and the stream digest after them; None if
        it holds fewer (``SlotStream.sealed_prefix``)."""
        stream = self.streams.get(slot)
        if stream is None:
            return None if count else ([], ZERO_DIGEST)
        return stream.sealed_prefix(rollup, count)

    def sign_proposal(self, data: bytes) -> MemberReply:
        """Check a proposal and return this member's partial; raise a ``Refusal`` otherwise."""
        with paused_gc():
            return self._sign_proposal(data)

    def _sign_proposal(self, data: bytes) -> MemberReply:
        cfg = self.config
        cid = cfg.committee.committee_id
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        endorsed, data = unwrap_proposal(data)
        parsed = parse_proposal(data, self._own_headers())
        head = parsed.head
        slot_root = head.compute_slot_root()
        # 0. the operator's endorsement of the slot root, before any rule (and kept).
        self._check_endorsement(head, slot_root, endorsed)
        # 1. shape, membership and completeness: on the headers, before decoding the logs.
        headers = parsed.streamed is not None  # version 7: headers, not blocks
        for part in head.parts:
            check_shape(part, header=headers)
        check_slot(cfg, head)
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
        streamed: dict[int, int] | None = None
        derived: dict[str, Bid] = {}
        if parsed.streamed is not None:
            # 3b. the logs' prefixes are what this member checked as they streamed in.
            proposal, streamed, derived = self._join_stream(parsed, proposal)
        # 3c. the sealed bids: opened by the key as the committee committed to them, checked
        # by the same rule and sample as the plaintext bids' evidence (step 5).
        sample = self._sample(proposal)
        opened = check_sealed_proposal(self, proposal, sample)
        if opened:
            derived = {**derived, **opened}
        timings["decode"] = (time.perf_counter() - t0) * 1e3
        # 4, every rollup's part; 5, the slot's evidence, each bundle once however many logs
        # hold a copy; 6-7, the whole slot re-run at once (cross-rollup bundles couple the
        # rollups), every block compared and checked, and atomicity across blocks.
        t1 = time.perf_counter()
        moves = [self._check_part(part) for part in proposal.parts]
        t2 = time.perf_counter()
        timings["checks"] = (t2 - t1) * 1e3
        repack_ms = 0.0
        if headers:
            # 6 first: the blocks are this member's re-run's, the headers must be theirs
            # (decision 166); the evidence step then takes the winners from them.
            proposal, repack_ms = self._rerun_headers(proposal)
            t2 = time.perf_counter()
        check_slot_evidence(
            cfg,
            proposal,
            sample,
            decode=self.decoded_txs.decode,
            streamed=streamed,
            derived=derived,
        )
        t3 = time.perf_counter()
        timings["evidence"] = (t3 - t2) * 1e3
        if not headers:
            expected = compute_expected_results(cfg, proposal)
            for part in proposal.parts:
                check_block(cfg, part, expected[part.rollup])
                check_fairness(cfg.rollups[part.rollup], part, part.block)
            check_atomicity(proposal)
        t4 = time.perf_counter()
        timings["repack"] = (t4 - t3) * 1e3 + repack_ms
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
        self.streams.drop_through(proposal.slot)  # signed: its streams are done with
        if released is stored:
            with self._headers_lock:
                for part in proposal.parts:
                    self._signed_blocks[part.rollup] = part.block
                    self._signed_headers.pop(part.rollup, None)
        self._keep_signed_logs(proposal)
        timings["sign"] = (time.perf_counter() - t4) * 1e3
        return self._reply(proposal.slot, released, False, timings)

    # --- accountability (committee.keeping, docs/accountability.md) ---------------------------

    def _check_endorsement(
        self, head: SlotProposal, slot_root: bytes, endorsed: tuple[str, bytes] | None
    ) -> None:
        """Refuse a proposal whose operator signature is forged or another operator's, or
        missing when this member pins the operator; keep a valid one, and keep the evidence
        when it endorses another slot root than the slot's first endorsement."""
        if endorsed is None:
            if self.operator is not None:
                raise OperatorSignatureMissing("proposals to this member must carry the "
                                               "operator's signature")  # fmt: skip
            return
        operator, signature = endorsed
        endorsement = Endorsement(head.committee_id, head.slot, slot_root, operator, signature)
        # Verify the signature recovers the operator it names (and the pinned one)
        verify_endorsement(endorsement, self.operator)
        if head.committee_id != self.config.committee.committee_id:
            return  # another committee's: refused by check_slot, not kept
        first = self.keeping.keep_endorsement(endorsement)
        if first is not None and first.operator == endorsement.operator:
            log.warning("the operator proposed two slot roots for slot %d", head.slot)
            self.keeping.keep_evidence(
                head.slot, compute_operator_equivocation_evidence(first, endorsement))

    def _rerun_headers(self, proposal: SlotProposal) -> tuple[SlotProposal, float]:
        """A streamed (version 7) proposal's re-run: the slot's blocks as this member's re-run
        builds them, each checked against its part's header (``check_header``), in place of
        the headers; and the re-run's wall ms. The blocks are the member's own, so the
        fairness and atomicity checkers, which a proposed body needs, are not run on them:
        they are the packer's invariants (property tests with the invariant checker)."""
        cfg = self.config
        t0 = time.perf_counter()
        stream = self.streams.get(proposal.slot)
        if stream is not None and self.columnar:
            with stream.lock:  # the encoder is the stream's: batches append to it
                expected = compute_expected_results(cfg, proposal, stream.encoder)
        else:
            expected = compute_expected_results(cfg, proposal)
        parts = []
        for part in proposal.parts:
            check_header(part, expected[part.rollup])
            parts.append(dataclasses.replace(part, block=expected[part.rollup].block))
        done = dataclasses.replace(proposal, parts=tuple(parts))
        return done, (time.perf_counter() - t0) * 1e3

    def _own_headers(self) -> dict[int, SignedHeader]:
        """By rollup, the header of the newest block this member signed (made now from the
        kept block if no batch streamed in since)."""
        with self._headers_lock:
            for rollup, block in self._signed_blocks.items():
                if rollup not in self._signed_headers:
                    self._signed_headers[rollup] = compute_signed_header(block)
            return dict(self._signed_headers)

    def _keep_signed_logs(self, proposal: SlotProposal) -> None:
        """Keep the event ids of every block this member signed (served to searchers)."""
        for part in proposal.parts:
            block = part.block
            self.keeping.keep_log(SignedLog(
                part.rollup, part.slot, block.block_hash, block.bid_set_root,
                tuple(compute_event_id(e) for e in part.log),
            ))  # fmt: skip

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
        per rollup's part, drawn over the slot's bundles (a cross-rollup bundle is one). With
        streaming, the tail (what did not stream in) gets this rule too, so a member that fell
        behind pays at the deadline what the whole-log path pays, not more."""
        ids = compute_slot_event_ids(proposal)
        size = min(self.evidence_sample * len(proposal.parts), len(ids))
        return frozenset(self._rng.sample(ids, size))

    # --- streaming (committee.stream) ----------------------------------------------------------

    def accept_stream(self, data: bytes) -> dict[str, object]:
        """Check one streamed batch of a rollup's log of an open slot, entry by entry, and keep
        it; answer how many entries of that log this member holds and their digest. Refuses
        (nothing of the batch kept) a batch for another committee or rollup, for a slot closed
        by this member's clock or too far ahead, that does not continue what it holds, or
        holds an event that does not check."""
        with paused_gc():
            batch = decode_stream_batch(data)
            self._check_stream_target(batch)
            self._own_headers()  # the last signed blocks' headers, while the slot is open
            stream = self.streams.open(batch.slot)
            if isinstance(batch, SealedStreamBatch):
                return self._accept_sealed(stream, batch)
            with stream.lock:
                log = stream.logs.setdefault(batch.rollup, StreamLog())
                log.check_next(batch)
                full = self.stream_check == "full"
                checked: list[tuple[bytes, Bid | None]] = []
                closes_ms = compute_deadline_ms(self.config.clock, batch.slot)
                for entry in batch.entries:
                    # Verify the slot is still open: past its deadline the member's CPU is
                    # the proposal's, and this batch's entries come with it as the tail.
                    if self._clock_ms() > closes_ms + self.config.max_clock_skew_ms:
                        raise SlotExpired(f"slot {batch.slot} closed during the batch",
                                          slot=batch.slot)  # fmt: skip
                    derived = check_streamed_event(
                        self.config, batch.rollup, batch.slot, entry.event, full=full,
                        decode=self.decoded_txs.decode,
                    )  # fmt: skip
                    ev = entry.event
                    bid = ev if derived and isinstance(ev, Bid) else None
                    checked.append((compute_entry_bytes(entry), bid))
                # Keep the batch only once every entry checked (a refusal keeps nothing).
                for entry, (raw, bid) in zip(batch.entries, checked, strict=True):
                    log.append(entry, raw)
                    stream.encoder.append(batch.rollup, entry)
                    if bid is not None:
                        stream.derived.setdefault(bid.bid_id, bid)
                return stream_ack(batch.slot, batch.rollup, log.count, log.digests[-1])

    def _accept_sealed(self, stream: SlotStream, batch: SealedStreamBatch) -> dict[str, object]:
        """Check a batch of a rollup's sealed calls as the key release would (each re-derived
        from its signed call, the slot-wide rules against the sealed calls held) and remember
        each entry's hash; nothing of a batch is kept unless every entry checks."""
        cfg = self.config
        closes_ms = compute_deadline_ms(cfg.clock, batch.slot)
        with stream.lock:
            sealed = stream.sealed
            log = sealed.logs.setdefault(batch.rollup, StreamLog())
            log.check_next(batch)
            rules = sealed.rules.copy()
            checked: list[tuple[LoggedSealedBid, bytes]] = []
            for entry in batch.entries:
                # Verify the slot is still open (as for plaintext events)
                if self._clock_ms() > closes_ms + cfg.max_clock_skew_ms:
                    raise SlotExpired(f"slot {batch.slot} closed during the batch",
                                      slot=batch.slot)  # fmt: skip
                what = {"bid_id": entry.event.bid_id, "seq": entry.seq}
                # Verify it is in the log it streams in (a sealed bid is logged in one)
                if entry.event.rollup != batch.rollup:
                    raise InvalidEvidence("a sealed bid of another rollup's log", **what)
                try:
                    # Verify it is what its signed call makes, and the slot-wide rules
                    check_sealed_entry(cfg, batch.slot, entry)
                    rules.check(entry)
                except CommitmentMismatch as exc:
                    raise InvalidEvidence(exc.message, **exc.data) from None
                rules.add(entry)
                checked.append((entry, compute_sealed_entry_bytes(entry)))
            # Keep the batch only once every entry checked (a refusal keeps nothing).
            kept = sealed.entries.setdefault(batch.rollup, [])
            for entry, raw in checked:
                log.advance(entry.seq, raw)
                sealed.checked.add(compute_sealed_entry_hash(raw))
                kept.append((entry, raw))
            sealed.rules = rules
            return stream_ack(batch.slot, batch.rollup, log.count, log.digests[-1],
                              sealed=True)  # fmt: skip

    def _check_stream_target(self, batch: StreamBatch | SealedStreamBatch) -> None:
        """Refuse a batch for another committee or rollup, for a slot this member's clock has
        closed (its tail comes with the proposal), or one too far ahead."""
        cfg = self.config
        if batch.committee_id != cfg.committee.committee_id:
            raise NotMember(
                "this member belongs to another committee",
                committee_id="0x" + batch.committee_id.hex(),
            )
        if batch.rollup not in cfg.rollups:
            raise NotMember(f"this member does not serve rollup {batch.rollup}",
                            rollup=batch.rollup)  # fmt: skip
        now = self._clock_ms()
        # Verify the slot is still open (within the skew): a closed slot's tail comes with its
        # proposal, and a slot far in the past would only fill memory.
        if now > compute_deadline_ms(cfg.clock, batch.slot) + cfg.max_clock_skew_ms:
            raise SlotExpired(f"slot {batch.slot} has closed: no more streaming",
                              slot=batch.slot)  # fmt: skip
        # Verify it is not beyond the slots intake accepts bids for.
        if batch.slot > compute_slot_at(cfg.clock, now + cfg.max_clock_skew_ms) + (
            cfg.max_slots_ahead
        ):
            raise SlotExpired(f"slot {batch.slot} is too far ahead to stream", slot=batch.slot)

    def _join_stream(
        self, parsed: ParsedProposal, proposal: SlotProposal
    ) -> tuple[SlotProposal, dict[int, int], dict[str, Bid]]:
        """A version-7 proposal with every part's log whole again: the prefix this member holds
        (and checked) from the slot's stream merged by seq with the proposal's tail (opened
        bids may sit among the prefix's entries). Refuses a prefix it does not hold
        (``stream_gap``), one whose digest differs (``stream_mismatch``) and a tail that is
        not in log order or puts a plaintext entry among the prefix's (``_join_log``).
        Returns the proposal, per rollup how many leading entries of the whole log are
        streamed ones (what the evidence step may skip), and the bids derived in full as
        they streamed in."""
        assert parsed.streamed is not None
        stream = self.streams.get(proposal.slot)
        opened = compute_opened_ids(proposal)
        parts = []
        counts: dict[int, int] = {}
        for part, (count, digest) in zip(proposal.parts, parsed.streamed, strict=True):
            snap = stream.snapshot(part.rollup, count) if stream is not None else None
            if snap is None and count == 0:
                snap = ([], bytes(32))
            if snap is None:
                held = stream.held(part.rollup) if stream is not None else 0
                raise StreamGap(
                    f"the proposal names {count} streamed entries of rollup {part.rollup}; "
                    f"this member holds {held}",
                    have=held, rollup=part.rollup, slot=proposal.slot,
                )  # fmt: skip
            prefix, held_digest = snap
            if held_digest != digest:
                raise StreamMismatch(
                    f"rollup {part.rollup}'s streamed prefix differs from what this member holds",
                    rollup=part.rollup, count=count,
                )  # fmt: skip
            log, early = _join_log(prefix, part.log, opened)
            parts.append(dataclasses.replace(part, log=log))
            counts[part.rollup] = early
        derived: dict[str, Bid] = {}
        if stream is not None:
            with stream.lock:
                derived = dict(stream.derived)
        return dataclasses.replace(proposal, parts=tuple(parts)), counts, derived

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


def _join_log(
    prefix: list[LoggedEvent], tail: tuple[LoggedEvent, ...], opened: frozenset[str]
) -> tuple[tuple[LoggedEvent, ...], int]:
    """A part's whole log from the streamed ``prefix`` and the proposal's ``tail``, and how many
    of its leading entries are the prefix's. The tail is in log order; its plaintext entries
    come after the prefix (the prefix is the log's first plaintext entries); only opened bids
    (``opened``: they never stream) may sit among the prefix's entries, each at a seq of its
    own. ``MalformedProposal`` otherwise. Whether an opened bid is the opening of its sealed
    bid, at its seq, is ``check_sealed_proposal``'s to check."""
    last = parse_seq(prefix[-1].seq) if prefix else (-1, -1)
    # Verify the tail is in log order, its plaintext entries after the prefix
    check_ascending((-1, -1), [e.seq for e in tail])
    check_ascending(last, [e.seq for e in tail if not is_opened_entry(e, opened)])
    if not prefix or not tail or parse_seq(tail[0].seq) > last:
        return (*prefix, *tail), len(prefix)
    merged = sorted((*prefix, *tail), key=lambda e: parse_seq(e.seq))
    # Verify no opened bid takes a streamed entry's seq
    check_ascending((-1, -1), [e.seq for e in merged])
    early = next(i for i, e in enumerate(merged) if e is tail[0])
    return tuple(merged), early
