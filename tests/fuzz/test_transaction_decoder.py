"""Fuzzing the raw transaction decoder (``auction.transactions.decode_transaction``).

Inputs: random bytes; validly signed transactions with any field values (``signed_txs``);
honest transactions (``tests.factories.tx``) and signed ones after byte edits, RLP field edits
(fields dropped, added, retyped, non-canonical or 33-byte integers, deep nesting) and headers
declaring huge lengths.

Property: the decoder returns a ``Tx`` or raises ``InvalidTransaction`` /
``UnprotectedTransaction``, never anything else, in bounded time. When it returns, the input is
canonical RLP, the hash is keccak of the input, every field is in range, and eth-account reads
the same sender, nonce and chain id from the same bytes.
"""

from __future__ import annotations

import re
import sys
import time

import pytest
import rlp
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from hypothesis import example, given
from hypothesis import strategies as st

from auction.constants import MAX_TX_NONCE
from auction.errors import InvalidTransaction, UnprotectedTransaction
from auction.hashing import keccak256, to_hex
from auction.transactions import MAX_RLP_DEPTH, _rlp_list, decode_transaction
from auction.types import Tx
from tests.factories import key, tx
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.signed_txs import (
    MAX_UINT256,
    SIGNER,
    SignedTx,
    byte_edits,
    field_edits,
    huge_declared_lengths,
    signed_txs,
)

pytestmark = pytest.mark.timeout(timeout_s(60))

FUZZ = fuzz(150)
# One decode is ~50 us; a second leaves room for a loaded machine, not for a blow-up.
MAX_DECODE_S = 1.0

_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_ACCESS_KEY = re.compile(r"[0-9a-f]{40}:[0-9a-f]{64}")

K = key(7)
CORPUS = [
    tx(K, kind=0, nonce=1),
    tx(K, kind=1, nonce=2, access=[("0x" + "aa" * 20, "0x" + "01" * 32)]),
    tx(K, kind=2, nonce=3),
    tx(K, kind=2, nonce=4, access=[("0x" + "aa" * 20, "0x" + "01" * 32),
                                   ("0x" + "bb" * 20, "0x" + "02" * 32)]),
]
corpus = st.sampled_from(CORPUS)
raws = st.one_of(corpus, signed_txs().map(lambda s: s.raw))


def decode_or_refuse(raw: bytes) -> Tx | None:
    """Decode ``raw``; check the property; return the Tx or None if it was refused."""
    t0 = time.perf_counter()
    try:
        decoded = decode_transaction(raw)
    except (InvalidTransaction, UnprotectedTransaction) as exc:
        assert exc.code in ("invalid_transaction", "unprotected_transaction")
        decoded = None
    assert time.perf_counter() - t0 < MAX_DECODE_S
    if decoded is not None:
        check_decoded(raw, decoded)
    return decoded


def check_decoded(raw: bytes, t: Tx) -> None:
    """What must hold of any transaction the decoder accepts."""
    assert t.raw == raw
    assert t.hash == to_hex(keccak256(raw))
    assert t.tx_type in (0, 1, 2)
    assert t.tx_type == (0 if raw[0] >= 0xC0 else raw[0])
    # Verify the input is canonical RLP: re-encoding what was read gives the same bytes
    payload = raw if t.tx_type == 0 else raw[1:]
    assert rlp.encode(rlp.decode(payload)) == payload
    assert 0 <= t.nonce <= MAX_TX_NONCE
    assert isinstance(t.chain_id, int) and 0 <= t.chain_id <= MAX_UINT256
    if t.tx_type == 0:
        assert t.chain_id >= 1
    assert 0 <= t.gas_limit <= MAX_UINT256
    assert 0 <= t.priority_fee_wei <= t.max_fee_wei <= MAX_UINT256
    assert _ADDRESS.fullmatch(t.sender)
    assert t.to is None or _ADDRESS.fullmatch(t.to)
    assert all(_ACCESS_KEY.fullmatch(k) for k in t.access_keys)
    if t.tx_type == 0:
        assert not t.access_keys
    # Differential: eth-account reads the same sender, nonce and chain id
    assert Account.recover_transaction(raw).lower() == t.sender
    if t.tx_type:
        d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        assert (d["nonce"], d["chainId"], d["gas"]) == (t.nonce, t.chain_id, t.gas_limit)


@FUZZ
@given(raw=st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from([b"\x01", b"\x02", b"\xc0", b"\xf8"]), st.binary(max_size=300))
    .map(b"".join),
))
@example(raw=b"")
@example(raw=b"\x02")
@example(raw=b"\x03\xc0")
def test_random_bytes_are_decoded_or_refused(raw: bytes) -> None:
    decode_or_refuse(raw)


