"""The coordinator streaming each open slot's log to in-process members (committee/feeder.py),
then getting the slot signed with version-7 proposals; with the fake clock of the coordinator
tests, so each step is exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from api.engine import Engine
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from committee.coordinator import Coordinator, LocalMember
from committee.local import build_local_members
from committee.records import SignedBlock
from committee.verify import verify_signed_block
from node.metrics import Metrics
from node.stores.base import Store
from node.stores.memory import MemoryStore
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT, SLOT_MS, WINDOW_MS
from tests.committee.test_coordinator import (
    SETTINGS,
    Clock,
    Harness,
    _second_engine,
    drive_streaming,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class StreamingHarness(Harness):
    """``Harness`` whose coordinator streams (its rounds driven by the test), on
    ``store`` (a fresh memory store by default), each member client passed through ``wrap``."""

    def __init__(self, dealt: Dealt, tmp: Path, clock: Clock, store: Store | None = None,
                 wrap: Callable[[LocalMember], LocalMember] = lambda m: m) -> None:  # fmt: skip
        self.dealt = dealt
        self.clock = clock
        self.store = store or MemoryStore()
        self.engine = Engine(store=self.store, rollups=SETTINGS.rollup_configs(),
                             preset=SETTINGS.base_preset(), slot_ms=SLOT_MS, clock_ms=clock,
                             metrics=Metrics())  # fmt: skip
        self.members = [wrap(m) for m in build_local_members(
            SETTINGS, dealt.committee, dealt.shares, tmp, clock_ms=clock)]  # fmt: skip
        self.coordinator = Coordinator(self.engine, dealt.committee, self.members,
                                       signing_window_ms=WINDOW_MS, streaming=True)  # fmt: skip
        drive_streaming(self.coordinator)
        self.coordinator.attach()
        self.nonce = 0

    async def open_slot(self, slot: int, bids: int, first: int = 0) -> None:
        self.clock.ms = compute_slot_start_ms(CLOCK, slot) + 1
        for i in range(first, first + bids):
            await self.bid(slot, 100 * slot % 997 + i, 10**15 * (i + 1))

    async def close(self, slot: int) -> SignedBlock:
        self.clock.ms = compute_deadline_ms(CLOCK, slot) + 5
        await self.engine.close_slot(slot)
        signed = await self.outcome(slot)
        assert isinstance(signed, SignedBlock)
        verify_signed_block(signed, self.dealt.committee)
        return signed


@pytest.fixture
async def streaming(dealt: Dealt, tmp_path: Path) -> AsyncIterator[StreamingHarness]:
    h = StreamingHarness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1))
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


def proposal_sizes(h: StreamingHarness) -> int:
    return int(h.coordinator.timings[-1]["proposal_bytes"])


async def test_streamed_slots_are_signed_and_chained(streaming: StreamingHarness) -> None:
    await streaming.open_slot(SLOT, 4)
    await streaming.stream()
    feeder = streaming.coordinator.feeder
    assert feeder is not None
    assert {feeder.acked[(m.index, SLOT, ROLLUP)] for m in streaming.members} == {4}
    # members checked every bid as it arrived
    assert all(len(m.member.streams.get(SLOT).derived) == 4 for m in streaming.members)
    first = await streaming.close(SLOT)
    streamed_bytes = proposal_sizes(streaming)
    # a slot that was never streamed (tail only) carries its whole log
    await streaming.open_slot(SLOT + 1, 4)
    second = await streaming.close(SLOT + 1)
    assert second.block.parent_hash == first.block.block_hash
    assert len(first.block.bundles) == 4 and len(second.block.bundles) == 4
    assert streamed_bytes < proposal_sizes(streaming)


async def test_events_logged_after_the_last_push_are_the_tail(streaming: StreamingHarness):
    await streaming.open_slot(SLOT, 3)
    await streaming.stream()
    await streaming.open_slot(SLOT, 2, first=3)  # arrive after the last push
    signed = await streaming.close(SLOT)
    assert len(signed.block.bundles) == 5


async def test_the_close_packs_from_the_encoding_the_follower_kept(
    streaming: StreamingHarness, monkeypatch
):
    """The engine's close takes the slot's encoder from its follower (the logs the feeder
    streamed, read while the slot was open), appends the tail and packs from it: the same
    results as from scratch."""
    from api import engine as engine_mod
    from auction.results import compute_slot_results

    used: list[object] = []
    scratch: list[tuple] = []
    real = engine_mod.compute_slot_results

    def spy(slot, deadline_ms, parts, *, encoder=None, **kw):  # noqa: ANN001, ANN202
        used.append(encoder)
        out = real(slot, deadline_ms, parts, encoder=encoder, **kw)
        scratch.append((out, compute_slot_results(slot, deadline_ms, parts, **kw)))
        return out

    monkeypatch.setattr(engine_mod, "compute_slot_results", spy)
    await streaming.open_slot(SLOT, 3)
    await streaming.stream()
    follower = streaming.engine.follower
    encoder = follower.slots[SLOT].encoder
    assert encoder is not None and encoder.count(ROLLUP) == 3
    await streaming.open_slot(SLOT, 2, first=3)  # the tail, read at the close
    signed = await streaming.close(SLOT)
    assert len(signed.block.bundles) == 5
    assert used[-1] is encoder and encoder.count(ROLLUP) == 5
    assert SLOT not in follower.slots  # handed over to the close
    # the next slot (followed by the streaming loop or not): the same results either way
    await streaming.open_slot(SLOT + 1, 2)
    await streaming.close(SLOT + 1)
    assert len(scratch) == 2 and all(mine == theirs for mine, theirs in scratch)


async def test_members_that_lost_their_stream_get_the_whole_log(streaming: StreamingHarness):
    await streaming.open_slot(SLOT, 3)
    await streaming.stream()
    for m in streaming.members:  # every member restarted: none holds what was acknowledged
        m.member.streams.drop_through(SLOT)
    signed = await streaming.close(SLOT)
    assert len(signed.signers) == streaming.dealt.committee.t


async def test_a_member_streamed_a_different_log_signs_only_what_it_checked(
    streaming: StreamingHarness,
) -> None:
    await streaming.open_slot(SLOT, 3)
    await streaming.stream()
    feeder = streaming.coordinator.feeder
    assert feeder is not None
    # The coordinator's record of what member 1 holds is wrong (a lie or a bug): the proposal
    # names a prefix the member does not hold; it refuses that and signs the whole log.
    feeder.acked[(1, SLOT, ROLLUP)] = 2
    feeder.feeds[(SLOT, ROLLUP)].digests[2] = b"\x01" * 32
    signed = await streaming.close(SLOT)
    assert len(signed.block.bundles) == 3


async def test_a_member_behind_http_acknowledges_and_refuses_batches(dealt: Dealt, tmp_path):
    """``HttpMember.stream`` against the signer app's ``POST /v1/stream``: an acknowledgement
    with the feed's digest, a gap refusal with what the member holds."""
    import httpx

    from committee.coordinator import HttpMember
    from committee.feeder import Feed
    from committee.member import Member
    from committee.protection import ProtectionStore
    from committee.signer import create_signer_app
    from committee.stream import encode_stream_batch
    from tests.committee.slots import config_of, key, log_of, signed_bid

    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 100)
    member = Member(dealt.shares[0], config_of(dealt.committee, 1),
                    ProtectionStore(tmp_path / "m.sqlite3"), clock_ms=clock)  # fmt: skip
    transport = httpx.ASGITransport(app=create_signer_app(member))
    async with httpx.AsyncClient(transport=transport, base_url="http://member") as client:
        http = HttpMember(1, "http://member", client)
        feed = Feed()
        feed.extend(log_of([signed_bid(key(70)), signed_bid(key(71))]))
        cid = dealt.committee.committee_id
        ack = await http.stream(encode_stream_batch(cid, SLOT, ROLLUP, 0, feed.raw), 5.0)
        assert (ack.count, ack.digest) == (2, feed.digests[2])
        gap = await http.stream(encode_stream_batch(cid, SLOT, ROLLUP, 5, feed.raw), 5.0)
        assert (gap.refusal, gap.have, gap.digest) == ("stream_gap", 2, feed.digests[2])
        bad = await http.stream(b"not json", 5.0)
        assert bad.refusal == "malformed_proposal"


