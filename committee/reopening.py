"""Re-opening a slot's sealed bids from what a proposal carries: pure checks the member runs
before it signs and the offline verifier of rule-breaking evidence re-runs (docs/encryption.md,
"Close"; docs/accountability.md).

``check_sealed_entries`` re-derives every sealed bid from its signed call under the intake
rules; ``check_sealed_certificate`` checks the committee's certificate of the set (what a member
that did not commit relies on); ``check_openings`` checks the key and that every log holds
exactly what the key opens: in full (the offline verifier), or by the committee's sampling rule
(a member: every ciphertext opened, every sealed bid the logs leave out, the winners,
replacements and the member's sample derived in full, every other opened bid bound to its
payload without ECDSA; docs/encryption.md, "Which bids a member re-opens").
``committee.sealing`` adds the member's own state (its durable commitment) around them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from auction.bundles import TxDecoder
from auction.ciphertext import CiphertextError
from auction.errors import InvalidTransaction
from auction.hashing import keccak256, to_hex
from auction.intake import IntakeContext, compute_intake_event
from auction.legs import compute_bid_copy
from auction.presets import Rollup
from auction.slots import SlotClock
from auction.types import Bid, LoggedSealedBid, Tx
from committee import bls, encryption
from committee.checks import MemberConfig, compute_full_ids
from committee.encryption import Opener
from committee.errors import CommitmentMismatch, NotCommitted, OpeningMismatch
from committee.opening import (
    OpenedSlot,
    Opening,
    compute_opened_log,
    compute_openings,
    compute_payload_opening,
    compute_unopened,
)
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


def check_sealed_entry(config: MemberConfig, slot: int, entry: LoggedSealedBid) -> None:
    """Re-derive one sealed bid of ``slot`` from its signed call (the intake rules); raise
    ``CommitmentMismatch`` naming it. What a member checks of each entry of a release request,
    or of each sealed call as it streams in (``committee.stream``), before the slot-wide rules
    (``check_sealed_set``)."""
    sealed = entry.event
    what = {"bid_id": sealed.bid_id, "seq": entry.seq}
    # Verify it is this slot's, in a rollup this member serves
    if sealed.slot != slot or sealed.rollup not in config.rollups:
        raise CommitmentMismatch("a sealed bid for another slot or rollup", **what)
    # Verify it is what intake makes of its signed call (signature, committee, slot,
    # arrival before the deadline, the public fields the ciphertext authenticates)
    ctx = compute_sealed_context(config, sealed.rollup)
    event = compute_intake_event(sealed.evidence.body, sealed.evidence.signature,
                                 sealed.received_ms, ctx)  # fmt: skip
    if event != sealed:
        code = getattr(getattr(event, "error", None), "code", None)
        raise CommitmentMismatch("a sealed bid is not what its signed call makes",
                                 refused=code, **what)  # fmt: skip


@dataclass
class SealedSetRules:
    """The slot-wide intake rules over a slot's sealed bids, applied entry by entry (so a
    member streaming the set checks each new entry against those it holds): a call and a
    ciphertext once, one encapsulation per searcher (decision 62: the close costs a pairing
    each), each rollup's entries in log order."""

    ids: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)
    encapsulations: dict[str, bytes] = field(default_factory=dict)
    last_seqs: dict[int, tuple[int, int]] = field(default_factory=dict)  # by rollup

    def check(self, entry: LoggedSealedBid) -> None:
        """Refuse ``entry`` if it breaks a rule with those added before (``CommitmentMismatch``);
        it is not added (``add``)."""
        sealed = entry.event
        what = {"bid_id": sealed.bid_id, "seq": entry.seq}
        if sealed.bid_id in self.ids or sealed.ciphertext_hash in self.hashes:
            raise CommitmentMismatch("a sealed bid or ciphertext is in the set twice", **what)
        if self.encapsulations.get(sealed.searcher, sealed.encapsulation) != (
            sealed.encapsulation
        ):
            raise CommitmentMismatch("a searcher has two encapsulations in the set", **what)
        try:
            key = compute_seq_key(entry.seq)
        except ValueError:
            raise CommitmentMismatch("a sealed bid has a malformed seq", **what) from None
        if key <= self.last_seqs.get(sealed.rollup, (-1, -1)):
            raise CommitmentMismatch("a rollup's sealed bids are not in log order", **what)

    def copy(self) -> SealedSetRules:
        return SealedSetRules(set(self.ids), set(self.hashes), dict(self.encapsulations),
                              dict(self.last_seqs))  # fmt: skip

    def add(self, entry: LoggedSealedBid) -> None:
        sealed = entry.event
        self.ids.add(sealed.bid_id)
        self.hashes.add(sealed.ciphertext_hash)
        self.encapsulations.setdefault(sealed.searcher, sealed.encapsulation)
        self.last_seqs[sealed.rollup] = compute_seq_key(entry.seq)


