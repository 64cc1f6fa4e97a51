"""The close of encrypted bids in the engine with in-process members (issue 14, stage 2b):
commitment → key release → opening → packing → a block members sign after re-opening the slot
themselves. The lying coordinator is tested here too: it must not drop, swap or forge an
opened bid, or use another key or set than the committee committed to."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.searcher import (
    BundleEncryptor,
    SearcherKey,
    bundle_public_fields,
    encrypted_bundle_params,
)
from auction.errors import EvidenceRefused
from auction.receipts import KIND_SEALED_BID, Receipt, sign_receipt
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, Evidence, LoggedEvent, SlotResult
from committee.coordinator import MemberAnswer
from committee.errors import Refusal
from committee.evidence import compute_censorship_evidence, verify_evidence
from committee.keyrelease import ReleaseAnswer
from committee.member import Member
from committee.proposal import SlotProposal, encode_proposal
from committee.protection import ProtectionStore
from committee.records import (
    FAILED_KEY_NOT_RELEASED,
    FailedSlot,
    SignedBlock,
    signed_block_from_json,
)
from committee.sealedset import SealedOpening, compute_slot_ciphertext_root
from committee.verify import verify_signed_block
from node.escrow import StoreEscrow
from node.notify import Subscriber
from node.stores.redis import RedisStore
from tests.committee.conftest import Dealt
from tests.committee.sealed_slots import bundle_body, slot_key_of
from tests.committee.slots import CLOCK, ROLLUP, SLOT, key
from tests.committee.test_coordinator import COMMITTEE_DB, Clock, Harness
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def harness(dealt: Dealt, tmp_path: Path, request: pytest.FixtureRequest
                  ) -> AsyncIterator[Harness]:  # fmt: skip
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    h = Harness(dealt, tmp_path, clock, getattr(request, "param", {}))
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


class Down:
    """A member whose process is down (for signing and for key release)."""

    def __init__(self, index: int) -> None:
        self.index = index

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        return MemberAnswer(self.index, error="unreachable: ConnectError")

    async def release(self, body: bytes, timeout_s: float) -> ReleaseAnswer:
        return ReleaseAnswer(self.index, error="unreachable: ConnectError")

    async def aclose(self) -> None:
        pass


async def send_sealed(h: Harness, k: SearcherKey, enc: BundleEncryptor, body: bytes,
                      public: bytes | None = None) -> str:  # fmt: skip
    """Encrypt ``body`` (under ``public`` fields: by default the body's own) and send it as
    ``bs_sendEncryptedBundle``; return its bid id."""
    params = encrypted_bundle_params(enc.encrypt(body, public))
    call = k.request("bs_sendEncryptedBundle", [params])
    answer = await h.engine.intake.submit_sealed_bundle(
        params, searcher=k.address, evidence=Evidence(call, k.sign_body(call)),
        endpoint_rollup=None, transport="http",
    )  # fmt: skip
    return str(answer["bidId"])


async def open_slot_with_bids(h: Harness, slot: int = SLOT) -> dict[str, Any]:
    """Two plaintext bids and three sealed ones (two searchers), one sealed bid the highest."""
    h.clock.ms = compute_slot_start_ms(CLOCK, slot) + 1
    await h.bid(slot, 31, 2 * 10**15)
    await h.bid(slot, 32, 10**15)
    alice, bob = key(41), key(42)
    enc_a = BundleEncryptor(h.dealt.committee, slot, searcher=alice.address)
    enc_b = BundleEncryptor(h.dealt.committee, slot, searcher=bob.address)
    ids = {
        "alice_high": await send_sealed(h, alice, enc_a, bundle_body(alice, slot,
                                                                      bid_wei=9 * 10**15)),
        "alice_low": await send_sealed(h, alice, enc_a, bundle_body(alice, slot,
                                                                     bid_wei=3 * 10**15)),
        "bob": await send_sealed(h, bob, enc_b, bundle_body(bob, slot, bid_wei=5 * 10**15)),
    }
    h.clock.ms = compute_deadline_ms(CLOCK, slot) + 5
    return ids


async def test_encrypted_and_plaintext_bids_win_in_one_signed_block(harness: Harness) -> None:
    ids = await open_slot_with_bids(harness)
    await harness.engine.close_slot(SLOT)
    signed = await harness.outcome(SLOT)
    assert isinstance(signed, SignedBlock)
    verify_signed_block(signed, harness.dealt.committee)
    winners = {w.bid_id for w in signed.block.bundles}
    assert set(ids.values()) <= winners and len(winners) == 5
    # The opened bids keep their sealed ids and evidence (the signed encrypted call)
    result = await harness.store.get_result(ROLLUP, SLOT)
    assert result is not None
    opened = [o.bid for o in result.outcomes if o.bid.bid_id in ids.values()]
    assert len(opened) == 3
    assert all(b"bs_sendEncryptedBundle" in b.evidence.body for b in opened)
    # The proposal carried the committee's commitment and key: t members committed first
    assert harness.coordinator.openings[SLOT].entries
    # The signed slot root binds the committed set; the next block builds on this one (its
    # parent certificate carries the ciphertext root in its proof)
    assert signed.slot_proof.ciphertext_root == harness.coordinator.openings[SLOT].ciphertext_root
    child = await harness.run_slot(SLOT + 1)
    assert isinstance(child, SignedBlock)
    assert child.block.parent_hash == signed.block.block_hash
    assert child.slot_proof.ciphertext_root is None


async def test_an_unopenable_or_contradicting_sealed_bid_is_refused_and_recorded(
    harness: Harness,
) -> None:
    h = harness
    h.clock.ms = compute_slot_start_ms(CLOCK, SLOT) + 1
    carol, dave = key(51), key(52)
    sub = Subscriber()
    h.engine.notifier.watch_searcher(carol.address, sub)
    enc_c = BundleEncryptor(h.dealt.committee, SLOT, searcher=carol.address)
    # Carol states a public gas bound her bundle breaks (its tx has 60,000 gas)
    good = bundle_body(carol, SLOT, bid_wei=10**15)
    fields = orjson.loads(bundle_public_fields(good, SLOT, carol.address))
    fields["maxGas"] = 30_000
    lying = enc_c.encrypt(good, orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))
    params = encrypted_bundle_params(lying)
    call = carol.request("bs_sendEncryptedBundle", [params])
    await h.engine.intake.submit_sealed_bundle(
        params, searcher=carol.address, evidence=Evidence(call, carol.sign_body(call)),
        endpoint_rollup=None, transport="http",
    )  # fmt: skip
    # Dave encrypts something that is no bundle
    enc_d = BundleEncryptor(h.dealt.committee, SLOT, searcher=dave.address)
    junk = dave.request("eth_sendBundle", [{"txs": ["0x1234"], "blockNumber": hex(SLOT)}])
    dave_fields = orjson.dumps({"maxGas": 21_000, "searcher": dave.address, "slot": SLOT},
                               option=orjson.OPT_SORT_KEYS)  # fmt: skip
    sent = encrypted_bundle_params(enc_d.encrypt(junk, dave_fields))
    call = dave.request("bs_sendEncryptedBundle", [sent])
    await h.engine.intake.submit_sealed_bundle(
        sent, searcher=dave.address, evidence=Evidence(call, dave.sign_body(call)),
        endpoint_rollup=None, transport="http",
    )  # fmt: skip
    await h.bid(SLOT, 53, 10**15)
    h.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
    await h.engine.close_slot(SLOT)
    signed = await h.outcome(SLOT)
    assert isinstance(signed, SignedBlock) and len(signed.block.bundles) == 1
    history = await h.store.list_history_bids(ROLLUP, searcher=None, outcome=None, slot=SLOT,
                                              before=None, inclusive=True, limit=50)  # fmt: skip
    codes = {r.searcher: r.code for _, r in history if r.code}
    assert codes == {carol.address: "opened_bid_contradicts_public_fields",
                     dave.address: "invalid_transaction"}
    kinds = []
    while not sub.queue.empty():
        kinds.append(sub.queue.get_nowait()["params"]["result"])
    refused = [k for k in kinds if k["event"] == "opening_refused"]
    assert refused and refused[0]["code"] == "opened_bid_contradicts_public_fields"
    assert refused[0]["field"] == "maxGas"


async def test_fewer_than_t_releases_fail_the_slot_visibly(harness: Harness) -> None:
    h = harness
    t, n = h.dealt.committee.t, h.dealt.committee.n
    sub = Subscriber()
    h.engine.notifier.watch_searcher(key(41).address, sub)
    await open_slot_with_bids(h)
    for i in range(1, n - t + 2):  # n - t + 1 members down: t can no longer release
        h.coordinator.members[i - 1] = Down(i)  # type: ignore[call-overload]
    await h.engine.close_or_fail(SLOT)
    failed = await h.outcome(SLOT)
    assert isinstance(failed, FailedSlot) and failed.reason == FAILED_KEY_NOT_RELEASED
    # Nobody has the key: no member that answered holds more than its own commitment
    assert SLOT not in h.coordinator.openings
    notices = []
    while not sub.queue.empty():
        notices.append(sub.queue.get_nowait()["params"]["result"])
    assert {"event": "slot_failed", "slot": SLOT, "reason": FAILED_KEY_NOT_RELEASED} in notices
    # The members come back: the next slot is signed (the failed one is no parent)
    for i in range(1, n - t + 2):
        h.up(i)
    signed = await h.run_slot(SLOT + 1)
    assert isinstance(signed, SignedBlock)


@pytest.mark.parametrize("harness", [{2: "wrong_share", 5: "garbage"}], indirect=True)
async def test_members_lying_about_their_key_share_are_left_out(harness: Harness) -> None:
    await open_slot_with_bids(harness)
    await harness.engine.close_slot(SLOT)
    signed = await harness.outcome(SLOT)
    assert isinstance(signed, SignedBlock) and len(signed.block.bundles) == 5


# --- the lying coordinator -----------------------------------------------------------------


async def honest_proposal(
    h: Harness,
    open_slot: Callable[[Harness], Awaitable[dict[str, Any]]] = open_slot_with_bids,
) -> tuple[SlotProposal, dict[str, Any]]:
    """Close the slot (the key released and the bids opened) but keep its proposal unsent;
    ``open_slot`` sends the slot's bids and moves the clock past its deadline."""
    captured: dict[str, Any] = {}

    async def keep(results: Sequence[SlotResult], entries: dict[int, Sequence[LoggedEvent]],
                   lease: Any = None) -> None:  # fmt: skip
        captured["results"], captured["entries"] = list(results), entries

    h.coordinator.sign = keep  # type: ignore[method-assign]
    ids = await open_slot(h)
    await h.engine.close_slot(SLOT)
    proposal = await h.coordinator.build_proposal(captured["results"], captured["entries"])
    assert proposal.sealed is not None
    return proposal, ids


def refusal_of(h: Harness, proposal: SlotProposal, index: int = 1) -> str | None:
    try:
        h.member(index).member.sign_proposal(encode_proposal(proposal))
    except Refusal as exc:
        return exc.code
    return None


def with_log(p: SlotProposal, log: tuple[LoggedEvent, ...]) -> SlotProposal:
    return dataclasses.replace(p, parts=(dataclasses.replace(p.parts[0], log=log),))


async def test_members_sign_the_honest_proposal(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)
    assert refusal_of(harness, proposal) is None


async def test_a_dropped_opened_bid_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)
    sealed_ids = {e.event.bid_id for e in proposal.sealed.entries}  # type: ignore[union-attr]
    log = proposal.parts[0].log
    losers = {w.bid_id for w in proposal.parts[0].block.bundles}
    drop = next(e for e in log if isinstance(e.event, Bid) and e.event.bid_id in sealed_ids)
    assert drop.event.bid_id in losers  # all five win: dropping any changes the block too
    assert refusal_of(harness, with_log(proposal, tuple(e for e in log if e is not drop))) == (
        "opening_mismatch")


