"""Intake's memo of decoded transactions: exact bytes only, refusals never remembered, bounded
by entries and bytes whatever a flooder sends."""

from __future__ import annotations

import pytest

from api.intake import DecodedTxCache
from auction.errors import InvalidTransaction
from auction.transactions import decode_transaction
from tests.factories import key, tx

K = key(5)


def test_a_transaction_is_decoded_once() -> None:
    cache = DecodedTxCache()
    raw = tx(K, nonce=1)
    first = cache.decode(raw)
    assert cache.decode(bytes(raw)) is first  # equal bytes, another object
    assert cache.hits == 1
    assert first == decode_transaction(raw)


def test_other_bytes_are_never_answered_from_the_cache() -> None:
    cache = DecodedTxCache()
    raw = tx(K, nonce=1)
    cache.decode(raw)
    # The same transaction with its last signature byte changed: another key, decoded again
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    try:
        other = cache.decode(tampered)
    except InvalidTransaction:
        other = None
    assert cache.hits == 0
    assert other is None or other.raw == tampered


def test_refusals_are_not_remembered() -> None:
    cache = DecodedTxCache()
    for _ in range(2):
        with pytest.raises(InvalidTransaction):
            cache.decode(b"\x02\xc0")
    assert len(cache) == 0 and cache.hits == 0


def test_bounded_by_entries_least_recent_out() -> None:
    cache = DecodedTxCache(max_entries=3)
    raws = [tx(K, nonce=n) for n in range(5)]
    for raw in raws[:3]:
        cache.decode(raw)
    cache.decode(raws[0])  # most recent now
    cache.decode(raws[3])
    cache.decode(raws[4])
    assert len(cache) == 3
    hits = cache.hits
    cache.decode(raws[0])
    assert cache.hits == hits + 1  # kept: used recently
    cache.decode(raws[1])
    assert cache.hits == hits + 1  # evicted first


def test_bounded_by_bytes() -> None:
    raws = [tx(K, nonce=n) for n in range(10)]
    cache = DecodedTxCache(max_bytes=3 * len(raws[0]))
    for raw in raws:
        cache.decode(raw)
    assert len(cache) <= 3
    assert cache._bytes <= 3 * len(raws[0])
