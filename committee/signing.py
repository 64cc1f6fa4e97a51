"""What the committee signs: the signing root of a block.

The BLS message is a 32-byte *signing root*, not the block hash itself, so a signature can never
be replayed across committees, rollups, slots or other message kinds::

    signing_root = SHA-256( b"blockspace/block-signing-root/v1" || 0x00
                            || committee_id (32 bytes)
                            || u64be(rollup) || u64be(slot)
                            || block_hash (32 bytes) )

``block_hash`` is keccak-256 over the canonical block header (``auction.encoding``), which already
commits to rollup and slot; repeating them here lets anyone check a (rollup, slot, block hash,
signature) certificate without the header. A rollup verifies a signed block with any Ethereum BLS
library: ``Verify(group_public_key, signing_root, signature)`` under the POP ciphersuite
(``committee.bls.CIPHERSUITE``). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Final

from auction.hashing import from_hex
from committee import bls, threshold

SIGNING_ROOT_TAG: Final[bytes] = b"blockspace/block-signing-root/v1\x00"
_MAX_U64: Final[int] = (1 << 64) - 1


def _check_u64(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_U64:
        raise ValueError(f"{what} must be an int in 0..2^64-1")


def compute_signing_root(committee_id: bytes, rollup: int, slot: int, block_hash: str) -> bytes:
    """Return the 32-byte message the committee signs for ``block_hash`` at (rollup, slot)."""
    if not isinstance(committee_id, bytes) or len(committee_id) != threshold.COMMITTEE_ID_LENGTH:
        raise ValueError("committee id must be 32 bytes")
    _check_u64(rollup, "rollup")
    _check_u64(slot, "slot")
    digest = _hash_bytes(block_hash)
    h = hashlib.sha256(SIGNING_ROOT_TAG)
    h.update(committee_id)
    h.update(rollup.to_bytes(8, "big") + slot.to_bytes(8, "big"))
    h.update(digest)
    return h.digest()


def _hash_bytes(block_hash: str) -> bytes:
    """Decode a 0x-prefixed 32-byte hash, strictly (lowercase or uppercase hex, no spaces)."""
    if not isinstance(block_hash, str) or len(block_hash) != 66:
        raise ValueError("block hash must be 0x followed by 64 hex digits")
    return from_hex(block_hash, what="block hash", length=32)


def is_valid_block_signature(
    committee: threshold.CommitteeInfo, rollup: int, slot: int, block_hash: str, signature: bytes
) -> bool:
    """Return whether ``signature`` is the committee's signature of that block (one pairing)."""
    try:
        root = compute_signing_root(committee.committee_id, rollup, slot, block_hash)
    except ValueError:
        return False
    return bls.verify(committee.group_public_key, root, signature)
