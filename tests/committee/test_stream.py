"""Streaming re-checks (committee/stream.py): a member follows a slot's log while it is open,
then signs a version-7 proposal that carries only the tail and the blocks' headers. Each test
plays an honest or a lying coordinator against one real member (real signed bids, real checks,
SQLite protection)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from auction import results as results_mod
from auction.columnar import EncodedCopy
from auction.slots import compute_slot_start_ms
from auction.types import LoggedEvent
from committee import stream as stream_mod
from committee import threshold
from committee.errors import (
    BidSetMismatch,
    BlockMismatch,
    InvalidEvidence,
    MalformedProposal,
    NotMember,
    SlotExpired,
    StreamGap,
    StreamMismatch,
)
from committee.member import Member
from committee.proposal import Proposal, encode_proposal
from committee.protection import ProtectionStore
from committee.stream import (
    STREAM_SLOTS_KEPT,
    compute_digests,
    compute_entry_bytes,
    encode_stream_batch,
)
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    after_close,
    config_of,
    encode_part,
    key,
    log_of,
    proposal_of,
    public_tx,
    signed_bid,
    signed_cancel,
    slot_of,
    with_block,
)


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def open_time(slot: int = SLOT) -> int:
    return compute_slot_start_ms(CLOCK, slot) + 100


def member_of(dealt: Dealt, path: Path, clock: Clock, *, stream_check: str = "full",
              index: int = 1) -> Member:
    path.mkdir(parents=True, exist_ok=True)
    return Member(dealt.shares[index - 1], config_of(dealt.committee, index),
                  ProtectionStore(path / f"member-{index}.sqlite3"), clock_ms=clock,
                  stream_check=stream_check)


def batch(dealt: Dealt, entries: tuple[LoggedEvent, ...] | list[LoggedEvent], start: int = 0,
          *, slot: int = SLOT, rollup: int = ROLLUP, committee_id: bytes | None = None) -> bytes:
    cid = committee_id if committee_id is not None else dealt.committee.committee_id
    return encode_stream_batch(cid, slot, rollup, start,
                               [compute_entry_bytes(e) for e in entries])


def streamed_body(p: Proposal, count: int, log: tuple[LoggedEvent, ...] | None = None) -> bytes:
    """The version-7 proposal naming the first ``count`` entries of ``log`` (default: the
    proposal's own log) as streamed."""
    prefix = (log if log is not None else p.log)[:count]
    digest = compute_digests(compute_entry_bytes(e) for e in prefix)[count]
    return encode_proposal(slot_of(p), {p.rollup: (count, digest)})


@pytest.fixture(scope="module")
def events() -> list:
    k = key(40)
    return [
        signed_bid(key(41), bid_wei=3 * 10**15),
        signed_bid(key(42), bid_wei=2 * 10**15, uuid="0b7e1f3c-1a2b-4c3d-8e9f-0123456789ab"),
        public_tx(key(43)),
        signed_bid(key(44)),
        signed_cancel(key(42), "0b7e1f3c-1a2b-4c3d-8e9f-0123456789ab"),
        signed_bid(k, bid_wei=5 * 10**15),
    ]


@pytest.fixture(scope="module")
def log(events: list) -> tuple[LoggedEvent, ...]:
    return log_of(events)


@pytest.fixture(scope="module")
def proposal(dealt: Dealt, log: tuple[LoggedEvent, ...]) -> Proposal:
    return proposal_of(dealt.committee, log)


def test_streamed_slot_signs_the_same_root_as_the_whole_log(dealt, log, proposal, tmp_path):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    ack = member.accept_stream(batch(dealt, log[:4]))
    assert ack["count"] == 4
    ack = member.accept_stream(batch(dealt, log[4:], 4))
    assert ack["count"] == len(log)
    assert ack["digest"] == "0x" + compute_digests(compute_entry_bytes(e) for e in log)[-1].hex()
    # every bid re-derived in full as it arrived
    assert set(member.streams.get(SLOT).derived) == {
        e.event.bid_id for e in log if hasattr(e.event, "bid_id")}
    clock.ms = after_close()
    reply = member.sign_proposal(streamed_body(proposal, len(log)))
    other = member_of(dealt, tmp_path / "old", Clock(after_close()), index=2)
    old = other.sign_proposal(encode_part(proposal))
    assert reply.slot_root == old.slot_root and reply.signing_root == old.signing_root
    assert threshold.verify_partial(dealt.committee.member_public_key(1), reply.signing_root,
                                    reply.partial)
    assert member.streams.get(SLOT) is None  # signed: its stream is dropped


@pytest.mark.parametrize("stream_check", ["full", "sample"])
def test_tail_not_streamed_is_checked_at_the_deadline(dealt, log, proposal, tmp_path,
                                                      stream_check):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock, stream_check=stream_check)
    member.accept_stream(batch(dealt, log[:3]))
    clock.ms = after_close()
    reply = member.sign_proposal(streamed_body(proposal, 3))
    assert reply.slot_root == slot_of(proposal).compute_slot_root()


