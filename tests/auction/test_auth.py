"""The X-Flashbots-Signature scheme: accepted exactly when the named address signed the body."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from auction.auth import recover_searcher
from auction.errors import InvalidSignature, MissingSignature
from auction.hashing import keccak256
from tests.factories import key

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}'


def test_signature_made_by_eth_account_is_accepted():
    acct = Account.create()
    sig = Account.sign_message(encode_defunct(text="0x" + keccak256(BODY).hex()), acct.key)
    header = f"{acct.address}:0x{bytes(sig.signature).hex()}"
    assert recover_searcher(BODY, header) == acct.address.lower()


def test_our_signer_matches():
    k = key(3)
    assert recover_searcher(BODY, k.sign_body(BODY)) == k.address


def test_changed_body_is_refused():
    k = key(3)
    with pytest.raises(InvalidSignature):
        recover_searcher(BODY + b" ", k.sign_body(BODY))


def test_other_address_is_refused():
    k, other = key(3), key(4)
    _, sig = k.sign_body(BODY).split(":")
    with pytest.raises(InvalidSignature):
        recover_searcher(BODY, f"{other.address}:{sig}")


@pytest.mark.parametrize(
    "header",
    ["nocolon", "0x12:0x34", "0xzz:0x00", f"0x{'11' * 20}:0x{'00' * 65}", f"0x{'11' * 20}:0xabc",
     "a:b:c", f"0x{'11' * 20}:0x{'ff' * 65}"],
)
def test_malformed_header_is_refused(header):
    with pytest.raises(InvalidSignature):
        recover_searcher(BODY, header)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(header):
    with pytest.raises(MissingSignature):
        recover_searcher(BODY, header)
