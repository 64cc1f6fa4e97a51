"""Accountability evidence: documents anyone can check offline, and the pure checks.

Four kinds (docs/accountability.md):

* ``censorship``: the operator's signed receipt for an event, the committee's signed block of the
  receipt's slot and rollup, and the slot's full event-id list. Valid when the receipt and the
  block verify, the list hashes to the block's bid-set root, and the receipt's event is not in
  it: the operator acknowledged an event and the slot was signed without it.
* ``member_equivocation``: two partial signatures by one member over the signing roots of two
  different slot roots of the same (committee, slot), both verifying under the member's public
  key share.
* ``operator_equivocation``: two endorsements (``committee.endorsement``: the operator's
  signature of a proposal's committee, slot and slot root) for one (committee, slot) with
  different slot roots, both recovering the same operator.
* ``member_rule_breaking``: a whole-log proposal endorsed by the operator, a member's valid
  partial over its slot root, and the deterministic re-run of the member's rule checks on it
  (``committee.checks``: the slot's evidence, the re-run close, fairness, atomicity) finding a
  rule the signed blocks break. Checking it needs the deployment's rules (``MemberConfig``)
  and costs a close.

Verification needs only public data: the committee's public info (``committee.json``) and, if
the caller pins it, the operator's address. Every refusal is an ``EvidenceRefused`` with a stable
code. A valid document's ``evidence_id`` names the offence, not the file (the same offence
proven twice, by other receipts or other partial pairs, has one id), so a ledger can act on it
once. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auction.ciphertext import compute_ciphertext_leaf_hash, compute_ciphertext_root_of_leaves
from auction.encoding import compute_bid_set_root
from auction.errors import BlockspaceError
from auction.hashing import keccak256, to_hex
from auction.receipts import (
    KIND_SEALED_BID,
    SignedReceipt,
    parse_hash,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)
from auction.types import Bid
from committee import bls, threshold, wire
from committee.checks import (
    MemberConfig,
    check_atomicity,
    check_block,
    check_fairness,
    check_shape,
    check_slot,
    check_slot_evidence,
    compute_expected_results,
)
from committee.endorsement import (
    Endorsement,
    endorsement_from_json,
    endorsement_to_json,
    verify_endorsement,
)
from committee.errors import (
    BlockFollowsRules,
    BlockNotCertified,
    DuplicateItems,
    EventIncluded,
    EventListMismatch,
    InvalidSignedBlock,
    MalformedEvidence,
    MalformedProposal,
    PartialDoesNotVerify,
    ProposalMismatch,
    RulesRequired,
    SameProposal,
    SameSigningRoot,
    UnknownEvidenceKind,
    UnknownMember,
    UnsupportedEvidenceVersion,
    WrongCommittee,
    WrongRollup,
    WrongSlot,
)
from committee.proposal import SlotProposal, encode_proposal, parse_proposal
from committee.records import SignedBlock, signed_block_from_json, signed_block_to_json
from committee.reopening import check_openings, check_sealed_certificate
from committee.signing import compute_slot_signing_root
from committee.verify import verify_signed_block

EVIDENCE_FORMAT: Final = "blockspace-evidence"
EVIDENCE_VERSION: Final = 1
KIND_CENSORSHIP: Final = "censorship"
KIND_MEMBER_EQUIVOCATION: Final = "member_equivocation"
KIND_OPERATOR_EQUIVOCATION: Final = "operator_equivocation"
KIND_MEMBER_RULE_BREAKING: Final = "member_rule_breaking"
# A slot's log holds at most a few thousand events (Policy.max_bids_per_slot); this bounds a
# hostile file's cost.
MAX_EVENT_IDS: Final = 1 << 20

_CENSORSHIP_TAG: Final = b"blockspace/evidence/censorship/v1\x00"
_EQUIVOCATION_TAG: Final = b"blockspace/evidence/member-equivocation/v1\x00"
_CENSORSHIP_KEYS: Final = frozenset(
    {"format", "version", "kind", "receipt", "signed_block", "event_ids"})
# A censored encrypted bid's evidence also lists the slot's committed ciphertext set.
_SEALED_KEYS: Final = frozenset({"ciphertexts"})
_EQUIVOCATION_KEYS: Final = frozenset(
    {"format", "version", "kind", "committee_id", "slot", "member", "first", "second"})
_PARTIAL_KEYS: Final = frozenset({"slot_root", "partial"})
_OPERATOR_EQUIVOCATION_TAG: Final = b"blockspace/evidence/operator-equivocation/v1\x00"
_RULE_BREAKING_TAG: Final = b"blockspace/evidence/member-rule-breaking/v1\x00"
_OPERATOR_EQUIVOCATION_KEYS: Final = frozenset(
    {"format", "version", "kind", "first", "second"})
_RULE_BREAKING_KEYS: Final = frozenset(
    {"format", "version", "kind", "member", "partial", "endorsement", "proposal"})
_KIND_KEYS: Final = {
    KIND_CENSORSHIP: _CENSORSHIP_KEYS,
    KIND_MEMBER_EQUIVOCATION: _EQUIVOCATION_KEYS,
    KIND_OPERATOR_EQUIVOCATION: _OPERATOR_EQUIVOCATION_KEYS,
    KIND_MEMBER_RULE_BREAKING: _RULE_BREAKING_KEYS,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What valid evidence proves: its kind, who offended, and the offence's id."""

    kind: str
    offender: str  # "operator 0x…" or "member <index>"
    evidence_id: str
    committee_id: bytes
    slot: int
    rollup: int | None  # the censored event's rollup; None for a member's equivocation
    detail: str


