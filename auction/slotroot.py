"""The slot root: one commitment to every rollup's block of a slot, and its inclusion proofs.

A shared-sequencing slot is one block per rollup the deployment serves. The committee signs the
slot once, over the *slot root* (``committee.signing``), and each rollup receives its own block
with a proof that the block is under that root (docs/protocol.md, "Slot roots")::

    leaf(rollup, block_hash) = SHA-256( 0x00 || "blockspace/slot-leaf/v1" || u64be(rollup)
                                        || block_hash (32 bytes) )
    node(left, right)        = SHA-256( 0x01 || left || right )
    tree_root                = RFC 9162 (section 2.1.1) Merkle Tree Hash over the leaves sorted
                               by rollup id: for n > 1 leaves, split at k, the largest power of
                               two below n; equivalently, bottom-up, pair neighbours left to
                               right and carry an odd last node up unchanged (never duplicated)
    slot_root                = SHA-256( "blockspace/slot-root/v1" || 0x00 || u64be(n)
                               || tree_root )
    sealed slot_root         = SHA-256( "blockspace/sealed-slot-root/v1" || 0x00 || u64be(n)
                               || tree_root || ciphertext_root )   for a slot whose encrypted
                               bids the committee committed to and opened (issue 14: the
                               root of their ciphertext set, ``auction.ciphertext``)

The 0x00 / 0x01 prefixes separate leaves from inner nodes (no second preimage: an inner node is
never read as a leaf). The leaf count is bound into the slot root, as a Certificate Transparency
signed tree head binds its tree size: without it a proof for the leftmost leaves of a tree
would also verify with a larger count. So a proof (leaf index, leaf count, siblings bottom-up,
RFC 9162's audit path) shows the leaf is in the tree at that index *and* how many rollups the
slot has; with the rollups sorted, a rollup that knows the deployment's rollup list checks its
index and the count (completeness, as Astria's conductors do). Hash: SHA-256, as the signing
root (one hash for everything the committee's message is built from; the EVM has it as a
precompile); block hashes stay keccak-256, they are only 32-byte inputs here. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from auction.hashing import from_hex

LEAF_PREFIX: Final[bytes] = b"\x00"
NODE_PREFIX: Final[bytes] = b"\x01"
LEAF_TAG: Final[bytes] = b"blockspace/slot-leaf/v1"
ROOT_TAG: Final[bytes] = b"blockspace/slot-root/v1\x00"
SEALED_ROOT_TAG: Final[bytes] = b"blockspace/sealed-slot-root/v1\x00"
# More rollups than this in one slot is a configuration error, not a deployment.
MAX_SLOT_LEAVES: Final[int] = 1 << 16
_MAX_U64: Final[int] = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class SlotLeaf:
    """One rollup's block in a slot."""

    rollup: int
    block_hash: str  # 0x + 64 hex digits (keccak-256 of the block header)


@dataclass(frozen=True, slots=True)
class SlotProof:
    """That a leaf is at ``leaf_index`` of a slot tree of ``leaf_count`` leaves: the sibling
    hashes on its path to the tree root, bottom-up (RFC 9162's audit path)."""

    leaf_index: int
    leaf_count: int
    siblings: tuple[bytes, ...]
    # The slot's ciphertext-set root, bound into its slot root, if it had encrypted bids
    ciphertext_root: bytes | None = None


def _check_u64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_U64:
        raise ValueError(f"{what} must be an int in 0..2^64-1")
    return value


def _hash32(block_hash: object) -> bytes:
    if not isinstance(block_hash, str) or len(block_hash) != 66:
        raise ValueError("block hash must be 0x followed by 64 hex digits")
    return from_hex(block_hash, what="block hash", length=32)


def compute_leaf_hash(rollup: int, block_hash: str) -> bytes:
    """The leaf of ``rollup``'s block in its slot's tree."""
    body = LEAF_TAG + _check_u64(rollup, "rollup").to_bytes(8, "big") + _hash32(block_hash)
    return hashlib.sha256(LEAF_PREFIX + body).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _wrap(leaf_count: int, tree_root: bytes, ciphertext_root: bytes | None = None) -> bytes:
    """The slot root: the tree root bound to its leaf count (and its ciphertext-set root)."""
    if ciphertext_root is None:
        return hashlib.sha256(ROOT_TAG + leaf_count.to_bytes(8, "big") + tree_root).digest()
    if not isinstance(ciphertext_root, bytes) or len(ciphertext_root) != 32:
        raise ValueError("the ciphertext root is 32 bytes")
    return hashlib.sha256(
        SEALED_ROOT_TAG + leaf_count.to_bytes(8, "big") + tree_root + ciphertext_root
    ).digest()