async def test_a_swapped_plaintext_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)
    sealed_ids = {e.event.bid_id for e in proposal.sealed.entries}  # type: ignore[union-attr]
    log = proposal.parts[0].log
    swapped = tuple(
        dataclasses.replace(e, event=dataclasses.replace(e.event, bid_wei=e.event.bid_wei - 1))
        if isinstance(e.event, Bid) and e.event.bid_id in sealed_ids else e
        for e in log
    )
    assert refusal_of(harness, with_log(proposal, swapped)) == "opening_mismatch"


async def test_a_wrong_key_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)
    sealed = proposal.sealed
    assert sealed is not None
    # The committee's real key of another slot (the wrong identity), and no key at all
    other = slot_key_of(harness.dealt.committee, harness.dealt.shares, SLOT + 1)
    for key_ in (other, sealed.commitment_signature):
        wrong = dataclasses.replace(sealed, slot_key=key_)
        assert refusal_of(harness, dataclasses.replace(proposal, sealed=wrong)) == (
            "opening_mismatch")


async def test_a_root_or_set_other_than_committed_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)
    sealed = proposal.sealed
    assert sealed is not None
    # A sealed bid dropped from the set (its opened bid left in or out of the logs)
    fewer = SealedOpening(sealed.ciphertext_root, sealed.slot_key,
                          sealed.commitment_signature, sealed.entries[1:])  # fmt: skip
    assert refusal_of(harness, dataclasses.replace(proposal, sealed=fewer)) == (
        "commitment_mismatch")
    # The set and its root both changed: not what this member committed to
    root = compute_slot_ciphertext_root(harness.dealt.committee.committee_id, SLOT,
                                        sealed.entries[1:])  # fmt: skip
    other = dataclasses.replace(fewer, ciphertext_root=root)
    assert refusal_of(harness, dataclasses.replace(proposal, sealed=other)) == (
        "already_committed_other_root")
    # No opening at all, after the members committed to a set and the key exists
    assert refusal_of(harness, dataclasses.replace(proposal, sealed=None)) == "opening_mismatch"