def test_forged_tail_event_is_refused(dealt, log, proposal, tmp_path):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    member.accept_stream(batch(dealt, log[:3]))
    forged = list(log)
    bid = forged[5].event
    forged[5] = LoggedEvent(forged[5].seq, dataclasses.replace(bid, bid_wei=bid.bid_wei + 1))
    lying = proposal_of(dealt.committee, tuple(forged))
    clock.ms = after_close()
    with pytest.raises(InvalidEvidence):
        member.sign_proposal(streamed_body(lying, 3))


def test_member_that_missed_events_refuses_with_what_it_holds(dealt, log, proposal, tmp_path):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    member.accept_stream(batch(dealt, log[:2]))
    clock.ms = after_close()
    with pytest.raises(StreamGap) as excinfo:
        member.sign_proposal(streamed_body(proposal, 4))
    assert excinfo.value.data["have"] == 2
    # a member that streamed nothing (restarted) says so too, and the whole log still signs
    fresh = member_of(dealt, tmp_path / "fresh", Clock(after_close()), index=3)
    with pytest.raises(StreamGap) as excinfo:
        fresh.sign_proposal(streamed_body(proposal, 4))
    assert excinfo.value.data["have"] == 0
    assert fresh.sign_proposal(encode_part(proposal)).slot_root


def test_streamed_events_that_differ_from_the_final_log_are_refused(dealt, log, proposal,
                                                                    tmp_path):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    # The stream held an event the final log replaces by another under the same seq.
    other = LoggedEvent(log[3].seq, signed_bid(key(50)))
    streamed = (*log[:3], other)
    member.accept_stream(batch(dealt, streamed))
    clock.ms = after_close()
    # Naming the final log's prefix: its digest is not what the member holds.
    with pytest.raises(StreamMismatch):
        member.sign_proposal(streamed_body(proposal, 4))
    # Naming what was streamed but proposing the final log's block: the block's winner is not
    # in what the member checked, or its re-run disagrees.
    with pytest.raises((BidSetMismatch, InvalidEvidence)):
        member.sign_proposal(streamed_body(proposal, 4, streamed))


def test_streamed_bids_are_encoded_once_as_they_arrive(dealt, log, proposal, tmp_path,
                                                       monkeypatch):
    """The deadline's re-run reads the streamed bids' conflict keys from the encoding kept as
    they arrived (none is computed again) and signs what the whole-log path signs."""
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    member.accept_stream(batch(dealt, log))
    encoder = member.streams.get(SLOT).encoder
    assert encoder.count(ROLLUP) == len(log)
    computed: list[str] = []
    real = results_mod.compute_conflict_keys

    def counting(bid):
        computed.append(bid.bid_id)
        return real(bid)

    monkeypatch.setattr(results_mod, "compute_conflict_keys", counting)
    monkeypatch.setattr("auction.columnar.compute_conflict_keys", counting)
    clock.ms = after_close()
    reply = member.sign_proposal(streamed_body(proposal, len(log)))
    assert computed == []
    assert reply.slot_root == slot_of(proposal).compute_slot_root()


def test_a_member_whose_encoding_disagrees_with_its_log_refuses(dealt, log, proposal, tmp_path):
    """Defence in depth: if the encoding kept while streaming ever disagreed with the checked
    log (a bug, memory corruption), the re-run differs from the honest block and the member
    refuses; it never signs a block its own re-run did not produce."""
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    member.accept_stream(batch(dealt, log))
    stream = member.streams.get(SLOT)
    encoder = stream.encoder
    winner = stream.logs[ROLLUP].entries[5].event  # the highest bid: in the honest block
    assert winner.bid_id == log[5].event.bid_id
    kept = encoder.copy(winner, ROLLUP)
    wrong = dataclasses.replace(kept.leg, gas=10**9)  # over the gas limit: cannot win
    encoder._copies[(winner.bid_id, ROLLUP)] = EncodedCopy(
        winner, kept.keys, wrong, -1, dataclasses.replace(kept.item, legs=(wrong,)))
    clock.ms = after_close()
    with pytest.raises(BlockMismatch):
        member.sign_proposal(streamed_body(proposal, len(log)))
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None
    # the same proposal re-run from scratch (the whole log) signs
    fresh = member_of(dealt, tmp_path / "fresh", Clock(after_close()), index=2)
    assert fresh.sign_proposal(encode_part(proposal)).slot_root


