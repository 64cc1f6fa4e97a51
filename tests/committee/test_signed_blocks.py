"""Slot signing roots, the signed-block delivery format and its offline verification.

py_ecc is the independent oracle: a rollup using any standard Ethereum BLS library and a few
lines of hashlib must accept our signed blocks with nothing but the group public key and the
documented slot proof and signing root (docs/protocol.md, "Slot roots").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import orjson
import pytest
from eth_typing import BLSPubkey, BLSSignature
from py_ecc.bls import G2ProofOfPossession

from auction.encoding import ZERO_HASH
from auction.presets import MAINNET, Rollup
from auction.results import compute_slot_result
from auction.slots import compute_deadline_ms
from committee import keyfiles, threshold
from committee.errors import InvalidSignedBlock
from committee.records import (
    SignedBlock,
    compute_signed_slot,
    signed_block_from_json,
    signed_block_to_json,
)
from committee.signing import compute_slot_signing_root
from committee.verify import verify_partner_blocks, verify_signed_block
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, SLOT, key, log_of, proposal_of, signed_bid, signing_root_of

VECTORS = Path(__file__).parent / "vectors"
VECTOR = VECTORS / "signed_slot_3_rollups_3_of_4.json"
OTHER = 10  # a second rollup of the slot


def empty_block(rollup: int, slot: int = SLOT):  # noqa: ANN201
    deadline = compute_deadline_ms(CLOCK, slot)
    return compute_slot_result(
        Rollup(rollup, policy=MAINNET.policy), slot, deadline, ZERO_HASH, (), ()
    ).block


@pytest.fixture(scope="module")
def slot_blocks(dealt: Dealt) -> list[SignedBlock]:
    """A signed slot of two rollups (ours with three winners, another empty), 7 of 10."""
    p = proposal_of(dealt.committee, log_of([signed_bid(key(i)) for i in range(3)]))
    blocks = [p.block, empty_block(OTHER)]
    root = signing_root_of(dealt.committee, *blocks)
    partials = tuple((s.index, threshold.partial_sign(s, root)) for s in dealt.shares[2:9])
    signature = threshold.combine(partials, dealt.committee.t, dealt.committee.n)
    return compute_signed_slot(
        blocks, dealt.committee.committee_id, signature, partials, deadline_ms=1, published_ms=2
    )


@pytest.fixture(scope="module")
def signed(slot_blocks: list[SignedBlock]) -> SignedBlock:
    """Our rollup's block of the slot (the second leaf: rollup 10 sorts first)."""
    return slot_blocks[1]


def test_slot_signing_root_bytes_are_the_documented_ones() -> None:
    committee_id = bytes(range(32))
    slot_root = bytes.fromhex("ab" * 32)
    expected = hashlib.sha256(
        b"blockspace/slot-signing-root/v1\x00" + committee_id + (42).to_bytes(8, "big") + slot_root
    ).digest()
    assert compute_slot_signing_root(committee_id, 42, slot_root) == expected
    # Every input is bound: change any one and the root changes.
    others = {
        compute_slot_signing_root(bytes(32), 42, slot_root),
        compute_slot_signing_root(committee_id, 43, slot_root),
        compute_slot_signing_root(committee_id, 42, bytes.fromhex("ac" * 32)),
    }
    assert expected not in others and len(others) == 3


@pytest.mark.parametrize(
    ("committee_id", "slot", "slot_root"),
    [
        (bytes(31), 1, bytes(32)),
        (bytes(32), -1, bytes(32)),
        (bytes(32), True, bytes(32)),
        (bytes(32), 1, bytes(31)),
        (bytes(32), 1 << 64, bytes(32)),
        (bytes(32), 1, "00" * 32),
    ],
)
def test_slot_signing_root_refuses_malformed_inputs(committee_id, slot, slot_root) -> None:
    with pytest.raises(ValueError):
        compute_slot_signing_root(committee_id, slot, slot_root)


def test_py_ecc_verifies_a_combined_slot_signature(dealt: Dealt, signed: SignedBlock) -> None:
    assert G2ProofOfPossession.Verify(
        BLSPubkey(dealt.committee.group_public_key),
        signed.signing_root,
        BLSSignature(signed.signature),
    )
    # ... and rejects it for another slot root.
    other = compute_slot_signing_root(signed.committee_id, signed.block.slot, bytes(32))
    assert not G2ProofOfPossession.Verify(
        BLSPubkey(dealt.committee.group_public_key), other, BLSSignature(signed.signature)
    )


