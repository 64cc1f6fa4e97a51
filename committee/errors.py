"""Errors raised by the signing committee's crypto core and key files.

Every class carries a stable ``code`` (clients and operators match on it) and puts its details in
``data`` (``BlockspaceError(message, **data)``), so the transport layer can map them like any
other engine error. Key-file loaders add ``field`` (the JSON field at fault) to ``data`` where one
applies.
"""

from __future__ import annotations

from auction.errors import BlockspaceError, EvidenceRefused


class CommitteeError(BlockspaceError):
    """Base of every committee error: bad keys, bad shares, bad partials, bad key files."""

    code = "committee_error"


class InvalidScalar(CommitteeError):
    """A secret key, share or field element is out of range (0, or >= the curve order r)."""

    code = "invalid_scalar"


class InvalidPoint(CommitteeError):
    """Bytes that are not a canonical, on-curve, in-subgroup, non-identity G1 or G2 point."""

    code = "invalid_point"


class InvalidCommitteeParams(CommitteeError):
    """Committee size n or threshold t out of range (need 1 <= t <= n <= MAX_COMMITTEE_SIZE)."""

    code = "invalid_committee_params"


class InvalidMemberIndex(CommitteeError):
    """A member index outside 1..n, or not an int."""

    code = "invalid_member_index"


class InvalidShare(CommitteeError):
    """A key share that does not match the committee's Feldman commitments."""

    code = "invalid_share"


class DuplicatePartial(CommitteeError):
    """Two partial signatures for the same member index were offered to ``combine``."""

    code = "duplicate_partial"


class NotEnoughPartials(CommitteeError):
    """Fewer than t partial signatures were offered to ``combine``."""

    code = "not_enough_partials"


class CommitteeMismatch(CommitteeError):
    """Public committee data disagrees with itself or with a share (id, keys, n, t)."""

    code = "committee_mismatch"


class InvalidKeyfile(CommitteeError):
    """A key file that is not JSON, or has a missing, unknown or mistyped field, or bad hex."""

    code = "invalid_keyfile"


# --- signing: refusals by members, delivery of signed blocks ----------------------------------


class Refusal(CommitteeError):
    """A member refuses to sign a proposal; the subclass's ``code`` names the check that failed.

    Members answer a refusal to the coordinator as ``{"code", "reason", "data"}``; the coordinator
    counts and records it. Refusals are rejected input, never system faults.
    """

    code = "refused"


class MalformedProposal(Refusal):
    """The proposal does not decode (not JSON, missing or mistyped fields, bad hex)."""

    code = "malformed_proposal"


class NotMember(Refusal):
    """The proposal is for another committee, or for a rollup this member does not serve."""

    code = "not_member"


class IncompleteSlot(Refusal):
    """The slot proposal does not have exactly one part per rollup the member serves (one is
    left out, or one has two parts): its slot root would not cover the member's rollups."""

    code = "incomplete_slot"


class SlotNotClosed(Refusal):
    """By the member's clock the slot's auction has not closed yet (beyond the skew bound)."""

    code = "slot_not_closed"


class SlotExpired(Refusal):
    """The slot's signing deadline has passed by the member's clock."""

    code = "slot_expired"


class DoubleSign(Refusal):
    """The member already signed a different slot root for this slot."""

    code = "double_sign"


class UnknownParent(Refusal):
    """The block's parent is neither the member's last known block nor a newer signed block."""

    code = "unknown_parent"


class Locked(Refusal):
    """The member's head (the newest block it signed or adopted, ``data``) is not the block's
    parent: signing would extend a block it never signed past, or fork from one it did.
    A member never signs two blocks with the same parent."""

    code = "locked"


class PoolMismatch(Refusal):
    """The public txs carried into the slot are not the parent's pending pool."""

    code = "pool_mismatch"


class InvalidEvidence(Refusal):
    """A logged event whose searcher evidence does not check out for this slot."""

    code = "invalid_evidence"


class BidSetMismatch(Refusal):
    """The header's bid-set root is not the root of the proposed log."""

    code = "bid_set_mismatch"


class BlockMismatch(Refusal):
    """Re-running the slot on the proposed log gives a different block (``data.field`` says
    which field differs first)."""

    code = "block_mismatch"


class StreamGap(Refusal):
    """A streamed batch, or a proposal, names log entries this member does not hold (a batch
    out of order, a dropped batch, a member that restarted): ``have`` says how many it holds.
    Not a lie by itself: the coordinator sends what is missing (docs/committee.md)."""

    code = "stream_gap"


class StreamMismatch(Refusal):
    """A proposal names a streamed prefix whose digest is not the digest of what this member
    holds: the stream and the proposal disagree (``committee.stream``)."""

    code = "stream_mismatch"


# --- the close of encrypted bids: refusals to commit and release (committee/sealing.py) ------