def test_batches_out_of_order_or_dropped_are_refused(dealt, log, tmp_path):
    member = member_of(dealt, tmp_path, Clock(open_time()))
    with pytest.raises(StreamGap) as excinfo:
        member.accept_stream(batch(dealt, log[2:4], 2))  # the first batch was dropped
    assert excinfo.value.data["have"] == 0
    member.accept_stream(batch(dealt, log[:2]))
    with pytest.raises(StreamGap):
        member.accept_stream(batch(dealt, log[:2]))  # sent again
    # reordered within a batch: nothing of it is kept
    with pytest.raises(MalformedProposal):
        member.accept_stream(batch(dealt, [log[3], log[2]], 2))
    # a different event under a seq already held
    with pytest.raises(MalformedProposal):
        member.accept_stream(batch(dealt, [LoggedEvent(log[1].seq, log[2].event)], 2))
    assert member.streams.size() == 2


def test_invalid_event_keeps_nothing_of_its_batch(dealt, log, tmp_path):
    member = member_of(dealt, tmp_path, Clock(open_time()))
    bid = log[3].event
    bad = [log[0], LoggedEvent(log[3].seq, dataclasses.replace(bid, gas=bid.gas + 1))]
    with pytest.raises(InvalidEvidence):
        member.accept_stream(batch(dealt, bad))
    assert member.streams.size() == 0
    # a sampled member still binds every bid to its signed bytes as it arrives
    sampled = member_of(dealt, tmp_path / "s", Clock(open_time()), stream_check="sample")
    forged = [LoggedEvent(log[0].seq, dataclasses.replace(log[0].event, bid_wei=7))]
    with pytest.raises(InvalidEvidence):
        sampled.accept_stream(batch(dealt, forged))


def test_streams_for_another_committee_rollup_or_time_are_refused(dealt, log, tmp_path):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    with pytest.raises(NotMember):
        member.accept_stream(batch(dealt, log, committee_id=b"\x01" * 32))
    with pytest.raises(NotMember):
        member.accept_stream(batch(dealt, log, rollup=ROLLUP + 1))
    # bids of this slot streamed as another slot's: refused by the event check
    with pytest.raises(InvalidEvidence):
        member.accept_stream(batch(dealt, log[:1], slot=SLOT + 1))
    with pytest.raises(SlotExpired):
        member.accept_stream(batch(dealt, log, slot=SLOT + 1000))
    clock.ms = after_close() + 1_000
    with pytest.raises(SlotExpired):
        member.accept_stream(batch(dealt, log))
    assert member.streams.size() == 0


def test_flooding_is_bounded(dealt, log, tmp_path, monkeypatch):
    monkeypatch.setattr(stream_mod, "MAX_STREAM_EVENTS", 3)
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    member.accept_stream(batch(dealt, log[:3]))
    with pytest.raises(MalformedProposal):
        member.accept_stream(batch(dealt, log[3:4], 3))
    assert member.streams.size() == 3
    # streams of later slots push the oldest out; a dropped slot is never reopened
    for slot in range(SLOT + 1, SLOT + 1 + STREAM_SLOTS_KEPT):
        member.accept_stream(batch(dealt, log_of([public_tx(key(60 + slot - SLOT), slot)], slot),
                                   slot=slot))
    assert member.streams.slots == list(range(SLOT + 1, SLOT + 1 + STREAM_SLOTS_KEPT))
    with pytest.raises(StreamGap):
        member.accept_stream(batch(dealt, log[:1]))


def test_version_3_part_with_a_streamed_prefix_is_malformed(dealt, proposal, tmp_path):
    doc = orjson.loads(encode_part(proposal))
    doc["parts"][0]["streamed"] = {"count": 0, "digest": "0x" + "00" * 32}
    member = member_of(dealt, tmp_path, Clock(after_close()))
    with pytest.raises(MalformedProposal):
        member.sign_proposal(orjson.dumps(doc))
    doc = orjson.loads(streamed_body(proposal, 0))
    doc["completion"] = True
    with pytest.raises(MalformedProposal):
        member.sign_proposal(orjson.dumps(doc))


def _signed_streamed(dealt, log, tmp_path, body: bytes, index: int = 1):
    """A member that streamed all of ``log``, then checks ``body`` past the deadline."""
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock, index=index)
    member.accept_stream(batch(dealt, log))
    clock.ms = after_close()
    return member, member.sign_proposal(body)