# --- several engine processes streaming to the same members ----------------------------------


async def driven_round(coordinator: Coordinator) -> None:
    """One streaming round of ``coordinator``, waited out."""
    await coordinator.stream_open_slot()
    assert coordinator.feeder is not None
    await asyncio.gather(*coordinator.feeder._pushes.values())


async def test_a_coordinator_restarted_mid_slot_takes_up_what_members_hold(
    streaming: StreamingHarness,
) -> None:
    """The engine process restarts mid-slot: the members still hold the slot's first events
    from the old process's feed. The new feed's first batch is refused as a gap; it takes up
    each member's count once the member's digest of it is the new feed's, so the proposal
    still carries only the tail (and the slot is signed)."""
    await streaming.open_slot(SLOT, 3)
    await streaming.stream()
    # The old process is gone (its streaming rounds are driven: it sends nothing more); the
    # members, their own processes, keep what they hold.
    engine, coordinator = _second_engine(streaming)
    await engine.start(run_clock=False)
    try:
        await driven_round(coordinator)  # starts at 0: each member answers that it holds 3
        feeder = coordinator.feeder
        assert feeder is not None
        assert {feeder.acked[(m.index, SLOT, ROLLUP)] for m in streaming.members} == {3}
        await streaming.open_slot(SLOT, 2, first=3)
        await driven_round(coordinator)
        assert {feeder.acked[(m.index, SLOT, ROLLUP)] for m in streaming.members} == {5}
        streaming.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
        await engine.close_slot(SLOT)
        signed = await streaming.outcome(SLOT)
        assert isinstance(signed, SignedBlock) and len(signed.block.bundles) == 5
        verify_signed_block(signed, streaming.dealt.committee)
        streamed_bytes = coordinator.timings[-1]["proposal_bytes"]
        # the same number of bids never streamed: the whole log travels with the proposal
        await streaming.open_slot(SLOT + 1, 5)
        streaming.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
        await engine.close_slot(SLOT + 1)
        assert isinstance(await streaming.outcome(SLOT + 1), SignedBlock)
        assert streamed_bytes < coordinator.timings[-1]["proposal_bytes"] // 2
    finally:
        await coordinator.aclose()


