"""Sealed bids with streaming re-checks on (docs/encryption.md, "Streamed sealed calls"): the
engine and in-process members on the memory store and on Redis, the feeder streaming each open
slot's plaintext events and its sealed calls; encrypted and plaintext bids win in one signed
block, the members' key release re-derives only what did not stream in, and nothing streamed
is readable before the key exists."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.searcher import BundleEncryptor
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, LoggedEvent
from committee import reopening
from committee.coordinator import LocalMember
from committee.errors import MalformedProposal
from committee.feeder import StreamAnswer
from committee.keyrelease import ReleaseAnswer
from committee.proposal import (
    compute_opened_ids,
    compute_stream_tail,
    encode_proposal,
    is_opened_entry,
)
from committee.records import SignedBlock
from committee.sealedset import compute_seq_key
from committee.sealing import decode_release_request
from committee.verify import verify_signed_block
from node.stores.base import Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.committee.conftest import Dealt
from tests.committee.sealed_slots import bundle_body
from tests.committee.slots import CLOCK, ROLLUP, SLOT, key
from tests.committee.test_coordinator import COMMITTEE_DB, Clock
from tests.committee.test_sealed_close import send_sealed, with_log
from tests.committee.test_streaming_coordinator import StreamingHarness
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recording(LocalMember):
    """An in-process member whose stream batches (to scan them for plaintexts) and key-release
    requests are kept."""

    def __init__(self, local: LocalMember) -> None:
        super().__init__(local.member)
        self.bodies: list[bytes] = []
        self.releases: list[bytes] = []

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
        self.bodies.append(body)
        return await super().stream(body, timeout_s)

    async def release(self, body: bytes, timeout_s: float) -> ReleaseAnswer:
        self.releases.append(body)
        return await super().release(body, timeout_s)


class SealedStreamingHarness(StreamingHarness):
    """An engine on ``store`` whose coordinator streams to in-process members that record
    every stream body they get (the streaming loop driven by the test)."""

    def __init__(self, dealt: Dealt, tmp: Path, clock: Clock, store: Store) -> None:
        super().__init__(dealt, tmp, clock, store, wrap=Recording)


@pytest.fixture
async def memory_harness(dealt: Dealt, tmp_path: Path) -> AsyncIterator[SealedStreamingHarness]:
    h = SealedStreamingHarness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1),
                               MemoryStore())  # fmt: skip
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


@pytest.fixture
async def redis_harness(dealt: Dealt, tmp_path: Path, redis_server: RedisServer
                        ) -> AsyncIterator[SealedStreamingHarness]:  # fmt: skip
    store = RedisStore(f"redis://127.0.0.1:{redis_server.port}/{COMMITTEE_DB}")
    await store.connect()
    await store.redis.flushdb()
    h = SealedStreamingHarness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1),
                               store)  # fmt: skip
    await h.engine.start(run_clock=False)
    try:
        yield h
    finally:
        await h.coordinator.aclose()
        await store.aclose()


async def streamed_slot(h: SealedStreamingHarness) -> tuple[dict[str, str], list[bytes]]:
    """A slot whose plaintext and sealed bids interleave in its log, most streamed while it is
    open and some (one of each kind) arriving after the last push (the tail); closed, signed
    and checked. Returns the sealed bids' ids and the plaintext markers (raw txs) of the sealed
    bundles."""
    h.clock.ms = compute_slot_start_ms(CLOCK, SLOT) + 1
    alice, bob, carol = key(41), key(42), key(43)
    encs = {k.address: BundleEncryptor(h.dealt.committee, SLOT, searcher=k.address)
            for k in (alice, bob, carol)}  # fmt: skip
    bodies = {
        "alice_high": (alice, bundle_body(alice, bid_wei=9 * 10**15)),
        "bob": (bob, bundle_body(bob, bid_wei=5 * 10**15)),
        "alice_low": (alice, bundle_body(alice, bid_wei=3 * 10**15)),
        "carol": (carol, bundle_body(carol, bid_wei=4 * 10**15)),
    }
    ids: dict[str, str] = {}

    async def sealed(name: str) -> None:
        k, body = bodies[name]
        ids[name] = await send_sealed(h, k, encs[k.address], body)

    await h.bid(SLOT, 31, 2 * 10**15)
    await sealed("alice_high")
    await h.bid(SLOT, 32, 10**15)
    await sealed("bob")
    await sealed("alice_low")
    await h.stream()
    await h.bid(SLOT, 33, 6 * 10**15)
    await h.stream()
    # The tail: logged after the last push, so it reaches the members only at the deadline
    await sealed("carol")
    await h.bid(SLOT, 34, 7 * 10**15)
    markers = [body for _, body in bodies.values()]
    return ids, markers


async def close_and_check(h: SealedStreamingHarness, ids: dict[str, str]) -> SignedBlock:
    h.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
    await h.engine.close_slot(SLOT)
    signed = await h.outcome(SLOT)
    assert isinstance(signed, SignedBlock), signed
    verify_signed_block(signed, h.dealt.committee)
    winners = {w.bid_id for w in signed.block.bundles}
    assert set(ids.values()) <= winners and len(winners) == 8
    assert signed.slot_proof.ciphertext_root == h.coordinator.openings[SLOT].ciphertext_root
    return signed


async def check_sealed_streaming(h: SealedStreamingHarness, monkeypatch: Any) -> None:
    derived: list[str] = []
    real = reopening.check_sealed_entry

    def spy(config: Any, slot: int, entry: Any) -> None:
        derived.append(entry.event.bid_id)
        real(config, slot, entry)

    ids, markers = await streamed_slot(h)
    # Every member checked the three streamed sealed calls as they arrived (ciphertexts only)
    for m in h.members:
        assert m.member.streams.sealed_held(SLOT, ROLLUP) == 3
        streamed = b"".join(m.bodies)
        assert b"bs_sendEncryptedBundle" in streamed
        for marker in markers:  # the plaintext bundle (its signed txs) is never streamed
            assert marker not in streamed
    monkeypatch.setattr(reopening, "check_sealed_entry", spy)
    await close_and_check(h, ids)
    # At release each member re-derived only the sealed call that did not stream in (the tail),
    # and was sent only that call: its request named the three it holds (decision 159)
    assert derived and set(derived) == {ids["carol"]}
    assert len(derived) <= h.dealt.committee.n
    for m in h.members:
        for body in m.releases:
            request = decode_release_request(body)
            assert request.streamed is not None and request.streamed[0][:2] == (ROLLUP, 3)
            assert [e.event.bid_id for e in request.entries] == [ids["carol"]]
    # The next slot builds on it, streamed, without sealed bids
    h.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 1) + 1
    await h.bid(SLOT + 1, 35, 10**15)
    await h.stream()
    h.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
    await h.engine.close_slot(SLOT + 1)
    child = await h.outcome(SLOT + 1)
    assert isinstance(child, SignedBlock) and child.slot_proof.ciphertext_root is None


async def test_sealed_and_plaintext_bids_win_with_streaming_on(
    memory_harness: SealedStreamingHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await check_sealed_streaming(memory_harness, monkeypatch)


@pytest.mark.redis
async def test_sealed_and_plaintext_bids_win_with_streaming_on_redis(
    redis_harness: SealedStreamingHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await check_sealed_streaming(redis_harness, monkeypatch)


async def test_members_that_lost_their_stream_get_every_sealed_bid(
    memory_harness: SealedStreamingHarness,
) -> None:
    """Members that restarted after the stream (they hold none of the slot) refuse the streamed
    release request (``stream_gap``) and are sent the whole set. Four of ten lost it, so the
    seven releases the key needs include at least one sent whole; the slot is signed."""
    h = memory_harness
    ids, _ = await streamed_slot(h)
    lost = h.members[:4]
    for m in lost:
        m.member.streams.drop_through(SLOT)
    await close_and_check(h, ids)
    resent = [m for m in lost if len(m.releases) == 2]
    assert resent
    for m in resent:
        first, second = (decode_release_request(b) for b in m.releases)
        assert first.streamed is not None and len(first.entries) == 1
        assert second.streamed is None and len(second.entries) == 4


async def test_opened_bids_are_in_the_tail_of_every_members_proposal(
    memory_harness: SealedStreamingHarness,
) -> None:
    """The version-7 proposal's tail carries every opened bid (their seqs are sealed entries'
    seqs, among the streamed plaintext events), and members join it to what they hold."""
    h = memory_harness
    ids, _ = await streamed_slot(h)
    bodies: list[bytes] = []
    for m in h.members:
        real = m.sign

        async def keep(body: bytes, timeout_s: float, real: Any = real) -> Any:
            bodies.append(body)
            return await real(body, timeout_s)

        m.sign = keep  # type: ignore[method-assign]
    signed = await close_and_check(h, ids)
    assert bodies and all(b'"streamed"' in b for b in bodies)
    logged = await h.store.read_log(ROLLUP, SLOT)
    plain = [e.seq for e in logged if isinstance(e.event, Bid)]
    assert len(plain) == 4
    sealed = [e.seq for e in await h.store.read_sealed_log(ROLLUP, SLOT)]
    # opened bids sit among the streamed plaintext bids
    assert min(map(compute_seq_key, sealed)) < compute_seq_key(plain[2])
    for body in bodies:
        # every opened bid and the plaintext bid logged after the last push travel in the
        # log's tail; the three streamed plaintext bids do not
        for seq in (*sealed, plain[3]):
            assert f'"seq":"{seq}"'.encode() in body
        for seq in plain[:3]:
            assert f'"seq":"{seq}"'.encode() not in body
    assert len(signed.signers) == h.dealt.committee.t


async def test_a_tail_that_moves_entries_among_the_streamed_ones_is_refused(
    memory_harness: SealedStreamingHarness,
) -> None:
    """Only opened bids may sit among a version-7 proposal's streamed prefix, each at a seq of
    its own; a plaintext entry moved there, or an opened bid on a streamed entry's seq, is
    refused before any other check."""
    h = memory_harness
    captured: dict[str, Any] = {}

    async def keep(results: Any, entries: Any, lease: Any = None) -> None:
        captured["results"], captured["entries"] = list(results), entries

    ids, _ = await streamed_slot(h)
    h.coordinator.sign = keep  # type: ignore[method-assign]
    h.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
    await h.engine.close_slot(SLOT)
    proposal = await h.coordinator.build_proposal(captured["results"], captured["entries"])
    feeder = h.coordinator.feeder
    assert feeder is not None
    digest = feeder.feeds[(SLOT, ROLLUP)].digests[3]
    streamed = {ROLLUP: (3, digest)}
    member = h.members[0].member
    assert member.sign_proposal(encode_proposal(proposal, streamed)).partial  # the honest one
    opened = compute_opened_ids(proposal)
    tail = compute_stream_tail(proposal.parts[0].log, opened, 3)
    assert [is_opened_entry(e, opened) for e in tail] == [True, True, True, True, False]

    def body_with(lying: tuple[LoggedEvent, ...]) -> bytes:
        """The version-7 body naming the member's 3 streamed entries, with ``lying`` as tail."""
        doc = orjson.loads(encode_proposal(with_log(proposal, lying), {ROLLUP: (0, digest)}))
        doc["parts"][0]["streamed"] = {"count": 3, "digest": "0x" + digest.hex()}
        return orjson.dumps(doc)

    member = h.members[1].member
    first_streamed = (await h.store.read_log(ROLLUP, SLOT))[0]
    # the plaintext tail entry moved among the streamed ones (before the first)
    moved = dataclasses.replace(tail[4], seq=f"{compute_seq_key(first_streamed.seq)[0] - 1}-9")
    with pytest.raises(MalformedProposal):
        member.sign_proposal(body_with((moved, *tail[:4])))
    # an opened bid on a streamed entry's seq
    clash = dataclasses.replace(tail[0], seq=first_streamed.seq)
    with pytest.raises(MalformedProposal):
        member.sign_proposal(body_with((clash, *tail[1:])))
    # the tail out of log order
    with pytest.raises(MalformedProposal):
        member.sign_proposal(body_with((tail[1], tail[0], *tail[2:])))
    # the honest tail, by the same construction, is signed
    assert member.sign_proposal(body_with(tail)).partial


async def test_members_that_lost_their_stream_check_every_sealed_call_at_release(
    memory_harness: SealedStreamingHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = memory_harness
    derived: list[str] = []
    real = reopening.check_sealed_entry

    def spy(config: Any, slot: int, entry: Any) -> None:
        derived.append(entry.event.bid_id)
        real(config, slot, entry)

    ids, _ = await streamed_slot(h)
    for m in h.members:  # every member restarted: none holds what streamed in
        m.member.streams.drop_through(SLOT)
    monkeypatch.setattr(reopening, "check_sealed_entry", spy)
    await close_and_check(h, ids)
    # each member that released re-derived all four sealed calls
    t, n = h.dealt.committee.t, h.dealt.committee.n
    assert set(derived) == set(ids.values())
    assert t * 4 <= len(derived) <= n * 4
