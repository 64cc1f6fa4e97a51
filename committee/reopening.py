"""Re-opening a slot's sealed bids from what a proposal carries: pure checks the member runs
before it signs and the offline verifier of rule-breaking evidence re-runs (docs/encryption.md,
"Close"; docs/accountability.md).

``check_sealed_entries`` re-derives every sealed bid from its signed call under the intake
rules; ``check_sealed_certificate`` checks the committee's certificate of the set (what a member
that did not commit relies on); ``check_openings`` checks the key and that every log holds
exactly what the key opens. ``committee.sealing`` adds the member's own state (its durable
commitment) around them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from auction.bundles import TxDecoder
from auction.intake import IntakeContext, compute_intake_event
from auction.presets import Rollup
from auction.slots import SlotClock
from auction.types import Bid, LoggedSealedBid
from committee import bls, encryption
from committee.checks import MemberConfig
from committee.errors import CommitmentMismatch, NotCommitted, OpeningMismatch
from committee.opening import compute_opened_log, compute_openings
from committee.proposal import SlotProposal
from committee.sealedset import (
    SealedOpening,
    compute_commitment_signing_root,
    compute_seq_key,
    compute_slot_ciphertext_root,
)


def compute_opening_context(
    rollups: Mapping[int, Rollup],
    clock: SlotClock,
    max_slots_ahead: int,
    max_rollups_per_bundle: int,
    committee_id: bytes,
    rollup: int,
) -> IntakeContext:
    """The intake context sealed bids are re-derived and opened in, the same for the engine's
    close and every member: the rollups and clock, no endpoint pin, no protected hashes (the
    close re-checks protection from the log and the pool)."""
    return IntakeContext(
        rollups=rollups,
        clock=clock,
        max_slots_ahead=max_slots_ahead,
        default_rollup=rollup,
        max_rollups_per_bundle=max_rollups_per_bundle,
        committee_id=committee_id,
    )


def compute_sealed_context(config: MemberConfig, rollup: int) -> IntakeContext:
    """A member's opening context (``compute_opening_context``) from its own configuration."""
    return compute_opening_context(config.rollups, config.clock, config.max_slots_ahead,
                                   config.max_rollups_per_bundle, config.committee.committee_id,
                                   rollup)  # fmt: skip


def check_sealed_entries(
    config: MemberConfig, slot: int, entries: Sequence[LoggedSealedBid]
) -> None:
    """Re-derive every sealed bid of ``slot`` from its signed call and check the slot-wide
    intake rules; raise ``CommitmentMismatch`` naming the first entry that fails."""
    rollups: dict[int, list[str]] = {}
    seen_ids: set[str] = set()
    seen_hashes: set[str] = set()
    encapsulations: dict[str, bytes] = {}
    for entry in entries:
        sealed = entry.event
        what = {"bid_id": sealed.bid_id, "seq": entry.seq}
        # Verify it is this slot's, in a rollup this member serves, in canonical order
        if sealed.slot != slot or sealed.rollup not in config.rollups:
            raise CommitmentMismatch("a sealed bid for another slot or rollup", **what)
        rollups.setdefault(sealed.rollup, []).append(entry.seq)
        # Verify it is what intake makes of its signed call (signature, committee, slot,
        # arrival before the deadline, the public fields the ciphertext authenticates)
        ctx = compute_sealed_context(config, sealed.rollup)
        event = compute_intake_event(sealed.evidence.body, sealed.evidence.signature,
                                     sealed.received_ms, ctx)  # fmt: skip
        if event != sealed:
            code = getattr(getattr(event, "error", None), "code", None)
            raise CommitmentMismatch("a sealed bid is not what its signed call makes",
                                     refused=code, **what)  # fmt: skip
        # Verify the slot-wide rules intake enforces in its store: a call and a ciphertext
        # once, one encapsulation per searcher (decision 62: the close costs a pairing each)
        if sealed.bid_id in seen_ids or sealed.ciphertext_hash in seen_hashes:
            raise CommitmentMismatch("a sealed bid or ciphertext is in the set twice", **what)
        seen_ids.add(sealed.bid_id)
        seen_hashes.add(sealed.ciphertext_hash)
        if encapsulations.setdefault(sealed.searcher, sealed.encapsulation) != sealed.encapsulation:
            raise CommitmentMismatch("a searcher has two encapsulations in the set", **what)
    # Verify the entries are in canonical order (rollup, then log order)
    if [e.event.rollup for e in entries] != sorted(e.event.rollup for e in entries):
        raise CommitmentMismatch("the sealed bids are not in canonical order")
    for seqs in rollups.values():
        try:
            keys = [compute_seq_key(seq) for seq in seqs]
        except ValueError:
            raise CommitmentMismatch("a sealed bid has a malformed seq") from None
        if any(a >= b for a, b in zip(keys, keys[1:], strict=False)):
            raise CommitmentMismatch("a rollup's sealed bids are not in log order")