@dataclass(frozen=True, slots=True)
class SignedPartial:
    """One member's partial signature and the slot root it signs (its signing root is
    ``compute_slot_signing_root(committee_id, slot, slot_root)``)."""

    slot_root: bytes
    partial: bytes


# --- evidence ids -----------------------------------------------------------------------------


def compute_censorship_id(committee_id: bytes, rollup: int, slot: int, event_id: str) -> str:
    """The id of "the operator dropped ``event_id`` from (committee, rollup, slot)"."""
    return to_hex(keccak256(
        _CENSORSHIP_TAG + committee_id + rollup.to_bytes(32, "big") + slot.to_bytes(8, "big")
        + bytes.fromhex(event_id[2:])
    ))


def compute_equivocation_id(committee_id: bytes, slot: int, member: int) -> str:
    """The id of "member ``member`` signed two slot roots of (committee, slot)"."""
    return to_hex(keccak256(
        _EQUIVOCATION_TAG + committee_id + slot.to_bytes(8, "big") + member.to_bytes(2, "big")
    ))


# --- building documents -----------------------------------------------------------------------


def compute_censorship_evidence(
    receipt: SignedReceipt,
    signed: SignedBlock,
    event_ids: Sequence[str],
    ciphertexts: Sequence[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The censorship evidence document (checked by ``verify_evidence``, not here);
    ``ciphertexts`` (an encrypted bid's receipt) is the slot's committed ciphertext set, each
    ``{"bid_id", "ciphertext_sha256"}``."""
    doc = {
        "format": EVIDENCE_FORMAT,
        "version": EVIDENCE_VERSION,
        "kind": KIND_CENSORSHIP,
        "receipt": receipt_to_json(receipt),
        "signed_block": signed_block_to_json(signed),
        "event_ids": list(event_ids),
    }
    if ciphertexts is not None:
        doc["ciphertexts"] = list(ciphertexts)
    return doc


def compute_equivocation_evidence(
    committee_id: bytes, slot: int, member: int, first: SignedPartial, second: SignedPartial
) -> dict[str, Any]:
    """The member-equivocation evidence document (checked by ``verify_evidence``)."""
    return {
        "format": EVIDENCE_FORMAT,
        "version": EVIDENCE_VERSION,
        "kind": KIND_MEMBER_EQUIVOCATION,
        "committee_id": to_hex(committee_id),
        "slot": slot,
        "member": member,
        "first": {"slot_root": to_hex(first.slot_root), "partial": to_hex(first.partial)},
        "second": {"slot_root": to_hex(second.slot_root), "partial": to_hex(second.partial)},
    }


# --- verification -----------------------------------------------------------------------------


def verify_evidence(
    doc: Any,
    committee: threshold.CommitteeInfo,
    *,
    operator: str | None = None,
    rules: MemberConfig | None = None,
) -> Verdict:
    """Check an evidence document against the committee (and the operator address, if
    given; ``rules``: the deployment's policies and clock, which rule-breaking evidence
    re-runs); return its verdict, or raise the ``EvidenceRefused`` that says why not."""
    d = _envelope(doc)
    if d["kind"] == KIND_CENSORSHIP:
        return verify_censorship(d, committee, operator=operator)
    if d["kind"] == KIND_OPERATOR_EQUIVOCATION:
        return verify_operator_equivocation(d, committee, operator=operator)
    if d["kind"] == KIND_MEMBER_RULE_BREAKING:
        return verify_member_rule_breaking(d, committee, operator=operator, rules=rules)
    return verify_member_equivocation(d, committee)


def _envelope(doc: Any) -> dict[str, Any]:
    """The document's format, version and kind, checked before anything else is read."""
    if not isinstance(doc, dict):
        raise MalformedEvidence("evidence must be a JSON object", field="document")
    if doc.get("format") != EVIDENCE_FORMAT:
        raise MalformedEvidence(f"format must be {EVIDENCE_FORMAT!r}", field="format")
    version = doc.get("version")
    if isinstance(version, bool) or version != EVIDENCE_VERSION:
        raise UnsupportedEvidenceVersion(f"evidence version {version!r} is not supported "
                                         f"(this verifier reads {EVIDENCE_VERSION})")
    kind = doc.get("kind")
    keys = _KIND_KEYS
    if not isinstance(kind, str) or kind not in keys:
        raise UnknownEvidenceKind(f"unknown evidence kind {kind!r}", kind=str(kind)[:64])
    optional = _SEALED_KEYS if kind == KIND_CENSORSHIP else frozenset()
    missing = sorted(keys[kind] - set(doc))
    unknown = sorted(set(doc) - keys[kind] - optional)
    if missing or unknown:
        raise MalformedEvidence("evidence fields are missing or unknown",
                                field=(missing or unknown)[0], missing=missing, unknown=unknown)
    return doc


def verify_censorship(
    doc: dict[str, Any], committee: threshold.CommitteeInfo, *, operator: str | None = None
) -> Verdict:
    """Check censorship evidence, in this order (cheap and specific first)."""
    # Verify the receipt: its shape, its signature, its operator, its committee
    signed_receipt = receipt_from_json(doc["receipt"])
    verify_receipt(signed_receipt, operator)
    receipt = signed_receipt.receipt
    if receipt.committee_id != committee.committee_id:
        raise WrongCommittee("the receipt names another committee",
                             committee_id=to_hex(receipt.committee_id))
    # Verify the block: of this committee, the receipt's rollup and slot, and signed
    signed = _read_signed_block(doc["signed_block"])
    if signed.committee_id != committee.committee_id:
        raise WrongCommittee("the block was signed by another committee",
                             committee_id=to_hex(signed.committee_id))
    if signed.block.rollup != receipt.rollup:
        raise WrongRollup(f"the block is of rollup {signed.block.rollup}, the receipt of "
                          f"{receipt.rollup}", block=signed.block.rollup, receipt=receipt.rollup)
    if signed.block.slot != receipt.slot:
        raise WrongSlot(f"the block is of slot {signed.block.slot}, the receipt of "
                        f"{receipt.slot}", block=signed.block.slot, receipt=receipt.slot)
    try:
        verify_signed_block(signed, committee)
    except InvalidSignedBlock as exc:
        raise BlockNotCertified(f"the block is not certified: {exc.message}",
                                **exc.data) from None
    if receipt.kind == KIND_SEALED_BID:
        # An encrypted bid is checked against the slot's committed ciphertext set
        committed = _read_committed_ciphertexts(doc.get("ciphertexts"), signed,
                                                committee.committee_id)  # fmt: skip
        if receipt.event_id in committed:
            raise EventIncluded("the receipt's encrypted bid is in its slot's committed "
                                "ciphertext set: not censorship", event_id=receipt.event_id)
        return _censorship_verdict(committee, signed_receipt, signed, "from its slot's "
                                   "committed ciphertext set, under its signed block")
    # Verify the event list: distinct ids whose root is the block's committed bid-set root
    event_ids = _read_event_ids(doc["event_ids"])
    if compute_bid_set_root(event_ids) != signed.block.bid_set_root:
        raise EventListMismatch("the event list does not hash to the block's bid_set_root",
                                bid_set_root=signed.block.bid_set_root)
    # Verify the receipt's event is missing from the signed bid set
    if receipt.event_id in set(event_ids):
        raise EventIncluded("the receipt's event is in its slot's signed bid set: not "
                            "censorship", event_id=receipt.event_id)
    return _censorship_verdict(committee, signed_receipt, signed, "from its signed block")


def _censorship_verdict(
    committee: threshold.CommitteeInfo, signed_receipt: SignedReceipt, signed: SignedBlock,
    where: str,
) -> Verdict:
    receipt = signed_receipt.receipt
    return Verdict(
        kind=KIND_CENSORSHIP,
        offender=f"operator {signed_receipt.operator}",
        evidence_id=compute_censorship_id(
            committee.committee_id, receipt.rollup, receipt.slot, receipt.event_id),
        committee_id=committee.committee_id,
        slot=receipt.slot,
        rollup=receipt.rollup,
        detail=f"{receipt.kind} {receipt.event_id} acknowledged for slot {receipt.slot} of "
               f"rollup {receipt.rollup} is missing {where} {signed.block.block_hash}",
    )


def _read_committed_ciphertexts(
    value: Any, signed: SignedBlock, committee_id: bytes
) -> set[str]:
    """The bid ids of the slot's committed ciphertext set: ``ciphertexts`` (each
    ``{"bid_id", "ciphertext_sha256"}``) must hash to the ciphertext-set root the signed slot
    root binds (``slot_proof.ciphertext_root``); a slot whose root binds none committed to no
    encrypted bid, and the list must be empty."""
    if value is None:
        raise MalformedEvidence("an encrypted bid's evidence lists its slot's ciphertexts",
                                field="ciphertexts")  # fmt: skip
    try:
        items = wire.array(value, "ciphertexts", _ciphertext_leaf, max_items=MAX_EVENT_IDS)
    except wire.FieldError as exc:
        raise MalformedEvidence(str(exc), field=exc.field) from None
    ids = [bid_id for bid_id, _ in items]
    if len(set(ids)) != len(ids):
        raise DuplicateItems("a bid id is listed twice", field="ciphertexts")
    bound = signed.slot_proof.ciphertext_root
    slot = signed.block.slot
    leaves = [compute_ciphertext_leaf_hash(bid_id, digest) for bid_id, digest in items]
    # Verify the list is the set the committee signed with the block
    if (bound is None and items) or (
        bound is not None and compute_ciphertext_root_of_leaves(committee_id, slot, leaves) != bound
    ):
        raise EventListMismatch("the ciphertext list does not hash to the ciphertext root the "
                                "signed block binds", field="ciphertexts")  # fmt: skip
    return set(ids)


def _ciphertext_leaf(value: Any, field: str) -> tuple[str, bytes]:
    d = wire.obj(value, field)
    wire.exact_keys(d, {"bid_id", "ciphertext_sha256"}, field + ".")
    return (wire.hash_hex(wire.get(d, "bid_id", field + "."), field + ".bid_id"),
            wire.hex_bytes(wire.get(d, "ciphertext_sha256", field + "."),
                           field + ".ciphertext_sha256", 32))  # fmt: skip


def _read_signed_block(value: Any) -> SignedBlock:
    try:
        return signed_block_from_json(value)
    except InvalidSignedBlock as exc:
        raise MalformedEvidence(f"signed_block: {exc.message}",
                                field="signed_block." + str(exc.data.get("field", ""))) from None


def _read_event_ids(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_EVENT_IDS:
        raise MalformedEvidence(f"event_ids must be an array of at most {MAX_EVENT_IDS} ids",
                                field="event_ids")
    ids = [parse_hash(v, f"event_ids[{i}]") for i, v in enumerate(value)]
    seen: set[str] = set()
    for event_id in ids:
        if event_id in seen:
            raise DuplicateItems("an event id is listed twice", event_id=event_id)
        seen.add(event_id)
    return ids


def verify_member_equivocation(doc: dict[str, Any], committee: threshold.CommitteeInfo) -> Verdict:
    """Check member-equivocation evidence: one member, one (committee, slot), two different
    slot roots, both partials valid under the member's public key share."""
    committee_id, slot, member, first, second = _read_equivocation(doc)
    # Verify the committee and the member
    if committee_id != committee.committee_id:
        raise WrongCommittee("the partials are for another committee",
                             committee_id=to_hex(committee_id))
    if not 1 <= member <= committee.n:
        raise UnknownMember(f"member {member} is not in 1..{committee.n}", member=member)
    # Verify the two partials sign different slot roots (the same root twice is no offence)
    if first.slot_root == second.slot_root:
        raise SameSigningRoot("both partials sign the same slot root: not equivocation")
    # Verify each partial is the member's signature of its signing root
    key = committee.member_public_key(member)
    for name, item in (("first", first), ("second", second)):
        message = compute_slot_signing_root(committee_id, slot, item.slot_root)
        if not threshold.verify_partial(key, message, item.partial):
            raise PartialDoesNotVerify(f"the {name} partial is not member {member}'s signature "
                                       "of its slot root", field=name)
    return Verdict(
        kind=KIND_MEMBER_EQUIVOCATION,
        offender=f"member {member}",
        evidence_id=compute_equivocation_id(committee_id, slot, member),
        committee_id=committee_id,
        slot=slot,
        rollup=None,
        detail=f"member {member} signed two slot roots for slot {slot}: "
               f"{to_hex(first.slot_root)} and {to_hex(second.slot_root)}",
    )


def _read_equivocation(
    doc: dict[str, Any],
) -> tuple[bytes, int, int, SignedPartial, SignedPartial]:
    try:
        committee_id = wire.hex_bytes(doc["committee_id"], "committee_id", 32)
        slot = wire.integer(doc["slot"], "slot")
        member = wire.integer(doc["member"], "member", threshold.MAX_COMMITTEE_SIZE)
        first, second = (_read_partial(doc[k], k) for k in ("first", "second"))
    except wire.FieldError as exc:
        raise MalformedEvidence(str(exc), field=exc.field) from None
    return committee_id, slot, member, first, second


def _read_partial(value: Any, field: str) -> SignedPartial:
    d = wire.obj(value, field)
    wire.exact_keys(d, set(_PARTIAL_KEYS), field + ".")
    return SignedPartial(
        slot_root=wire.hex_bytes(wire.get(d, "slot_root", field + "."), field + ".slot_root", 32),
        partial=wire.hex_bytes(wire.get(d, "partial", field + "."), field + ".partial",
                               bls.SIGNATURE_LENGTH),
    )

# --- operator equivocation --------------------------------------------------------------------


def compute_operator_equivocation_id(committee_id: bytes, slot: int) -> str:
    """The id of "the operator endorsed two slot roots for (committee, slot)"."""
    return to_hex(keccak256(_OPERATOR_EQUIVOCATION_TAG + committee_id + slot.to_bytes(8, "big")))


def compute_operator_equivocation_evidence(
    first: Endorsement, second: Endorsement
) -> dict[str, Any]:
    """The operator-equivocation evidence document (checked by ``verify_evidence``)."""
    return {
        "format": EVIDENCE_FORMAT,
        "version": EVIDENCE_VERSION,
        "kind": KIND_OPERATOR_EQUIVOCATION,
        "first": endorsement_to_json(first),
        "second": endorsement_to_json(second),
    }


def verify_operator_equivocation(
    doc: dict[str, Any], committee: threshold.CommitteeInfo, *, operator: str | None = None
) -> Verdict:
    """Check operator-equivocation evidence: two endorsements of one (committee, slot) with
    different slot roots, both the same operator's valid signatures."""
    first = endorsement_from_json(doc["first"], "first")
    second = endorsement_from_json(doc["second"], "second")
    # Verify both are for this committee and one slot
    for e in (first, second):
        if e.committee_id != committee.committee_id:
            raise WrongCommittee("an endorsement names another committee",
                                 committee_id=to_hex(e.committee_id))
    if first.slot != second.slot:
        raise WrongSlot(f"the endorsements are for slots {first.slot} and {second.slot}",
                        first=first.slot, second=second.slot)  # fmt: skip
    # Verify they endorse different slot roots (the same proposal twice is no offence)
    if first.slot_root == second.slot_root:
        raise SameProposal("both endorsements sign the same slot root: not equivocation")
    # Verify each is the operator's signature (the pinned one's, if given), both one operator's
    verify_endorsement(first, operator)
    verify_endorsement(second, operator or first.operator)
    return Verdict(
        kind=KIND_OPERATOR_EQUIVOCATION,
        offender=f"operator {first.operator}",
        evidence_id=compute_operator_equivocation_id(committee.committee_id, first.slot),
        committee_id=committee.committee_id,
        slot=first.slot,
        rollup=None,
        detail=f"operator {first.operator} proposed two slot roots for slot {first.slot}: "
               f"{to_hex(first.slot_root)} and {to_hex(second.slot_root)}",
    )


# --- a member signing a rule-breaking block ---------------------------------------------------


def compute_rule_breaking_id(committee_id: bytes, slot: int, member: int) -> str:
    """The id of "member ``member`` signed a slot of (committee, slot) that breaks a rule"."""
    return to_hex(keccak256(
        _RULE_BREAKING_TAG + committee_id + slot.to_bytes(8, "big") + member.to_bytes(2, "big")
    ))


def compute_rule_breaking_evidence(
    proposal: SlotProposal, endorsement: Endorsement, member: int, partial: bytes
) -> dict[str, Any]:
    """The member-rule-breaking evidence document: the whole-log proposal (version 5), the
    operator's endorsement of it and the member's partial over its slot root."""
    return {
        "format": EVIDENCE_FORMAT,
        "version": EVIDENCE_VERSION,
        "kind": KIND_MEMBER_RULE_BREAKING,
        "member": member,
        "partial": to_hex(partial),
        "endorsement": endorsement_to_json(endorsement),
        "proposal": orjson.loads(encode_proposal(proposal)),
    }


def verify_member_rule_breaking(
    doc: dict[str, Any],
    committee: threshold.CommitteeInfo,
    *,
    operator: str | None = None,
    rules: MemberConfig | None = None,
) -> Verdict:
    """Check member-rule-breaking evidence: the endorsement and the partial first (cheap), then
    the proposal is the endorsed slot root, then the re-run of the member's rule checks must
    find a broken rule (``find_broken_rule``). Costs about one close."""
    endorsement = endorsement_from_json(doc["endorsement"], "endorsement")
    try:
        member = wire.integer(doc["member"], "member", threshold.MAX_COMMITTEE_SIZE)
        partial = wire.hex_bytes(doc["partial"], "partial", bls.SIGNATURE_LENGTH)
    except wire.FieldError as exc:
        raise MalformedEvidence(str(exc), field=exc.field) from None
    cid, slot = committee.committee_id, endorsement.slot
    # Verify the endorsement: this committee's, signed by the operator
    if endorsement.committee_id != cid:
        raise WrongCommittee("the endorsement names another committee",
                             committee_id=to_hex(endorsement.committee_id))
    verify_endorsement(endorsement, operator)
    # Verify the partial is the member's signature of the endorsed slot root
    if not 1 <= member <= committee.n:
        raise UnknownMember(f"member {member} is not in 1..{committee.n}", member=member)
    message = compute_slot_signing_root(cid, slot, endorsement.slot_root)
    if not threshold.verify_partial(committee.member_public_key(member), message, partial):
        raise PartialDoesNotVerify(f"the partial is not member {member}'s signature of the "
                                   "endorsed slot root", field="partial")  # fmt: skip
    # Verify the proposal is the endorsed one, with its whole logs
    proposal = _read_whole_proposal(doc["proposal"])
    if (proposal.committee_id, proposal.slot) != (cid, slot) or (
        proposal.compute_slot_root() != endorsement.slot_root
    ):
        raise ProposalMismatch("the proposal is not the slot root the endorsement and the "
                               "partial sign")  # fmt: skip
    # Verify the signed blocks break a rule: re-run the member's checks
    if rules is None:
        raise RulesRequired("re-running the slot needs the deployment's rules")
    broken = find_broken_rule(rules, proposal)
    if broken is None:
        raise BlockFollowsRules("re-running the slot's checks finds no broken rule: the "
                                "member signed what the rules produce")  # fmt: skip
    return Verdict(
        kind=KIND_MEMBER_RULE_BREAKING,
        offender=f"member {member}",
        evidence_id=compute_rule_breaking_id(cid, slot, member),
        committee_id=cid,
        slot=slot,
        rollup=None,
        detail=f"member {member} signed slot {slot} (slot root "
               f"{to_hex(endorsement.slot_root)}), which breaks a rule: {broken}",
    )


def find_broken_rule(rules: MemberConfig, proposal: SlotProposal) -> str | None:
    """The first rule a slot proposal breaks, as ``code: message``, or None: the checks every
    honest member runs before signing, deterministically (no random sample: the winners,
    replacements, cancels and public txs are fully re-derived, every other bid bound to its
    signed bytes), without the ones that depend on a member's clock or state (timing, parent
    and lock). A check that crashes is a broken rule too: an honest member refuses then."""
    try:
        for part in proposal.parts:
            check_shape(part)
        check_slot(rules, proposal)
        # The sealed bids: certified by t members, opened by the slot's key, in the logs as
        # opened (what an honest member checks for sure: its own commitment equals the
        # certified set; an empty sample, as for plaintext bids, decision 147)
        opened: dict[str, Bid] = {}
        if proposal.sealed is not None:
            check_sealed_certificate(rules, proposal.slot, proposal.sealed)
            opened = check_openings(rules, proposal, sample=frozenset())
        check_slot_evidence(rules, proposal, frozenset(), derived=opened)
        expected = compute_expected_results(rules, proposal)
        for part in proposal.parts:
            check_block(rules, part, expected[part.rollup])
            check_fairness(rules.rollups[part.rollup], part, part.block)
        check_atomicity(proposal)
    except BlockspaceError as exc:
        return describe_refusal(exc)
    except Exception as exc:  # an honest member refuses what crashes its checks
        return f"malformed_proposal: the checks fail ({type(exc).__name__})"
    return None


def _read_whole_proposal(value: Any) -> SlotProposal:
    """The document's proposal: a whole-log (version 5) proposal, strictly decoded."""
    if not isinstance(value, dict):
        raise MalformedEvidence("proposal must be a proposal object", field="proposal")
    try:
        parsed = parse_proposal(orjson.dumps(value))
        if parsed.streamed is not None:
            raise MalformedProposal("a streamed proposal leaves out logs: give the whole log")
        return parsed.decode_rest()
    except MalformedProposal as exc:
        raise MalformedEvidence(f"proposal: {exc.message}", field="proposal") from None
    except orjson.JSONEncodeError:
        raise MalformedEvidence("proposal is not JSON-encodable", field="proposal") from None


def describe_refusal(exc: BlockspaceError) -> str:
    """One line for a refusal: its stable code and why."""
    return f"{exc.code}: {exc.message}"
