"""Signing roots, the signed-block delivery format and its offline verification.

py_ecc is the independent oracle: a rollup using any standard Ethereum BLS library must accept
our signed blocks with nothing but the group public key and the documented signing root.
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

from committee import keyfiles, threshold
from committee.errors import InvalidSignedBlock
from committee.records import (
    SignedBlock,
    signed_block_from_json,
    signed_block_to_json,
)
from committee.signing import compute_signing_root
from committee.verify import verify_signed_block
from tests.committee.conftest import Dealt
from tests.committee.slots import key, log_of, proposal_of, signed_bid

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="module")
def signed(dealt: Dealt) -> SignedBlock:
    p = proposal_of(dealt.committee, log_of([signed_bid(key(i)) for i in range(3)]))
    root = compute_signing_root(dealt.committee.committee_id, p.rollup, p.slot, p.block.block_hash)
    partials = tuple((s.index, threshold.partial_sign(s, root)) for s in dealt.shares[2:9])
    return SignedBlock(
        block=p.block,
        committee_id=dealt.committee.committee_id,
        signature=threshold.combine(partials, dealt.committee.t, dealt.committee.n),
        partials=partials,
        deadline_ms=1,
        published_ms=2,
    )


def test_signing_root_bytes_are_the_documented_ones() -> None:
    committee_id = bytes(range(32))
    block_hash = "0x" + "ab" * 32
    expected = hashlib.sha256(
        b"blockspace/block-signing-root/v1\x00"
        + committee_id
        + (167001).to_bytes(8, "big")
        + (42).to_bytes(8, "big")
        + bytes.fromhex("ab" * 32)
    ).digest()
    assert compute_signing_root(committee_id, 167001, 42, block_hash) == expected
    # Every input is bound: change any one and the root changes.
    others = {
        compute_signing_root(bytes(32), 167001, 42, block_hash),
        compute_signing_root(committee_id, 10, 42, block_hash),
        compute_signing_root(committee_id, 167001, 43, block_hash),
        compute_signing_root(committee_id, 167001, 42, "0x" + "ac" * 32),
    }
    assert expected not in others and len(others) == 4


@pytest.mark.parametrize("bad", ["ab" * 32, "0x" + "ab" * 31, "0x" + "zz" * 32, 5])
def test_signing_root_refuses_malformed_hash(bad: object) -> None:
    with pytest.raises(ValueError):
        compute_signing_root(bytes(32), 1, 1, bad)  # type: ignore[arg-type]


def test_py_ecc_verifies_a_combined_block_signature(dealt: Dealt, signed: SignedBlock) -> None:
    assert G2ProofOfPossession.Verify(
        BLSPubkey(dealt.committee.group_public_key),
        signed.signing_root,
        BLSSignature(signed.signature),
    )
    # ... and rejects it for another block.
    other = compute_signing_root(signed.committee_id, 167001, signed.block.slot, "0x" + "00" * 32)
    assert not G2ProofOfPossession.Verify(
        BLSPubkey(dealt.committee.group_public_key), other, BLSSignature(signed.signature)
    )


def test_signed_block_json_round_trips_and_verifies(dealt: Dealt, signed: SignedBlock) -> None:
    doc = orjson.loads(orjson.dumps(signed_block_to_json(signed)))
    assert doc["signers"] == [3, 4, 5, 6, 7, 8, 9]
    assert all(isinstance(w["bid_wei"], str) for w in doc["bundles"])
    back = signed_block_from_json(doc)
    assert back == signed
    verify_signed_block(back, dealt.committee)


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
    ],
)
def test_tampered_block_fails_verification(dealt, signed, change, field) -> None:
    doc = _tampered(signed, **change)
    with pytest.raises(InvalidSignedBlock) as excinfo:
        verify_signed_block(signed_block_from_json(doc), dealt.committee)
    assert excinfo.value.data["field"] == field


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
        {"version": 2},
        {"signers": [1, 2]},
        {"signing_root": "0x" + "00" * 32},
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


def test_golden_signed_block_vector() -> None:
    """A fixed signed block (3-of-4 committee) other implementations can verify; if our
    encoding or signing root ever changes, this vector stops verifying and says so."""
    vector = json.loads((VECTORS / "signed_block_3_of_4.json").read_text())
    committee = keyfiles.decode_committee_file(json.dumps(vector["committee"]))
    block = signed_block_from_json(vector["signed_block"])
    verify_signed_block(block, committee)
    assert G2ProofOfPossession.Verify(
        BLSPubkey(committee.group_public_key),
        bytes.fromhex(vector["signed_block"]["signing_root"][2:]),
        BLSSignature(block.signature),
    )
