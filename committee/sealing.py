"""The close of encrypted bids, member side: commit to the slot's ciphertext set, then release
the key share (docs/encryption.md, "Close").

A coordinator asks each member to *release* slot s's key: the request names the committee, the
slot, the ciphertext-set root and carries every sealed bid of the slot (``LoggedSealedBid``s
with their signed calls). The member, in this order:

1. decodes the request strictly (``malformed_release_request``) and checks it is for its own
   committee (``not_member``);
2. refuses before the slot's deadline **by its own clock** (``deadline_not_passed``; no
   skew allowance: a share released a millisecond early could let the operator read bids
   while searchers still send them), and after the slot's signing window
   (``key_release_closed``), so a slot that failed to reach t releases stays sealed;
3. answers a repeated request for the root it already committed to with the same answer, and
   refuses any other root for the slot (``already_committed_other_root``): one commitment per
   slot per member, durable (``ProtectionStore.record_commitment``), like its block locks;
4. re-derives every sealed bid from its signed call (``auction.intake.compute_intake_event``,
   the intake rules: signature, committee, slot, arrival before the deadline, public fields),
   checks the slot-wide intake rules (one ciphertext once, one encapsulation per searcher) and
   recomputes the root from what it checked (``commitment_mismatch`` if it differs);
5. records the commitment (root and the digest of the entries it checked) durably, and only
   then answers its partial signature of the commitment and its key share.

The commitment partial is a BLS partial under the block ciphersuite on a 32-byte commitment
signing root with its own tag (``compute_commitment_signing_root``), so it is no block partial
and no key share; t of them combine into the committee's certificate of the set. The key share
is the partial signature of the slot identity under the encryption DST (``committee.encryption``).

``check_sealed_proposal`` is the proposal side (a member re-opening the slot before it signs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from auction import codec
from auction.ciphertext import CiphertextLeaf, compute_ciphertext_root
from auction.errors import BlockspaceError
from auction.intake import IntakeContext, compute_intake_event
from auction.slots import compute_deadline_ms
from auction.types import LoggedSealedBid
from committee import bls, encryption, threshold, wire
from committee.checks import MemberConfig, compute_signing_deadline_ms
from committee.errors import (
    AlreadyCommittedOtherRoot,
    CommitmentMismatch,
    DeadlineNotPassed,
    KeyReleaseClosed,
    MalformedReleaseRequest,
    NotMember,
)
from committee.protection import CommitmentRecord
from committee.stream import check_ascending, parse_seq

if TYPE_CHECKING:
    from committee.member import Member

RELEASE_KIND: Final[str] = "blockspace-key-release"
RELEASE_VERSION: Final[int] = 1
COMMITMENT_SIGNING_ROOT_TAG: Final[bytes] = b"blockspace/ciphertext-commitment/v1\x00"
ENTRIES_DIGEST_TAG: Final[bytes] = b"blockspace/sealed-entries/v1\x00"
# One slot's sealed bids: far above what intake accepts (its per-slot limits).
MAX_SEALED_ENTRIES: Final[int] = 200_000
_MAX_U64: Final[int] = (1 << 64) - 1


def compute_commitment_signing_root(
    committee_id: bytes, slot: int, ciphertext_root: bytes
) -> bytes:
    """The 32-byte message a member signs to commit to ``slot``'s ciphertext set::

        SHA-256("blockspace/ciphertext-commitment/v1" || 0x00 || committee_id || u64be(slot)
                || ciphertext_root)

    Its tag differs from the slot signing root's from the 12th byte on, so a commitment partial
    never verifies as a block partial (and the other way round)."""
    if not isinstance(committee_id, bytes) or len(committee_id) != threshold.COMMITTEE_ID_LENGTH:
        raise ValueError("committee id must be 32 bytes")
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= _MAX_U64:
        raise ValueError("slot must be an int in 0..2^64-1")
    if not isinstance(ciphertext_root, bytes) or len(ciphertext_root) != 32:
        raise ValueError("ciphertext root must be 32 bytes")
    return hashlib.sha256(
        COMMITMENT_SIGNING_ROOT_TAG + committee_id + slot.to_bytes(8, "big") + ciphertext_root
    ).digest()


def compute_slot_ciphertext_root(
    committee_id: bytes, slot: int, entries: Sequence[LoggedSealedBid]
) -> bytes:
    """The ciphertext-set root of a slot's sealed bids (``auction.ciphertext``)."""
    leaves = [CiphertextLeaf(e.event.bid_id, e.event.ciphertext) for e in entries]
    return compute_ciphertext_root(committee_id, slot, leaves)


def sealed_entry_to_json(entry: LoggedSealedBid) -> dict[str, Any]:
    return {"seq": entry.seq, "event": codec.sealed_bid_to_json(entry.event)}


