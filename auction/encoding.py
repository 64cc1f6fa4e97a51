"""Canonical byte encodings and the hashes over them: the bid-set root and the block hash.

Documented in docs/encoding.md; any change bumps ``constants.ENCODING_VERSION``.
"""

from __future__ import annotations

from collections.abc import Sequence

from auction import constants as C
from auction.hashing import keccak256, to_hex
from auction.types import Block, PendingTx, WinningBundle

ZERO_HASH = "0x" + "00" * 32
_BLOCK_DOMAIN = b"blockspace/block"


def compute_merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Binary keccak Merkle root; leaves and nodes are domain-separated, odd nodes promoted."""
    if not leaves:
        return bytes(32)
    level = [keccak256(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        nxt = [keccak256(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def compute_bid_set_root(event_ids: Sequence[str]) -> str:
    """Root over the ids of a slot's logged events (bids and cancels) in log order."""
    return to_hex(compute_merkle_root([bytes.fromhex(i[2:]) for i in event_ids]))


def _leaf_hash(leaf: bytes) -> bytes:
    return keccak256(b"\x00" + leaf)


class MerkleFrontier:
    """``compute_merkle_root``'s tree kept as its leaves are appended, for the roots of its
    prefixes (with more leaves after them) without hashing the prefix again.

    Pairing level by level with the odd node promoted makes the tree over n leaves the one that
    splits at the largest power of two below n (RFC 6962's shape): every node is a perfect
    subtree over an aligned run of 2**k leaves, or the root of a split. ``append`` hashes the
    leaf and each perfect subtree it completes (two hashes per leaf, amortized); ``root(n,
    more)`` takes every perfect subtree inside the first n leaves from what is kept and hashes
    only the splits over them and the subtrees that reach into ``more``: O(log n) hashes when
    ``more`` is empty. Pure; decision 150."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]  # level k: perfect subtrees of 2**k leaves

    def __len__(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        """Append the next leaf. O(1) amortized hashes."""
        node = _leaf_hash(leaf)
        levels = self._levels
        levels[0].append(node)
        k = 0
        while len(levels[k]) % 2 == 0:  # a pair completed a subtree one level up
            node = keccak256(b"\x01" + levels[k][-2] + node)
            k += 1
            if k == len(levels):
                levels.append([])
            levels[k].append(node)

    def root(self, n: int, more: Sequence[bytes] = ()) -> bytes:
        """``compute_merkle_root`` of the first ``n`` leaves appended, then ``more``."""
        if not 0 <= n <= len(self):
            raise ValueError(f"the frontier holds {len(self)} leaves, not {n}")
        total = n + len(more)
        if total == 0:
            return bytes(32)
        extra = [_leaf_hash(leaf) for leaf in more]
        return self._node(0, total, n, extra)

    def _node(self, start: int, size: int, n: int, extra: list[bytes]) -> bytes:
        """The node over leaves ``start .. start + size`` (a perfect subtree or a split)."""
        if size & (size - 1) == 0 and start + size <= n:  # kept: aligned by construction
            k = size.bit_length() - 1
            return self._levels[k][start >> k]
        if size == 1:
            return extra[start - n]
        half = 1 << ((size - 1).bit_length() - 1)  # the largest power of two below size
        left = self._node(start, half, n, extra)
        return keccak256(b"\x01" + left + self._node(start + half, size - half, n, extra))


def compute_pending_root(pending: Sequence[PendingTx]) -> str:
    """Root over a pool of pending public txs in first-come first-served order."""
    return to_hex(
        compute_merkle_root(
            [
                bytes.fromhex(p.tx.hash[2:]) + p.arrival_slot.to_bytes(8, "big")
                + bytes([p.protected]) + p.seq.encode()
                for p in pending
            ]
        )
    )


def _u(n: int, size: int) -> bytes:
    return n.to_bytes(size, "big")


def _h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text[2:])


def encode_block_header(
    *,
    rollup: int,
    slot: int,
    parent_hash: str,
    bid_set_root: str,
    gas_used: int,
    revenue_wei: int,
    bundles: Sequence[WinningBundle],
    tx_hashes: Sequence[str],
    public_tx_count: int = 0,
    carried_root: str = ZERO_HASH,
    pending_root: str = ZERO_HASH,
) -> bytes:
    """The exact bytes the block hash (and so the committee signature) commits to.

    Version 1 unless an entry is a cross-rollup bundle's: then version 2, in which every entry
    is followed by its legs (``u8`` count, then per leg ``u64`` rollup, ``u16`` tx count and the
    tx hashes; a count of 0 for a single-rollup entry). A block without a cross-rollup entry
    keeps version 1's bytes, so its hash is what it was before cross-rollup bundles."""
    cross = any(b.legs for b in bundles)
    out = [
        _BLOCK_DOMAIN,
        _u(C.ENCODING_VERSION_CROSS if cross else C.ENCODING_VERSION, 1),
        _u(rollup, 8),
        _u(slot, 8),
        _h(parent_hash),
        _h(bid_set_root),
        _u(gas_used, 8),
        _u(revenue_wei, 32),
        _u(len(bundles), 4),
    ]
    for b in bundles:
        out += [  # (_h and _u inlined: this loop runs once per winning bundle)
            bytes.fromhex(b.bundle_hash[2:]),
            bytes.fromhex(b.bid_id[2:]),
            bytes.fromhex(b.searcher[2:]),
            b.bid_wei.to_bytes(32, "big"),
            b.payment_wei.to_bytes(32, "big"),
            b.gas.to_bytes(8, "big"),
        ]
        if cross:
            out.append(_encode_legs(b) if b.legs else b"\x00")  # a count of 0: single-rollup
    out.append(_u(len(tx_hashes), 4))
    out += [bytes.fromhex(t[2:]) for t in tx_hashes]
    out += [_u(public_tx_count, 4), _h(carried_root), _h(pending_root)]
    return b"".join(out)


def _encode_legs(b: WinningBundle) -> bytes:
    """A version-2 entry's legs: count, then each leg's rollup, tx count and tx hashes."""
    out = [_u(len(b.legs), 1)]
    for leg in b.legs:  # (_h and _u inlined, as in the entries' loop)
        out += [leg.rollup.to_bytes(8, "big"), len(leg.tx_hashes).to_bytes(2, "big")]
        out += [bytes.fromhex(t[2:]) for t in leg.tx_hashes]
    return b"".join(out)


def compute_block_hash(**fields: object) -> str:
    return to_hex(keccak256(encode_block_header(**fields)))  # type: ignore[arg-type]


def compute_header_hash(header: Block, tx_hashes: Sequence[str]) -> str:
    """The block hash that a block's header fields and its transactions' hashes imply."""
    return compute_block_hash(
        rollup=header.rollup,
        slot=header.slot,
        parent_hash=header.parent_hash,
        bid_set_root=header.bid_set_root,
        gas_used=header.gas_used,
        revenue_wei=header.revenue_wei,
        bundles=header.bundles,
        tx_hashes=list(tx_hashes),
        public_tx_count=header.public_tx_count,
        carried_root=header.carried_root,
        pending_root=header.pending_root,
    )
