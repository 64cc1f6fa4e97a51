"""The slot root and its proofs (auction/slotroot.py): every proof verifies, no tampered one does.

The root is checked against an independent bottom-up construction (pair neighbours, carry an odd
last node up) written here with hashlib only, as docs/protocol.md describes it.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.slotroot import (
    SlotLeaf,
    SlotProof,
    compute_leaf_hash,
    compute_root_from_proof,
    compute_slot_proof,
    compute_slot_root,
    verify_slot_proof,
)

hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
rollup_ids = st.integers(min_value=0, max_value=(1 << 64) - 1)


@st.composite
def slots(draw: st.DrawFn, max_leaves: int = 20) -> list[SlotLeaf]:
    ids = draw(st.lists(rollup_ids, min_size=1, max_size=max_leaves, unique=True))
    return [SlotLeaf(r, draw(hashes)) for r in ids]


def bottom_up_root(leaves: list[SlotLeaf]) -> bytes:
    """The documented construction, independently: sort, hash leaves, pair up, carry odd."""
    level = [
        hashlib.sha256(
            b"\x00blockspace/slot-leaf/v1"
            + leaf.rollup.to_bytes(8, "big")
            + bytes.fromhex(leaf.block_hash[2:])
        ).digest()
        for leaf in sorted(leaves, key=lambda x: x.rollup)
    ]
    count = len(level)
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return hashlib.sha256(
        b"blockspace/slot-root/v1\x00" + count.to_bytes(8, "big") + level[0]
    ).digest()


@settings(max_examples=200, deadline=None)
@given(slots())
def test_root_is_the_documented_construction_and_every_proof_verifies(
    leaves: list[SlotLeaf],
) -> None:
    root = compute_slot_root(leaves)
    assert root == bottom_up_root(leaves)
    assert compute_slot_root(reversed(leaves)) == root  # the order given does not matter
    ids = [leaf.rollup for leaf in leaves]
    for leaf in leaves:
        proof = compute_slot_proof(leaves, leaf.rollup)
        assert proof.leaf_count == len(leaves)
        assert proof.leaf_index == sorted(ids).index(leaf.rollup)
        assert verify_slot_proof(root, leaf.rollup, leaf.block_hash, proof)
        assert verify_slot_proof(root, leaf.rollup, leaf.block_hash, proof, expected_rollups=ids)


def _flip(b: bytes, i: int) -> bytes:
    return b[: i % 32] + bytes([b[i % 32] ^ 1]) + b[i % 32 + 1 :]


@settings(max_examples=200, deadline=None)
@given(slots(), st.data())
def test_no_tampered_proof_leaf_index_or_count_verifies(leaves: list[SlotLeaf], data) -> None:
    root = compute_slot_root(leaves)
    leaf = data.draw(st.sampled_from(leaves))
    proof = compute_slot_proof(leaves, leaf.rollup)
    n = len(leaves)
    bad: list[tuple[int, str, SlotProof]] = []
    # another block hash, another rollup id (the proof of A is not B's)
    other_hash = data.draw(hashes.filter(lambda h: h != leaf.block_hash))
    bad.append((leaf.rollup, other_hash, proof))
    other_rollup = data.draw(rollup_ids.filter(lambda r: r != leaf.rollup))
    bad.append((other_rollup, leaf.block_hash, proof))
    # any other index or count, a sibling flipped, dropped, added or swapped
    index = data.draw(st.integers(0, n + 2).filter(lambda i: i != proof.leaf_index))
    bad.append((leaf.rollup, leaf.block_hash, dataclasses.replace(proof, leaf_index=index)))
    count = data.draw(st.integers(1, 2 * n + 2).filter(lambda c: c != n))
    bad.append((leaf.rollup, leaf.block_hash, dataclasses.replace(proof, leaf_count=count)))
    if proof.siblings:
        s = list(proof.siblings)
        k = data.draw(st.integers(0, len(s) - 1))
        flipped = [*s[:k], _flip(s[k], data.draw(st.integers(0, 31))), *s[k + 1 :]]
        bad.append(
            (leaf.rollup, leaf.block_hash, dataclasses.replace(proof, siblings=tuple(flipped)))
        )
        bad.append(
            (leaf.rollup, leaf.block_hash, dataclasses.replace(proof, siblings=tuple(s[:-1])))
        )
        if len(s) > 1 and s[0] != s[-1]:
            swapped = tuple([s[-1], *s[1:-1], s[0]])
            bad.append((leaf.rollup, leaf.block_hash, dataclasses.replace(proof, siblings=swapped)))
    extra = data.draw(st.binary(min_size=32, max_size=32))
    bad.append(
        (
            leaf.rollup,
            leaf.block_hash,
            dataclasses.replace(proof, siblings=(*proof.siblings, extra)),
        )
    )
    for rollup, block_hash, p in bad:
        assert not verify_slot_proof(root, rollup, block_hash, p), (rollup, block_hash, p)
    # and the right proof under another root
    assert not verify_slot_proof(_flip(root, 0), leaf.rollup, leaf.block_hash, proof)


@settings(max_examples=100, deadline=None)
@given(slots(max_leaves=12), st.data())
def test_a_slot_missing_or_adding_a_rollup_fails_the_completeness_check(leaves, data) -> None:
    """A rollup that knows the deployment's rollups refuses a slot that omits one or adds one,
    even when its own leaf is honestly proven."""
    expected = [leaf.rollup for leaf in leaves]
    mine = data.draw(st.sampled_from(leaves))
    others = [leaf for leaf in leaves if leaf is not mine]
    if others:  # the slot leaves out one of the deployment's rollups
        dropped = data.draw(st.sampled_from(others))
        short = [leaf for leaf in leaves if leaf is not dropped]
        proof = compute_slot_proof(short, mine.rollup)
        assert verify_slot_proof(compute_slot_root(short), mine.rollup, mine.block_hash, proof)
        assert not verify_slot_proof(
            compute_slot_root(short), mine.rollup, mine.block_hash, proof, expected_rollups=expected
        )
    extra_id = data.draw(rollup_ids.filter(lambda r: r not in expected))
    longer = [*leaves, SlotLeaf(extra_id, data.draw(hashes))]
    proof = compute_slot_proof(longer, mine.rollup)
    assert not verify_slot_proof(
        compute_slot_root(longer), mine.rollup, mine.block_hash, proof, expected_rollups=expected
    )


def test_a_rollup_twice_an_empty_slot_and_bad_inputs_are_refused() -> None:
    h = "0x" + "11" * 32
    with pytest.raises(ValueError, match="two leaves"):
        compute_slot_root([SlotLeaf(1, h), SlotLeaf(1, "0x" + "22" * 32)])
    with pytest.raises(ValueError, match="at least one"):
        compute_slot_root([])
    with pytest.raises(ValueError, match="no leaf"):
        compute_slot_proof([SlotLeaf(1, h)], 2)
    for bad in ("0x" + "11" * 31, "11" * 33, "0x" + "zz" * 32):
        with pytest.raises(ValueError):
            compute_leaf_hash(1, bad)
    for bad_rollup in (-1, 1 << 64, True):
        with pytest.raises(ValueError):
            compute_leaf_hash(bad_rollup, h)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_root_from_proof(1, h, SlotProof(1, 1, ()))
    assert not verify_slot_proof(bytes(32), 1, h, SlotProof(0, 1, (b"short",)))


def test_one_rollup_slot_is_the_wrapped_leaf() -> None:
    h = "0x" + "ab" * 32
    leaf = compute_leaf_hash(167001, h)
    root = compute_slot_root([SlotLeaf(167001, h)])
    assert (
        root
        == hashlib.sha256(b"blockspace/slot-root/v1\x00" + (1).to_bytes(8, "big") + leaf).digest()
    )
    assert compute_slot_proof([SlotLeaf(167001, h)], 167001) == SlotProof(0, 1, ())