async def test_engines_sharing_a_store_both_stream_and_either_closes_from_the_streams(
    streaming: StreamingHarness,
) -> None:
    """Two engine processes on one store (``serve --workers 2``) each stream the open slot
    to the same members, rounds interleaved: the members take each entry once, each feed
    learns what they hold, and whichever process closes proposes only the tail."""
    engine, coordinator = _second_engine(streaming)
    await engine.start(run_clock=False)
    try:
        feeders = [streaming.coordinator.feeder, coordinator.feeder]
        for first in range(0, 6, 2):
            await streaming.open_slot(SLOT, 2, first=first)
            await streaming.stream()
            await driven_round(coordinator)
        for feeder in feeders:
            assert feeder is not None
            assert {feeder.acked[(m.index, SLOT, ROLLUP)] for m in streaming.members} == {6}
        assert all(m.member.streams.get(SLOT).held(ROLLUP) == 6 for m in streaming.members)
        streaming.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
        await engine.close_slot(SLOT)  # the second process wins the close lease
        await streaming.engine.close_slot(SLOT)  # the first follows
        signed = await streaming.outcome(SLOT)
        assert isinstance(signed, SignedBlock) and len(signed.block.bundles) == 6
        streamed_bytes = coordinator.timings[-1]["proposal_bytes"]
        # the same number of bids never streamed: the whole log travels with the proposal
        await streaming.open_slot(SLOT + 1, 6)
        streaming.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
        await engine.close_slot(SLOT + 1)
        assert isinstance(await streaming.outcome(SLOT + 1), SignedBlock)
        assert streamed_bytes < coordinator.timings[-1]["proposal_bytes"] // 2
    finally:
        await coordinator.aclose()


async def test_a_count_claimed_in_a_gap_is_believed_only_with_the_feeds_digest(
    streaming: StreamingHarness,
) -> None:
    """A member (or a man in the middle) answering a gap with a count it does not hold the
    feed's entries for is not believed: streaming to it stops for the slot, and the proposal
    names no prefix for it (it gets the whole log and checks it)."""
    from committee.feeder import StreamAnswer

    class ClaimsMore:
        def __init__(self, inner: LocalMember) -> None:
            self.inner, self.index = inner, inner.index

        async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
            await self.inner.stream(body, timeout_s)
            return StreamAnswer(self.index, refusal="stream_gap", have=2, digest=b"\x07" * 32)

    await streaming.open_slot(SLOT, 3)
    feeder = streaming.coordinator.feeder
    assert feeder is not None
    feeder.members[0] = ClaimsMore(streaming.members[0])
    await streaming.stream()
    assert (1, SLOT, ROLLUP) not in feeder.acked
    assert {feeder.acked[(m.index, SLOT, ROLLUP)] for m in streaming.members[1:]} == {3}
    signed = await streaming.close(SLOT)
    assert len(signed.block.bundles) == 3
