"""Sealed bids of one slot for committee tests: real ciphertexts to the dealt committee's slot
identity (``api.searcher.BundleEncryptor``), carried by signed ``bs_sendEncryptedBundle`` calls
and logged as intake logs them."""

from __future__ import annotations

import itertools

from api.searcher import BundleEncryptor, SearcherKey, bundle_params, encrypted_bundle_params
from auction.intake import compute_intake_event
from auction.slots import compute_slot_start_ms
from auction.types import LoggedSealedBid, SealedBid
from committee import encryption
from committee.reopening import compute_sealed_context
from committee.sealedset import compute_sealed_order
from committee.threshold import CommitteeInfo, KeyShare
from tests.committee.slots import CLOCK, ROLLUP, SLOT, config_of, raw_tx

_seqs = itertools.count(1)


def bundle_body(k: SearcherKey, slot: int = SLOT, *, bid_wei: int = 10**15,
                gas: int = 60_000, uuid: str | None = None) -> bytes:
    """The plaintext eth_sendBundle body a searcher encrypts."""
    params = bundle_params([raw_tx(k, gas=gas)], slot, bid_wei=bid_wei, replacement_uuid=uuid)
    return k.request("eth_sendBundle", [params])


def encryptor(committee: CommitteeInfo, k: SearcherKey, slot: int = SLOT) -> BundleEncryptor:
    return BundleEncryptor(committee, slot, searcher=k.address)


def sealed_entry(committee: CommitteeInfo, k: SearcherKey, ciphertext: bytes, slot: int = SLOT,
                 offset_ms: int = 20) -> LoggedSealedBid:
    """Intake's sealed bid for the signed call carrying ``ciphertext``, with a fresh seq."""
    body = k.request("bs_sendEncryptedBundle", [encrypted_bundle_params(ciphertext)])
    now = compute_slot_start_ms(CLOCK, slot) + offset_ms
    ctx = compute_sealed_context(config_of(committee), ROLLUP)
    event = compute_intake_event(body, k.sign_body(body), now, ctx)
    assert isinstance(event, SealedBid), event
    return LoggedSealedBid(f"{now}-{next(_seqs)}", event)


def sealed_set(committee: CommitteeInfo, *bodies: tuple[SearcherKey, bytes],
               slot: int = SLOT) -> tuple[LoggedSealedBid, ...]:
    """One sealed entry per (searcher, plaintext body), each searcher under one encapsulation,
    in canonical order."""
    encs: dict[str, BundleEncryptor] = {}
    entries = []
    for k, body in bodies:
        enc = encs.setdefault(k.address, encryptor(committee, k, slot))
        entries.append(sealed_entry(committee, k, enc.encrypt(body), slot))
    return tuple(compute_sealed_order(entries))


def slot_key_of(committee: CommitteeInfo, shares: list[KeyShare], slot: int = SLOT) -> bytes:
    parts = {s.index: encryption.key_share(s, slot) for s in shares[: committee.t]}
    return encryption.combine_key_shares(committee, slot, parts)