async def test_a_member_that_did_not_commit_checks_the_certificate(
    harness: Harness, tmp_path: Path
) -> None:
    proposal, _ = await honest_proposal(harness)
    sealed = proposal.sealed
    assert sealed is not None
    # Member 10 restarted from an empty protection file: it committed to nothing
    known = harness.member(10).member
    outsider = Member(known.share, known.config, ProtectionStore(tmp_path / "fresh.sqlite3"),
                      clock_ms=harness.clock)  # fmt: skip
    assert outsider.sign_proposal(encode_proposal(proposal)).partial
    forged = dataclasses.replace(sealed, commitment_signature=sealed.slot_key)
    fresh = Member(known.share, known.config, ProtectionStore(tmp_path / "fresh2.sqlite3"),
                   clock_ms=harness.clock)  # fmt: skip
    with pytest.raises(Refusal) as refused:
        fresh.sign_proposal(encode_proposal(dataclasses.replace(proposal, sealed=forged)))
    assert refused.value.code == "not_committed"


async def test_opened_bids_are_held_in_log_order_with_deposits_on(harness: Harness) -> None:
    h = harness
    escrow = StoreEscrow(h.store)
    h.engine.escrow = h.engine.intake.escrow = escrow
    at = compute_slot_start_ms(CLOCK, SLOT)
    for seed, wei in ((31, 10**17), (32, 10**17), (41, 10 * 10**15), (42, 10 * 10**15)):
        await escrow.credit_deposit(key(seed).address, wei, ref=f"deposit-{seed}", at_ms=at)
    proposal, ids = await honest_proposal(h)
    assert proposal.sealed is not None
    # Alice's 9e15 bid is held first; her 3e15 bid would pass her 1e16 balance: refused
    assert proposal.sealed.unfunded == (ids["alice_low"],)
    logged = {e.event.bid_id for e in proposal.parts[0].log if isinstance(e.event, Bid)}
    assert ids["alice_high"] in logged and ids["bob"] in logged
    assert ids["alice_low"] not in logged
    history = await h.store.list_history_bids(ROLLUP, searcher=key(41).address, outcome=None,
                                              slot=SLOT, before=None, inclusive=True,
                                              limit=10)  # fmt: skip
    assert sorted(r.code or "" for _, r in history) == ["", "insufficient_deposit"]
    # A coordinator may not call a funded bid unfunded, nor a refused one funded
    lie = dataclasses.replace(proposal.sealed, unfunded=(ids["bob"],))
    assert refusal_of(h, dataclasses.replace(proposal, sealed=lie)) == "opening_mismatch"
    lie = dataclasses.replace(proposal.sealed, unfunded=())
    assert refusal_of(h, dataclasses.replace(proposal, sealed=lie)) == "opening_mismatch"
    assert refusal_of(h, proposal) is None