def test_streamed_proposal_carries_headers_not_bodies(dealt, log, proposal, tmp_path):
    """Version 7: a part carries its block's header (no bundles, no txs); the member signs its
    own re-run's block, and it is the block a whole-log member signs (decision 166)."""
    body = streamed_body(proposal, len(log))
    doc = orjson.loads(body)
    (part,) = doc["parts"]
    assert "block" not in part and set(part["header"]) >= {"block_hash", "bid_set_root"}
    assert "bundles" not in part["header"] and "txs" not in part["header"]
    for raw in proposal.block.txs:  # no transaction of the block travels
        assert raw.hex() not in body.decode()
    member, reply = _signed_streamed(dealt, log, tmp_path, body)
    whole = member_of(dealt, tmp_path / "whole", Clock(after_close()), index=2)
    assert whole.sign_proposal(encode_part(proposal)).slot_root == reply.slot_root
    # what the member keeps of the block it signed is the block's (served to searchers)
    kept = member.keeping.get_log(ROLLUP, SLOT)
    assert kept is not None and kept.block_hash == proposal.block.block_hash


def test_header_of_another_block_is_refused_naming_the_field(dealt, log, proposal, tmp_path):
    """A coordinator that sends the header of a block the rules do not produce (a winner that
    pays nothing; or the same fields under another hash, other bodies) is refused: the member
    compares its own block's header and signs nothing."""
    winners = list(proposal.block.bundles)
    winners[0] = dataclasses.replace(winners[0], payment_wei=0)
    cheaper = with_block(proposal, dataclasses.replace(
        proposal.block, bundles=tuple(winners),
        revenue_wei=proposal.block.revenue_wei - proposal.block.bundles[0].payment_wei))
    with pytest.raises(BlockMismatch) as err:
        _signed_streamed(dealt, log, tmp_path / "a", streamed_body(cheaper, len(log)))
    assert err.value.data["field"] == "revenue_wei"
    assert err.value.data["expected_block_hash"] == proposal.block.block_hash
    # Only the hash differs: the bodies it stands for are not the re-run's.
    other_bodies = with_block(proposal, dataclasses.replace(proposal.block,
                                                            bundles=tuple(winners)))
    doc = orjson.loads(streamed_body(other_bodies, len(log)))
    assert doc["parts"][0]["header"]["revenue_wei"] == str(proposal.block.revenue_wei)
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path / "b", clock)
    member.accept_stream(batch(dealt, log))
    clock.ms = after_close()
    with pytest.raises(BlockMismatch) as err:
        member.sign_proposal(orjson.dumps(doc))
    assert err.value.data["field"] == "block_hash"
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None


def test_header_with_another_bid_set_root_is_refused(dealt, log, proposal, tmp_path):
    forged = with_block(proposal, dataclasses.replace(proposal.block,
                                                      bid_set_root="0x" + "ab" * 32))
    with pytest.raises(BidSetMismatch):
        _signed_streamed(dealt, log, tmp_path, streamed_body(forged, len(log)))


@pytest.mark.parametrize("change", ["block_instead", "bundles_in_header", "txs_in_header",
                                    "no_header", "header_in_version_5"])
def test_version_7_header_shapes_are_exact(dealt, log, proposal, tmp_path, change):
    """One form for one thing: a version-7 part has a header (exactly its fields), never a
    block; a version-5 part a block, never a header."""
    doc = orjson.loads(streamed_body(proposal, len(log)))
    part = doc["parts"][0]
    whole = orjson.loads(encode_part(proposal))
    if change == "block_instead":
        part["block"] = whole["parts"][0]["block"]
        del part["header"]
    elif change == "bundles_in_header":
        part["header"]["bundles"] = whole["parts"][0]["block"]["bundles"]
    elif change == "txs_in_header":
        part["header"]["txs"] = []
    elif change == "no_header":
        del part["header"]
    else:
        doc = whole
        doc["parts"][0]["header"] = part["header"]
    with pytest.raises(MalformedProposal):
        _signed_streamed(dealt, log, tmp_path, orjson.dumps(doc))


def test_a_signed_slots_stream_is_gone_at_once_and_freed_when_the_next_opens():
    """Dropping a signed slot's streams takes effect at once (nothing more is kept or served
    for it), but their memory is freed only when the next slot's stream opens: freeing
    thousands of entries is not work the partial waits for."""
    import gc
    import weakref

    streams = stream_mod.MemberStreams()
    ref = weakref.ref(streams.open(SLOT))
    streams.drop_through(SLOT)
    gc.collect()
    assert streams.get(SLOT) is None and streams.slots == []
    assert ref() is not None  # held for freeing, not yet freed
    streams.open(SLOT + 1)
    gc.collect()
    assert ref() is None
    assert streams.slots == [SLOT + 1]
