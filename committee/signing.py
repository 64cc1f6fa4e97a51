"""What the committee signs: the signing root of a slot.

The committee signs once per slot, over the slot root (``auction.slotroot``: a Merkle root over
every rollup's block of the slot). The BLS message is a 32-byte *slot signing root*, never the
slot root itself, so a signature can never be replayed across committees, slots or other
message kinds::

    signing_root = SHA-256( b"blockspace/slot-signing-root/v1" || 0x00
                            || committee_id (32 bytes)
                            || u64be(slot)
                            || slot_root (32 bytes) )

The tag differs from the one of the per-rollup block signing root that protocol version 1
signed (``"blockspace/block-signing-root/v1"``, 113-byte preimage; this one is 104 bytes and
differs from its 12th byte on), so neither kind of signature verifies as the other. A block is
certified by (rollup, slot, block hash, its slot proof, the signature): the proof gives the slot
root, the root the signing root. A rollup verifies with any Ethereum BLS library:
``Verify(group_public_key, signing_root, signature)`` under the POP ciphersuite
(``committee.bls.CIPHERSUITE``). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Final

from auction.slotroot import SlotProof, compute_root_from_proof
from committee import bls, threshold

SLOT_SIGNING_ROOT_TAG: Final[bytes] = b"blockspace/slot-signing-root/v1\x00"
_MAX_U64: Final[int] = (1 << 64) - 1


def compute_slot_signing_root(committee_id: bytes, slot: int, slot_root: bytes) -> bytes:
    """Return the 32-byte message the committee signs for ``slot_root`` at ``slot``."""
    if not isinstance(committee_id, bytes) or len(committee_id) != threshold.COMMITTEE_ID_LENGTH:
        raise ValueError("committee id must be 32 bytes")
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= _MAX_U64:
        raise ValueError("slot must be an int in 0..2^64-1")
    if not isinstance(slot_root, bytes) or len(slot_root) != 32:
        raise ValueError("slot root must be 32 bytes")
    h = hashlib.sha256(SLOT_SIGNING_ROOT_TAG)
    h.update(committee_id)
    h.update(slot.to_bytes(8, "big"))
    h.update(slot_root)
    return h.digest()


def is_valid_slot_signature(
    committee: threshold.CommitteeInfo, slot: int, slot_root: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` is the committee's signature of ``slot_root`` (one pairing)."""
    try:
        message = compute_slot_signing_root(committee.committee_id, slot, slot_root)
    except ValueError:
        return False
    return bls.verify(committee.group_public_key, message, signature)


def is_valid_block_certificate(
    committee: threshold.CommitteeInfo,
    rollup: int,
    slot: int,
    block_hash: str,
    proof: SlotProof,
    signature: bytes,
) -> bool:
    """Whether the committee signed a slot root that ``proof`` puts ``rollup``'s block under:
    the certificate of a block a member adopts as a parent it did not see (one pairing)."""
    try:
        slot_root = compute_root_from_proof(rollup, block_hash, proof)
    except ValueError:
        return False
    return is_valid_slot_signature(committee, slot, slot_root, signature)