def check_sealed_set(entries: Sequence[LoggedSealedBid]) -> None:
    """Check the slot-wide rules (``SealedSetRules``) over a whole set, and that it is in
    canonical order (rollup, then log order); raise ``CommitmentMismatch``."""
    rules = SealedSetRules()
    for entry in entries:
        rules.check(entry)
        rules.add(entry)
    # Verify the entries are in canonical order (rollup, then log order)
    if [e.event.rollup for e in entries] != sorted(e.event.rollup for e in entries):
        raise CommitmentMismatch("the sealed bids are not in canonical order")


def check_sealed_entries(
    config: MemberConfig,
    slot: int,
    entries: Sequence[LoggedSealedBid],
    derived: Sequence[bool] | None = None,
) -> None:
    """Re-derive every sealed bid of ``slot`` from its signed call and check the slot-wide
    intake rules; raise ``CommitmentMismatch`` naming the first entry that fails.
    ``derived[i]``: entry i is byte for byte one this member already re-derived for this slot
    (it streamed in, ``committee.stream``), so only the slot-wide rules are checked for it."""
    for i, entry in enumerate(entries):
        if derived is not None and derived[i]:
            # Verify it is this slot's (it was re-derived as one; this is free)
            if entry.event.slot != slot or entry.event.rollup not in config.rollups:
                raise CommitmentMismatch("a sealed bid for another slot or rollup",
                                         bid_id=entry.event.bid_id, seq=entry.seq)  # fmt: skip
            continue
        check_sealed_entry(config, slot, entry)
    check_sealed_set(entries)


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
    config: MemberConfig,
    proposal: SlotProposal,
    *,
    sample: frozenset[str] | None = None,
    decode: TxDecoder | None = None,
) -> dict[str, Bid]:
    """Check the proposal's slot key and that every part's log is its plaintext events with the
    openings merged in by seq, to the byte; return the opened (funded) bids by id, checked here
    (the slot's evidence check skips them). The set itself is checked by the caller (its
    commitment or certificate).

    ``sample`` None (the offline verifier): every opened bid is re-derived in full. A sample
    (a member): every ciphertext is opened, but only the bids of the sampling rule
    (``checks.compute_full_ids``: winners, replacements, ``sample``) and every sealed bid the
    logs leave out are re-derived in full; every other opened bid is bound to its payload
    (``compute_checked_openings``). ``decode`` decodes the fully derived bids' transactions."""
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
    if sample is None:
        opened = compute_openings(cfg.committee, slot, sealed.slot_key, entries, ctx)
    else:
        opened = compute_checked_openings(cfg, proposal, ctx, sample)
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