def compute_entries_digest(entries: Sequence[LoggedSealedBid]) -> bytes:
    """SHA-256 over the entries' canonical JSON: what a member checked, to the byte (the root
    binds ids and ciphertexts; this also binds seqs, rollups and arrival times)."""
    body = orjson.dumps([sealed_entry_to_json(e) for e in entries])
    return hashlib.sha256(ENTRIES_DIGEST_TAG + body).digest()


def compute_sealed_order(entries: Sequence[LoggedSealedBid]) -> list[LoggedSealedBid]:
    """Sealed entries in their canonical order: by rollup, then log order (each rollup's log
    numbers its seqs on its own)."""
    return sorted(entries, key=lambda e: (e.event.rollup, parse_seq(e.seq)))


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """'Commit to this ciphertext set of ``slot`` and release your key share.'"""

    committee_id: bytes
    slot: int
    ciphertext_root: bytes
    entries: tuple[LoggedSealedBid, ...]  # canonical order (``compute_sealed_order``)


def encode_release_request(request: ReleaseRequest) -> bytes:
    return orjson.dumps(
        {
            "kind": RELEASE_KIND,
            "version": RELEASE_VERSION,
            "committee_id": "0x" + request.committee_id.hex(),
            "slot": request.slot,
            "ciphertext_root": "0x" + request.ciphertext_root.hex(),
            "sealed": [sealed_entry_to_json(e) for e in request.entries],
        }
    )


def _sealed_entry(value: Any, field: str) -> LoggedSealedBid:
    d = wire.obj(value, field)
    wire.exact_keys(d, {"seq", "event"}, field + ".")
    seq = wire.text(wire.get(d, "seq", field + "."), field + ".seq")
    try:
        parse_seq(seq)
        event = codec.sealed_bid_from_json(wire.obj(d["event"], field + ".event"))
    except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError) as exc:
        raise wire.FieldError(field, f"is not a sealed bid ({exc})") from None
    return LoggedSealedBid(seq, event)


def decode_sealed_entries(value: Any, field: str) -> tuple[LoggedSealedBid, ...]:
    """A JSON array of sealed entries (their fields' rules are checked by re-derivation)."""
    entries = wire.array(value, field, _sealed_entry, max_items=MAX_SEALED_ENTRIES)
    return tuple(entries)


def decode_release_request(data: bytes) -> ReleaseRequest:
    """Read a release request strictly; ``malformed_release_request`` names the field."""
    try:
        d = wire.obj(orjson.loads(data), "request")
        wire.exact_keys(d, {"kind", "version", "committee_id", "slot", "ciphertext_root",
                            "sealed"}, "")  # fmt: skip
        if wire.get(d, "kind") != RELEASE_KIND:
            raise wire.FieldError("kind", f"must be {RELEASE_KIND!r}")
        if wire.get(d, "version") != RELEASE_VERSION:
            raise wire.FieldError("version", f"must be {RELEASE_VERSION}")
        return ReleaseRequest(
            committee_id=wire.hex_bytes(wire.get(d, "committee_id"), "committee_id", 32),
            slot=wire.integer(wire.get(d, "slot"), "slot"),
            ciphertext_root=wire.hex_bytes(wire.get(d, "ciphertext_root"), "ciphertext_root", 32),
            entries=decode_sealed_entries(wire.get(d, "sealed"), "sealed"),
        )
    except orjson.JSONDecodeError:
        raise MalformedReleaseRequest("the release request is not JSON") from None
    except wire.FieldError as exc:
        raise MalformedReleaseRequest(str(exc), field=exc.field) from None


# --- the answer ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRelease:
    """A member's answer: its partial of the commitment and its share of the slot key."""

    index: int
    slot: int
    ciphertext_root: bytes
    commitment_partial: bytes
    key_share: bytes
    repeated: bool  # the member had committed to this root before

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "slot": self.slot,
            "ciphertext_root": "0x" + self.ciphertext_root.hex(),
            "commitment_partial": "0x" + self.commitment_partial.hex(),
            "key_share": "0x" + self.key_share.hex(),
            "repeated": self.repeated,
        }


def release_from_json(data: Any) -> KeyRelease:
    """Read a member's answer (raises ``wire.FieldError``); its shares are checked by the
    coordinator against the member's public key, not here."""
    d = wire.obj(data, "release")
    repeated = wire.get(d, "repeated")
    if not isinstance(repeated, bool):
        raise wire.FieldError("repeated", "must be a boolean")
    return KeyRelease(
        index=wire.integer(wire.get(d, "index"), "index"),
        slot=wire.integer(wire.get(d, "slot"), "slot"),
        ciphertext_root=wire.hex_bytes(wire.get(d, "ciphertext_root"), "ciphertext_root", 32),
        commitment_partial=wire.hex_bytes(
            wire.get(d, "commitment_partial"), "commitment_partial", bls.SIGNATURE_LENGTH
        ),
        key_share=wire.hex_bytes(wire.get(d, "key_share"), "key_share", bls.SIGNATURE_LENGTH),
        repeated=repeated,
    )


