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
   except an entry byte for byte one it re-derived for this slot as it streamed in
   (``committee.stream``: the same derivation, done while the slot was open), checks the
   slot-wide intake rules over the whole set (one ciphertext once, one encapsulation per
   searcher, canonical order) and recomputes the root from what it checked
   (``commitment_mismatch`` if it differs);
5. records the commitment (root and the digest of the entries it checked) durably, and only
   then answers its partial signature of the commitment and its key share.

The commitment partial is a BLS partial under the block ciphersuite on a 32-byte commitment
signing root with its own tag (``compute_commitment_signing_root``), so it is no block partial
and no key share; t of them combine into the committee's certificate of the set. The key share
is the partial signature of the slot identity under the encryption DST (``committee.encryption``).

``check_sealed_proposal`` is the proposal side (a member re-opening the slot before it signs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from auction.slots import compute_deadline_ms
from auction.types import Bid, LoggedSealedBid, Tx
from committee import bls, encryption, threshold, wire
from committee.checks import MemberConfig, compute_signing_deadline_ms
from committee.errors import (
    AlreadyCommittedOtherRoot,
    CommitmentMismatch,
    DeadlineNotPassed,
    KeyReleaseClosed,
    MalformedReleaseRequest,
    NotMember,
    OpeningMismatch,
    StreamGap,
    StreamMismatch,
)
from committee.proposal import SlotProposal
from committee.protection import CommitmentRecord, ProtectionStore
from committee.reopening import (
    check_openings,
    check_sealed_certificate,
    check_sealed_entries,
)
from committee.sealedset import (
    MAX_SEALED_ENTRIES,
    compute_commitment_signing_root,
    compute_entries_digest,
    compute_entries_digest_of,
    compute_sealed_entry_bytes,
    compute_sealed_entry_hash,
    compute_slot_ciphertext_root,
    sealed_entries_from_json,
    sealed_entry_to_json,
)


class _TxDecoder(Protocol):
    def decode(self, raw: bytes) -> Tx: ...


class Member(Protocol):
    """What these steps use of a ``committee.member.Member`` (which calls them)."""

    @property
    def config(self) -> MemberConfig: ...

    @property
    def share(self) -> threshold.KeyShare: ...

    @property
    def protection(self) -> ProtectionStore: ...

    @property
    def fault(self) -> str | None: ...

    @property
    def decoded_txs(self) -> _TxDecoder: ...

    def clock_ms(self) -> int: ...

    def sealed_checked(self, slot: int, entry_hashes: Sequence[bytes]) -> list[bool]: ...

    def sealed_prefix(
        self, slot: int, rollup: int, count: int
    ) -> tuple[list[tuple[LoggedSealedBid, bytes]], bytes] | None: ...

RELEASE_KIND: Final[str] = "blockspace-key-release"
RELEASE_VERSION: Final[int] = 1
# 2: version 1 whose ``sealed`` leaves out, per rollup, a prefix of its sealed calls the member
# holds from the slot's stream, named by ``"streamed": [{"rollup", "count", "digest"}, ...]``
# (ascending rollups, each once): the first ``count`` of that rollup's sealed calls and the
# stream digest after them (``committee.stream``); ``sealed`` is the rest, in canonical order
# (decision 159). Both versions are current: version 1 goes to a member without a stream.
RELEASE_STREAMED_VERSION: Final[int] = 2


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """'Commit to this ciphertext set of ``slot`` and release your key share.'"""

    committee_id: bytes
    slot: int
    ciphertext_root: bytes
    entries: tuple[LoggedSealedBid, ...]  # canonical order (``compute_sealed_order``)
    # version 2: by rollup, the streamed prefix ``entries`` leaves out (count, stream digest)
    streamed: tuple[tuple[int, int, bytes], ...] | None = None


def encode_release_request(request: ReleaseRequest) -> bytes:
    doc: dict[str, Any] = {
        "kind": RELEASE_KIND,
        "version": RELEASE_VERSION if request.streamed is None else RELEASE_STREAMED_VERSION,
        "committee_id": "0x" + request.committee_id.hex(),
        "slot": request.slot,
        "ciphertext_root": "0x" + request.ciphertext_root.hex(),
        "sealed": [sealed_entry_to_json(e) for e in request.entries],
    }
    if request.streamed is not None:
        doc["streamed"] = [{"rollup": r, "count": n, "digest": "0x" + d.hex()}
                           for r, n, d in request.streamed]  # fmt: skip
    return orjson.dumps(doc)


def compute_streamed_tail(
    entries: Sequence[LoggedSealedBid], counts: Mapping[int, int]
) -> tuple[LoggedSealedBid, ...]:
    """``entries`` (canonical order) without the first ``counts[rollup]`` of each rollup's."""
    seen: dict[int, int] = {}
    tail = []
    for e in entries:
        n = seen.get(e.event.rollup, 0)
        seen[e.event.rollup] = n + 1
        if n >= counts.get(e.event.rollup, 0):
            tail.append(e)
    return tuple(tail)


def _streamed_from_json(value: Any) -> tuple[tuple[int, int, bytes], ...]:
    items = wire.array(value, "streamed", lambda v, f: v, max_items=MAX_SEALED_ENTRIES)
    out = []
    for i, item in enumerate(items):
        field = f"streamed[{i}]"
        d = wire.obj(item, field)
        wire.exact_keys(d, {"rollup", "count", "digest"}, field + ".")
        out.append((wire.integer(wire.get(d, "rollup", field + "."), field + ".rollup"),
                    wire.integer(wire.get(d, "count", field + "."), field + ".count"),
                    wire.hex_bytes(wire.get(d, "digest", field + "."), field + ".digest",
                                   32)))  # fmt: skip
    # Verify each rollup is named once, ascending
    rollups = [r for r, _, _ in out]
    if any(a >= b for a, b in zip(rollups, rollups[1:], strict=False)):
        raise wire.FieldError("streamed", "must name each rollup once, ascending")
    return tuple(out)


def decode_release_request(data: bytes) -> ReleaseRequest:
    """Read a release request strictly; ``malformed_release_request`` names the field."""
    try:
        d = wire.obj(orjson.loads(data), "request")
        wire.exact_keys(d, {"kind", "version", "committee_id", "slot", "ciphertext_root",
                            "sealed", "streamed"}, "")  # fmt: skip
        if wire.get(d, "kind") != RELEASE_KIND:
            raise wire.FieldError("kind", f"must be {RELEASE_KIND!r}")
        version = wire.get(d, "version")
        if version not in (RELEASE_VERSION, RELEASE_STREAMED_VERSION) or isinstance(
            version, bool
        ):
            raise wire.FieldError("version",
                                  f"must be {RELEASE_VERSION} or {RELEASE_STREAMED_VERSION}")
        # Verify a version-2 request names its streamed prefixes and a version-1 one does not
        streamed = None
        if version == RELEASE_STREAMED_VERSION:
            streamed = _streamed_from_json(wire.get(d, "streamed"))
        elif "streamed" in d:
            raise wire.FieldError("streamed", "a version-1 request carries every sealed bid")
        return ReleaseRequest(
            committee_id=wire.hex_bytes(wire.get(d, "committee_id"), "committee_id", 32),
            slot=wire.integer(wire.get(d, "slot"), "slot"),
            ciphertext_root=wire.hex_bytes(wire.get(d, "ciphertext_root"), "ciphertext_root", 32),
            entries=sealed_entries_from_json(wire.get(d, "sealed"), "sealed"),
            streamed=streamed,
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
    entries, entry_bytes, derived = _join_release(member, request)
    digest = compute_entries_digest_of(entry_bytes)
    # 3. One commitment per slot: the same set again gets the same answer, at any time
    previous = member.protection.get_commitment(cid, slot)
    if previous is not None:
        return _answer(member, slot, _check_same(previous, request.ciphertext_root, digest), True)
    # Verify the slot is still being closed (a slot that failed stays sealed for ever)
    closes = compute_signing_deadline_ms(cfg.clock, slot, cfg.signing_window_ms)
    if now > closes:
        raise KeyReleaseClosed(f"slot {slot}'s signing window closed {now - closes} ms ago",
                               slot=slot, signing_deadline_ms=closes)  # fmt: skip
    # 4. Verify every sealed bid (re-derived now unless this member re-derived the very same
    # entry, byte for byte, as it streamed in), the slot-wide rules, and that the root is the
    # set's
    check_sealed_entries(cfg, slot, entries, derived)
    if compute_slot_ciphertext_root(cid, slot, entries) != request.ciphertext_root:
        raise CommitmentMismatch("the ciphertext root is not the root of the sealed bids",
                                 ciphertext_root="0x" + request.ciphertext_root.hex())  # fmt: skip
    # 5. Record the commitment durably, then release
    record = CommitmentRecord(request.ciphertext_root, digest, member.clock_ms())
    stored = member.protection.record_commitment(cid, slot, record)
    return _answer(member, slot, _check_same(stored, request.ciphertext_root, digest),
                   stored != record)  # fmt: skip


def _join_release(
    member: Member, request: ReleaseRequest
) -> tuple[list[LoggedSealedBid], list[bytes], list[bool]]:
    """The request's whole set (canonical order), each entry's canonical bytes, and whether
    each is one this member re-derived as it streamed in. Version 2: each named rollup's
    prefix is the one this member holds from the stream (``stream_gap`` if it holds fewer,
    ``stream_mismatch`` if its stream digest differs), followed by the tail's entries of that
    rollup; whether the tail continues the prefix (log order, each call once) is the set's
    rules' check (``check_sealed_entries``)."""
    tail_bytes = [compute_sealed_entry_bytes(e) for e in request.entries]
    tail_derived = member.sealed_checked(request.slot,
                                         [compute_sealed_entry_hash(b) for b in tail_bytes])
    if request.streamed is None:
        return list(request.entries), tail_bytes, tail_derived
    prefixes: dict[int, list[tuple[LoggedSealedBid, bytes]]] = {}
    for rollup, count, digest in request.streamed:
        held = member.sealed_prefix(request.slot, rollup, count)
        if held is None:
            raise StreamGap(f"the request names {count} streamed sealed calls of rollup "
                            f"{rollup}; this member holds fewer", rollup=rollup,
                            slot=request.slot)  # fmt: skip
        if held[1] != digest:
            raise StreamMismatch(f"rollup {rollup}'s streamed sealed calls differ from what "
                                 "this member holds", rollup=rollup, count=count)  # fmt: skip
        prefixes[rollup] = held[0]
    tail = list(zip(request.entries, tail_bytes, tail_derived, strict=True))
    rollups = sorted({*prefixes, *(e.event.rollup for e in request.entries)})
    entries: list[LoggedSealedBid] = []
    entry_bytes: list[bytes] = []
    derived: list[bool] = []
    for rollup in rollups:
        for entry, raw in prefixes.get(rollup, []):
            entries.append(entry)
            entry_bytes.append(raw)
            derived.append(True)
        for entry, raw, was in tail:
            if entry.event.rollup == rollup:
                entries.append(entry)
                entry_bytes.append(raw)
                derived.append(was)
    # Verify the tail is in canonical order itself (the merge regroups it by rollup)
    if [e.event.rollup for e in request.entries] != sorted(e.event.rollup
                                                          for e in request.entries):
        raise CommitmentMismatch("the sealed bids are not in canonical order")
    return entries, entry_bytes, derived


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


# --- the proposal: members re-open the slot -----------------------------------------------------


def check_sealed_proposal(
    member: Member, proposal: SlotProposal, sample: frozenset[str] | None = None
) -> dict[str, Bid]:
    """Check a proposal's openings against what the slot key opens the committed set to, and
    return the opened bids (by id: checked here, so the evidence checks skip them). With a
    ``sample``, the member's sampling rule (``reopening.check_openings``): every ciphertext
    opened, winners, replacements, the sample and every sealed bid the logs leave out derived
    in full, every other opened bid bound to its payload; None derives every one in full.

    - A member that committed to a slot's sealed bids refuses a proposal that does not open
      exactly that set (``already_committed_other_root``, ``commitment_mismatch``,
      ``opening_mismatch``): the operator holds the key by then, and must not drop or swap a
      bid it has read.
    - A member that did not commit (it was down, or late) checks the committee's certificate of
      the commitment and re-derives every sealed bid itself.
    - Either way the key must be the committee's key for the slot, and every part's log must be
      its plaintext events with the openings merged in by seq (``compute_opened_log``), to the
      byte: an opened bid dropped, swapped, altered or moved is refused (``opening_mismatch``).
    """
    cfg = member.config
    cid = cfg.committee.committee_id
    slot = proposal.slot
    committed = member.protection.get_commitment(cid, slot)
    sealed = proposal.sealed
    if sealed is None:
        # Verify no sealed bid this member committed to is left out
        if committed is not None and committed.ciphertext_root != compute_slot_ciphertext_root(
            cid, slot, ()
        ):
            raise OpeningMismatch("the proposal opens none of the sealed bids this member "
                                  "committed to", slot=slot)  # fmt: skip
        return {}
    entries = sealed.entries
    root = compute_slot_ciphertext_root(cid, slot, entries)
    # Verify the sealed bids are the set the root names
    if root != sealed.ciphertext_root:
        raise CommitmentMismatch("the ciphertext root is not the root of the sealed bids",
                                 slot=slot)  # fmt: skip
    if committed is not None:
        # Verify they are the set this member committed to, to the byte
        _check_same(committed, root, compute_entries_digest(entries))
    else:
        check_sealed_certificate(cfg, slot, sealed)
    return check_openings(cfg, proposal, sample=sample, decode=member.decoded_txs.decode)
