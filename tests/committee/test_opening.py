"""Opening a slot's sealed bids (committee/opening.py): real ciphertexts from BundleEncryptor,
logged through intake, opened with the slot key and judged by the plaintext intake rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from api.searcher import SearcherKey, bundle_params
from auction import constants as C
from auction.book import compute_book
from auction.intake import IntakeContext, Refused, compute_intake_event
from auction.presets import Rollup
from auction.sealed import is_opened_bid
from auction.slots import SlotClock
from auction.types import Bid, Cancel, LoggedEvent, LoggedSealedBid, SealedBid
from committee.encryption_errors import InvalidSlotKey
from committee.opening import compute_opened_log, compute_openings
from tests.factories import CHAIN, key, signed_request, tx
from tests.sealed import committee_of, encryptor, plain_request, sealed_call, slot_key

SLOT = 500
CLOCK = SlotClock(genesis_ms=0, slot_ms=2_000)
NOW = SLOT * 2_000 + 5
UUID = "4c3f7c5e-0d9a-4c1e-9d11-5a4b0f1e2d3c"
CTX = IntakeContext(
    rollups={CHAIN: Rollup(CHAIN), 10: Rollup(10)},
    clock=CLOCK,
    max_slots_ahead=32,
    default_rollup=CHAIN,
    committee_id=committee_of(0)[0].committee_id,
)
_seqs = iter(range(1, 10**6))


def log_sealed(k: SearcherKey, ciphertext: bytes, **overrides: Any) -> LoggedSealedBid:
    """Intake's event for the signed call carrying ``ciphertext``, with a fresh seq."""
    body, sig = sealed_call(k, ciphertext, **overrides)
    event = compute_intake_event(body, sig, NOW, CTX)
    assert isinstance(event, SealedBid), event
    return LoggedSealedBid(f"{NOW}-{next(_seqs)}", event)


def fields(k: SearcherKey, **extra: Any) -> bytes:
    return orjson.dumps({"slot": SLOT, "searcher": k.address, **extra},
                        option=orjson.OPT_SORT_KEYS)


def open_all(*entries: LoggedSealedBid):  # noqa: ANN201
    return compute_openings(committee_of(0)[0], SLOT, slot_key(0, SLOT), entries, CTX)


def test_opened_bids_are_their_plaintext_twins_with_the_sealed_id_and_evidence():
    alice, bob = key(1), key(2)
    enc = {k.address: encryptor(k, SLOT) for k in (alice, bob)}
    bodies = [(alice, plain_request(alice, SLOT, bid_wei=10**15 + n, uuid=UUID if n else None))
              for n in range(3)] + [(bob, plain_request(bob, SLOT, bid_wei=7 * 10**15))]
    entries = [log_sealed(k, enc[k.address].encrypt(body)) for k, body in bodies]
    opened = open_all(*entries)
    # One pairing per searcher, however many bids it sent
    assert opened.decapsulations == 2
    for (k, body), entry, opening in zip(bodies, entries, opened.openings, strict=True):
        assert opening.refused is None and opening.seq == entry.seq
        [bid] = opening.bids
        # The same rules on the same request give the same bid, but for its id and evidence
        twin = compute_intake_event(body, k.sign_body(body), entry.event.received_ms, CTX)
        assert isinstance(twin, Bid)
        assert bid == dataclasses.replace(twin, bid_id=entry.event.bid_id,
                                          evidence=entry.event.evidence)
        assert bid.searcher == k.address


def test_a_cross_rollup_bundle_opens_to_every_copy():
    k = key(3)
    body = k.request("eth_sendBundle", [bundle_params(
        [tx(k), tx(k, chain_id=10)], SLOT, bid_wei=10**15, rollups=[CHAIN, 10])])
    ct = encryptor(k, SLOT).encrypt(body)
    [opening] = open_all(log_sealed(k, ct)).openings
    assert [b.rollup for b in opening.bids] == [10, CHAIN]
    assert {b.bid_id for b in opening.bids} == {opening.sealed.bid_id}


def refusal(entry: LoggedSealedBid) -> Refused:
    [opening] = open_all(entry).openings
    assert opening.bids == () and opening.refused is not None
    record = opening.refused.record
    # Recorded against its searcher, in its slot, as rejected
    assert record is not None
    assert (record.searcher, record.slot, record.outcome) == (
        entry.event.searcher, SLOT, C.OUTCOME_REJECTED)
    assert record.code == opening.refused.error.code
    return opening.refused


def test_a_ciphertext_that_does_not_open_is_refused_against_its_searcher():
    k = key(4)
    good = log_sealed(k, encryptor(k, SLOT).encrypt(plain_request(k, SLOT)))
    ct = good.event.ciphertext
    # The encapsulation's V altered: the FO check fails (intake cannot see it)
    bad_v = ct[:100] + bytes([ct[100] ^ 1]) + ct[101:]
    assert refusal(dataclasses.replace(good, event=dataclasses.replace(
        good.event, ciphertext=bad_v))).error.code == "invalid_encapsulation"
    # The body altered: the AEAD refuses it
    bad_body = ct[:-1] + bytes([ct[-1] ^ 1])
    assert refusal(dataclasses.replace(good, event=dataclasses.replace(
        good.event, ciphertext=bad_body))).error.code == "payload_auth_failed"


