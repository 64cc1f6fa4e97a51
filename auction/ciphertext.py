"""The byte format of an encrypted bid and the slot's ciphertext-set root (docs/encryption.md).

What the engine can know about an encrypted bid without any key: the version-1 layout
(``parse_ciphertext``: lengths, version and bounds, nothing decrypted) and the commitment to a
slot's set of ciphertexts (``compute_ciphertext_root``), which the committee signs before it
releases the slot key, so the set cannot change after anyone has seen a plaintext. The curve
work (encapsulation, opening) is ``committee.encryption``'s; this module is the part the intake
needs, so it sits in the pure auction layer. Pure: no I/O.

Ciphertext-set root::

    leaf(bid)  = SHA-256( 0x00 || "blockspace/ciphertext-leaf/v1" || bid_id (32 bytes)
                          || SHA-256(ciphertext) )
    node(l, r) = SHA-256( 0x01 || l || r )
    tree_root  = RFC 9162 Merkle Tree Hash over the leaves sorted by their bytes, duplicates
                 removed (the tree of ``auction.slotroot``); the empty tree's root is
                 SHA-256("") as in RFC 9162
    root       = SHA-256( "blockspace/ciphertext-root/v1" || 0x00 || committee_id (32 bytes)
                          || u64be(slot) || u64be(leaf count) || tree_root )
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from auction.constants import MAX_REQUEST_BYTES
from auction.errors import BlockspaceError
from auction.hashing import from_hex

VERSION: Final[int] = 1

COMMITTEE_ID_LENGTH: Final[int] = 32
C1_LENGTH: Final[int] = 48  # a compressed G1 point
SIGMA_LENGTH: Final[int] = 32
NONCE_LENGTH: Final[int] = 12
TAG_LENGTH: Final[int] = 16
ENCAPSULATION_LENGTH: Final[int] = C1_LENGTH + SIGMA_LENGTH  # C1 || V = 80

# Byte layout of a version-1 ciphertext (docs/encryption.md, "Ciphertext format").
OFF_COMMITTEE: Final[int] = 1
OFF_SLOT: Final[int] = OFF_COMMITTEE + COMMITTEE_ID_LENGTH  # 33
OFF_C1: Final[int] = OFF_SLOT + 8  # 41
OFF_V: Final[int] = OFF_C1 + C1_LENGTH  # 89
OFF_NONCE: Final[int] = OFF_V + SIGMA_LENGTH  # 121
OFF_PUBLIC_LEN: Final[int] = OFF_NONCE + NONCE_LENGTH  # 133
FIXED_HEADER_LENGTH: Final[int] = OFF_PUBLIC_LEN + 2  # 135

# Bounds: a payload is at most one request body; public fields are a few small values.
MAX_PAYLOAD_BYTES: Final[int] = MAX_REQUEST_BYTES
MAX_PUBLIC_BYTES: Final[int] = 1024
MIN_CIPHERTEXT_LENGTH: Final[int] = FIXED_HEADER_LENGTH + 1 + TAG_LENGTH
MAX_CIPHERTEXT_LENGTH: Final[int] = (
    FIXED_HEADER_LENGTH + MAX_PUBLIC_BYTES + MAX_PAYLOAD_BYTES + TAG_LENGTH
)

LEAF_PREFIX: Final[bytes] = b"\x00"
NODE_PREFIX: Final[bytes] = b"\x01"
LEAF_TAG: Final[bytes] = b"blockspace/ciphertext-leaf/v1"
ROOT_TAG: Final[bytes] = b"blockspace/ciphertext-root/v1\x00"


# --- errors: one ciphertext refused, never the others ------------------------------------------


class CiphertextError(BlockspaceError):
    """Base of every refusal of an encrypted bid for what its bytes are."""

    code = "ciphertext_error"


class MalformedCiphertext(CiphertextError):
    """Bytes that are not a ciphertext: not bytes or hex, a bad point, a bad length field."""

    code = "malformed_ciphertext"


class UnsupportedCiphertextVersion(CiphertextError):
    """The version byte names a format this code does not know."""

    code = "unsupported_ciphertext_version"


class CiphertextTooShort(CiphertextError):
    """Shorter than the fixed header plus the AEAD tag and one payload byte."""

    code = "ciphertext_too_short"


class CiphertextTooLarge(CiphertextError):
    """The payload or the public fields exceed their bounds (MAX_PAYLOAD_BYTES,
    MAX_PUBLIC_BYTES)."""

    code = "ciphertext_too_large"


class WrongCommittee(CiphertextError):
    """Encrypted to another committee's identity."""

    code = "ciphertext_wrong_committee"


class WrongSlot(CiphertextError):
    """Encrypted to another slot's identity."""

    code = "ciphertext_wrong_slot"


class InvalidEncapsulation(CiphertextError):
    """The encapsulation fails the Fujisaki-Okamoto re-encryption check (C1 != H_r(sigma) * G1):
    it was not made by an honest encryptor, or was altered."""

    code = "invalid_encapsulation"