@FUZZ
@given(signed=signed_txs())
def test_signed_transactions_decode_to_their_fields(signed: SignedTx) -> None:
    decoded = decode_or_refuse(signed.raw)
    if not signed.valid:
        assert decoded is None
        return
    assert decoded is not None
    assert decoded.sender == SIGNER
    assert (decoded.tx_type, decoded.chain_id, decoded.nonce, decoded.gas_limit) == (
        signed.tx_type, signed.chain_id, signed.nonce, signed.gas
    )
    assert (decoded.priority_fee_wei, decoded.max_fee_wei) == (
        signed.priority_fee_wei, signed.max_fee_wei
    )
    assert decoded.to == (to_hex(signed.to) if signed.to else None)
    assert decoded.access_keys == signed.access_keys


@FUZZ
@given(data=st.data(), raw=raws)
def test_byte_edits_are_decoded_or_refused(data: st.DataObject, raw: bytes) -> None:
    decode_or_refuse(data.draw(byte_edits(raw), label="edited"))


@FUZZ
@given(data=st.data(), raw=raws)
def test_field_edits_are_decoded_or_refused(data: st.DataObject, raw: bytes) -> None:
    decode_or_refuse(data.draw(field_edits(raw), label="edited"))


@FUZZ
@given(raw=huge_declared_lengths)
def test_huge_declared_lengths_are_refused(raw: bytes) -> None:
    assert decode_or_refuse(raw) is None


def nested_lists(depth: int) -> bytes:
    """``depth`` RLP lists, each holding the next (about 3.7 bytes a level at 75,000)."""
    inner = b"\xc0"
    for _ in range(depth):
        size = len(inner)
        if size <= 55:
            head = bytes([0xC0 + size])
        else:
            n = (size.bit_length() + 7) // 8
            head = bytes([0xF7 + n]) + size.to_bytes(n, "big")
        inner = head + inner
    return inner


def test_deep_nesting_is_refused_quickly_whatever_the_recursion_limit() -> None:
    """py_ecc (which eth-account imports) raises the recursion limit to 100,000; rlp's
    recursive decoder then took 29 s to refuse this 278 kB transaction of nested lists."""
    raw = nested_lists(75_000)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 100_000))
    try:
        for nest in (b"\x02" + raw, b"\x01" + raw, raw, b"\x02" + nested_lists(5)):
            assert decode_or_refuse(nest) is None
    finally:
        sys.setrecursionlimit(old)


def _depth(item: object) -> int:
    return 1 + max((_depth(x) for x in item), default=0) if isinstance(item, list) else 0


def reference_rlp_list(data: bytes) -> list | None:
    """What the maintained ``rlp`` package reads from ``data`` as a transaction's list, under
    the decoder's depth bound (None: refused)."""
    try:
        items = rlp.decode(data, strict=True)
    except Exception:
        return None
    if not isinstance(items, list) or _depth(items) > MAX_RLP_DEPTH:
        return None
    return items


def check_rlp_list_matches_reference(data: bytes) -> None:
    """The flat decoder accepts exactly what ``rlp.decode(strict=True)`` accepts (within the
    depth bound) and reads the same items."""
    expected = reference_rlp_list(data)
    try:
        got: list | None = _rlp_list(data)
    except InvalidTransaction:
        got = None
    assert got == expected


def _payload(raw: bytes) -> bytes:
    return raw if raw and raw[0] >= 0xC0 else raw[1:]


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from([b"\xc0", b"\xc1", b"\xf7", b"\xf8", b"\xf9", b"\xb8", b"\x81"]),
              st.binary(max_size=200)).map(b"".join),
))
@example(data=b"\xc2\x81\x05")  # a single byte below 0x80 spelled as a string
@example(data=b"\xc3\xb8\x01\x05")  # a long-string header for a short string
@example(data=b"\xf8\x05\xc4\x01\x02\x03\x04")  # a long-list header for a short list
@example(data=b"\xf9\x00\x38" + b"\x01" * 56)  # a length with a leading zero
@example(data=b"\xc2\x01\x02\x03")  # a trailing byte after the list
@example(data=b"\xc3\x01\x02")  # a list that overruns the input
@example(data=nested_lists(4))
@example(data=nested_lists(3))
def test_flat_rlp_decoder_matches_rlp_on_random_bytes(data: bytes) -> None:
    check_rlp_list_matches_reference(data)


@FUZZ
@given(data=st.data(), raw=raws)
def test_flat_rlp_decoder_matches_rlp_on_edited_transactions(
    data: st.DataObject, raw: bytes
) -> None:
    check_rlp_list_matches_reference(_payload(raw))
    check_rlp_list_matches_reference(_payload(data.draw(byte_edits(raw), label="bytes")))
    check_rlp_list_matches_reference(_payload(data.draw(field_edits(raw), label="fields")))
