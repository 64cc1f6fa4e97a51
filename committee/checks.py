"""The rules a member checks before it releases a partial signature, as pure functions.

A proposal is a whole slot: one part per rollup (``committee.proposal.SlotProposal``), and the
committee signs the slot root over every part's block once. The member shell
(``committee.member``) calls the checks in this order, on every part, and refuses the whole slot
at the first that raises (each raises a ``committee.errors.Refusal`` subclass with a stable
code):

1. ``check_shape``, ``check_slot``: every part is well formed, its block hash matches its
   fields; the slot is for this member's committee and has exactly one part per rollup it
   serves (no rollup left out, none twice, none it does not serve);
2. ``check_timing``: by the member's own clock the slot has closed (within the skew bound) and
   its signing deadline has not passed;
3. (shell) slashing protection: the member never signed a different slot root for the slot;
4. ``check_parent``: each part's parent is the last signed block of its rollup the member knows,
   or a newer block carrying a valid committee certificate (its proof under a slot root the
   committee signed); the carried public pool is the parent's pending pool;
5. ``check_slot_evidence``: every event of every log is bound to its searcher's signed bytes,
   a cross-rollup bundle once per slot (its copies must be the same bundle); winners,
   replacements, cancels, every public tx (logged or carried) and a random sample of the other
   bids are fully re-derived (bids opened from sealed bids were checked by the same rule and
   sample before, against their payloads: ``committee.reopening``);
6. ``check_block``: re-running the whole slot (``auction.results.compute_slot_results``, every
   rollup's log together: ``compute_expected_results``) with the member's own rollup policies
   and clock gives exactly each proposed block;
7. ``check_fairness``: each block keeps the fairness rules of the member's own policy, and
   ``check_atomicity``: every cross-rollup entry is in the block of every rollup it names.

Nothing here trusts the coordinator's policy or clock: both come from ``MemberConfig``, which the
member builds from its own settings. Pure: time comes in as ``now_ms``, randomness as ``sample``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass

from auction import constants as C
from auction.auth import is_canonical_signature
from auction.bundles import TxDecoder, compute_bid_id, compute_cancel_slots, parse_quantity
from auction.columnar import SlotEncoder
from auction.encoding import ZERO_HASH, compute_pending_root
from auction.errors import BlockspaceError
from auction.fairness import check_block_fairness, check_slot_atomicity
from auction.hashing import from_hex, keccak256, to_hex
from auction.intake import (
    SEND_BUNDLE,
    IntakeContext,
    Refused,
    compute_intake_event,
    parse_params_object,
)
from auction.legs import DEFAULT_MAX_ROLLUPS_PER_BUNDLE, is_bid_copy
from auction.presets import Policy, Rollup
from auction.results import SlotPart, compute_slot_results
from auction.slots import SlotClock, compute_deadline_ms
from auction.transactions import decode_transaction
from auction.types import Bid, Block, Cancel, LoggedEvent, PublicTx, SlotResult
from committee.errors import (
    BidSetMismatch,
    BlockMismatch,
    IncompleteSlot,
    InvalidEvidence,
    Locked,
    MalformedProposal,
    NotMember,
    PoolMismatch,
    SlotExpired,
    SlotNotClosed,
    UnknownParent,
)
from committee.proposal import Proposal, SlotProposal, compute_header_hash
from committee.records import compute_tx_hashes
from committee.signing import is_valid_block_certificate
from committee.threshold import CommitteeInfo


@dataclass(frozen=True, slots=True)
class MemberConfig:
    """What a member checks against: its committee, its own rollup policies and slot clock."""

    committee: CommitteeInfo
    index: int
    rollups: Mapping[int, Rollup]
    clock: SlotClock
    max_slots_ahead: int
    signing_window_ms: int  # a slot may be signed until deadline + this
    max_clock_skew_ms: int  # how early (by this member's clock) a closed slot may be proposed
    # Rollups one cross-rollup bundle may span (the engine's ``Preset.max_rollups_per_bundle``).
    max_rollups_per_bundle: int = DEFAULT_MAX_ROLLUPS_PER_BUNDLE


@dataclass(frozen=True, slots=True)
class KnownBlock:
    """A member's head for a rollup: the newest block it signed, or the newest committee-signed
    block it adopted, whichever has the higher slot. It only signs children of its head."""

    slot: int
    block_hash: str
    pending_root: str


# --- 1. shape and membership ------------------------------------------------------------------


def check_shape(proposal: Proposal, *, header: bool = False) -> None:
    """Refuse a proposal whose block does not hash to its stated hash or names another slot.
    A ``header`` (a streamed proposal's, without bodies) is checked for its slot only: its
    hash is checked against the member's own block (``check_header``)."""
    block = proposal.block
    # Verify the block is the one the proposal names.
    if (block.rollup, block.slot) != (proposal.rollup, proposal.slot):
        raise MalformedProposal("the block's rollup or slot differs from the proposal's")
    if header:
        return
    # Verify the public-lane count fits the transactions.
    if block.public_tx_count > len(block.txs):
        raise MalformedProposal("public_tx_count exceeds the number of transactions")
    # Verify the stated block hash is the hash of the fields (what gets signed is that hash).
    if compute_header_hash(block, compute_tx_hashes(block)) != block.block_hash:
        raise MalformedProposal("block_hash does not match the block's fields")


def check_membership(config: MemberConfig, proposal: Proposal) -> None:
    """Refuse a proposal for another committee or a rollup this member does not serve."""
    # Verify the committee: a member signs only with the share of the committee it belongs to.
    if proposal.committee_id != config.committee.committee_id:
        raise NotMember(
            "this member belongs to another committee",
            committee_id="0x" + proposal.committee_id.hex(),
        )
    # Verify the rollup is one this member serves (its policy is the member's own).
    if proposal.rollup not in config.rollups:
        raise NotMember(
            f"this member does not serve rollup {proposal.rollup}", rollup=proposal.rollup
        )


def check_slot(config: MemberConfig, proposal: SlotProposal) -> None:
    """Refuse a slot for another committee, or whose parts are not exactly one per rollup this
    member serves: a slot root that leaves out a served rollup, or names one twice, is never
    signed (each rollup's block must be checked, and the leaves are one per rollup)."""
    for part in proposal.parts:
        # Verify each part is this slot's (a part is checked alone by the checks below).
        if (part.committee_id, part.slot, part.completion) != (
            proposal.committee_id, proposal.slot, proposal.completion,
        ):
            raise MalformedProposal("a part names another committee, slot or completion")
        check_membership(config, part)
    rollups = proposal.rollups
    # Verify no rollup has two parts (two leaves for one rollup).
    if len(set(rollups)) != len(rollups):
        raise IncompleteSlot("a rollup has two parts in this slot", rollups=list(rollups))
    # Verify every rollup this member serves is in the slot (completeness).
    missing = sorted(set(config.rollups) - set(rollups))
    if missing:
        raise IncompleteSlot(
            f"the slot leaves out rollups {missing} that this member serves", missing=missing
        )


# --- 2. timing --------------------------------------------------------------------------------


def compute_signing_deadline_ms(clock: SlotClock, slot: int, signing_window_ms: int) -> int:
    """The last instant a member may sign ``slot`` (and the coordinator waits for partials)."""
    return compute_deadline_ms(clock, slot) + signing_window_ms


def check_timing(config: MemberConfig, proposal: Proposal, now_ms: int) -> None:
    """Refuse a slot that has not closed yet, or (unless the coordinator asks to complete a
    block others already signed) whose signing deadline has passed.

    The deadline is not what keeps the chain from forking (the lock in ``check_parent`` does);
    it keeps a slow member from signing, and so locking itself to, a block its coordinator has
    already given up on. A completion request is how a block that missed its deadline with
    some partials gets its other signatures (docs/committee.md, "Safety and liveness").
    """
    deadline = compute_deadline_ms(config.clock, proposal.slot)
    # Verify the auction is over: signing early would let a coordinator cut bids off.
    if now_ms + config.max_clock_skew_ms < deadline:
        raise SlotNotClosed(
            f"slot {proposal.slot} closes in {deadline - now_ms} ms",
            slot=proposal.slot,
            deadline_ms=deadline,
        )
    if proposal.completion:
        return
    # Verify the slot is still being signed.
    signing_deadline = compute_signing_deadline_ms(
        config.clock, proposal.slot, config.signing_window_ms
    )
    if now_ms > signing_deadline:
        raise SlotExpired(
            f"slot {proposal.slot}'s signing deadline passed {now_ms - signing_deadline} ms ago",
            slot=proposal.slot,
            signing_deadline_ms=signing_deadline,
        )


# --- 4. parent and carried pool ---------------------------------------------------------------


def check_parent(
    config: MemberConfig, proposal: Proposal, known: KnownBlock | None
) -> KnownBlock | None:
    """Refuse a block that is not a child of the member's head; return a newer signed head to
    adopt first.

    The lock (docs/committee.md, "Safety"): a member's head is the newest block it signed or
    adopted, and it signs only children of its head, each at a higher slot. So it never signs
    two blocks with the same parent, and two blocks that t members signed always lie on one
    chain. A parent carrying a valid committee signature at a slot above the head (a member back
    from downtime, or one whose signed block was overtaken) is adopted: a sibling of what the
    member signed can only have t signatures if what it signed can never get them.
    """
    cert = proposal.parent
    block = proposal.block
    adopt: KnownBlock | None = None
    if cert is None:
        # Verify a parentless block is the rollup's first as far as this member knows.
        if block.parent_hash != ZERO_HASH:
            raise UnknownParent("a block with a parent must carry the parent's certificate")
        if known is not None:
            raise Locked(
                f"this member's head is block {known.block_hash} (slot {known.slot})",
                rollup=proposal.rollup,
                known_slot=known.slot,
                known_block_hash=known.block_hash,
            )
        pool_root = ZERO_HASH
    else:
        header = cert.header
        # Verify the certificate describes this block's parent, hash recomputed from its fields.
        if header.rollup != proposal.rollup or header.slot >= proposal.slot:
            raise UnknownParent("the parent must be an earlier block of the same rollup")
        if cert.compute_block_hash() != header.block_hash:
            raise UnknownParent("the parent's block_hash does not match its header")
        if header.block_hash != block.parent_hash:
            raise UnknownParent("the block's parent_hash is not the certified parent")
        if known is not None and (known.slot, known.block_hash) == (header.slot, header.block_hash):
            pass  # the member's head: the block it signed or adopted last
        elif known is None or header.slot > known.slot:
            # Verify the committee signed it (its proof under a signed slot root): only then may
            # it replace what the member knows.
            if not is_valid_block_certificate(
                config.committee,
                header.rollup,
                header.slot,
                header.block_hash,
                cert.slot_proof,
                cert.signature,
            ):
                raise UnknownParent("the parent's committee certificate does not verify")
            adopt = KnownBlock(header.slot, header.block_hash, header.pending_root)
        else:
            # Verify the block extends the head: a parent at or below it would fork from it.
            raise Locked(
                f"the parent (slot {header.slot}) is not this member's head "
                f"(block {known.block_hash}, slot {known.slot})",
                rollup=proposal.rollup,
                known_slot=known.slot,
                known_block_hash=known.block_hash,
                parent_slot=header.slot,
            )
        pool_root = header.pending_root
    # Verify the public txs carried in are exactly the parent's pending pool.
    if compute_pending_root(proposal.carried) != pool_root:
        raise PoolMismatch("the carried public txs are not the parent's pending pool")
    return adopt


# --- 5. evidence ------------------------------------------------------------------------------


def _header_address(signature: str) -> str:
    return signature.split(":", 1)[0].lower()


def check_bid_binding(bid: Bid, proposal: Proposal) -> None:
    """Cheap checks for every bid: it is for this slot, and its id, searcher and request fields
    are the ones in the bytes the searcher signed (no ECDSA: O(size of the body))."""
    check_bid_binding_at(bid, proposal.rollup, proposal.slot)


def check_bid_binding_at(bid: Bid, rollup: int, slot: int) -> None:
    """``check_bid_binding`` for a bid of ``rollup``'s log of ``slot`` (a streamed event has
    no proposal yet)."""
    what = {"bid_id": bid.bid_id}
    # Verify the bid is for this slot of this rollup.
    if (bid.rollup, bid.slot) != (rollup, slot):
        raise InvalidEvidence("a bid for another slot is in the log", **what)
    # Verify the id is the hash of the evidence: the bid-set root then commits to the evidence.
    if compute_bid_id(bid.evidence) != bid.bid_id:
        raise InvalidEvidence("bid id is not the hash of its evidence", **what)
    # Verify the header is in the one spelling intake stores (so the id is spelling-free).
    if not is_canonical_signature(bid.evidence.signature):
        raise InvalidEvidence("the signature header is not in canonical form", **what)
    # Verify the searcher is the one the signature header names.
    if _header_address(bid.evidence.signature) != bid.searcher:
        raise InvalidEvidence("searcher differs from the signature header", **what)
    # Verify the slot, transactions and explicit bid are the signed ones.
    try:
        params = parse_params_object(bid.evidence.body, SEND_BUNDLE)
        signed_slot = parse_quantity(params.get("blockNumber"), "blockNumber")
        raw = params.get("txs")
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise ValueError("txs is not a list of strings")
        explicit = parse_quantity(params.get("bid"), "bid", allow_decimal_string=True)
    except (ValueError, BlockspaceError) as exc:
        raise InvalidEvidence(f"bad evidence: {exc}", **what) from None
    if signed_slot != bid.slot:
        raise InvalidEvidence("the signed request targets another slot", **what)
    # (decoded as intake decodes them: the bytes, not their spelling, are what was signed)
    try:
        signed_txs = [from_hex(x, what="txs entry") for x in raw]
    except ValueError as exc:
        raise InvalidEvidence(f"bad evidence: {exc}", **what) from None
    check_copy_txs(bid, signed_txs)
    if bid.explicit_bid != (explicit is not None) or (
        explicit is not None and explicit != bid.bid_wei
    ):
        raise InvalidEvidence("bid amount differs from the signed request", **what)


def check_copy_txs(bid: Bid, signed_txs: list[bytes]) -> None:
    """A bid's transactions are the signed request's. A cross-rollup bundle's copy: its legs,
    one per rollup (two or more, ascending, at most ``max_rollups_per_bundle`` was checked at
    intake and is re-checked on winners), are the request's transactions split by leg, each in
    request order, every transaction in exactly one leg; the copy's own transactions are its
    rollup's leg; each leg's transactions name its chain. (That the chain ids are the ones the
    raw bytes encode is what only decoding shows: checked on winners and sampled bids.)"""
    what = {"bid_id": bid.bid_id}
    if not bid.legs:
        if signed_txs != [t.raw for t in bid.txs]:
            raise InvalidEvidence("transactions differ from the signed request", **what)
        return
    rollups = [leg.rollup for leg in bid.legs]
    # Verify the legs: two or more, ascending, the copy's own rollup among them.
    if len(rollups) < 2 or rollups != sorted(set(rollups)) or bid.rollup not in rollups:
        raise InvalidEvidence("a cross-rollup bid's legs are malformed", **what)
    leg_of: dict[bytes, int] = {}
    for leg in bid.legs:
        for t in leg.txs:
            if t.chain_id != leg.rollup or t.raw in leg_of:
                raise InvalidEvidence("a leg holds another chain's or a repeated tx", **what)
            leg_of[t.raw] = leg.rollup
        if leg.gas != sum(t.gas_limit for t in leg.txs):
            raise InvalidEvidence("a leg's gas is not its transactions'", **what)
    # Verify every signed transaction is in one leg, each leg in request order.
    if sorted(leg_of) != sorted(signed_txs):
        raise InvalidEvidence("the legs' transactions differ from the signed request", **what)
    for leg in bid.legs:
        if [raw for raw in signed_txs if leg_of[raw] == leg.rollup] != [t.raw for t in leg.txs]:
            raise InvalidEvidence("a leg is not in the signed request's order", **what)
    # Verify the copy is its rollup's leg.
    own = next(leg for leg in bid.legs if leg.rollup == bid.rollup)
    if (bid.txs, bid.gas) != (own.txs, own.gas):
        raise InvalidEvidence("the copy's transactions are not its rollup's leg", **what)


def compute_member_context(
    config: MemberConfig, rollup: int, decode: TxDecoder = decode_transaction
) -> IntakeContext:
    """The intake context a member re-derives events in: its own rollups and clock; no endpoint
    pin and no protected hashes (the close re-checks protection from the log and the pool);
    ``decode`` decodes a bundle's transactions (a memo shared by the slot's parts)."""
    return IntakeContext(
        rollups=config.rollups,
        clock=config.clock,
        max_slots_ahead=config.max_slots_ahead,
        default_rollup=rollup,
        max_rollups_per_bundle=config.max_rollups_per_bundle,
        decode=decode,
    )


def check_bid_bounds(bid: Bid, policy: Policy) -> None:
    """Cheap checks for every bid: the amounts the slot function computes with are in the
    ranges intake enforces (a bid at most ``MAX_BID_WEI``, its gas its transactions' and at
    most the block's), whatever a coordinator claims for a bid that is not re-derived."""
    what = {"bid_id": bid.bid_id}
    # Verify the bid is within intake's bound (the block's sums and the solver rely on it).
    if not 1 <= bid.bid_wei <= C.MAX_BID_WEI:
        raise InvalidEvidence("the bid is outside what intake accepts", **what)
    # Verify the gas is its transactions' and fits the block.
    if bid.gas != sum(t.gas_limit for t in bid.txs) or bid.gas > policy.gas_limit:
        raise InvalidEvidence("the bid's gas is not its transactions' or exceeds the block", **what)


def check_bid_derivation(
    config: MemberConfig, bid: Bid, decode: TxDecoder = decode_transaction
) -> None:
    """Full check: re-derive the whole bid from its evidence at its receive time, through the
    intake's own function (ECDSA for the header and every transaction, through ``decode``)."""
    what = {"bid_id": bid.bid_id}
    derived = compute_intake_event(
        bid.evidence.body,
        bid.evidence.signature,
        bid.received_ms,
        compute_member_context(config, bid.rollup, decode),
    )
    if isinstance(derived, Refused):
        error = derived.error
        raise InvalidEvidence(
            f"evidence does not check: {error.message}", cause=error.code, **what
        )
    # Verify every field (amount, gas, transactions, senders, uuid, ...) is the derived one.
    if derived != bid:
        field = _first_difference(derived, bid) if isinstance(derived, Bid) else "kind"
        raise InvalidEvidence(f"bid field {field!r} differs from its evidence", field=field, **what)


def check_cancel(config: MemberConfig, cancel: Cancel, proposal: Proposal) -> None:
    """Full check of a cancel (it removes a bid, so it is never sampled)."""
    check_cancel_at(config, cancel, proposal.rollup, proposal.slot)


def check_cancel_at(config: MemberConfig, cancel: Cancel, rollup: int, slot: int) -> None:
    """``check_cancel`` for a cancel of ``rollup``'s log of ``slot``."""
    what = {"searcher": cancel.searcher, "replacement_uuid": cancel.replacement_uuid}
    # Verify it is for this rollup and this slot is in its window (the slot it names, or one
    # open when it arrived).
    window = compute_cancel_slots(cancel, config.clock, config.max_slots_ahead)
    if cancel.rollup != rollup or slot not in window:
        raise InvalidEvidence("a cancel for another rollup or time is in the log", **what)
    derived = compute_intake_event(
        cancel.evidence.body,
        cancel.evidence.signature,
        cancel.received_ms,
        compute_member_context(config, cancel.rollup),
    )
    if isinstance(derived, Refused):
        raise InvalidEvidence(f"cancel evidence does not check: {derived.error.message}", **what)
    if derived != cancel:
        raise InvalidEvidence("cancel differs from its evidence", **what)


def check_public_tx(
    ptx: PublicTx, proposal: Proposal, *, decode: TxDecoder = decode_transaction
) -> None:
    """A public tx is its own evidence: its fields are what its signed bytes decode to."""
    check_public_tx_at(ptx, proposal.rollup, decode=decode)


def check_public_tx_at(
    ptx: PublicTx, rollup: int, *, decode: TxDecoder = decode_transaction
) -> None:
    """``check_public_tx`` for a public tx of ``rollup``'s log."""
    what = {"tx": ptx.tx.hash}
    # Verify it is for this rollup and its hash is the hash of its bytes.
    if ptx.rollup != rollup or ptx.tx.chain_id != rollup:
        raise InvalidEvidence("a public tx for another rollup is in the log", **what)
    if to_hex(keccak256(ptx.tx.raw)) != ptx.tx.hash:
        raise InvalidEvidence("public tx hash is not the hash of its bytes", **what)
    _check_decoding(ptx.tx.raw, ptx.tx, what, decode)


def _check_decoding(
    raw: bytes, claimed: object, what: dict[str, str], decode: TxDecoder = decode_transaction
) -> None:
    try:
        decoded = decode(raw)
    except BlockspaceError as exc:
        raise InvalidEvidence(f"public tx does not decode: {exc.message}", **what) from None
    if decoded != claimed:
        raise InvalidEvidence("public tx fields differ from its signed bytes", **what)


def check_evidence(
    config: MemberConfig,
    proposal: Proposal,
    sample: frozenset[str],
    *,
    decode: TxDecoder = decode_transaction,
) -> None:
    """``check_slot_evidence`` of one part alone (a slot of one rollup)."""
    one = SlotProposal(proposal.committee_id, proposal.slot, (proposal,), proposal.completion)
    check_slot_evidence(config, one, sample, decode=decode)


def check_slot_evidence(
    config: MemberConfig,
    proposal: SlotProposal,
    sample: frozenset[str],
    *,
    decode: TxDecoder = decode_transaction,
    bundle_decode: TxDecoder | None = None,
    streamed: Mapping[int, int] | None = None,
    derived: Mapping[str, Bid] | None = None,
) -> None:
    """Check the evidence of every logged event of every part; fully re-derive the ones that
    decide a block. A bundle's evidence is checked **once per slot**, however many rollups'
    logs hold a copy of it: every copy must be exactly the bundle's copy for its rollup
    (``auction.legs.compute_bid_copy`` of the first copy seen), so what holds for one copy's
    evidence holds for all.

    Full (ECDSA) checks: a bundle that wins in any block, replaces an earlier bid of its
    searcher in any log, or whose id is in ``sample`` (the shell draws it at random, so a
    coordinator cannot know which losing bids get the full check); every cancel (it removes
    other bids) and every public tx, logged or carried (its gas, fee and sender decide whether
    the pool keeps it and when it is due, so a forged one would censor). Every other bundle gets
    ``check_bid_binding``; every copy gets ``check_bid_bounds`` under its rollup's policy.
    ``decode`` decodes raw public txs (the shell passes a memo, so a tx carried from slot to
    slot costs one ECDSA recovery); ``bundle_decode`` the transactions of fully checked bundles
    (default: a memo of this slot, shared by its parts, so a transaction in several bundles is
    decoded once). Cost: O(log bytes) keccak plus about 0.3 ms of ECDSA per fully checked
    bundle and 0.08 ms per public tx not decoded before.

    Streaming (``committee.stream``): ``streamed`` gives, by rollup, how many leading entries of
    its log the member already checked one by one as they arrived (``check_streamed_event``:
    bounds, cancels, public txs, and binding or full derivation), and ``derived`` the bids it
    already re-derived in full, by id (a copy here counts as derived only if it is exactly
    the derived bid's copy for its rollup); the member adds the bids opened from sealed bids,
    checked against their payloads by this rule and ``sample`` (``committee.reopening.
    check_openings``), since their evidence is no plaintext request. Those checks are not
    repeated; everything that
    needs the whole slot (copies of one bundle, winners in the log, which bids win or replace,
    the carried pool) is still checked here.
    """
    bundle_decode = bundle_decode or compute_decode_memo(decode_transaction)
    first: dict[str, tuple[Bid, Proposal]] = {}  # by bid id: its first copy and that part
    full: set[str] = set()
    prechecked: set[str] = set()  # bids whose first copy was checked as it streamed in
    for part in proposal.parts:
        done = streamed.get(part.rollup, 0) if streamed else 0
        full |= _check_part_events(config, part, sample, first, decode, done, prechecked)
    for bid_id, (bid, part) in first.items():
        known = derived.get(bid_id) if derived else None
        # (the streamed prefix holds the very objects that were derived: no field-by-field
        # comparison for them)
        if known is not None and (known is bid or known == bid or is_bid_copy(bid, known)):
            continue  # re-derived in full as it streamed in
        if bid_id in full:
            # Re-derivation checks every field, the id and the slot included.
            if bid.slot != part.slot:
                raise InvalidEvidence("a bid for another slot is in the log", bid_id=bid_id)
            check_bid_derivation(config, bid, bundle_decode)
        elif bid_id not in prechecked:
            check_bid_binding(bid, part)


def check_streamed_event(
    config: MemberConfig,
    rollup: int,
    slot: int,
    event: Bid | Cancel | PublicTx,
    *,
    full: bool,
    decode: TxDecoder = decode_transaction,
) -> bool:
    """Check one event of ``rollup``'s log of ``slot`` as it streams in, before the slot
    closes: a bid's bounds and either its full re-derivation (``full``) or its binding to the
    signed bytes; a cancel and a public tx in full (as ``check_slot_evidence`` does). What
    needs the whole slot (winners, replacements, copies of one bundle) waits for the proposal.
    Returns whether the event is a bid re-derived in full. Raises ``InvalidEvidence``."""
    if rollup not in config.rollups:
        raise NotMember(f"this member does not serve rollup {rollup}", rollup=rollup)
    if isinstance(event, Bid):
        check_bid_bounds(event, config.rollups[rollup].policy)
        if (event.rollup, event.slot) != (rollup, slot):
            raise InvalidEvidence("a bid for another slot is in the log", bid_id=event.bid_id)
        if full:
            check_bid_derivation(config, event, decode)
        else:
            check_bid_binding_at(event, rollup, slot)
        return full
    if isinstance(event, Cancel):
        check_cancel_at(config, event, rollup, slot)
    else:
        check_public_tx_at(event, rollup, decode=decode)
    return False


def compute_decode_memo(decode: TxDecoder) -> TxDecoder:
    """``decode`` remembering what it decoded (refusals are not remembered: they raise). For
    one slot's check: unbounded, dropped with the check."""
    return functools.cache(decode)


def _check_part_events(
    config: MemberConfig,
    part: Proposal,
    sample: frozenset[str],
    first: dict[str, tuple[Bid, Proposal]],
    decode: TxDecoder,
    streamed: int = 0,
    prechecked: set[str] | None = None,
) -> set[str]:
    """Check one part's events but the bids' evidence (each copy's bounds and sameness as its
    bundle's first copy, recorded in ``first``; cancels; public txs); return the ids of the
    bids to re-derive in full. The first ``streamed`` entries were checked one by one as they
    streamed in: only what needs the whole slot is checked for them (their first copies'
    ids are added to ``prechecked``)."""
    policy = config.rollups[part.rollup].policy
    full = compute_part_full_ids(part, sample)
    log = part.log
    logged: set[str] = set()  # this part's bid ids
    # The streamed prefix: its events were checked one by one as they arrived; what is left is
    # what needs the whole slot (each copy the same bundle as its id's first copy). One tight
    # pass: it is most of the log, and this runs at the deadline.
    for entry in log[:streamed]:
        ev = entry.event
        if isinstance(ev, Bid):
            bid_id = ev.bid_id
            logged.add(bid_id)
            if prechecked is not None and bid_id not in first:
                prechecked.add(bid_id)
            _check_same_bundle(ev, part, first)
    for entry in log[streamed:]:
        ev = entry.event
        if isinstance(ev, Bid):
            logged.add(ev.bid_id)
            check_bid_bounds(ev, policy)
            _check_same_bundle(ev, part, first)
        elif isinstance(ev, Cancel):
            check_cancel(config, ev, part)
        else:
            check_public_tx(ev, part, decode=decode)
    # Verify every carried tx is what its bytes decode to (the pending root pins only its hash,
    # arrival slot, seq and protection).
    for pending in part.carried:
        _check_decoding(pending.tx.raw, pending.tx, {"tx": pending.tx.hash}, decode)
    # Verify every winner is in the log (the repack would miss it too; this names it).
    for bid_id in {w.bid_id for w in part.block.bundles} - logged:
        raise InvalidEvidence("a winning bid is not in the log", bid_id=bid_id)
    return full


def compute_part_full_ids(part: Proposal, sample: frozenset[str]) -> set[str]:
    """The ids of ``part``'s bids a member re-derives in full (the sampling rule): every
    winner, every bid that replaces an earlier one of its searcher under its uuid, and every
    bid in ``sample``; the others are bound to their signed bytes."""
    winners = {w.bid_id for w in part.block.bundles}
    uuid_keys: set[tuple[str, str]] = set()
    full: set[str] = set()
    for entry in part.log:
        ev = entry.event
        if not isinstance(ev, Bid):
            continue
        if ev.bid_id in winners or ev.bid_id in sample:
            full.add(ev.bid_id)
        if ev.replacement_uuid is not None:
            key = (ev.searcher, ev.replacement_uuid)
            if key in uuid_keys:  # it replaces an earlier bid of the searcher
                full.add(ev.bid_id)
            uuid_keys.add(key)
    return full


def compute_full_ids(proposal: SlotProposal, sample: frozenset[str]) -> set[str]:
    """``compute_part_full_ids`` over every part of the slot (a bundle's copies share its id:
    one that wins, replaces or is sampled in any log is derived in full)."""
    return set().union(*(compute_part_full_ids(p, sample) for p in proposal.parts))


def _check_same_bundle(bid: Bid, part: Proposal, first: dict[str, tuple[Bid, Proposal]]) -> None:
    """Refuse a copy for another rollup, or one that is not its bundle's copy for its rollup:
    the first copy's evidence, checked once, then speaks for every copy."""
    # Verify the copy is this rollup's.
    if bid.rollup != part.rollup:
        raise InvalidEvidence("a bid for another slot is in the log", bid_id=bid.bid_id)
    seen = first.setdefault(bid.bid_id, (bid, part))[0]
    # Verify it is the same signed bundle as every other copy of its id (a single-rollup bid
    # logged twice: the same bid).
    if seen is not bid and not is_bid_copy(bid, seen):
        raise InvalidEvidence(
            "the copies of a bundle differ: not one signed bundle", bid_id=bid.bid_id
        )


# --- 6. the block is the slot function's ------------------------------------------------------


def _first_difference(a: object, b: object) -> str:
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        if getattr(a, f.name) != getattr(b, f.name):
            return f.name
    return ""


def compute_expected_results(
    config: MemberConfig, proposal: SlotProposal, encoder: SlotEncoder | None = None
) -> dict[int, SlotResult]:
    """Re-run the whole slot with the member's own policies and clock on the proposed logs,
    every rollup together, as the engine closes it (``compute_slot_results``: cross-rollup
    bundles couple the rollups), without what no block depends on: the analysts'
    price-of-fairness packing and each bid's outcome (the slot's history, which the engine
    stores; every result's ``outcomes`` is empty here). Only ``.block`` is to be read. By
    rollup. ``encoder``: the slot's bid copies encoded as they streamed in (the same re-run,
    packed from arrays; a copy of any other object is encoded anew)."""
    deadline = compute_deadline_ms(config.clock, proposal.slot)
    parts = [
        SlotPart(config.rollups[p.rollup], p.block.parent_hash, p.log, p.carried)
        for p in proposal.parts
    ]
    results = compute_slot_results(
        proposal.slot, deadline, parts, price_of_fairness=False, encoder=encoder, outcomes=False
    )
    return {r.rollup: r for r in results}


def compute_expected_result(config: MemberConfig, proposal: Proposal) -> SlotResult:
    """One part re-run as the slot's only rollup (a one-rollup slot is exactly that)."""
    one = SlotProposal(proposal.committee_id, proposal.slot, (proposal,), proposal.completion)
    return compute_expected_results(config, one)[proposal.rollup]


def check_block(config: MemberConfig, proposal: Proposal, expected: SlotResult) -> None:
    """Refuse a block that is not exactly the re-run's (order, payments, lane, roots included).

    When the block differs, the refusal names a broken fairness rule if there is one (the most
    useful reason), else the bid-set root or the first differing field.
    """
    block = proposal.block
    if expected.block == block:
        return
    # Verify the bid-set root commits to this log.
    if expected.block.bid_set_root != block.bid_set_root:
        raise BidSetMismatch("the bid-set root is not the root of the proposed log")
    check_fairness(config.rollups[proposal.rollup], proposal, block)
    field = _first_difference(expected.block, block)
    raise BlockMismatch(
        f"re-running the slot gives a different {field!r}",
        field=field,
        expected_block_hash=expected.block.block_hash,
    )


def check_header(proposal: Proposal, expected: SlotResult) -> None:
    """Refuse a streamed proposal's header (``proposal.block`` without bodies) that is not the
    header of the re-run's block: the bid-set root first (the log), then the first differing
    field; with every other field equal, ``block_hash`` (the bodies differ). The block hash
    commits to every field and the bodies, so an equal hash is the re-run's block."""
    block = proposal.block
    mine = dataclasses.replace(expected.block, bundles=(), txs=())
    if mine == block:
        return
    # Verify the bid-set root commits to this log.
    if mine.bid_set_root != block.bid_set_root:
        raise BidSetMismatch("the bid-set root is not the root of the proposed log")
    # The fields the hash covers name the difference better than the hash does.
    field = _first_difference(
        dataclasses.replace(mine, block_hash=""), dataclasses.replace(block, block_hash="")
    )
    field = field or "block_hash"
    raise BlockMismatch(
        f"re-running the slot gives a different {field!r}",
        field=field,
        expected_block_hash=expected.block.block_hash,
    )


# --- 7. fairness ------------------------------------------------------------------------------


def check_fairness(rollup: Rollup, proposal: Proposal, block: Block) -> None:
    """Refuse a block that breaks a fairness rule of ``rollup``'s policy (the core's checker)."""
    check_block_fairness(rollup, proposal.slot, proposal.carried, proposal.log, block)


def check_atomicity(proposal: SlotProposal) -> None:
    """Refuse a slot whose blocks break cross-rollup atomicity (``auction.fairness``): every
    cross-rollup entry in the block of every rollup it names, as the same bundle, its legs'
    txs in order, its payment split by gas. Defence in depth beside the re-run."""
    check_slot_atomicity({p.rollup: p.block for p in proposal.parts})


def compute_event_ids(log: tuple[LoggedEvent, ...] | list[LoggedEvent]) -> list[str]:
    """Ids a sample can be drawn from: the bids' (every public tx is checked in full)."""
    return [e.event.bid_id for e in log if isinstance(e.event, Bid)]


def compute_slot_event_ids(proposal: SlotProposal) -> list[str]:
    """The slot's bid ids, each once (a cross-rollup bundle's copies share one), in log order."""
    return list(dict.fromkeys(i for p in proposal.parts for i in compute_event_ids(p.log)))
