"""Version-2 receipts: one signature over a batch's Merkle root, a path per receipt.

eth_account is the oracle for the signed digest (an EVM ``ecrecover`` over the EIP-712
``ReceiptBatch`` struct gives the operator); the hostile cases move a receipt to another place
in its batch, graft another batch's path, or pad the path, and must all be refused.
"""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.errors import ForgedReceipt, MalformedHex, MalformedReceipt
from auction.receipts import (
    BATCH_RECEIPT_VERSION,
    KIND_BID,
    BatchPath,
    Receipt,
    compute_batch_root,
    compute_operator_key,
    compute_receipt_digest,
    receipt_from_json,
    receipt_to_json,
    receipts_to_json,
    sign_receipt,
    sign_receipt_batch,
    verify_receipt,
)

KEY = compute_operator_key(bytes([7]) * 32)
OTHER = compute_operator_key(bytes([8]) * 32)
COMMITTEE = bytes(range(32))


def batch(n: int, committee: bytes = COMMITTEE) -> list[Receipt]:
    return [Receipt(committee_id=committee, rollup=167_001, slot=1_000 + i,
                    event_id="0x" + f"{i:064x}", kind=KIND_BID, request_hash="0x" + "22" * 32,
                    received_ms=2_000_000 + i, version=BATCH_RECEIPT_VERSION)
            for i in range(n)]  # fmt: skip


def _batch_typed_data(root: bytes, size: int) -> dict[str, object]:
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "salt", "type": "bytes32"}],
            "ReceiptBatch": [{"name": "root", "type": "bytes32"},
                             {"name": "size", "type": "uint32"}],
        },
        "primaryType": "ReceiptBatch",
        "domain": {"name": "blockspace", "version": "2", "salt": COMMITTEE},
        "message": {"root": root, "size": size},
    }


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 40))
def test_every_receipt_of_a_batch_verifies_and_ecrecover_gets_the_operator(n: int) -> None:
    signed = sign_receipt_batch(batch(n), KEY)
    assert len({s.signature for s in signed}) == 1  # one signature for the batch
    for s in signed:
        again = receipt_from_json(receipt_to_json(s))
        assert again == s
        verify_receipt(again, KEY.address)
    assert signed[0].batch is not None
    root = compute_batch_root(compute_receipt_digest(signed[0].receipt), signed[0].batch)
    message = encode_typed_data(full_message=_batch_typed_data(root, n))
    assert Account.recover_message(message, signature=signed[0].signature).lower() == KEY.address


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 40))
def test_a_batch_spelled_at_once_reads_back_as_each_receipt(n: int) -> None:
    # The batch's JSON shares the hex of its hashes: each receipt must still read back as
    # itself, proof for proof, and verify; and one receipt's JSON is its place in the batch's
    signed = sign_receipt_batch(batch(n), KEY)
    docs = receipts_to_json(signed)
    assert len(docs) == n
    for s, doc in zip(signed, docs, strict=True):
        again = receipt_from_json(doc)
        assert again == s
        assert s.batch is not None
        assert doc["batch"]["proof"] == ["0x" + h.hex() for h in s.batch.proof]
        verify_receipt(again, KEY.address)
        assert receipt_to_json(s) == doc


def test_version_1_receipts_still_verify() -> None:
    one = dataclasses.replace(batch(1)[0], version=1)
    verify_receipt(receipt_from_json(receipt_to_json(sign_receipt(one, KEY))), KEY.address)


@pytest.mark.parametrize("n", [2, 3, 7, 8])
def test_a_receipt_moved_to_another_place_is_refused(n: int) -> None:
    signed = sign_receipt_batch(batch(n), KEY)
    for s in signed:
        assert s.batch is not None
        for index in range(n):
            if index == s.batch.index:
                continue
            moved = dataclasses.replace(s, batch=dataclasses.replace(s.batch, index=index))
            with pytest.raises((ForgedReceipt, MalformedReceipt)):
                verify_receipt(moved, KEY.address)


def test_a_changed_field_or_size_or_grafted_path_is_refused() -> None:
    signed = sign_receipt_batch(batch(5), KEY)
    other = sign_receipt_batch(batch(5, committee=COMMITTEE), OTHER)
    s = signed[2]
    assert s.batch is not None
    forged = [
        dataclasses.replace(s, receipt=dataclasses.replace(s.receipt, slot=9)),
        dataclasses.replace(s, batch=dataclasses.replace(s.batch, size=6)),
        dataclasses.replace(s, batch=dataclasses.replace(s.batch, size=4)),
        dataclasses.replace(s, batch=other[2].batch, signature=other[2].signature),
        dataclasses.replace(s, batch=dataclasses.replace(s.batch, proof=s.batch.proof[:-1])),
        dataclasses.replace(s, batch=dataclasses.replace(s.batch,
                                                         proof=(*s.batch.proof, bytes(32)))),
        dataclasses.replace(s, batch=None),
        dataclasses.replace(s, receipt=dataclasses.replace(s.receipt, version=1)),
    ]
    for f in forged:
        with pytest.raises((ForgedReceipt, MalformedReceipt)):
            verify_receipt(f, KEY.address)


def test_a_version_2_receipt_without_its_batch_or_with_extra_keys_is_malformed() -> None:
    doc = receipt_to_json(sign_receipt_batch(batch(3), KEY)[1])
    for bad in (
        {k: v for k, v in doc.items() if k != "batch"},
        doc | {"batch": {**doc["batch"], "extra": 1}},
        doc | {"batch": {**doc["batch"], "index": True}},
        doc | {"batch": {**doc["batch"], "index": 3}},
        doc | {"batch": {**doc["batch"], "proof": ["0x" + "AB" * 32] * 2}},
        doc | {"batch": {**doc["batch"], "proof": ["0x" + "ab" * 32] * 17}},
        doc | {"version": 1},
    ):
        with pytest.raises((MalformedReceipt, MalformedHex, ForgedReceipt)):
            verify_receipt(receipt_from_json(bad), KEY.address)


def test_a_lone_receipt_batch_has_an_empty_path() -> None:
    [s] = sign_receipt_batch(batch(1), KEY)
    assert s.batch == BatchPath(0, 1, ())
    verify_receipt(s, KEY.address)


def test_a_batch_mixing_committees_or_versions_is_not_signed() -> None:
    with pytest.raises(ValueError):
        sign_receipt_batch([*batch(2), *batch(1, committee=bytes(32))], KEY)
    with pytest.raises(ValueError):
        sign_receipt_batch([dataclasses.replace(batch(1)[0], version=1)], KEY)