@pytest.mark.redis
async def test_encrypted_bids_win_on_the_redis_store(
    dealt: Dealt, tmp_path: Path, redis_server: RedisServer
) -> None:
    """The same close on Redis: the sealed log read after the close, opened, signed."""
    store = RedisStore(f"redis://127.0.0.1:{redis_server.port}/{COMMITTEE_DB}")
    await store.connect()
    await store.redis.flushdb()
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {}, store)
    await h.engine.start(run_clock=False)
    try:
        ids = await open_slot_with_bids(h)
        await h.engine.close_slot(SLOT)
        signed = await h.outcome(SLOT)
        assert isinstance(signed, SignedBlock)
        verify_signed_block(signed, dealt.committee)
        assert set(ids.values()) <= {w.bid_id for w in signed.block.bundles}
        assert await store.get_signed_block(ROLLUP, SLOT) == signed
    finally:
        await h.coordinator.aclose()
        await store.aclose()


def test_signed_blocks_bind_the_ciphertext_root_and_the_api_serves_the_set(
    dealt: Dealt, tmp_path: Path
) -> None:
    """The signed slot root binds the committed ciphertext set; GET .../events serves it, and
    an encrypted bid in it is not censorship, one acknowledged and left out is."""
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {})
    with TestClient(create_app(engine=h.engine)) as client:
        portal = client.portal
        assert portal is not None
        portal.call(lambda: h.engine.start(run_clock=False))  # type: ignore[union-attr]
        try:
            ids = portal.call(open_slot_with_bids, h)
            portal.call(h.engine.close_slot, SLOT)
            signed = portal.call(h.outcome, SLOT)
        finally:
            portal.call(h.coordinator.aclose)  # type: ignore[union-attr]
        assert isinstance(signed, SignedBlock)
        assert signed.slot_proof.ciphertext_root == h.coordinator.openings[SLOT].ciphertext_root
        block = client.get(f"/v1/blocks/{ROLLUP}/{SLOT}").json()
        verify_signed_block(signed_block_from_json(block), dealt.committee)
        events = client.get(f"/v1/blocks/{ROLLUP}/{SLOT}/events").json()
    assert "ciphertexts" in events, events
    assert {c["bid_id"] for c in events["ciphertexts"]} == set(ids.values())
    operator = h.engine.intake.receipter
    assert operator is not None
    receipt = Receipt(committee_id=dealt.committee.committee_id, rollup=ROLLUP, slot=SLOT,
                      event_id=ids["bob"], kind=KIND_SEALED_BID,
                      request_hash="0x" + "00" * 32, received_ms=1)  # fmt: skip
    signed_receipt = sign_receipt(receipt, operator.key)
    doc = compute_censorship_evidence(signed_receipt, signed_block_from_json(block),
                                      events["event_ids"], events["ciphertexts"])  # fmt: skip
    with pytest.raises(EvidenceRefused) as refused:
        verify_evidence(orjson.loads(orjson.dumps(doc)), dealt.committee)
    assert refused.value.code == "event_included"
    # A bid the operator acknowledged but kept out of the committed set
    dropped = dataclasses.replace(receipt, event_id="0x" + "ee" * 32)
    doc = compute_censorship_evidence(sign_receipt(dropped, operator.key),
                                      signed_block_from_json(block), events["event_ids"],
                                      events["ciphertexts"])  # fmt: skip
    assert verify_evidence(orjson.loads(orjson.dumps(doc)), dealt.committee).kind == (
        "censorship")


async def test_an_honest_sealed_slot_breaks_no_rule(harness: Harness) -> None:
    """Rule-breaking evidence (issue 11) re-runs a member's checks offline: a slot whose winners
    are opened sealed bids, as honest members sign it, must never convict its signers."""
    from committee.evidence import find_broken_rule

    proposal, _ = await honest_proposal(harness)
    config = harness.member(1).member.config
    assert refusal_of(harness, proposal) is None
    assert find_broken_rule(config, proposal) is None
    # A member that signs the slot with an opened bid dropped is convicted by the re-run
    sealed_ids = {e.event.bid_id for e in proposal.sealed.entries}  # type: ignore[union-attr]
    log = proposal.parts[0].log
    drop = next(e for e in log if isinstance(e.event, Bid) and e.event.bid_id in sealed_ids)
    broken = find_broken_rule(config, with_log(proposal, tuple(e for e in log if e is not drop)))
    assert broken is not None and broken.startswith("opening_mismatch")
