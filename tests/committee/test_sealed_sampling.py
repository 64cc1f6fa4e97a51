"""Members re-open a sealed slot by the committee's sampling rule (docs/encryption.md, "Which
bids a member re-opens"): every ciphertext opened, every sealed bid the logs leave out derived
in full (it must really be refused, or named unfunded), winners, replacements and the member's
random sample derived in full, every other opened bid bound to its payload without ECDSA.

Thinking as the coordinator, who holds the key and has read every bid by the time it proposes:
each lie below is tried against a member whose sample is injected (empty, or exactly the bid
lied about), so what the sample catches and what the binding catches are told apart."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.searcher import BundleEncryptor, SearcherKey, bundle_params
from auction.encoding import ZERO_HASH
from auction.results import SlotPart, compute_slot_results
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, LoggedEvent, Tx
from committee.checks import MemberConfig
from committee.errors import Refusal
from committee.evidence import find_broken_rule
from committee.opening import compute_opened_log, compute_openings
from committee.proposal import Proposal, SlotProposal, encode_proposal
from committee.reopening import check_openings
from committee.sealedset import SealedOpening, compute_sealed_order, compute_slot_ciphertext_root
from tests.committee import test_opening as opening
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, SLOT, key, raw_tx
from tests.committee.test_coordinator import Clock, Harness
from tests.committee.test_sealed_close import honest_proposal, send_sealed, with_log
from tests.factories import CHAIN, tx
from tests.sealed import committee_of, encryptor, plain_request, slot_key

pytestmark = pytest.mark.anyio

SHARED_KEY = "0x" + "5a" * 32  # a storage key two bundles write: they conflict
EVERYONE = 1 << 30  # an evidence sample larger than any slot: every bid in it


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def harness(dealt: Dealt, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {})
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


def body_of(k: SearcherKey, *, bid_wei: int | None, nonce: int,
            access: list[str] | None = None) -> bytes:  # fmt: skip
    """A one-transaction eth_sendBundle body (``bid_wei`` None: the bid is the tx's tips)."""
    raw = raw_tx(k, nonce=nonce, access=access)
    return k.request("eth_sendBundle", [bundle_params([raw], SLOT, bid_wei=bid_wei)])


async def send_junk(h: Harness, k: SearcherKey, enc: BundleEncryptor, slot: int) -> str:
    """A sealed call whose payload is no bundle (its one tx is two bytes): refused at opening."""
    junk = k.request("eth_sendBundle", [{"txs": ["0x1234"], "blockNumber": hex(slot)}])
    public = orjson.dumps({"maxGas": 21_000, "searcher": k.address, "slot": slot},
                          option=orjson.OPT_SORT_KEYS)  # fmt: skip
    return await send_sealed(h, k, enc, junk, public)


async def open_slot_with_losers(h: Harness, slot: int = SLOT) -> dict[str, Any]:
    """A plaintext bid and five sealed ones from four searchers: two sealed losers, one
    beaten on its searcher's nonce, one on a storage key it shares with a winner; and one
    sealed bid whose payload is no bundle (refused at opening, for real)."""
    h.clock.ms = compute_slot_start_ms(CLOCK, slot) + 1
    await h.bid(slot, 31, 2 * 10**15)
    alice, bob, carol, dave = key(61), key(62), key(63), key(64)
    enc = {k.address: BundleEncryptor(h.dealt.committee, slot, searcher=k.address)
           for k in (alice, bob, carol, dave)}  # fmt: skip
    ids = {
        "alice_high": await send_sealed(h, alice, enc[alice.address],
                                        body_of(alice, bid_wei=9 * 10**15, nonce=7)),
        # the same sender and nonce: it conflicts with alice_high and loses
        "alice_low": await send_sealed(h, alice, enc[alice.address],
                                       body_of(alice, bid_wei=3 * 10**15, nonce=7)),
        "bob": await send_sealed(h, bob, enc[bob.address],
                                 body_of(bob, bid_wei=8 * 10**15, nonce=3, access=[SHARED_KEY])),
        # it writes bob's storage key with a lower bid (its tips): it loses
        "carol": await send_sealed(h, carol, enc[carol.address],
                                   body_of(carol, bid_wei=None, nonce=4, access=[SHARED_KEY])),
        "dave_junk": await send_junk(h, dave, enc[dave.address], slot),
    }
    h.clock.ms = compute_deadline_ms(CLOCK, slot) + 5
    return ids


async def losers_proposal(h: Harness) -> tuple[SlotProposal, dict[str, Any]]:
    """The honest proposal of ``open_slot_with_losers``' slot, unsent, checked for its shape."""
    proposal, ids = await honest_proposal(h, open_slot_with_losers)
    winners = {w.bid_id for w in proposal.parts[0].block.bundles}
    logged = {e.event.bid_id for e in proposal.parts[0].log if isinstance(e.event, Bid)}
    assert {ids["alice_high"], ids["bob"]} <= winners
    assert ids["alice_low"] in logged - winners and ids["carol"] in logged - winners
    assert ids["dave_junk"] not in logged  # refused at opening (no valid bundle)
    return proposal, ids


def sampled(h: Harness, index: int, sample: frozenset[str]) -> Harness:
    """Member ``index`` draws exactly ``sample`` (the injected OS randomness)."""
    member = h.member(index).member
    member._sample = lambda proposal: sample  # type: ignore[method-assign]
    return h


def refusal_of(h: Harness, proposal: SlotProposal, index: int) -> str | None:
    try:
        h.member(index).member.sign_proposal(encode_proposal(proposal))
    except Refusal as exc:
        return exc.code
    return None


def altered(proposal: SlotProposal, bid_id: str, change: Callable[[Bid], Bid]) -> SlotProposal:
    """The proposal with the logged bid ``bid_id`` changed (the block left as it was)."""
    log = tuple(
        dataclasses.replace(e, event=change(e.event))
        if isinstance(e.event, Bid) and e.event.bid_id == bid_id else e
        for e in proposal.parts[0].log
    )  # fmt: skip
    return with_log(proposal, log)


def with_tx(change: Callable[[Tx], Tx]) -> Callable[[Bid], Bid]:
    """Change a bid's (only) transaction as a coordinator would: its decoded fields, not the
    signed bytes, and the bid's gas kept its transactions' (so the cheap bounds still hold)."""
    def apply(bid: Bid) -> Bid:
        txs = tuple(change(t) for t in bid.txs)
        return dataclasses.replace(bid, txs=txs, gas=sum(t.gas_limit for t in txs))
    return apply


OTHER = "0x" + "77" * 20


async def test_members_sign_the_honest_slot_with_or_without_a_sample(harness: Harness) -> None:
    proposal, ids = await losers_proposal(harness)
    # An empty sample: the losers are bound, dave's refusal is confirmed by deriving it
    assert refusal_of(sampled(harness, 1, frozenset()), proposal, 1) is None
    # Every bid sampled
    harness.member(2).member.evidence_sample = EVERYONE
    assert refusal_of(harness, proposal, 2) is None
    # The default rule (16 per part: the whole of this small slot)
    assert refusal_of(harness, proposal, 3) is None


@pytest.mark.parametrize("change", [
    with_tx(lambda t: dataclasses.replace(t, sender=OTHER)),  # what only ECDSA shows
    lambda b: dataclasses.replace(b, bid_wei=b.bid_wei - 1),
    lambda b: dataclasses.replace(b, received_ms=b.received_ms + 1),
], ids=["sender", "bid", "received"])
async def test_an_altered_winner_is_always_refused(harness: Harness, change: Any) -> None:
    proposal, ids = await losers_proposal(harness)
    lie = altered(proposal, ids["alice_high"], change)
    assert refusal_of(sampled(harness, 1, frozenset()), lie, 1) == "opening_mismatch"


# Every field a losing opened bid carries that the payload states without decoding its
# transactions (decision 158): the request's own fields, the transactions' bytes and hashes,
# and what the intake rules compute from the claimed fields (a bid of tips, the gas within the
# public maxGas, which here is the bundle's gas exactly).
BOUND = {
    "bid": lambda b: dataclasses.replace(b, bid_wei=b.bid_wei - 1),
    "explicit": lambda b: dataclasses.replace(b, explicit_bid=not b.explicit_bid),
    "gas": with_tx(lambda t: dataclasses.replace(t, gas_limit=t.gas_limit + 1)),
    "tx_hash": with_tx(lambda t: dataclasses.replace(t, hash="0x" + "00" * 32)),
    "raw": with_tx(lambda t: dataclasses.replace(t, raw=t.raw + b"\x00")),
    "bundle_hash": lambda b: dataclasses.replace(b, bundle_hash="0x" + "00" * 32),
    "uuid": lambda b: dataclasses.replace(b, replacement_uuid="0" * 8 + "-0000-0000-0000-"
                                          + "0" * 12),
    "max_timestamp": lambda b: dataclasses.replace(b, max_timestamp=1 << 40),
    "reverting": lambda b: dataclasses.replace(b, reverting_tx_hashes=(b.txs[0].hash,)),
    "searcher": lambda b: dataclasses.replace(b, searcher=OTHER),
    "received": lambda b: dataclasses.replace(b, received_ms=b.received_ms - 1),
}

# What only decoding a loser's transactions shows, as for a plaintext loser (docs/committee.md,
# "Evidence"): left to the sample. A tip is bound for a bid of tips (carol's: the bid is
# computed from it) but not under an explicit bid (alice_low's).
SAMPLED = {
    "sender": with_tx(lambda t: dataclasses.replace(t, sender=OTHER)),
    "nonce": with_tx(lambda t: dataclasses.replace(t, nonce=t.nonce + 1)),
    "gas_lower": with_tx(lambda t: dataclasses.replace(t, gas_limit=t.gas_limit - 1)),
    "tip": with_tx(lambda t: dataclasses.replace(t, priority_fee_wei=t.priority_fee_wei - 1)),
    "access_keys": with_tx(lambda t: dataclasses.replace(
        t, access_keys=(*t.access_keys, "aa" * 20 + ":" + "01" * 32))),
    "to": with_tx(lambda t: dataclasses.replace(t, to=OTHER)),
}


@pytest.mark.parametrize("field", sorted(BOUND))
async def test_a_losers_payload_bound_field_altered_is_always_refused(
    harness: Harness, field: str
) -> None:
    proposal, ids = await losers_proposal(harness)
    for loser in ("alice_low", "carol"):  # an explicit bid and a bid of tips
        lie = altered(proposal, ids[loser], BOUND[field])
        assert refusal_of(sampled(harness, 1, frozenset()), lie, 1) == "opening_mismatch", loser


@pytest.mark.parametrize("field", sorted(SAMPLED))
async def test_a_losers_decoded_field_is_left_to_the_sample(harness: Harness, field: str
                                                            ) -> None:  # fmt: skip
    """A loser's transaction fields that only decoding shows are caught when the loser is
    sampled (or every bid derived, the full mode) and bound otherwise; the offline verifier
    does not convict a member for them (decision 147), exactly as for a plaintext loser."""
    proposal, ids = await losers_proposal(harness)
    config = harness.member(1).member.config
    loser = ids["alice_low"]  # an explicit bid: its tip decides nothing the binding computes
    lie = altered(proposal, loser, SAMPLED[field])
    for sample in (frozenset({loser}), None):
        with pytest.raises(Refusal) as refused:
            check_openings(config, lie, sample=sample)
        assert refused.value.code == "opening_mismatch"
    assert loser in check_openings(config, lie, sample=frozenset())
    assert find_broken_rule(config, lie) is None


async def test_a_losers_sender_is_caught_when_the_loser_is_sampled(harness: Harness) -> None:
    """A sender is what only the signature's recovery gives: a coordinator that makes carol's
    transaction another sender's (carol still loses on bob's storage key, so the block stays
    the same) is caught by a member whose sample holds carol's bid; a member that did not
    sample it signs (the documented trade-off, as for plaintext losers), and the offline
    verifier does not convict it for that (decision 147: what a member checks for sure)."""
    h = harness
    proposal, ids = await losers_proposal(h)
    lie = altered(proposal, ids["carol"], with_tx(lambda t: dataclasses.replace(t, sender=OTHER)))
    assert refusal_of(sampled(h, 1, frozenset({ids["carol"]})), lie, 1) == "opening_mismatch"
    assert refusal_of(sampled(h, 2, frozenset({ids["alice_low"]})), lie, 2) is None
    config = h.member(1).member.config
    # The pure check, sample injected: caught exactly when carol's bid is in it
    with pytest.raises(Refusal) as refused:
        check_openings(config, lie, sample=frozenset({ids["carol"]}))
    assert refused.value.code == "opening_mismatch"
    assert ids["carol"] in check_openings(config, lie, sample=frozenset())
    # The offline verifier runs what every honest member checks for sure (an empty sample):
    # signing this is no slashable rule-breaking, as for a plaintext loser's forged evidence
    assert find_broken_rule(config, lie) is None
    # ... while a lie about a winner's sender, which every member derives, is
    winner = next(w.bid_id for w in lie.parts[0].block.bundles if w.bid_id in ids.values())
    forged = altered(proposal, winner, with_tx(lambda t: dataclasses.replace(t, sender=OTHER)))
    broken = find_broken_rule(config, forged)
    assert broken is not None and broken.startswith("opening_mismatch")


async def test_a_valid_sealed_bid_left_out_is_always_refused(harness: Harness) -> None:
    """A sealed bid that opens to a valid bundle may be absent from the logs only if the
    proposal names it unfunded: dropping a loser (or a winner, the block re-run as if it had
    never been sent: a refusal at opening faked) is refused whatever the sample."""
    h = harness
    proposal, ids = await losers_proposal(h)
    for index, name in enumerate(("alice_low", "carol", "alice_high"), start=1):
        log = tuple(e for e in proposal.parts[0].log
                    if not (isinstance(e.event, Bid) and e.event.bid_id == ids[name]))  # fmt: skip
        assert refusal_of(sampled(h, index, frozenset()), with_log(proposal, log), index) == (
            "opening_mismatch"), name


async def test_a_faked_refusal_with_the_block_rebuilt_is_refused(harness: Harness) -> None:
    """The coordinator claims alice's winning sealed bid was refused at opening: it leaves the
    bid out of the log and proposes the block the slot makes without it, so the re-run agrees.
    Only deriving the left-out bid in full shows it was valid: refused with an empty sample."""
    h = harness
    proposal, ids = await losers_proposal(h)
    config = h.member(1).member.config
    drop = ids["alice_high"]
    log = tuple(e for e in proposal.parts[0].log
                if not (isinstance(e.event, Bid) and e.event.bid_id == drop))  # fmt: skip
    faked = rebuilt(h, with_log(proposal, log))
    assert drop not in {w.bid_id for w in faked.parts[0].block.bundles}
    assert refusal_of(sampled(h, 1, frozenset()), faked, 1) == "opening_mismatch"
    broken = find_broken_rule(config, faked)
    assert broken is not None and broken.startswith("opening_mismatch")


async def test_a_refused_bid_logged_as_a_loser_is_refused(harness: Harness) -> None:
    """Dave's payload is no bundle: a coordinator cannot log a bid for it (its bound fields
    would have to be the payload's), here one copied from carol's under dave's id."""
    h = harness
    proposal, ids = await losers_proposal(h)
    sealed = {e.event.bid_id: e for e in proposal.sealed.entries}  # type: ignore[union-attr]
    dave = sealed[ids["dave_junk"]]
    carol = next(e.event for e in proposal.parts[0].log
                 if isinstance(e.event, Bid) and e.event.bid_id == ids["carol"])  # fmt: skip
    forged = dataclasses.replace(carol, bid_id=dave.event.bid_id, searcher=dave.event.searcher,
                                 evidence=dave.event.evidence,
                                 received_ms=dave.event.received_ms)  # fmt: skip
    log = tuple(sorted([*proposal.parts[0].log, LoggedEvent(dave.seq, forged)],
                       key=lambda e: tuple(int(x) for x in e.seq.split("-"))))  # fmt: skip
    assert refusal_of(sampled(h, 1, frozenset()), with_log(proposal, log), 1) == (
        "opening_mismatch")


def rebuilt(h: Harness, proposal: SlotProposal) -> SlotProposal:
    """``proposal`` with each part's block what the slot function makes of its (altered) log:
    a lie the block re-run cannot see."""
    from committee.checks import compute_expected_results

    config = h.member(1).member.config
    expected = compute_expected_results(config, proposal)
    return dataclasses.replace(proposal, parts=tuple(
        dataclasses.replace(p, block=expected[p.rollup].block) for p in proposal.parts))


# --- a cross-rollup sealed bid, bound copy by copy (pure: check_openings) -----------------------


def cross_rollup_proposal() -> tuple[MemberConfig, SlotProposal, str]:
    """A slot of two rollups whose one sealed bid spans both (and another is single-rollup),
    opened honestly, with blocks that name no winner: every opened bid is bound unless
    sampled. Returns the member config, the proposal and the cross-rollup bid's id."""
    committee = committee_of(0)[0]
    config = MemberConfig(committee, 1, opening.CTX.rollups, opening.CLOCK, 32, 2_000, 250)
    erin, fred = key(71), key(72)
    cross = erin.request("eth_sendBundle", [bundle_params(
        [tx(erin, nonce=1), tx(erin, chain_id=10, nonce=2)], opening.SLOT, bid_wei=10**15,
        rollups=[CHAIN, 10])])  # fmt: skip
    entries = tuple(compute_sealed_order([
        opening.log_sealed(erin, encryptor(erin, opening.SLOT).encrypt(cross)),
        opening.log_sealed(fred, encryptor(fred, opening.SLOT).encrypt(
            plain_request(fred, opening.SLOT))),
    ]))  # fmt: skip
    key_ = slot_key(0, opening.SLOT)
    opened = compute_openings(committee, opening.SLOT, key_, entries, opening.CTX)
    assert all(o.bids for o in opened.openings)
    deadline = compute_deadline_ms(opening.CLOCK, opening.SLOT)
    empty = compute_slot_results(opening.SLOT, deadline, [
        SlotPart(config.rollups[r], ZERO_HASH, ()) for r in sorted(config.rollups)
    ], price_of_fairness=False)  # fmt: skip
    cid = committee.committee_id
    parts = tuple(
        Proposal(cid, r.rollup, opening.SLOT, r.block, None, (),
                 tuple(compute_opened_log(r.rollup, [], opened)))
        for r in empty
    )  # fmt: skip
    root = compute_slot_ciphertext_root(cid, opening.SLOT, entries)
    sealed = SealedOpening(root, key_, bytes(96), entries)
    [cross_id] = [e.event.bid_id for e in entries if e.event.searcher == erin.address]
    return config, SlotProposal(cid, opening.SLOT, parts, sealed=sealed), cross_id


def with_copies(proposal: SlotProposal, bid_id: str, change: Callable[[Bid], Bid],
                rollups: frozenset[int]) -> SlotProposal:  # fmt: skip
    """The proposal with ``change`` applied to the copies of ``bid_id`` in ``rollups``' logs."""
    return dataclasses.replace(proposal, parts=tuple(
        dataclasses.replace(p, log=tuple(
            dataclasses.replace(e, event=change(e.event))
            if p.rollup in rollups and isinstance(e.event, Bid) and e.event.bid_id == bid_id
            else e for e in p.log))
        for p in proposal.parts))  # fmt: skip


def on_leg(rollup: int, change: Callable[[Tx], Tx]) -> Callable[[Bid], Bid]:
    """Change the transactions of a cross-rollup copy's leg on ``rollup`` (and the copy's own
    transactions if that leg is its own), consistently."""
    def apply(bid: Bid) -> Bid:
        legs = tuple(dataclasses.replace(g, txs=tuple(change(t) for t in g.txs))
                     if g.rollup == rollup else g for g in bid.legs)  # fmt: skip
        own = next(g for g in legs if g.rollup == bid.rollup)
        return dataclasses.replace(bid, legs=legs, txs=own.txs)
    return apply


def test_a_cross_rollup_opened_bid_is_bound_in_every_copy() -> None:
    config, proposal, cross = cross_rollup_proposal()
    both = frozenset({CHAIN, 10})
    assert cross in check_openings(config, proposal, sample=frozenset())
    # A field of the other rollup's leg changed in one copy: the copies disagree, refused
    nonce = on_leg(10, lambda t: dataclasses.replace(t, nonce=t.nonce + 1))
    for where in (frozenset({10}), frozenset({CHAIN})):
        with pytest.raises(Refusal) as refused:
            check_openings(config, with_copies(proposal, cross, nonce, where),
                           sample=frozenset())  # fmt: skip
        assert refused.value.code == "opening_mismatch"
    # A bound field changed in both copies alike (the leg's transaction hash): refused
    hashed = on_leg(10, lambda t: dataclasses.replace(t, hash="0x" + "00" * 32))
    with pytest.raises(Refusal) as refused:
        check_openings(config, with_copies(proposal, cross, hashed, both), sample=frozenset())
    assert refused.value.code == "opening_mismatch"
    # The nonce in both copies alike: what only decoding shows, left to the sample
    nonced = with_copies(proposal, cross, nonce, both)
    assert cross in check_openings(config, nonced, sample=frozenset())
    for sample in (frozenset({cross}), None):
        with pytest.raises(Refusal):
            check_openings(config, nonced, sample=sample)
    # A copy dropped from one spanned log: refused
    dropped = dataclasses.replace(proposal, parts=tuple(
        dataclasses.replace(p, log=tuple(e for e in p.log if not (
            p.rollup == 10 and isinstance(e.event, Bid) and e.event.bid_id == cross)))
        for p in proposal.parts))  # fmt: skip
    with pytest.raises(Refusal):
        check_openings(config, dropped, sample=frozenset())
    # The other leg's sender, lied about in every copy alike: only the sample (or the full
    # mode) sees it
    sender = with_copies(proposal, cross, on_leg(10, lambda t: dataclasses.replace(
        t, sender=OTHER)), both)  # fmt: skip
    assert cross in check_openings(config, sender, sample=frozenset())
    for sample in (frozenset({cross}), None):
        with pytest.raises(Refusal) as refused:
            check_openings(config, sender, sample=sample)
        assert refused.value.code == "opening_mismatch"
    # In one copy only: the copies disagree with the bound one, refused whatever the sample
    one = with_copies(proposal, cross, on_leg(10, lambda t: dataclasses.replace(
        t, sender=OTHER)), frozenset({10}))  # fmt: skip
    with pytest.raises(Refusal):
        check_openings(config, one, sample=frozenset())
