"""The ciphertext-set root (auction/ciphertext.py; docs/encryption.md, "Ciphertext-set root"):
golden vectors other implementations can check against, and the properties the committee
relies on when it signs one before releasing a slot key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from auction.ciphertext import CiphertextLeaf, compute_ciphertext_root

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "ciphertext_root_v1.json"
COMMITTEE = bytes(range(32))


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def leaf_by_hand(bid_id: bytes, ciphertext: bytes) -> bytes:
    # Written from the docs, not from the module: 0x00 || tag || bid id || SHA-256(ciphertext)
    return sha(b"\x00", b"blockspace/ciphertext-leaf/v1", bid_id, sha(ciphertext))


def root_by_hand(slot: int, leaves: list[bytes]) -> bytes:
    """The root for 0..3 leaves, each tree shape spelled out (RFC 9162 splits 3 as 2 + 1)."""
    hashes = sorted(set(leaves))
    if not hashes:
        tree = sha(b"")
    elif len(hashes) == 1:
        tree = hashes[0]
    elif len(hashes) == 2:
        tree = sha(b"\x01", hashes[0], hashes[1])
    else:
        tree = sha(b"\x01", sha(b"\x01", hashes[0], hashes[1]), hashes[2])
    count = len(hashes).to_bytes(8, "big")
    return sha(b"blockspace/ciphertext-root/v1\x00", COMMITTEE, slot.to_bytes(8, "big"), count,
               tree)


def cases() -> list[dict]:
    return json.loads(VECTORS.read_text())["cases"]


def test_the_golden_vectors_hold():
    for case in cases():
        leaves = [CiphertextLeaf(leaf["bid_id"], bytes.fromhex(leaf["ciphertext"][2:]))
                  for leaf in case["leaves"]]
        committee = bytes.fromhex(case["committee_id"][2:])
        root = compute_ciphertext_root(committee, case["slot"], leaves)
        assert "0x" + root.hex() == case["root"], case["name"]
        # And the hand-written reading of the spec agrees
        by_hand = root_by_hand(case["slot"], [
            leaf_by_hand(bytes.fromhex(x.bid_id[2:]), x.ciphertext) for x in leaves])
        assert by_hand == root, case["name"]


def test_the_vectors_cover_every_tree_shape():
    assert sorted(len({json.dumps(x) for x in c["leaves"]}) for c in cases()) == [0, 1, 2, 3, 3]


def _leaves(n: int) -> list[CiphertextLeaf]:
    return [CiphertextLeaf("0x" + f"{i + 1:02x}" * 32, bytes([i]) * (10 + i)) for i in range(n)]


def test_the_root_is_of_a_set():
    leaves = _leaves(3)
    root = compute_ciphertext_root(COMMITTEE, 9, leaves)
    assert compute_ciphertext_root(COMMITTEE, 9, leaves[::-1]) == root
    assert compute_ciphertext_root(COMMITTEE, 9, leaves + leaves[:1]) == root


@pytest.mark.parametrize("change", ["drop", "add", "swap_ciphertext", "swap_id", "slot",
                                    "committee"])
def test_any_change_to_the_set_changes_the_root(change):
    leaves = _leaves(3)
    root = compute_ciphertext_root(COMMITTEE, 9, leaves)
    committee, slot = COMMITTEE, 9
    if change == "drop":
        leaves = leaves[:2]
    elif change == "add":
        leaves = _leaves(4)
    elif change == "swap_ciphertext":
        leaves[0] = CiphertextLeaf(leaves[0].bid_id, leaves[0].ciphertext + b"\x00")
    elif change == "swap_id":
        leaves[0] = CiphertextLeaf("0x" + "ff" * 32, leaves[0].ciphertext)
    elif change == "slot":
        slot = 10
    else:
        committee = bytes(32)
    assert compute_ciphertext_root(committee, slot, leaves) != root


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        compute_ciphertext_root(b"short", 9, [])
    with pytest.raises(ValueError):
        compute_ciphertext_root(COMMITTEE, -1, [])
    with pytest.raises(ValueError):
        compute_ciphertext_root(COMMITTEE, 9, [CiphertextLeaf("0x12", b"")])
