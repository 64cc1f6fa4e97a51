"""The operator's endorsement of a slot proposal: its signature over (committee, slot, slot root).

The coordinator signs every proposal it sends with the operator key (the one that signs
receipts), so that two proposals for one slot become evidence against the operator
(``committee.evidence``, kind ``operator_equivocation``). The scheme is the receipts' (secp256k1
ECDSA over an EIP-712 digest, ``auction.receipts``) with a primary type of its own::

    domain  = EIP712Domain(string name, string version, bytes32 salt)
              name "blockspace", version "1", salt = the committee id   (the receipts' domain)
    struct  = SlotProposal(uint64 slot, bytes32 slotRoot)
    digest  = keccak256(0x19 0x01 || hashStruct(domain) || hashStruct(struct))

The struct's type hash differs from ``Receipt``'s, so no receipt signature is an endorsement and
no endorsement a receipt (a collision would be one of keccak-256). The signature is over the
slot root, not the proposal's bytes: the slot root commits to every part's block, hence to each
log (bid-set root), parent and carried pool, while the bytes differ per member under streaming
(version 7 leaves out each member's streamed prefix) and between a proposal and its completion,
which are one proposal.

On the wire the endorsement wraps the proposal's bytes, which stay as they are
(``committee.proposal``): ``ENVELOPE_MAGIC || operator (20 bytes) || signature (65 bytes) ||
proposal bytes``. A member unwraps it (``unwrap_proposal``) and checks the signature once it has
the slot root, before any rule. Pure: keys are arguments, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from auction.hashing import keccak256, to_hex
from auction.receipts import (
    OperatorKey,
    compute_domain_separator,
    recover_digest_signer,
    sign_digest,
)
from committee import wire
from committee.errors import ForgedProposal, MalformedEvidence, MalformedProposal

ENVELOPE_MAGIC: Final = b"blockspace-endorsed-proposal/1\n"
_ADDRESS_BYTES: Final = 20
_SIGNATURE_BYTES: Final = 65
_HEADER_BYTES: Final = len(ENVELOPE_MAGIC) + _ADDRESS_BYTES + _SIGNATURE_BYTES
_PROPOSAL_TYPEHASH: Final = keccak256(b"SlotProposal(uint64 slot,bytes32 slotRoot)")
_KEYS: Final = frozenset({"committee_id", "slot", "slot_root", "operator", "signature"})


@dataclass(frozen=True, slots=True)
class Endorsement:
    """The operator's signature of a slot proposal's (committee, slot, slot root)."""

    committee_id: bytes
    slot: int
    slot_root: bytes
    operator: str  # lowercase 0x address the signature recovers
    signature: bytes  # 65 bytes, r || s || v


def compute_endorsement_digest(committee_id: bytes, slot: int, slot_root: bytes) -> bytes:
    """The 32-byte EIP-712 digest the operator signs for a proposal."""
    struct_hash = keccak256(_PROPOSAL_TYPEHASH + slot.to_bytes(32, "big") + slot_root)
    return keccak256(b"\x19\x01" + compute_domain_separator(committee_id) + struct_hash)


def sign_endorsement(
    committee_id: bytes, slot: int, slot_root: bytes, key: OperatorKey
) -> Endorsement:
    """The operator's endorsement of the proposal of ``slot`` whose slot root is ``slot_root``."""
    digest = compute_endorsement_digest(committee_id, slot, slot_root)
    return Endorsement(committee_id, slot, slot_root, key.address, sign_digest(digest, key))


def verify_endorsement(endorsement: Endorsement, operator: str | None = None) -> None:
    """Raise ``ForgedProposal`` unless the signature recovers the endorsement's operator (and
    that is ``operator``, when pinned)."""
    e = endorsement
    digest = compute_endorsement_digest(e.committee_id, e.slot, e.slot_root)
    # Verify the signature recovers the operator it names
    if recover_digest_signer(digest, e.signature) != e.operator:
        raise ForgedProposal("the proposal's signature is not its operator's",
                             operator=e.operator, slot=e.slot)  # fmt: skip
    # Verify it is the pinned operator's
    if operator is not None and e.operator != operator.lower():
        raise ForgedProposal("the proposal was not signed by this deployment's operator",
                             operator=e.operator, expected=operator.lower())  # fmt: skip


# --- the wire envelope ------------------------------------------------------------------------


def wrap_proposal(body: bytes, endorsement: Endorsement) -> bytes:
    """The endorsed proposal's wire bytes: the envelope header, then ``body`` unchanged."""
    return (ENVELOPE_MAGIC + bytes.fromhex(endorsement.operator[2:]) + endorsement.signature
            + body)  # fmt: skip


def unwrap_proposal(data: bytes) -> tuple[tuple[str, bytes] | None, bytes]:
    """Split wire bytes into (operator, signature) and the proposal's bytes; (None, data) for
    an unendorsed proposal. ``MalformedProposal`` for a truncated envelope."""
    if not data.startswith(ENVELOPE_MAGIC):
        return None, data
    if len(data) < _HEADER_BYTES:
        raise MalformedProposal("bad proposal: the operator's envelope is truncated")
    start = len(ENVELOPE_MAGIC)
    operator = to_hex(data[start:start + _ADDRESS_BYTES])
    signature = data[start + _ADDRESS_BYTES:_HEADER_BYTES]
    return (operator, signature), data[_HEADER_BYTES:]


# --- JSON (evidence documents) ----------------------------------------------------------------


def endorsement_to_json(e: Endorsement) -> dict[str, Any]:
    return {
        "committee_id": to_hex(e.committee_id),
        "slot": e.slot,
        "slot_root": to_hex(e.slot_root),
        "operator": e.operator,
        "signature": to_hex(e.signature),
    }


def endorsement_from_json(value: Any, field: str) -> Endorsement:
    """Read an endorsement strictly (``MalformedEvidence`` naming the field); its signature is
    not checked here."""
    try:
        d = wire.obj(value, field)
        wire.exact_keys(d, set(_KEYS), field + ".")
        return Endorsement(
            committee_id=wire.hex_bytes(wire.get(d, "committee_id", field + "."),
                                        field + ".committee_id", 32),
            slot=wire.integer(wire.get(d, "slot", field + "."), field + ".slot"),
            slot_root=wire.hex_bytes(wire.get(d, "slot_root", field + "."),
                                     field + ".slot_root", 32),
            operator=_lower(wire.get(d, "operator", field + "."), field + ".operator",
                            _ADDRESS_BYTES),
            signature=wire.hex_bytes(wire.get(d, "signature", field + "."),
                                     field + ".signature", _SIGNATURE_BYTES),
        )  # fmt: skip
    except wire.FieldError as exc:
        raise MalformedEvidence(str(exc), field=exc.field) from None


def _lower(value: Any, field: str, length: int) -> str:
    out = "0x" + wire.hex_bytes(value, field, length).hex()
    if out != value:
        raise wire.FieldError(field, "must be lowercase hex")
    return out
