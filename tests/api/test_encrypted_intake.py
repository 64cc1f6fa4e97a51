"""bs_sendEncryptedBundle at intake (issue 14, stage 2a): what the engine checks without the
slot key, what it logs and acknowledges, and every refusal's stable code."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.searcher import bundle_params
from auction.hashing import keccak256, to_hex
from auction.presets import MAINNET, Policy, Rollup
from auction.types import SealedBid
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock
from tests.factories import CHAIN, key, signed_request, tx
from tests.sealed import committee_of, encryptor, plain_request, sealed_call

UUID = "4c3f7c5e-0d9a-4c1e-9d11-5a4b0f1e2d3c"


def make_engine(policy: Policy | None = None, committee: bool = True) -> Engine:
    rollups = {CHAIN: Rollup(CHAIN, policy=policy or Policy()), 10: Rollup(10)}
    engine = Engine(store=MemoryStore(), rollups=rollups, preset=MAINNET, slot_ms=SLOT_MS,
                    clock_ms=FakeClock(START_SLOT * SLOT_MS + 5), metrics=Metrics())
    return engine


def serve(engine: Engine, committee: bool = True) -> TestClient:
    return TestClient(create_app(engine=engine, committee=committee_of(0)[0] if committee
                                 else None))


@pytest.fixture
def engine() -> Engine:
    return make_engine()


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with serve(engine) as c:
        c.portal.call(lambda: engine.start(run_clock=False))  # type: ignore[union-attr]
        yield c


def post(client: TestClient, call: tuple[bytes, str], path: str = "/") -> dict:
    body, sig = call
    return client.post(path, content=body, headers={"X-Flashbots-Signature": sig}).json()


def code(answer: dict) -> tuple[str, int]:
    return answer["error"]["data"]["code"], answer["error"]["code"]


def sealed_log(client: TestClient, engine: Engine, rollup: int = CHAIN) -> list[SealedBid]:
    log = client.portal.call(engine.store.read_sealed_log, rollup, START_SLOT)  # type: ignore[union-attr]
    return [e.event for e in log]


def test_an_encrypted_bundle_is_logged_as_its_ciphertext_and_acknowledged(client, engine):
    k = key(7)
    ciphertext = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT, uuid=UUID))
    body, sig = sealed_call(k, ciphertext)
    answer = post(client, (body, sig))
    assert set(answer["result"]) == {"bidId", "ciphertextHash"}
    assert answer["result"]["ciphertextHash"] == to_hex(keccak256(ciphertext))
    # The receipt's request hash covers the signed call, so the ciphertext
    receipt = answer["receipt"]
    assert receipt["kind"] == "sealed_bid"
    assert receipt["request_hash"] == to_hex(keccak256(body))
    assert receipt["event_id"] == answer["result"]["bidId"]
    [sealed] = sealed_log(client, engine)
    assert sealed.ciphertext == ciphertext and sealed.evidence.body == body
    assert (sealed.searcher, sealed.slot, sealed.rollup) == (k.address, START_SLOT, CHAIN)
    assert sealed.replacement_uuid == UUID.replace("-", "") and sealed.max_gas == 21_000
    # The plaintext view of the log (the close, the committee) has no event
    assert client.portal.call(engine.store.read_log, CHAIN, START_SLOT) == []  # type: ignore[union-attr]
    # The same signed call again is the same bid: same answer, logged once
    assert post(client, (body, sig))["result"] == answer["result"]
    assert len(sealed_log(client, engine)) == 1


def test_a_searchers_bids_of_a_slot_share_one_encapsulation(client, engine):
    k = key(7)
    shared = encryptor(k, START_SLOT)
    for bid_wei in (1, 2, 3):
        ct = shared.encrypt(plain_request(k, START_SLOT, bid_wei=10**15 + bid_wei))
        assert "result" in post(client, sealed_call(k, ct))
    # A second encapsulation of the same searcher in the slot, at any rollup's endpoint
    other = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT))
    assert code(post(client, sealed_call(k, other))) == ("encapsulation_limit", -32071)
    assert code(post(client, sealed_call(k, other), "/rollup/10")) == ("encapsulation_limit",
                                                                       -32071)
    # Another searcher has its own
    j = key(8)
    assert "result" in post(client, sealed_call(j, encryptor(j, START_SLOT).encrypt(
        plain_request(j, START_SLOT))))
    assert len(sealed_log(client, engine)) == 4


def test_a_ciphertext_resent_in_another_call_is_refused_as_a_replay(client):
    k = key(7)
    ct = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT))
    assert "result" in post(client, sealed_call(k, ct))
    # The same ciphertext under a new signed call (another request id): a new bid id
    assert code(post(client, sealed_call(k, ct))) == ("ciphertext_replayed", -32072)


def test_public_fields_must_be_the_ciphertexts(client):
    k = key(7)
    ct = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT, gas=50_000, uuid=UUID))
    cases = {
        "maxGas": {"maxGas": 21_000},
        "replacementUuid": {"replacementUuid": "11111111-2222-3333-4444-555555555555"},
        "rollups": {"rollups": [CHAIN]},
    }
    for field, override in cases.items():
        answer = post(client, sealed_call(k, ct, **override))
        assert code(answer) == ("public_fields_mismatch", -32069), field
        assert answer["error"]["data"]["field"] == field


def test_the_ciphertext_must_name_the_signer(client):
    owner, thief = key(7), key(8)
    ct = encryptor(owner, START_SLOT).encrypt(plain_request(owner, START_SLOT))
    # The thief signs a call carrying the owner's ciphertext, as the owner's fields say
    answer = post(client, sealed_call(thief, ct))
    assert code(answer) == ("ciphertext_searcher_mismatch", -32070)
    # Claiming itself as searcher contradicts the authenticated header instead
    answer = post(client, sealed_call(thief, ct, searcher=thief.address))
    assert code(answer) == ("public_fields_mismatch", -32069)


def test_ciphertexts_for_another_committee_or_slot_are_refused(client):
    k = key(7)
    other = encryptor(k, START_SLOT, seed=1).encrypt(plain_request(k, START_SLOT))
    assert code(post(client, sealed_call(k, other))) == ("ciphertext_wrong_committee", -32067)
    later = encryptor(k, START_SLOT + 1).encrypt(plain_request(k, START_SLOT + 1))
    answer = post(client, sealed_call(k, later, blockNumber=hex(START_SLOT)))
    assert code(answer) == ("ciphertext_wrong_slot", -32068)
    # A closed slot is refused before the ciphertext is read
    early = encryptor(k, START_SLOT - 1).encrypt(plain_request(k, START_SLOT - 1))
    assert code(post(client, sealed_call(k, early))) == ("slot_closed", -32030)


def test_garbage_ciphertexts_get_stable_codes(client):
    k = key(7)
    good = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT))
    cases = {
        "invalid_params": "0xzz",
        "unsupported_ciphertext_version": to_hex(b"\x02" + good[1:]),
        "ciphertext_too_short": to_hex(good[:140]),
        "ciphertext_too_large": to_hex(good[:133] + b"\xff\xff" + good[135:]),
    }
    for expected, ciphertext in cases.items():
        answer = post(client, sealed_call(k, good, ciphertext=ciphertext))
        assert answer["error"]["data"]["code"] == expected
    # Nothing refused was logged; the good one still goes in
    assert "result" in post(client, sealed_call(k, good))


def test_the_gas_bound_must_fit_the_rollups(client):
    k = key(7)
    big = encryptor(k, START_SLOT).encrypt(
        plain_request(k, START_SLOT),
        public_fields=orjson.dumps({"maxGas": 10**9, "searcher": k.address, "slot": START_SLOT},
                                   option=orjson.OPT_SORT_KEYS))
    assert code(post(client, sealed_call(k, big))) == ("bundle_gas_too_high", -32017)


def test_cross_rollup_public_fields_are_served_rollups_and_logged_once(client, engine):
    k = key(7)
    fields = {"maxGas": 42_000, "rollups": [10, CHAIN], "searcher": k.address,
              "slot": START_SLOT}
    ct = encryptor(k, START_SLOT).encrypt(
        plain_request(k, START_SLOT), public_fields=orjson.dumps(fields,
                                                                 option=orjson.OPT_SORT_KEYS))
    answer = post(client, sealed_call(k, ct))
    assert answer["receipt"]["rollup"] == CHAIN  # POST /: the default rollup, which it names
    assert [s.rollups for s in sealed_log(client, engine)] == [(10, CHAIN)]
    assert sealed_log(client, engine, 10) == []
    # A rollup's own endpoint takes bundles for it alone
    answer = post(client, sealed_call(k, ct), "/rollup/10")
    assert code(answer) == ("cross_rollup_not_allowed_here", -32022)
    unknown = dict(fields, rollups=[999])
    ct = encryptor(key(8), START_SLOT).encrypt(plain_request(key(8), START_SLOT),
                                               public_fields=orjson.dumps(
        dict(unknown, searcher=key(8).address), option=orjson.OPT_SORT_KEYS))
    assert code(post(client, sealed_call(key(8), ct))) == ("unknown_rollup", -32012)


def test_cancel_finds_an_encrypted_bid_by_its_uuid(client):
    k = key(7)
    ct = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT, uuid=UUID))
    assert "result" in post(client, sealed_call(k, ct))
    answer = post(client, signed_request(k, "eth_cancelBundle", [{"replacementUuid": UUID}]))
    assert answer["result"] is True
    assert answer["receipt"]["kind"] == "cancel"


def test_required_encryption_refuses_plaintext_bundles_for_that_rollup():
    engine = make_engine(Policy(encryption="required"))
    k = key(7)
    with serve(engine) as client:
        plain = signed_request(k, "eth_sendBundle", [bundle_params([tx(k)], START_SLOT,
                                                                   bid_wei=10**15)])
        assert code(post(client, plain)) == ("encryption_required", -32061)
        # The other rollup's policy is optional
        other = signed_request(k, "eth_sendBundle", [bundle_params([tx(k, chain_id=10)],
                                                                   START_SLOT, bid_wei=10**15)])
        assert "result" in post(client, other, "/rollup/10")
        ct = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT))
        assert "result" in post(client, sealed_call(k, ct))
    with pytest.raises(ValueError, match="encryption"):
        Policy(encryption="sometimes")


def test_without_a_committee_encrypted_bundles_are_not_served():
    engine = make_engine()
    k = key(7)
    with serve(engine, committee=False) as client:
        ct = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT))
        assert code(post(client, sealed_call(k, ct))) == ("encryption_not_served", -32062)


def test_encrypted_bundle_over_the_websocket(client, engine):
    k = key(7)
    ct = encryptor(k, START_SLOT).encrypt(plain_request(k, START_SLOT))
    body, _ = sealed_call(k, ct)
    with client.websocket_connect("/ws") as ws:
        ws.send_text(k.ws_frame(body))
        reply = orjson.loads(ws.receive_text())
    assert reply["result"]["bidId"] == sealed_log(client, engine)[0].bid_id
    assert reply["receipt"]["kind"] == "sealed_bid"