def compute_checked_openings(
    config: MemberConfig, proposal: SlotProposal, ctx: IntakeContext, sample: frozenset[str]
) -> OpenedSlot:
    """The slot's openings as a member checks them under the sampling rule: every ciphertext
    opened (one decapsulation per encapsulation, an AEAD per bid), so a refusal for not
    opening is confirmed; in full (``compute_payload_opening``) every bid the rule derives
    (winners, replacements, ``sample``) and every sealed bid the logs do not hold where it
    belongs (refused at opening, unfunded, or dropped: only the full derivation shows which);
    every other opened bid through ``compute_bound_opening``. The caller compares the logs
    with the result, as with ``compute_openings``."""
    sealed = proposal.sealed
    if sealed is None:
        return OpenedSlot((), 0)
    opener = Opener(config.committee, proposal.slot, sealed.slot_key)
    full = compute_full_ids(proposal, sample)
    logged = {(p.rollup, e.seq): e.event for p in proposal.parts for e in p.log}
    bound: dict[str, Bid] = {}  # by sealed bid id: the logged bid bound to its payload
    for entry in sealed.entries:
        held = logged.get((entry.event.rollup, entry.seq))
        if isinstance(held, Bid) and held.bid_id == entry.event.bid_id and held.bid_id not in full:
            bound[held.bid_id] = held
    bound_ctx = dataclasses.replace(ctx, decode=compute_held_decoder(bound.values()))
    openings: list[Opening] = []
    for entry in sealed.entries:
        bid = entry.event
        # Verify the ciphertext opens (every one: a refusal for not opening is confirmed)
        try:
            payload = opener.open(bid.ciphertext).payload
        except CiphertextError as exc:
            openings.append(compute_unopened(entry, exc))
            continue
        held = bound.get(bid.bid_id)
        if held is not None:
            openings.append(compute_bound_opening(entry, payload, held, bound_ctx))
        else:
            openings.append(compute_payload_opening(entry, payload, ctx))
    return OpenedSlot(tuple(openings), opener.decapsulations)


def compute_held_decoder(held: Iterable[Bid]) -> TxDecoder:
    """Decode a transaction of the ``held`` bids without decoding it: the transaction a held
    bid claims for those exact bytes, its hash checked to be their keccak; refuse bytes no held
    bid holds. What the bytes encode (sender, nonce, gas, fees, recipient, access list, chain
    id) is the logged bid's claim, as for a plaintext loser's binding (``checks.
    check_bid_binding``): left to the sample (docs/encryption.md, "Which bids a member
    re-opens"; decision 158). A coordinator that claims two transactions for the same bytes
    fails one binding (the first claim is the one every payload gets)."""
    claimed: dict[bytes, Tx] = {}
    for bid in held:
        for t in [t for leg in bid.legs for t in leg.txs] if bid.legs else bid.txs:
            claimed.setdefault(t.raw, t)

    def decode(raw: bytes) -> Tx:
        tx = claimed.get(raw)
        if tx is None:
            raise InvalidTransaction("a transaction of the payload is not in the logged bid")
        # Verify the claimed hash is the bytes' (the bundle hash and reverting hashes use it)
        if tx.hash != to_hex(keccak256(raw)):
            raise InvalidTransaction("a logged transaction's hash is not its bytes'")
        return tx

    return decode


def compute_bound_opening(
    entry: LoggedSealedBid, payload: bytes, held: Bid, ctx: IntakeContext
) -> Opening:
    """Bind the bid a log holds for a sealed bid to its opened ``payload`` without decoding its
    transactions: the payload goes through the same intake rules (``compute_payload_opening``)
    in ``ctx``, whose decoder (``compute_held_decoder``) gives each transaction's bytes the
    fields the logged bids claim for them, and the bid it makes must be ``held``, every field.
    So the slot, searcher, arrival, evidence, uuid, timestamps, reverting hashes, the explicit
    bid, the transactions' bytes and hashes, the bundle hash, and every intake rule over the
    claimed fields (a bid of tips computed from the claimed fees, the gas within ``maxGas``,
    the rollups the chain ids name) are the payload's; what only decoding shows (senders,
    nonces, gas limits below ``maxGas``, fees, recipients, access lists) is left to the
    sample, as for a plaintext loser. Raise ``OpeningMismatch`` otherwise. Cost: the intake
    rules without decoding (a JSON parse, a keccak per transaction)."""
    opening = compute_payload_opening(entry, payload, ctx)
    what = {"bid_id": held.bid_id, "seq": entry.seq}
    # Verify the payload makes a bid (a logged bid whose payload is refused is a forgery)
    if not opening.bids:
        code = opening.refused.error.code if opening.refused is not None else None
        raise OpeningMismatch("a logged opened bid's payload is refused at opening",
                              refused=code, **what)  # fmt: skip
    # Verify every field but the senders is the payload's
    made = compute_bid_copy(opening.bids[0], held.rollup)
    if made != held:
        field = next((f.name for f in dataclasses.fields(Bid)
                      if getattr(made, f.name) != getattr(held, f.name)), "")  # fmt: skip
        raise OpeningMismatch(f"a logged opened bid's {field!r} is not its payload's",
                              field=field, **what)  # fmt: skip
    return opening