class PayloadAuthFailed(CiphertextError):
    """The AEAD refuses the payload: the body, nonce, public fields or header were altered."""

    code = "payload_auth_failed"


# --- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ciphertext:
    """A parsed version-1 ciphertext (shape checked, nothing decrypted)."""

    committee_id: bytes
    slot: int
    encapsulation: bytes
    nonce: bytes
    public_fields: bytes
    header: bytes
    body: bytes


def parse_ciphertext(data: bytes) -> Ciphertext:
    """Split a ciphertext into its fields, checking lengths, version and bounds only."""
    if not isinstance(data, bytes | bytearray):
        raise MalformedCiphertext("ciphertext must be bytes", type=type(data).__name__)
    data = bytes(data)
    if len(data) > MAX_CIPHERTEXT_LENGTH:
        raise CiphertextTooLarge("ciphertext too large", length=len(data))
    if len(data) < 1:
        raise CiphertextTooShort("empty ciphertext", length=0)
    if data[0] != VERSION:
        raise UnsupportedCiphertextVersion(f"unknown ciphertext version {data[0]}", version=data[0])
    if len(data) < MIN_CIPHERTEXT_LENGTH:
        raise CiphertextTooShort("ciphertext too short", length=len(data))
    public_length = int.from_bytes(data[OFF_PUBLIC_LEN:FIXED_HEADER_LENGTH], "big")
    if public_length > MAX_PUBLIC_BYTES:
        raise CiphertextTooLarge("public fields too large", length=public_length)
    header_length = FIXED_HEADER_LENGTH + public_length
    body_length = len(data) - header_length
    if body_length < TAG_LENGTH + 1:
        raise CiphertextTooShort("ciphertext too short for its public fields", length=len(data))
    if body_length - TAG_LENGTH > MAX_PAYLOAD_BYTES:
        raise CiphertextTooLarge("payload too large", length=body_length - TAG_LENGTH)
    return Ciphertext(
        committee_id=data[OFF_COMMITTEE:OFF_SLOT],
        slot=int.from_bytes(data[OFF_SLOT:OFF_C1], "big"),
        encapsulation=data[OFF_C1:OFF_NONCE],
        nonce=data[OFF_NONCE:OFF_PUBLIC_LEN],
        public_fields=data[FIXED_HEADER_LENGTH:header_length],
        header=data[:header_length],
        body=data[header_length:],
    )


# --- the ciphertext-set root ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CiphertextLeaf:
    """One encrypted bid as the slot's ciphertext set names it: the id of the signed call that
    carried it (its receipt's event id) and the ciphertext itself."""

    bid_id: str  # 0x + 64 hex digits
    ciphertext: bytes


def compute_ciphertext_leaf(leaf: CiphertextLeaf) -> bytes:
    """The 32-byte leaf hash of one encrypted bid."""
    return compute_ciphertext_leaf_hash(leaf.bid_id, hashlib.sha256(leaf.ciphertext).digest())


def compute_ciphertext_leaf_hash(bid_id: str, ciphertext_sha256: bytes) -> bytes:
    """The leaf hash from the bid id and SHA-256 of the ciphertext (what evidence carries)."""
    raw_id = from_hex(bid_id, what="bid id", length=32)
    if not isinstance(ciphertext_sha256, bytes) or len(ciphertext_sha256) != 32:
        raise ValueError("the ciphertext's SHA-256 is 32 bytes")
    return hashlib.sha256(LEAF_PREFIX + LEAF_TAG + raw_id + ciphertext_sha256).digest()


def _tree_hash(hashes: list[bytes]) -> bytes:
    """RFC 9162's Merkle Tree Hash: split at the largest power of two below n."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(NODE_PREFIX + _tree_hash(hashes[:k]) + _tree_hash(hashes[k:])).digest()


def compute_ciphertext_root(
    committee_id: bytes, slot: int, leaves: Iterable[CiphertextLeaf]
) -> bytes:
    """The 32-byte root of a slot's set of encrypted bids (any order in: a set, sorted here).

    Bound to the committee and slot (a root signed for one slot is no other's) and to the leaf
    count (a proof for the leftmost leaves cannot claim a larger set)."""
    return compute_ciphertext_root_of_leaves(
        committee_id, slot, [compute_ciphertext_leaf(leaf) for leaf in leaves]
    )


def compute_ciphertext_root_of_leaves(
    committee_id: bytes, slot: int, leaf_hashes: Iterable[bytes]
) -> bytes:
    """The root over leaf hashes already computed (``compute_ciphertext_leaf_hash``)."""
    if not isinstance(committee_id, bytes) or len(committee_id) != COMMITTEE_ID_LENGTH:
        raise ValueError("committee id must be 32 bytes")
    if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < 1 << 64:
        raise ValueError("slot must be an int in 0..2^64-1")
    hashes = sorted(set(leaf_hashes))
    return hashlib.sha256(
        ROOT_TAG
        + committee_id
        + slot.to_bytes(8, "big")
        + len(hashes).to_bytes(8, "big")
        + _tree_hash(hashes)
    ).digest()