def sort_leaves(leaves: Iterable[SlotLeaf]) -> list[SlotLeaf]:
    """The leaves in tree order (ascending rollup id); raise ValueError on an empty slot, a
    rollup named twice, or too many leaves."""
    ordered = sorted(leaves, key=lambda leaf: _check_u64(leaf.rollup, "rollup"))
    if not ordered:
        raise ValueError("a slot has at least one rollup")
    if len(ordered) > MAX_SLOT_LEAVES:
        raise ValueError(f"a slot has at most {MAX_SLOT_LEAVES} rollups")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.rollup == b.rollup:
            raise ValueError(f"rollup {a.rollup} has two leaves")
    return ordered


def _split(n: int) -> int:
    """The largest power of two below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _tree_hash(hashes: Sequence[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return _node(_tree_hash(hashes[:k]), _tree_hash(hashes[k:]))


def _audit_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162's PATH(m, D[n]), bottom-up."""
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return [*_audit_path(m, hashes[:k]), _tree_hash(hashes[k:])]
    return [*_audit_path(m - k, hashes[k:]), _tree_hash(hashes[:k])]


def compute_slot_root(
    leaves: Iterable[SlotLeaf], ciphertext_root: bytes | None = None
) -> bytes:
    """The 32-byte slot root over every rollup's block of a slot (any order in; sorted here),
    bound to the slot's ciphertext-set root if it had encrypted bids."""
    ordered = sort_leaves(leaves)
    hashes = [compute_leaf_hash(leaf.rollup, leaf.block_hash) for leaf in ordered]
    return _wrap(len(hashes), _tree_hash(hashes), ciphertext_root)


def compute_slot_proof(
    leaves: Iterable[SlotLeaf], rollup: int, ciphertext_root: bytes | None = None
) -> SlotProof:
    """The proof that ``rollup``'s leaf is under the slot root of ``leaves`` (and the
    ciphertext-set root the slot root binds, if any)."""
    ordered = sort_leaves(leaves)
    index = next((i for i, leaf in enumerate(ordered) if leaf.rollup == rollup), None)
    if index is None:
        raise ValueError(f"rollup {rollup} has no leaf in this slot")
    hashes = [compute_leaf_hash(leaf.rollup, leaf.block_hash) for leaf in ordered]
    return SlotProof(index, len(hashes), tuple(_audit_path(index, hashes)), ciphertext_root)


def compute_root_from_proof(rollup: int, block_hash: str, proof: SlotProof) -> bytes:
    """The slot root a leaf and its proof imply; raise ValueError if the proof cannot be one
    (index outside the count, or a sibling list of the wrong length for that position).

    RFC 9162 section 2.1.3.2, then the count is bound in as ``compute_slot_root`` does."""
    index = _check_u64(proof.leaf_index, "leaf index")
    count = _check_u64(proof.leaf_count, "leaf count")
    if not 0 <= index < count <= MAX_SLOT_LEAVES:
        raise ValueError("the leaf index must be below the leaf count (1..2^16)")
    if not all(isinstance(s, bytes) and len(s) == 32 for s in proof.siblings):
        raise ValueError("every sibling is 32 bytes")
    fn, sn = index, count - 1
    r = compute_leaf_hash(rollup, block_hash)
    for sibling in proof.siblings:
        if sn == 0:
            raise ValueError("the proof has more siblings than the leaf's path")
        if fn & 1 or fn == sn:
            r = _node(sibling, r)
            while not fn & 1 and fn != 0:  # a carried-up node: skip the levels it skipped
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof has fewer siblings than the leaf's path")
    return _wrap(count, r, proof.ciphertext_root)


def verify_slot_proof(
    slot_root: bytes,
    rollup: int,
    block_hash: str,
    proof: SlotProof,
    *,
    expected_rollups: Iterable[int] | None = None,
) -> bool:
    """Whether ``rollup``'s block ``block_hash`` is under ``slot_root`` by ``proof``; with
    ``expected_rollups`` (the deployment's rollups), also whether the slot has exactly that many
    leaves and this rollup's is at its place among them (completeness)."""
    if expected_rollups is not None:
        expected = sorted(set(expected_rollups))
        if rollup not in expected or proof.leaf_count != len(expected):
            return False
        if proof.leaf_index != expected.index(rollup):
            return False
    try:
        return compute_root_from_proof(rollup, block_hash, proof) == slot_root
    except ValueError:
        return False
