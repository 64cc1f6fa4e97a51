"""Strategies for raw transactions: validly signed ones with any field values, and corruptions.

``signed_txs`` signs with libsecp256k1 directly (not eth-account), so a field may hold what no
wallet would produce (a nonce of 2**64 - 1, a chain id of 2**200, a priority fee above the max
fee) while the signature still recovers: the decoder's range checks are reached, not only its
RLP and signature checks. Each draw comes with the fields it was built from, an oracle for what
the decoder must return or refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rlp
from coincurve import PrivateKey
from hypothesis import strategies as st

from auction.constants import MAX_TX_NONCE
from auction.hashing import keccak256, to_hex

SIGNING_KEY = keccak256(b"blockspace-fuzz-signer")
SIGNER = to_hex(keccak256(PrivateKey(SIGNING_KEY).public_key.format(compressed=False)[1:])[12:])

MAX_UINT256 = (1 << 256) - 1

# Integers a decoder must treat carefully: zero, the edges of 64 bits (EIP-2681), 256 bits.
uints = st.one_of(
    st.integers(0, 2**20),
    st.sampled_from([0, 1, 21_000, MAX_TX_NONCE, MAX_TX_NONCE + 1, 2**64, 2**128 - 1, 2**128,
                     2**255, MAX_UINT256]),
    st.integers(0, MAX_UINT256),
)


@dataclass(frozen=True)
class SignedTx:
    """A raw signed transaction and the values it was built from."""

    raw: bytes
    tx_type: int
    chain_id: int
    nonce: int
    gas: int
    priority_fee_wei: int
    max_fee_wei: int
    to: bytes
    access_keys: tuple[str, ...]
    v_too_wide: bool  # legacy: v = 2 * chain id + 35 + parity does not fit 256 bits

    @property
    def valid(self) -> bool:
        """Whether a strict decoder must accept it (every value in range, fees consistent)."""
        return (
            self.nonce <= MAX_TX_NONCE
            and self.priority_fee_wei <= self.max_fee_wei
            and not self.v_too_wide
        )


def sign_fields(tx_type: int, fields: list[Any], chain_id: int) -> tuple[bytes, int]:
    """Sign ``fields`` (the unsigned payload's items) as a transaction of ``tx_type``; return
    the raw transaction and its ``v`` (legacy) or y parity."""
    if tx_type == 0:
        unsigned = rlp.encode([*fields, chain_id, 0, 0])
    else:
        unsigned = bytes([tx_type]) + rlp.encode(fields)
    sig = PrivateKey(SIGNING_KEY).sign_recoverable(keccak256(unsigned), hasher=None)
    r, s, parity = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if tx_type == 0:
        v = chain_id * 2 + 35 + parity
        return rlp.encode([*fields, v, r, s]), v
    return bytes([tx_type]) + rlp.encode([*fields, parity, r, s]), parity


@st.composite
def signed_txs(draw: st.DrawFn) -> SignedTx:
    tx_type = draw(st.sampled_from([0, 1, 2]), label="type")
    chain_id = draw(st.one_of(st.integers(1, 2**32), uints.filter(lambda c: c >= 1)))
    nonce, gas, value = draw(uints), draw(uints), draw(uints)
    priority = draw(uints)
    max_fee = priority if tx_type != 2 else draw(st.one_of(st.just(priority), uints))
    to = draw(st.sampled_from([b"", b"\x11" * 20]))
    data = draw(st.binary(max_size=64))
    access: list[list[Any]] = []
    if tx_type:
        access = draw(st.lists(
            st.tuples(st.binary(min_size=20, max_size=20),
                      st.lists(st.binary(min_size=32, max_size=32), max_size=3)).map(list),
            max_size=3,
        ))
    if tx_type == 0:
        fields: list[Any] = [nonce, priority, gas, to, value, data]
    elif tx_type == 1:
        fields = [chain_id, nonce, priority, gas, to, value, data, access]
    else:
        fields = [chain_id, nonce, priority, max_fee, gas, to, value, data, access]
    keys = tuple(f"{a.hex()}:{s.hex()}" for a, slots in access for s in slots)
    raw, v = sign_fields(tx_type, fields, chain_id)
    return SignedTx(raw, tx_type, chain_id, nonce, gas, priority, max_fee, to, keys,
                    v_too_wide=v > MAX_UINT256)


# --- corruptions ------------------------------------------------------------------------------


@st.composite
def byte_edits(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` after a few random byte edits: flip, overwrite, insert, delete, truncate, append."""
    out = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[at] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            del out[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del out[at:]
        elif op == "append":
            out += draw(st.binary(min_size=1, max_size=8))
    return bytes(out)


def rlp_items() -> st.SearchStrategy[Any]:
    """Arbitrary RLP items: byte strings and (nested) lists of them."""
    return st.recursive(
        st.binary(max_size=40), lambda inner: st.lists(inner, max_size=4), max_leaves=12
    )


def _noncanonical(value: bytes) -> bytes:
    return b"\x00" + value  # a leading zero: the same integer, not the canonical encoding


@st.composite
def field_edits(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with its RLP fields edited and re-encoded: fields dropped, added, swapped for
    lists or other strings, integers given leading zeros or made 33 bytes long."""
    typed = raw[0] < 0xC0
    fields = rlp.decode(raw[1:] if typed else raw)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(
            ["drop", "add", "replace", "noncanonical", "wide", "list", "nest"]
        ))
        at = draw(st.integers(0, max(len(fields) - 1, 0)))
        if op == "drop" and fields:
            del fields[at]
        elif op == "add":
            fields.insert(at, draw(rlp_items()))
        elif op == "replace" and fields:
            fields[at] = draw(rlp_items())
        elif op == "noncanonical" and fields and isinstance(fields[at], bytes):
            fields[at] = _noncanonical(fields[at])
        elif op == "wide" and fields:
            fields[at] = b"\x01" + bytes(32)  # 33 bytes: above 2**256
        elif op == "list" and fields:
            fields[at] = [fields[at]]
        elif op == "nest":
            deep: Any = b""
            for _ in range(draw(st.integers(1, 200))):
                deep = [deep]
            fields.insert(at, deep)
    encoded = rlp.encode(fields)
    return bytes([raw[0]]) + encoded if typed else encoded


# RLP headers that declare far more payload than follows (string and list, short and long form).
huge_declared_lengths = st.sampled_from([
    b"\xbf" + (2**63).to_bytes(8, "big"),
    b"\xbf" + b"\xff" * 8,
    b"\xff" + b"\xff" * 8,
    b"\xff" + (2**63).to_bytes(8, "big"),
    b"\xf9\xff\xff",
    b"\xb9\x00\x01",  # a long-form length that fits the short form: non-canonical
    b"\xf8\x01\x80",  # ditto for a list
    b"\x81\x05",  # a single byte below 0x80 encoded as a string: non-canonical
]).flatmap(lambda head: st.tuples(
    st.sampled_from([b"", b"\x01", b"\x02"]), st.just(head), st.binary(max_size=16)
)).map(b"".join)