def test_a_payload_that_is_no_valid_bundle_gets_the_plaintext_rules_code():
    k = key(5)
    enc = encryptor(k, SLOT)
    empty = k.request("eth_sendBundle", [{"txs": [], "blockNumber": hex(SLOT)}])
    assert refusal(log_sealed(k, enc.encrypt(empty, fields(k, maxGas=21_000)))).error.code == (
        "empty_bundle")
    broken = b'{"jsonrpc": "2.0", "method": "eth_sendBundle", "params": '
    assert refusal(log_sealed(k, enc.encrypt(broken, fields(k, maxGas=21_000)))).error.code == (
        "parse_error")
    cancel = k.request("eth_cancelBundle", [{"replacementUuid": UUID}])
    error = refusal(log_sealed(k, enc.encrypt(cancel, fields(k, maxGas=21_000)))).error
    assert (error.code, error.data["field"]) == ("opened_bid_contradicts_public_fields", "method")


@pytest.mark.parametrize(
    ("field", "payload", "public"),
    [
        ("maxGas", {"gas": 50_000}, {"maxGas": 49_999}),
        ("rollups", {}, {"maxGas": 21_000, "rollups": [10]}),
        ("slot", {"slot": SLOT + 1}, {"maxGas": 21_000}),
        ("replacementUuid", {"uuid": UUID}, {"maxGas": 21_000}),
    ],
)
def test_an_opened_bundle_that_contradicts_its_public_fields_is_refused(field, payload, public):
    k = key(6)
    body = plain_request(k, payload.get("slot", SLOT), gas=payload.get("gas", 21_000),
                         uuid=payload.get("uuid"))
    ct = encryptor(k, SLOT).encrypt(body, fields(k, **public))
    error = refusal(log_sealed(k, ct)).error
    assert (error.code, error.data["field"]) == ("opened_bid_contradicts_public_fields", field)


def test_one_bad_bid_does_not_affect_the_others():
    k, j = key(7), key(8)
    good = log_sealed(j, encryptor(j, SLOT).encrypt(plain_request(j, SLOT)))
    bad = log_sealed(k, encryptor(k, SLOT).encrypt(plain_request(k, SLOT, gas=30_000),
                                                   fields(k, maxGas=21_000)))
    first, second = open_all(bad, good).openings
    assert first.refused is not None and second.refused is None and len(second.bids) == 1


def test_a_wrong_slot_key_opens_nothing():
    k = key(9)
    entry = log_sealed(k, encryptor(k, SLOT).encrypt(plain_request(k, SLOT)))
    with pytest.raises(InvalidSlotKey):
        compute_openings(committee_of(0)[0], SLOT, slot_key(0, SLOT + 1), [entry], CTX)


def test_replacement_and_cancel_work_for_opened_bids_as_for_plaintext_ones():
    k = key(10)
    enc = encryptor(k, SLOT)
    first = log_sealed(k, enc.encrypt(plain_request(k, SLOT, bid_wei=1, uuid=UUID)))
    second = log_sealed(k, enc.encrypt(plain_request(k, SLOT, bid_wei=2, uuid=UUID)))
    body, sig = signed_request(k, "eth_sendBundle", [bundle_params([tx(k)], SLOT, bid_wei=3)])
    plain = compute_intake_event(body, sig, NOW, CTX)
    body, sig = signed_request(k, "eth_cancelBundle", [{"replacementUuid": UUID}])
    cancel = compute_intake_event(body, sig, NOW, CTX)
    assert isinstance(plain, Bid) and isinstance(cancel, Cancel)
    logged = [LoggedEvent(f"{NOW}-{next(_seqs)}", plain),
              LoggedEvent(f"{NOW}-{next(_seqs)}", cancel)]
    merged = compute_opened_log(CHAIN, logged, open_all(first, second))
    assert [e.seq for e in merged] == sorted(
        (e.seq for e in merged), key=lambda s: tuple(map(int, s.split("-"))))
    book = compute_book(merged)
    assert book.superseded == {first.event.bid_id: C.OUTCOME_REPLACED,
                               second.event.bid_id: C.OUTCOME_CANCELLED}
    assert [e.event for e in book.live] == [plain]


def test_opened_bids_are_known_by_their_evidence_even_with_an_escaped_method_name():
    alice = key(1)
    enc = encryptor(alice, SLOT)
    plain = plain_request(alice, SLOT, bid_wei=10**15)
    entry = log_sealed(alice, enc.encrypt(plain))
    [bid] = open_all(entry).openings[0].bids
    assert is_opened_bid(bid)
    twin = compute_intake_event(plain, alice.sign_body(plain), NOW, CTX)
    assert isinstance(twin, Bid) and not is_opened_bid(twin)
    # A call spelling the method with JSON escapes is the same call to every parser
    escaped = entry.event.evidence.body.replace(b"bs_sendEncryptedBundle",
                                                b"\\u0062s_sendEncryptedBundle")  # fmt: skip
    assert escaped != entry.event.evidence.body
    assert orjson.loads(escaped)["method"] == "bs_sendEncryptedBundle"
    assert is_opened_bid(dataclasses.replace(
        bid, evidence=dataclasses.replace(bid.evidence, body=escaped)))  # fmt: skip