# --- the member's steps --------------------------------------------------------------------------


def compute_sealed_context(config: MemberConfig, rollup: int) -> IntakeContext:
    """The intake context sealed bids are re-derived and opened in, the same for the engine's
    opening and every member's: the member's rollups and clock, no endpoint pin, no protected
    hashes (the close re-checks protection from the log and the pool)."""
    return IntakeContext(
        rollups=config.rollups,
        clock=config.clock,
        max_slots_ahead=config.max_slots_ahead,
        default_rollup=rollup,
        max_rollups_per_bundle=config.max_rollups_per_bundle,
        committee_id=config.committee.committee_id,
    )


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
            check_ascending((-1, -1), seqs)
        except BlockspaceError:
            raise CommitmentMismatch("a rollup's sealed bids are not in log order") from None


def release_key_share(member: Member, data: bytes) -> KeyRelease:
    """The member's answer to a release request (module docstring); raise a ``Refusal``."""
    cfg = member.config
    cid = cfg.committee.committee_id
    request = decode_release_request(data)
    # 1. Verify the request is for this member's committee
    if request.committee_id != cid:
        raise NotMember("this member belongs to another committee",
                        committee_id="0x" + request.committee_id.hex())  # fmt: skip
    slot = request.slot
    now = member.clock_ms()
    # 2. Verify the slot's deadline has passed by this member's own clock (no skew allowance)
    deadline = compute_deadline_ms(cfg.clock, slot)
    if now < deadline:
        raise DeadlineNotPassed(f"slot {slot} closes in {deadline - now} ms",
                                slot=slot, deadline_ms=deadline)  # fmt: skip
    digest = compute_entries_digest(request.entries)
    # 3. One commitment per slot: the same set again gets the same answer, at any time
    previous = member.protection.get_commitment(cid, slot)
    if previous is not None:
        return _answer(member, slot, _check_same(previous, request.ciphertext_root, digest), True)
    # Verify the slot is still being closed (a slot that failed stays sealed for ever)
    closes = compute_signing_deadline_ms(cfg.clock, slot, cfg.signing_window_ms)
    if now > closes:
        raise KeyReleaseClosed(f"slot {slot}'s signing window closed {now - closes} ms ago",
                               slot=slot, signing_deadline_ms=closes)  # fmt: skip
    # 4. Verify every sealed bid, and that the root is the set's
    check_sealed_entries(cfg, slot, request.entries)
    if compute_slot_ciphertext_root(cid, slot, request.entries) != request.ciphertext_root:
        raise CommitmentMismatch("the ciphertext root is not the root of the sealed bids",
                                 ciphertext_root="0x" + request.ciphertext_root.hex())  # fmt: skip
    # 5. Record the commitment durably, then release
    record = CommitmentRecord(request.ciphertext_root, digest, member.clock_ms())
    stored = member.protection.record_commitment(cid, slot, record)
    return _answer(member, slot, _check_same(stored, request.ciphertext_root, digest),
                   stored != record)  # fmt: skip


def _check_same(record: CommitmentRecord, root: bytes, digest: bytes) -> CommitmentRecord:
    """Refuse a request for another root (or other entries) than the one committed to."""
    if record.ciphertext_root != root:
        raise AlreadyCommittedOtherRoot(
            "already committed to another ciphertext set for this slot",
            committed_root="0x" + record.ciphertext_root.hex(),
        )
    if record.entries_digest != digest:
        raise CommitmentMismatch("the sealed bids differ from those committed to",
                                 ciphertext_root="0x" + root.hex())  # fmt: skip
    return record


def _answer(member: Member, slot: int, record: CommitmentRecord, repeated: bool) -> KeyRelease:
    share = member.share
    message = compute_commitment_signing_root(share.committee_id, slot, record.ciphertext_root)
    key_share = encryption.key_share(share, slot)
    if member.fault in ("wrong_share", "garbage"):
        # TEST ONLY: a member lying about its share (the coordinator must find it)
        wrong = threshold.KeyShare(share.index, share.secret % (bls.CURVE_ORDER - 1) + 1,
                                   share.committee_id)  # fmt: skip
        key_share = encryption.key_share(wrong, slot)
    return KeyRelease(
        index=share.index,
        slot=slot,
        ciphertext_root=record.ciphertext_root,
        commitment_partial=threshold.partial_sign(share, message),
        key_share=key_share,
        repeated=repeated,
    )