def test_every_rollups_signed_block_round_trips_and_verifies(dealt, slot_blocks) -> None:
    assert [s.block.rollup for s in slot_blocks] == [OTHER, 167_001]
    assert len({s.slot_root for s in slot_blocks}) == 1
    for s in slot_blocks:
        doc = orjson.loads(orjson.dumps(signed_block_to_json(s)))
        assert doc["version"] == 2 and doc["slot_rollups"] == [OTHER, 167_001]
        assert doc["signers"] == [3, 4, 5, 6, 7, 8, 9]
        assert all(isinstance(w["bid_wei"], str) for w in doc["bundles"])
        back = signed_block_from_json(doc)
        assert back == s
        verify_signed_block(back, dealt.committee, expected_rollups=[167_001, OTHER])
    # Each is the other's partner: same signed root.
    by_rollup = verify_partner_blocks(slot_blocks[1], [slot_blocks[0]], dealt.committee)
    assert sorted(by_rollup) == [OTHER, 167_001]


def _tampered(signed: SignedBlock, **changes: object) -> dict:
    doc = signed_block_to_json(signed)
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"txs": ["0x02"]}, "block_hash"),
        ({"gas_used": 1}, "block_hash"),
        ({"revenue_wei": "1"}, "block_hash"),
        ({"slot_rollups": [OTHER, 167_002]}, "slot_proof"),
        ({"slot_rollups": [167_001, OTHER]}, "slot_rollups"),
        ({"slot_rollups": [167_001]}, "slot_rollups"),
    ],
)
def test_tampered_block_fails_verification(dealt, signed, change, field) -> None:
    doc = _tampered(signed, **change)
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(signed_block_from_json(doc), dealt.committee)
    assert excinfo.value.data["field"] == field


def test_tampered_proof_fails_verification(dealt, signed) -> None:
    proof = signed.slot_proof
    flipped = bytes([proof.siblings[0][0] ^ 1]) + proof.siblings[0][1:]
    for bad in (
        dataclasses.replace(proof, siblings=(flipped,)),
        dataclasses.replace(proof, siblings=()),
        dataclasses.replace(proof, leaf_index=0),
    ):
        with pytest.raises(InvalidSignedBlock) as excinfo:
            verify_signed_block(dataclasses.replace(signed, slot_proof=bad), dealt.committee)
        assert excinfo.value.data["field"] == "slot_proof"


def test_a_slot_other_than_the_expected_rollups_fails(dealt, signed) -> None:
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(signed, dealt.committee, expected_rollups=[167_001, OTHER, 8453])
    assert excinfo.value.data["field"] == "slot_rollups"
    with pytest.raises(InvalidSignedBlock):
        verify_signed_block(signed, dealt.committee, expected_rollups=[167_001])


def test_wrong_signature_fails(dealt: Dealt, signed: SignedBlock) -> None:
    forged = dataclasses.replace(signed, signature=signed.partials[0][1])
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(forged, dealt.committee)
    assert excinfo.value.data["field"] == "signature"


def test_other_committee_fails(signed: SignedBlock) -> None:
    other, _ = threshold.deal(4, 3, b"\x09" * 32)
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(signed, other)
    assert excinfo.value.data["field"] == "committee_id"


def test_fewer_than_t_listed_signers_fails(dealt: Dealt, signed: SignedBlock) -> None:
    short = dataclasses.replace(signed, partials=signed.partials[:-1])
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(short, dealt.committee)
    assert excinfo.value.data["field"] == "signers"


def test_listed_partial_must_be_the_members(dealt: Dealt, signed: SignedBlock) -> None:
    (i, p), (j, q), *rest = signed.partials
    swapped = dataclasses.replace(signed, partials=((i, q), (j, p), *rest))
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(swapped, dealt.committee)
    assert excinfo.value.data["field"] == "partials"
    verify_signed_block(swapped, dealt.committee, check_partials=False)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "other"},
        {"version": 1},
        {"version": 3},
        {"signers": [1, 2]},
        {"signing_root": "0x" + "00" * 32},
        {"slot_root": "0x" + "00" * 32},  # the stated signing root no longer matches
        {"slot_proof": {"leaf_index": 0, "leaf_count": 1}},
        {"slot_proof": {"leaf_index": 0, "leaf_count": 1, "siblings": ["0x12"]}},
        {"slot_rollups": ["10"]},
        {"extra_field": 1},
        {"slot": -1},
        {"slot": True},
        {"revenue_wei": 5},
        {"signature": "0x1234"},
    ],
)
def test_malformed_signed_block_is_refused(signed: SignedBlock, change: dict) -> None:
    with pytest.raises(InvalidSignedBlock):
        signed_block_from_json(_tampered(signed, **change))


