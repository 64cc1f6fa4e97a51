"""Encrypted bundles for tests: a dealt committee, real ciphertexts from ``BundleEncryptor``,
and the signed ``bs_sendEncryptedBundle`` calls that carry them."""

from __future__ import annotations

from functools import lru_cache

from api.searcher import (
    BundleEncryptor,
    SearcherKey,
    bundle_params,
    encrypted_bundle_params,
)
from committee import encryption, threshold
from tests.factories import signed_request, tx


@lru_cache(maxsize=4)
def committee_of(seed: int = 0) -> tuple[threshold.CommitteeInfo, tuple[threshold.KeyShare, ...]]:
    """A 3-of-4 committee dealt from ``seed`` (the same one for every test that asks)."""
    committee, shares = threshold.deal(4, 3, bytes([seed]) * 32)
    return committee, tuple(shares)


def slot_key(seed: int, slot: int) -> bytes:
    """The slot key, combined from t members' key shares as the committee will."""
    committee, shares = committee_of(seed)
    parts = {s.index: encryption.key_share(s, slot) for s in shares[: committee.t]}
    return encryption.combine_key_shares(committee, slot, parts)


def plain_request(k: SearcherKey, slot: int, *, bid_wei: int = 10**15, uuid: str | None = None,
                  gas: int = 21_000, marker_nonce: int | None = None) -> bytes:
    """The exact eth_sendBundle body a searcher encrypts (one tx of ``gas``)."""
    params = bundle_params([tx(k, gas=gas, nonce=marker_nonce)], slot, bid_wei=bid_wei,
                           replacement_uuid=uuid)
    return k.request("eth_sendBundle", [params])


def encryptor(k: SearcherKey, slot: int, seed: int = 0) -> BundleEncryptor:
    return BundleEncryptor(committee_of(seed)[0], slot, searcher=k.address)


def sealed_call(k: SearcherKey, sealed: bytes, **overrides: object) -> tuple[bytes, str]:
    """The signed bs_sendEncryptedBundle call carrying the ciphertext ``sealed`` (params as its
    public fields say, with ``overrides``)."""
    params = encrypted_bundle_params(sealed) | overrides
    return signed_request(k, "bs_sendEncryptedBundle", [params])
