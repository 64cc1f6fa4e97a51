"""Transaction decoding agrees with eth-account on every field; malformed input is refused."""

from __future__ import annotations

import pytest
import rlp
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.errors import InvalidTransaction, UnprotectedTransaction
from auction.transactions import (
    compute_bundle_hash,
    decode_transaction,
)
from tests.factories import key

ACCT_KEY = key(1)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from([0, 1, 2]),
    nonce=st.integers(0, 2**64 - 2),  # EIP-2681: 2**64 - 1 is refused (test_bundles)
    gas=st.integers(21_000, 30_000_000),
    tip=st.integers(0, 10**6),
    chain_id=st.integers(1, 2**32),
    data=st.binary(max_size=200),
    n_access=st.integers(0, 3),
)
def test_decode_matches_eth_account(kind, nonce, gas, tip, chain_id, data, n_access):
    tx = {"chainId": chain_id, "nonce": nonce, "gas": gas, "to": "0x" + "22" * 20, "value": 7,
          "data": data}
    access = [{"address": "0x" + f"{i + 1:02x}" * 20, "storageKeys": ["0x" + f"{i:064x}"]}
              for i in range(n_access)]
    if kind == 2:
        tx.update(type=2, maxPriorityFeePerGas=tip, maxFeePerGas=tip + 5, accessList=access)
    elif kind == 1:
        tx.update(type=1, gasPrice=tip, accessList=access)
    else:
        tx.update(gasPrice=tip)
    raw = ACCT_KEY.sign_tx(**tx)
    got = decode_transaction(raw)
    assert got.sender == Account.recover_transaction(raw).lower()
    assert got.nonce == nonce and got.gas_limit == gas and got.chain_id == chain_id
    assert got.tx_type == kind
    assert got.priority_fee_wei == tip
    assert got.hash == "0x" + __import__("eth_utils").keccak(raw).hex()
    assert len(got.access_keys) == (n_access if kind else 0)


def test_unprotected_legacy_refused():
    acct = Account.from_key(ACCT_KEY.private_key)
    # Build a pre-EIP-155 legacy tx by hand: v = 27/28.
    signed = acct.sign_transaction(
        {"nonce": 0, "gasPrice": 1, "gas": 21000, "to": "0x" + "22" * 20, "value": 0, "data": b""}
    )
    with pytest.raises(UnprotectedTransaction):
        decode_transaction(bytes(signed.raw_transaction))


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x03\xc0", b"\x02\xc0", b"\x02" + rlp.encode([b"\x01"] * 12), b"\xc0", b"\xff\x00"],
)
def test_malformed_refused(raw):
    with pytest.raises(InvalidTransaction):
        decode_transaction(raw)


def test_tampered_signature_changes_sender_or_fails():
    raw = bytearray(ACCT_KEY.sign_tx(type=2, chainId=5, nonce=1, maxPriorityFeePerGas=1,
                                     maxFeePerGas=2, gas=21000, to="0x" + "22" * 20, value=0,
                                     data=b""))
    raw[-5] ^= 0x01  # inside s
    try:
        tx = decode_transaction(bytes(raw))
    except InvalidTransaction:
        return
    assert tx.sender != ACCT_KEY.address


def test_high_s_refused():
    raw = ACCT_KEY.sign_tx(type=2, chainId=5, nonce=1, maxPriorityFeePerGas=1, maxFeePerGas=2,
                           gas=21000, to="0x" + "22" * 20, value=0, data=b"")
    fields = rlp.decode(raw[1:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(fields[-1], "big")
    fields[-1] = (n - s).to_bytes(32, "big").lstrip(b"\0")
    fields[-3] = b"" if fields[-3] == b"\x01" else b"\x01"
    with pytest.raises(InvalidTransaction):
        decode_transaction(b"\x02" + rlp.encode(fields))


def test_bundle_hash_is_keccak_of_concatenated_hashes():
    from eth_utils import keccak

    hashes = ["0x" + "ab" * 32, "0x" + "cd" * 32]
    assert compute_bundle_hash(hashes) == "0x" + keccak(bytes.fromhex("ab" * 32 + "cd" * 32)).hex()