# --- the fixed vector, checked independently ----------------------------------------------------


def _sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _root_from_proof(leaf: bytes, index: int, count: int, siblings: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2 as the RFC writes it, then the count bound in: what a rollup
    writes with hashlib, nothing of ours."""
    fn, sn, r = index, count - 1, leaf
    for p in siblings:
        assert sn != 0
        if fn % 2 == 1 or fn == sn:
            r = _sha(b"\x01", p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _sha(b"\x01", r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return _sha(b"blockspace/slot-root/v1\x00", count.to_bytes(8, "big"), r)


def test_fixed_vector_verifies_with_hashlib_and_py_ecc_alone() -> None:
    """A slot of three rollups signed by a 3-of-4 committee: every leaf, proof, the slot root,
    the signing root and the signature checked with hashlib and py_ecc only."""
    v = json.loads(VECTOR.read_text())
    group_key = bytes.fromhex(v["committee"]["group_public_key"][2:])
    committee_id = bytes.fromhex(v["committee"]["committee_id"][2:])
    slot_root = bytes.fromhex(v["slot_root"][2:])
    leaves = {}
    for leaf in v["leaves"]:
        expected = _sha(
            b"\x00blockspace/slot-leaf/v1",
            leaf["rollup"].to_bytes(8, "big"),
            bytes.fromhex(leaf["block_hash"][2:]),
        )
        assert expected.hex() == leaf["leaf"][2:]
        leaves[leaf["rollup"]] = expected
    assert [x["rollup"] for x in v["leaves"]] == sorted(leaves) == [10, 8453, 167_001]
    for proof in v["proofs"]:
        siblings = [bytes.fromhex(s[2:]) for s in proof["siblings"]]
        root = _root_from_proof(
            leaves[proof["rollup"]], proof["leaf_index"], proof["leaf_count"], siblings
        )
        assert root == slot_root
        # The same proof passed off as another rollup's leaf does not reach the root.
        for other, leaf in leaves.items():
            if other != proof["rollup"]:
                assert (
                    _root_from_proof(leaf, proof["leaf_index"], proof["leaf_count"], siblings)
                    != slot_root
                )
    signing_root = _sha(
        b"blockspace/slot-signing-root/v1\x00",
        committee_id,
        v["slot"].to_bytes(8, "big"),
        slot_root,
    )
    assert signing_root.hex() == v["signing_root"][2:]
    signature = BLSSignature(bytes.fromhex(v["signature"][2:]))
    assert G2ProofOfPossession.Verify(BLSPubkey(group_key), signing_root, signature)
    assert not G2ProofOfPossession.Verify(BLSPubkey(group_key), _sha(signing_root), signature)


def test_fixed_vector_is_what_our_code_computes_and_verifies() -> None:
    """Dealt again from its seed, the committee signs the same slot root to the same
    signature; every rollup's signed block verifies with our verifier and its partners."""
    v = json.loads(VECTOR.read_text())
    committee, shares = threshold.deal(4, 3, bytes.fromhex(v["seed"][2:]))
    assert keyfiles.decode_committee_file(json.dumps(v["committee"])) == committee
    message = bytes.fromhex(v["signing_root"][2:])
    partials = {s.index: threshold.partial_sign(s, message) for s in shares if s.index in (2, 3, 4)}
    assert threshold.combine(partials, 3, 4).hex() == v["signature"][2:]
    blocks = [signed_block_from_json(doc) for doc in v["signed_blocks"]]
    for b in blocks:
        verify_signed_block(b, committee, expected_rollups=[10, 8453, 167_001])
        assert b.signing_root == message and b.slot_root.hex() == v["slot_root"][2:]
        proof = next(p for p in v["proofs"] if p["rollup"] == b.block.rollup)
        assert (b.slot_proof.leaf_index, b.slot_proof.leaf_count) == (
            proof["leaf_index"],
            proof["leaf_count"],
        )
        partners = [p for p in blocks if p is not b]
        assert sorted(verify_partner_blocks(b, partners, committee)) == [10, 8453, 167_001]