def check_sealed_certificate(config: MemberConfig, slot: int, sealed: SealedOpening) -> None:
    """Verify the set is the one its root names, that t members committed to it (the
    certificate), and re-derive every sealed bid."""
    cid = config.committee.committee_id
    root = compute_slot_ciphertext_root(cid, slot, sealed.entries)
    # Verify the sealed bids are the set the root names
    if root != sealed.ciphertext_root:
        raise CommitmentMismatch("the ciphertext root is not the root of the sealed bids",
                                 slot=slot)  # fmt: skip
    # Verify t members committed to it, and check every sealed bid
    message = compute_commitment_signing_root(cid, slot, root)
    if not bls.verify(config.committee.group_public_key, message, sealed.commitment_signature):
        raise NotCommitted("the commitment certificate does not verify", slot=slot)
    check_sealed_entries(config, slot, sealed.entries)


def check_openings(
    config: MemberConfig, proposal: SlotProposal, *, decode: TxDecoder | None = None
) -> dict[str, Bid]:
    """Check the proposal's slot key and that every part's log is its plaintext events with the
    openings merged in by seq, to the byte; return the opened (funded) bids by id, re-derived
    in full here. The set itself is checked by the caller (its commitment or certificate)."""
    cfg, slot = config, proposal.slot
    sealed = proposal.sealed
    if sealed is None:
        return {}
    entries = sealed.entries
    # Verify the key is the committee's key for the slot
    if not encryption.verify_slot_key(cfg.committee, slot, sealed.slot_key):
        raise OpeningMismatch("the slot key is not the committee's key for the slot", slot=slot)
    # Open every sealed bid as the close did, and compare each log with its openings merged in
    ctx = compute_sealed_context(cfg, proposal.parts[0].rollup)
    if decode is not None:
        ctx = dataclasses.replace(ctx, decode=decode)
    opened = compute_openings(cfg.committee, slot, sealed.slot_key, entries, ctx)
    opened_ids = {o.sealed.bid_id for o in opened.openings}
    # The ledger's refusals (deposits) are the operator's to make, as at intake: only bids
    # that opened, each named once
    unfunded = set(sealed.unfunded)
    funded = {o.sealed.bid_id for o in opened.openings if o.bids} - unfunded
    if len(unfunded) != len(sealed.unfunded) or not unfunded <= {
        o.sealed.bid_id for o in opened.openings if o.bids
    }:
        raise OpeningMismatch("an unfunded bid is not an opened bid", slot=slot)
    opened = dataclasses.replace(opened, openings=tuple(
        o if o.sealed.bid_id not in unfunded else dataclasses.replace(o, bids=())
        for o in opened.openings
    ))  # fmt: skip
    for part in proposal.parts:
        plain = [e for e in part.log
                 if not (isinstance(e.event, Bid) and e.event.bid_id in opened_ids)]  # fmt: skip
        expected = compute_opened_log(part.rollup, plain, opened)
        if tuple(expected) != part.log:
            raise OpeningMismatch(
                f"rollup {part.rollup}'s log does not hold exactly what the key opens",
                rollup=part.rollup, slot=slot,
            )  # fmt: skip
    return {o.bids[0].bid_id: o.bids[0] for o in opened.openings if o.bids and
            o.sealed.bid_id in funded}  # fmt: skip
