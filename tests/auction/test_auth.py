"""The X-Flashbots-Signature scheme: accepted exactly when the named address signed the body."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.auth import is_canonical_signature, recover_evidence, recover_searcher
from auction.bundles import compute_bid_id
from auction.errors import InvalidSignature, MissingSignature
from auction.hashing import keccak256
from auction.types import Evidence
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


# --- one canonical spelling (issue 9, finding 3 and 11) -------------------------------------

spellings = st.tuples(
    st.booleans(),  # address: 0x or not
    st.sampled_from(["lower", "upper", "checksum"]),
    st.booleans(),  # signature: 0x or not
    st.booleans(),  # signature upper case
    st.booleans(),  # v as 0/1 instead of 27/28
)


def spell(k, body: bytes, choice: tuple[bool, str, bool, bool, bool]) -> str:
    """The header ``k.sign_body(body)`` written another way (the same signature)."""
    addr_0x, case, sig_0x, sig_upper, v_small = choice
    address, sig = k.sign_body(body).split(":")
    a = {"lower": address[2:], "upper": address[2:].upper(),
         "checksum": to_checksum_address(address)[2:]}[case]
    raw = bytes.fromhex(sig[2:])
    if v_small:
        raw = raw[:64] + bytes([raw[64] - 27])
    s = raw.hex().upper() if sig_upper else raw.hex()
    return f"{'0x' if addr_0x else ''}{a}:{'0x' if sig_0x else ''}{s}"


@settings(max_examples=60, deadline=None)
@given(choice=spellings)
def test_every_spelling_of_one_signature_is_one_evidence(choice):
    k = key(5)
    canonical = k.sign_body(BODY)
    searcher, evidence = recover_evidence(BODY, spell(k, BODY, choice))
    assert searcher == k.address
    # The evidence, hence the bid id and every member's binding check, sees one spelling
    assert evidence.signature == canonical and is_canonical_signature(canonical)
    assert compute_bid_id(evidence) == compute_bid_id(Evidence(BODY, canonical))


def test_non_canonical_spellings_are_recognised():
    k = key(5)
    assert not is_canonical_signature(spell(k, BODY, (False, "lower", True, False, False)))
    assert not is_canonical_signature(spell(k, BODY, (True, "lower", True, False, True)))
    assert not is_canonical_signature("garbage")