class MalformedReleaseRequest(Refusal):
    """A key-release request that does not decode (not JSON, missing or mistyped fields)."""

    code = "malformed_release_request"


class DeadlineNotPassed(Refusal):
    """Asked for its key share before the slot's deadline by the member's own clock."""

    code = "deadline_not_passed"


class KeyReleaseClosed(Refusal):
    """Asked for its key share after the slot's signing window: a slot that did not get its
    key in time stays sealed for ever."""

    code = "key_release_closed"


class CommitmentMismatch(Refusal):
    """The ciphertext root is not the root of the sealed bids carried, a sealed bid is not what
    its signed call makes, or the sealed bids differ from the set committed to."""

    code = "commitment_mismatch"


class AlreadyCommittedOtherRoot(Refusal):
    """The member already committed to another ciphertext set for this slot."""

    code = "already_committed_other_root"


class NotCommitted(Refusal):
    """A proposal opens sealed bids of a slot this member never committed to."""

    code = "not_committed"


class OpeningMismatch(Refusal):
    """A proposal's opened bids (or refusals) are not what the slot key opens the committed
    ciphertexts to, or its slot key is not the committee's key for the slot."""

    code = "opening_mismatch"


class InvalidSignedBlock(CommitteeError):
    """A signed block that does not verify: bad shape, wrong hash, bad signature, few signers."""

    code = "invalid_signed_block"


class BlockNotFound(CommitteeError):
    """No signed block for that (rollup, slot), and the slot has not failed (yet)."""

    code = "block_not_found"


class SlotFailed(CommitteeError):
    """The slot was published as failed: fewer than t valid partials by its signing deadline."""

    code = "slot_failed"


# --- accountability evidence (committee/evidence.py, docs/accountability.md) -----------------


class MalformedEvidence(EvidenceRefused):
    """An evidence document with a missing, unknown or mistyped field (``data.field``)."""

    code = "malformed_evidence"


class UnknownEvidenceKind(EvidenceRefused):
    code = "unknown_evidence_kind"


class UnsupportedEvidenceVersion(EvidenceRefused):
    code = "unsupported_evidence_version"


class WrongCommittee(EvidenceRefused):
    """A receipt, block or partial for another committee than the one verified against."""

    code = "wrong_committee"


class WrongRollup(EvidenceRefused):
    """The signed block is not of the receipt's rollup."""

    code = "wrong_rollup"


class WrongSlot(EvidenceRefused):
    """The signed block is not of the receipt's slot."""

    code = "wrong_slot"


class BlockNotCertified(EvidenceRefused):
    """The block is not one the committee signed (hash, proof, signature or signers fail):
    a slot that never got signed shows nothing about what it should have held."""

    code = "block_not_certified"


class DuplicateItems(EvidenceRefused):
    """The same event id twice in a slot's event list (a log never holds one event twice)."""

    code = "duplicate_items"


class EventListMismatch(EvidenceRefused):
    """The event list given does not hash to the block's committed bid-set root."""

    code = "event_list_mismatch"


class EventIncluded(EvidenceRefused):
    """Not censorship: the receipt's event is in its slot's signed bid set."""

    code = "event_included"


class SameSigningRoot(EvidenceRefused):
    """Not equivocation: both partials sign the same slot root."""

    code = "same_signing_root"


class PartialDoesNotVerify(EvidenceRefused):
    """A partial that is not the member's signature of the signing root it is given for."""

    code = "partial_does_not_verify"


class UnknownMember(EvidenceRefused):
    """A member index outside the committee's 1..n."""

    code = "unknown_member"


# --- the operator's endorsement of proposals, and the evidence built on it --------------------


class OperatorSignatureMissing(Refusal):
    """A proposal without the operator's endorsement, to a member that requires one (it pins
    the operator's address): an unendorsed proposal could never be evidence against the
    operator, so it is not checked at all."""

    code = "operator_signature_missing"


class ForgedProposal(Refusal, EvidenceRefused):
    """An endorsement whose signature does not recover the operator it names, or (a member's
    pin, a verifier's ``--operator``) recovers another address."""

    code = "forged_proposal"


class SameProposal(EvidenceRefused):
    """Not operator equivocation: both endorsements sign the same slot root (a proposal sent
    twice, a completion, another member's streamed body of the same slot)."""

    code = "same_proposal"


class ProposalMismatch(EvidenceRefused):
    """The proposal in a rule-breaking document is not the slot root its endorsement and the
    member's partial sign (or is not a whole-log proposal)."""

    code = "proposal_mismatch"


class BlockFollowsRules(EvidenceRefused):
    """Not a rule-breaking block: re-running the slot's checks on the proposal finds nothing
    wrong with what the member signed."""

    code = "block_follows_rules"


class RulesRequired(EvidenceRefused):
    """Rule-breaking evidence needs the deployment's rollup policies and slot clock to re-run
    the slot; the verifier was given none."""

    code = "rules_required"
