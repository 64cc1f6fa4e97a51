"""Signed receipts: the EIP-712 digest, signing, recovery and the strict JSON form.

eth_account is the independent oracle: an EVM contract's ``ecrecover`` over the EIP-712 digest
of the documented typed struct must give the operator's address (docs/accountability.md).
"""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.errors import ForgedReceipt, MalformedHex, MalformedReceipt, WrongOperator
from auction.receipts import (
    KIND_BID,
    KIND_CODES,
    Receipt,
    compute_operator_key,
    compute_receipt_digest,
    receipt_from_json,
    receipt_to_json,
    recover_receipt_signer,
    sign_receipt,
    verify_receipt,
)

KEY = compute_operator_key(bytes([7]) * 32)
OTHER = compute_operator_key(bytes([8]) * 32)
RECEIPT = Receipt(
    committee_id=bytes(range(32)), rollup=167_001, slot=1_000, event_id="0x" + "11" * 32,
    kind=KIND_BID, request_hash="0x" + "22" * 32, received_ms=2_000_000,
)


def _typed_data(r: Receipt) -> dict[str, object]:
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "salt", "type": "bytes32"}],
            "Receipt": [{"name": "rollup", "type": "uint256"}, {"name": "slot", "type": "uint64"},
                        {"name": "eventId", "type": "bytes32"}, {"name": "kind", "type": "uint8"},
                        {"name": "requestHash", "type": "bytes32"},
                        {"name": "receivedMs", "type": "uint64"}],
        },
        "primaryType": "Receipt",
        "domain": {"name": "blockspace", "version": "1", "salt": r.committee_id},
        "message": {"rollup": r.rollup, "slot": r.slot, "eventId": bytes.fromhex(r.event_id[2:]),
                    "kind": KIND_CODES[r.kind], "requestHash": bytes.fromhex(r.request_hash[2:]),
                    "receivedMs": r.received_ms},
    }


receipts = st.builds(
    Receipt,
    committee_id=st.binary(min_size=32, max_size=32),
    rollup=st.integers(0, (1 << 256) - 1),
    slot=st.integers(0, (1 << 64) - 1),
    event_id=st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    kind=st.sampled_from(sorted(KIND_CODES)),
    request_hash=st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    received_ms=st.integers(0, (1 << 64) - 1),
)


@settings(max_examples=40, deadline=None)
@given(receipts)
def test_the_digest_is_eip712_so_an_evm_ecrecover_gets_the_operator(r: Receipt) -> None:
    message = encode_typed_data(full_message=_typed_data(r))
    signed = sign_receipt(r, KEY)
    assert Account.sign_message(message, KEY.secret).signature == signed.signature
    assert Account.recover_message(message, signature=signed.signature).lower() == KEY.address
    assert recover_receipt_signer(r, signed.signature) == KEY.address


def test_a_receipt_round_trips_through_json_and_verifies() -> None:
    signed = sign_receipt(RECEIPT, KEY)
    assert receipt_from_json(receipt_to_json(signed)) == signed
    verify_receipt(signed, KEY.address)
    with pytest.raises(WrongOperator):
        verify_receipt(signed, OTHER.address)


@pytest.mark.parametrize("change", [
    {"rollup": 167_002}, {"slot": 1_001}, {"event_id": "0x" + "12" * 32}, {"kind": "cancel"},
    {"request_hash": "0x" + "23" * 32}, {"received_ms": 2_000_001}, {"committee_id": bytes(32)},
])
def test_a_tampered_field_makes_the_receipt_forged(change: dict[str, object]) -> None:
    signed = sign_receipt(RECEIPT, KEY)
    tampered = dataclasses.replace(signed, receipt=dataclasses.replace(RECEIPT, **change))
    with pytest.raises(ForgedReceipt):
        verify_receipt(tampered)


def test_a_receipt_signed_by_another_key_naming_the_operator_is_forged() -> None:
    forged = dataclasses.replace(sign_receipt(RECEIPT, OTHER), operator=KEY.address)
    with pytest.raises(ForgedReceipt):
        verify_receipt(forged)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 64), st.integers(1, 255))
def test_any_flipped_signature_byte_is_refused(index: int, flip: int) -> None:
    signed = sign_receipt(RECEIPT, KEY)
    sig = bytearray(signed.signature)
    sig[index] ^= flip
    with pytest.raises(ForgedReceipt):
        verify_receipt(dataclasses.replace(signed, signature=bytes(sig)))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_flipped_byte_of_the_json_is_refused_or_changes_nothing(data: st.DataObject) -> None:
    """Flip one character of the receipt's JSON text: it no longer parses, or no longer
    verifies, or (a flip that spells the same value) is the same receipt."""
    import orjson

    signed = sign_receipt(RECEIPT, KEY)
    text = bytearray(orjson.dumps(receipt_to_json(signed)))
    i = data.draw(st.integers(0, len(text) - 1))
    text[i] ^= data.draw(st.integers(1, 127))
    try:
        parsed = receipt_from_json(orjson.loads(bytes(text)))
        verify_receipt(parsed, KEY.address)
    except (orjson.JSONDecodeError, MalformedReceipt, MalformedHex, ForgedReceipt,
            WrongOperator):
        return
    assert parsed == signed


@pytest.mark.parametrize("field,value,error", [
    ("event_id", "0x" + "AB" * 32, MalformedHex),
    ("event_id", "0x" + "ab" * 31, MalformedHex),
    ("signature", "0x" + "ab" * 64, MalformedHex),
    ("operator", "ab" * 20, MalformedHex),
    ("kind", "encrypted_bid", MalformedReceipt),
    ("slot", -1, MalformedReceipt),
    ("slot", True, MalformedReceipt),
    ("received_ms", 1 << 64, MalformedReceipt),
    ("version", 2, MalformedReceipt),
])
def test_malformed_fields_are_refused_with_their_code(field: str, value: object,
                                                      error: type[Exception]) -> None:
    doc = receipt_to_json(sign_receipt(RECEIPT, KEY)) | {field: value}
    with pytest.raises(error):
        receipt_from_json(doc)


def test_unknown_and_missing_fields_are_refused() -> None:
    doc = receipt_to_json(sign_receipt(RECEIPT, KEY))
    with pytest.raises(MalformedReceipt):
        receipt_from_json(doc | {"extra": 1})
    with pytest.raises(MalformedReceipt):
        receipt_from_json({k: v for k, v in doc.items() if k != "slot"})


def test_digest_binds_the_committee_through_the_domain() -> None:
    other = dataclasses.replace(RECEIPT, committee_id=bytes(31) + b"\x01")
    assert compute_receipt_digest(other) != compute_receipt_digest(RECEIPT)


def test_operator_keys_out_of_range_are_refused() -> None:
    for secret in (bytes(32), b"\xff" * 32, bytes(31)):
        with pytest.raises(ValueError):
            compute_operator_key(secret)
    assert KEY.secret.hex() not in repr(KEY)
