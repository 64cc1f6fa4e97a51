"""A slot's set of sealed bids as the committee commits to it and opens it: the pure values that
the key release (``committee.sealing``) and the proposal (``committee.proposal``) share.

- ``compute_slot_ciphertext_root``: the set's root (``auction.ciphertext``), what members commit
  to before any key share leaves;
- ``compute_commitment_signing_root``: the 32-byte message of a member's commitment partial;
- ``compute_entries_digest``: the digest of the entries a member checked, to the byte;
- ``SealedOpening``: what a proposal carries so that members re-open the slot themselves: the
  committed entries, the slot key and the committee's certificate of the commitment.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auction import codec
from auction.ciphertext import CiphertextLeaf, compute_ciphertext_root
from auction.types import LoggedSealedBid
from committee import bls, threshold, wire

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


def compute_seq_key(seq: str) -> tuple[int, int]:
    """A log seq ``<ms>-<n>`` as a pair that orders like the log (ValueError if malformed)."""
    ms, _, n = seq.partition("-")
    if not (ms.isascii() and ms.isdigit() and n.isascii() and n.isdigit()):
        raise ValueError(f"bad seq {seq!r}")
    return int(ms), int(n)


def compute_sealed_order(entries: Sequence[LoggedSealedBid]) -> list[LoggedSealedBid]:
    """Sealed entries in their canonical order: by rollup, then log order (each rollup's log
    numbers its seqs on its own)."""
    return sorted(entries, key=lambda e: (e.event.rollup, compute_seq_key(e.seq)))


def sealed_entry_to_json(entry: LoggedSealedBid) -> dict[str, Any]:
    return {"seq": entry.seq, "event": codec.sealed_bid_to_json(entry.event)}


def compute_sealed_entry_bytes(entry: LoggedSealedBid) -> bytes:
    """One sealed entry's canonical JSON, ``{"seq", "event"}`` (what the entries digest and a
    sealed stream batch hold, and how a member knows an entry is one it checked)."""
    return orjson.dumps(sealed_entry_to_json(entry))


def compute_sealed_entry_hash(entry_bytes: bytes) -> bytes:
    """SHA-256 of one sealed entry's canonical bytes: how a member remembers the entries it
    re-derived as they streamed in, and finds them again in a release request."""
    return hashlib.sha256(entry_bytes).digest()


def compute_entries_digest(entries: Sequence[LoggedSealedBid]) -> bytes:
    """SHA-256 over the entries' canonical JSON: what a member checked, to the byte (the root
    binds ids and ciphertexts; this also binds seqs, rollups and arrival times)."""
    return compute_entries_digest_of([compute_sealed_entry_bytes(e) for e in entries])


def compute_entries_digest_of(entry_bytes: Sequence[bytes]) -> bytes:
    """``compute_entries_digest`` from each entry's canonical JSON (the JSON array of them)."""
    body = b"[" + b",".join(entry_bytes) + b"]"
    return hashlib.sha256(ENTRIES_DIGEST_TAG + body).digest()


def _sealed_entry(value: Any, field: str) -> LoggedSealedBid:
    d = wire.obj(value, field)
    wire.exact_keys(d, {"seq", "event"}, field + ".")
    seq = wire.text(wire.get(d, "seq", field + "."), field + ".seq")
    try:
        compute_seq_key(seq)
        event = codec.sealed_bid_from_json(wire.obj(d["event"], field + ".event"))
    except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError) as exc:
        raise wire.FieldError(field, f"is not a sealed bid ({exc})") from None
    return LoggedSealedBid(seq, event)


def sealed_entries_from_json(value: Any, field: str) -> tuple[LoggedSealedBid, ...]:
    """A JSON array of sealed entries (raises ``wire.FieldError``; their rules are checked by
    re-derivation, ``committee.sealing.check_sealed_entries``)."""
    return tuple(wire.array(value, field, _sealed_entry, max_items=MAX_SEALED_ENTRIES))


@dataclass(frozen=True, slots=True)
class SealedOpening:
    """What a proposal carries for a slot with sealed bids: the committed set (canonical order),
    the slot key that opens it and the committee's signature of the commitment (t members
    committed to ``ciphertext_root`` before any key share left). Members open the set
    themselves and compare with the opened bids in the logs."""

    ciphertext_root: bytes
    slot_key: bytes
    commitment_signature: bytes
    entries: tuple[LoggedSealedBid, ...]
    # Opened bids the engine's ledger refused (deposits enforced, decision 105): absent from
    # the logs as a plaintext bid refused with ``insufficient_deposit`` is never logged.
    unfunded: tuple[str, ...] = ()


def sealed_opening_to_json(s: SealedOpening) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ciphertext_root": "0x" + s.ciphertext_root.hex(),
        "slot_key": "0x" + s.slot_key.hex(),
        "commitment_signature": "0x" + s.commitment_signature.hex(),
        "entries": [sealed_entry_to_json(e) for e in s.entries],
    }
    if s.unfunded:
        out["unfunded"] = list(s.unfunded)
    return out


def sealed_opening_from_json(value: Any, field: str = "sealed") -> SealedOpening:
    """Read a proposal's ``sealed`` object strictly (raises ``wire.FieldError``)."""
    d = wire.obj(value, field)
    p = field + "."
    wire.exact_keys(
        d, {"ciphertext_root", "slot_key", "commitment_signature", "entries", "unfunded"}, p
    )
    unfunded = wire.array(d.get("unfunded", []), p + "unfunded", wire.hash_hex,
                          max_items=MAX_SEALED_ENTRIES)  # fmt: skip
    return SealedOpening(
        ciphertext_root=wire.hex_bytes(wire.get(d, "ciphertext_root", p), p + "ciphertext_root",
                                       32),  # fmt: skip
        slot_key=wire.hex_bytes(wire.get(d, "slot_key", p), p + "slot_key", bls.SIGNATURE_LENGTH),
        commitment_signature=wire.hex_bytes(
            wire.get(d, "commitment_signature", p), p + "commitment_signature",
            bls.SIGNATURE_LENGTH,
        ),  # fmt: skip
        entries=sealed_entries_from_json(wire.get(d, "entries", p), p + "entries"),
        unfunded=tuple(unfunded),
    )


@dataclass(frozen=True, slots=True)
class OpeningRecord:
    """What the engine keeps of a slot's opening once the key exists (``save_slot_opening``):
    a ``SealedOpening`` without its entries, which stay in the slot's sealed logs. A process
    that builds the slot's proposal later (after a restart, or completing a slot another
    process closed) re-reads the entries and rebuilds the opening from it (decision 141)."""

    ciphertext_root: bytes
    slot_key: bytes
    commitment_signature: bytes
    unfunded: tuple[str, ...] = ()

    @classmethod
    def of(cls, s: SealedOpening) -> OpeningRecord:
        return cls(s.ciphertext_root, s.slot_key, s.commitment_signature, s.unfunded)

    def with_entries(self, entries: Sequence[LoggedSealedBid]) -> SealedOpening:
        """The opening of ``entries`` (canonical order) under this record."""
        return SealedOpening(self.ciphertext_root, self.slot_key, self.commitment_signature,
                             tuple(entries), self.unfunded)  # fmt: skip


def opening_record_to_json(r: OpeningRecord) -> dict[str, Any]:
    out = sealed_opening_to_json(r.with_entries(()))
    del out["entries"]
    return out


def opening_record_from_json(value: Any) -> OpeningRecord:
    """Read a stored opening record strictly (raises ``wire.FieldError``)."""
    d = wire.obj(value, "opening")
    return OpeningRecord.of(sealed_opening_from_json({**d, "entries": []}, "opening"))
