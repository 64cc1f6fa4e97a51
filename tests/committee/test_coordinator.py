"""The coordinator in the engine with in-process members (the real Member, a fake clock).

Process-level faults (killed and restarted signers) are in test_processes.py; here the same
coordinator runs against members in this process, which makes the slot clock injectable and the
tests fast and exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from api.searcher import bundle_params
from auction.encoding import ZERO_HASH
from auction.errors import StoreUnavailable
from auction.hashing import keccak256, to_hex
from auction.presets import MAINNET
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Evidence, PublicTx, SlotResult
from committee import bls, threshold
from committee.coordinator import (
    FOLLOW_GRACE_MS,
    Collection,
    Coordinator,
    LocalMember,
    MemberAnswer,
)
from committee.feeder import StreamAnswer
from committee.local import build_local_members
from committee.records import (
    EVIDENCE_EQUIVOCATION,
    EVIDENCE_INVALID_PARTIAL,
    FAILED_BLOCKED,
    FailedSlot,
    SignedBlock,
    signed_block_from_json,
)
from committee.verify import verify_signed_block
from node.metrics import Metrics
from node.notify import Subscriber
from node.settings import Settings
from node.stores.base import Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    SLOT_MS,
    WINDOW_MS,
    SignsNothing,
    key,
    raw_tx,
    result_of,
    slot_of,
)
from tests.committee.slots import ManualClock as Clock
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


SETTINGS = Settings(slot_ms=SLOT_MS, rollups=[ROLLUP], signing_window_ms=WINDOW_MS)
# The coordinator's own streaming loop reads the open slot once when the engine starts, then
# waits this long: the tests drive every later round (``Harness.stream``), so what is the tail
# does not depend on how fast the machine runs them (the clock is fake, the loop's wait is not).
DRIVEN_STREAM_INTERVAL_MS = 3_600_000
# The logical database these tests own on the session's Redis server (stores use 13).
COMMITTEE_DB = 12


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> Clock:
    return Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)


class Unreachable:
    """A member whose process is down."""

    def __init__(self, index: int) -> None:
        self.index = index

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        return MemberAnswer(self.index, error="unreachable: ConnectError")

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
        return StreamAnswer(self.index, error="unreachable: ConnectError")

    async def aclose(self) -> None:
        pass


def drive_streaming(coordinator: Coordinator) -> None:
    """Leave the streaming rounds after the first to the test (``DRIVEN_STREAM_INTERVAL_MS``)."""
    if coordinator.feeder is not None:
        coordinator.feeder.interval_ms = DRIVEN_STREAM_INTERVAL_MS


class Harness:
    """An engine on a memory store, its coordinator and n in-process members; with
    ``streaming`` (the default, as in ``serve``) each slot's bids are streamed to the members
    before it closes, without it the members get the whole log at the deadline."""

    def __init__(
        self,
        dealt: Dealt,
        tmp: Path,
        clock: Clock,
        faults: dict[int, str],
        store: Store | None = None,
        settings: Settings = SETTINGS,
        streaming: bool = True,
    ) -> None:
        self.dealt = dealt
        self.clock = clock
        self.store = store or MemoryStore()
        self.engine = Engine(
            store=self.store,
            rollups=settings.rollup_configs(),
            preset=MAINNET,
            slot_ms=SLOT_MS,
            clock_ms=clock,
            metrics=Metrics(),
        )
        self.members = build_local_members(
            settings, dealt.committee, dealt.shares, tmp, clock_ms=clock, faults=faults
        )
        self.coordinator = Coordinator(
            self.engine, dealt.committee, self.members, signing_window_ms=WINDOW_MS,
            streaming=streaming,
        )
        drive_streaming(self.coordinator)
        self.coordinator.attach()
        self.nonce = 0

    def member(self, index: int) -> LocalMember:
        return self.members[index - 1]

    def _reach(self, index: int, client: LocalMember | Unreachable) -> None:
        self.coordinator.members[index - 1] = client
        feeder = self.coordinator.feeder
        if feeder is not None:
            feeder.members[index - 1] = client

    def down(self, *indices: int) -> None:
        """Make members unreachable (their process is down): the coordinator gets no answer,
        to its proposals nor to its streams."""
        for i in indices:
            self._reach(i, Unreachable(i))

    def up(self, *indices: int) -> None:
        for i in indices:
            self._reach(i, self.members[i - 1])

    async def stream(self) -> None:
        """One streaming round of the open slot, waited out (streaming on)."""
        await self.coordinator.stream_open_slot()
        feeder = self.coordinator.feeder
        assert feeder is not None
        await asyncio.gather(*feeder._pushes.values())

    async def bid(self, slot: int, i: int, bid_wei: int = 10**15) -> None:
        k = key(i)
        self.nonce += 1
        raw = raw_tx(k, nonce=self.nonce)
        params = bundle_params([raw], slot, bid_wei=bid_wei)
        body = k.request("eth_sendBundle", [params])
        await self.engine.intake.submit_bundle(
            params,
            searcher=k.address,
            evidence=Evidence(body, k.sign_body(body)),
            endpoint_rollup=None,
            transport="http",
        )

    async def run_slot(self, slot: int, bids: int = 3) -> SignedBlock | FailedSlot | None:
        self.clock.ms = compute_slot_start_ms(CLOCK, slot) + 1
        for i in range(bids):
            await self.bid(slot, 100 * slot % 997 + i, 10**15 * (i + 1))
        if self.coordinator.feeder is not None:
            await self.stream()
        self.clock.ms = compute_deadline_ms(CLOCK, slot) + 5
        await self.engine.close_slot(slot)
        return await self.outcome(slot)

    async def outcome(self, slot: int) -> SignedBlock | FailedSlot | None:
        """The slot's published outcome; None while it is pending (pinned, to be completed)."""
        signed = await self.store.get_signed_block(ROLLUP, slot)
        if signed is not None:
            return signed
        failed = await self.store.get_failed_slot(ROLLUP, slot)
        if failed is None:
            pin = self.coordinator._pinned
            assert pin is not None and pin.slot == slot, f"slot {slot} has no outcome"
        return failed

    async def settle(self) -> None:
        """Let the background recording of partials and evidence finish."""
        for task in list(self.coordinator._background):
            await task


@pytest.fixture(params=[True, False], ids=["streaming", "whole_log"])
def streaming_on(request: pytest.FixtureRequest) -> bool:
    """Both paths: members following the open slot's log (the default) and members checking
    the whole log at the deadline (``committee_streaming`` off)."""
    return bool(request.param)


@pytest.fixture
async def harness(
    dealt: Dealt, tmp_path: Path, clock: Clock, streaming_on: bool,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    faults = getattr(request, "param", {})
    h = Harness(dealt, tmp_path, clock, faults, streaming=streaming_on)
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


async def test_slots_are_signed_and_chained(harness: Harness) -> None:
    first = await harness.run_slot(SLOT)
    second = await harness.run_slot(SLOT + 1)
    assert isinstance(first, SignedBlock) and isinstance(second, SignedBlock)
    verify_signed_block(first, harness.dealt.committee)
    verify_signed_block(second, harness.dealt.committee)
    assert first.block.parent_hash == ZERO_HASH
    assert second.block.parent_hash == first.block.block_hash
    assert len(first.signers) == harness.dealt.committee.t
    assert len(first.block.bundles) == 3
    summary = (await harness.store.get_slot_summaries(ROLLUP, [SLOT]))[0]
    assert summary is not None and summary["committee"]["status"] == "signed"
    await harness.settle()
    # Every valid partial is kept (who signed is part of the record), not only the t used.
    kept = await harness.store.list_partials(ROLLUP, SLOT)
    assert {p.member for p in kept} >= set(first.signers)


@pytest.mark.parametrize(
    "harness", [{2: "wrong_share", 5: "garbage", 9: "other_block"}], indirect=True
)
async def test_lying_members_are_excluded_and_recorded(harness: Harness) -> None:
    signed = await harness.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    assert not {2, 5, 9} & set(signed.signers)
    verify_signed_block(signed, harness.dealt.committee)
    await harness.settle()
    evidence = [e for _, e in await harness.store.list_evidence(ROLLUP, before=None, limit=50)]
    assert {(e.kind, e.member, e.slot) for e in evidence} == {
        (EVIDENCE_INVALID_PARTIAL, m, SLOT) for m in (2, 5, 9)
    }
    assert all(len(e.partial) == 96 and e.block_hash == signed.block.block_hash for e in evidence)
    assert not any(
        threshold.verify_partial(
            harness.dealt.committee.member_public_key(e.member), e.signing_root, e.partial
        )
        for e in evidence
    )


class InOrder:
    """A member whose answer is handed to the coordinator only after the answers of the members
    before it in ``turns``' order (each waits for its turn, then gives the next its turn)."""

    def __init__(self, inner: LocalMember, turns: list[asyncio.Event], position: int) -> None:
        self.inner = inner
        self.index = inner.index
        self.turns = turns
        self.position = position

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        answer = await self.inner.sign(body, timeout_s)
        await self.turns[self.position].wait()
        if self.position + 1 < len(self.turns):
            self.turns[self.position + 1].set()
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("harness", [{2: "wrong_share", 6: "garbage"}], indirect=True)
async def test_a_bad_partial_among_the_first_t_is_dropped_and_recorded(harness: Harness) -> None:
    """The two liars answer among the first t (second and fourth): the combination of the first
    t fails, every partial is verified alone, and the slot is signed by the next good ones."""
    order = [1, 2, 3, 6, 4, 5, 7, 8, 9, 10]
    turns = [asyncio.Event() for _ in order]
    turns[0].set()
    for position, i in enumerate(order):
        harness.coordinator.members[i - 1] = InOrder(harness.member(i), turns, position)
    signed = await harness.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    assert not {2, 6} & set(signed.signers) and len(signed.signers) == harness.dealt.committee.t
    verify_signed_block(signed, harness.dealt.committee)
    await harness.settle()
    evidence = [e for _, e in await harness.store.list_evidence(ROLLUP, before=None, limit=50)]
    assert {(e.kind, e.member, e.slot) for e in evidence} == {
        (EVIDENCE_INVALID_PARTIAL, m, SLOT) for m in (2, 6)
    }
    kept = {p.member for p in await harness.store.list_partials(ROLLUP, SLOT)}
    assert kept >= set(signed.signers) and not kept & {2, 6}


class CountingVerify:
    """``threshold.verify_partial`` that counts its calls (and still verifies)."""

    def __init__(self) -> None:
        self.calls = 0
        self.verify = threshold.verify_partial

    def __call__(self, public_key: bytes, message: bytes, partial: bytes) -> bool:
        self.calls += 1
        return self.verify(public_key, message, partial)


def test_t_good_partials_are_combined_without_verifying_each_first(
    dealt: Dealt, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(dealt, tmp_path, clock, {})
    root = keccak256(b"a slot signing root")
    counting = CountingVerify()
    monkeypatch.setattr(threshold, "verify_partial", counting)
    c = Collection()
    for share in dealt.shares[:6]:
        c.unverified[share.index] = threshold.partial_sign(share, root)
    h.coordinator._check_partials(root, c)  # six in hand: nothing yet
    assert c.signature is None and len(c.unverified) == 6 and counting.calls == 0
    c.unverified[8] = threshold.partial_sign(dealt.shares[7], root)
    h.coordinator._check_partials(root, c)
    assert c.signature is not None and counting.calls == 0
    assert bls.verify(dealt.committee.group_public_key, root, c.signature)
    assert [i for i, _ in c.signers] == [1, 2, 3, 4, 5, 6, 8] == list(c.valid)
    assert c.combined == set(c.valid) and not c.unverified
    # Off the critical path each is verified alone: all valid, nothing recorded.
    h.coordinator._verify_each(root, c, combined=True)
    assert counting.calls == 7 and list(c.valid) == [1, 2, 3, 4, 5, 6, 8] and not c.invalid
    assert not c.combined


def test_partials_that_cancel_in_the_combination_are_still_recorded_invalid(
    dealt: Dealt, tmp_path: Path, clock: Clock
) -> None:
    """Two colluding members shift their partials by multiples of one point that cancel in the
    Lagrange combination: the group signature verifies (and stands), but verified alone both
    partials are invalid, so both are recorded as evidence and neither is kept as valid."""
    h = Harness(dealt, tmp_path, clock, {})
    root = keccak256(b"another slot signing root")
    shares = dealt.shares[:7]
    partials = {s.index: threshold.partial_sign(s, root) for s in shares}
    lam = dict(zip(partials, threshold.lagrange_coefficients_at_zero(list(partials)),
                   strict=True))  # fmt: skip
    shift = bls.hash_to_g2(b"any point")
    a, b = 3, 5  # a adds lam_b * X, b subtracts lam_a * X: lam_a*lam_b*X - lam_b*lam_a*X = 0
    for i, k in ((a, lam[b]), (b, bls.CURVE_ORDER - lam[a])):
        point = bls.decode_g2(partials[i])
        partials[i] = bls.encode_g2(
            bls.multiexp_g2([point, shift], [bls.field_element(1), bls.field_element(k)]))
    c = Collection(unverified=dict(partials))
    h.coordinator._check_partials(root, c)
    assert c.signature is not None
    assert bls.verify(dealt.committee.group_public_key, root, c.signature)
    h.coordinator._verify_each(root, c, combined=True)
    assert set(c.invalid) == {a, b} and set(c.valid) == set(partials) - {a, b}


def members_use_policy(harness: Harness, payment_rule: str) -> None:
    """Give every member its own payment rule: if it differs from the engine's, each member
    re-runs the slot to another block and refuses it for good (block_mismatch)."""
    for m in harness.members:
        config = m.member.config
        rollup = config.rollups[ROLLUP]
        policy = rollup.policy.with_(payment_rule=payment_rule)
        m.member.config = dataclasses.replace(
            config, rollups={ROLLUP: dataclasses.replace(rollup, policy=policy)}
        )


async def test_a_slot_every_member_refuses_fails_then_signing_resumes(harness: Harness) -> None:
    members_use_policy(harness, "vcg")  # the engine's rule is first price: every block differs
    failed = await harness.run_slot(SLOT)
    assert isinstance(failed, FailedSlot)
    assert {code for _, code in failed.refused} == {"block_mismatch"} and failed.valid == ()
    assert await harness.store.get_signed_block(ROLLUP, SLOT) is None
    # Nobody signed the failed block, so nobody is locked to it: the next slot is signed on
    # the genesis parent again.
    members_use_policy(harness, "first_price")
    signed = await harness.run_slot(SLOT + 1)
    assert isinstance(signed, SignedBlock)
    assert signed.block.parent_hash == ZERO_HASH
    verify_signed_block(signed, harness.dealt.committee)


async def test_a_block_fewer_than_t_signed_is_pending_until_completed_never_replaced(
    harness: Harness,
) -> None:
    # 6 members sign, 4 are down: 6 < t = 7. The 6 are locked to this block now, so it is
    # pending, not failed: no sibling on its parent is ever proposed.
    harness.down(1, 2, 3, 4)
    assert await harness.run_slot(SLOT) is None
    pending = harness.coordinator._pinned.results[0].block
    # While they stay down, completing it fails and the next slot is blocked.
    blocked = await harness.run_slot(SLOT + 1)
    assert isinstance(blocked, FailedSlot) and blocked.reason == FAILED_BLOCKED
    assert blocked.valid == () and blocked.refused == ()  # never proposed
    # Once they are back, the pending block is completed (late) before the next slot's block,
    # which is built on it.
    harness.up(1, 2, 3, 4)
    signed = await harness.run_slot(SLOT + 2)
    assert isinstance(signed, SignedBlock)
    completed = await harness.store.get_signed_block(ROLLUP, SLOT)
    assert completed is not None and completed.block == pending
    verify_signed_block(completed, harness.dealt.committee)
    assert signed.block.parent_hash == pending.block_hash
    verify_signed_block(signed, harness.dealt.committee)


async def test_public_txs_of_a_failed_slot_wait_for_the_next_block(harness: Harness) -> None:
    members_use_policy(harness, "vcg")
    harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT) + 1
    waiting = raw_tx(key(77), nonce=0, gas=21_000)
    sent = await harness.engine.intake.submit_public_tx(
        ["0x" + waiting.hex()], endpoint_rollup=None, protected=True
    )
    failed = await harness.run_slot(SLOT)
    assert isinstance(failed, FailedSlot)
    # The failed block held it; that block never happened, so the tx is logged again now.
    requeued = await harness.store.read_log(ROLLUP, SLOT + 1)
    assert [e.event.tx.hash for e in requeued if isinstance(e.event, PublicTx)] == [sent]
    assert all(e.event.protected for e in requeued if isinstance(e.event, PublicTx))
    members_use_policy(harness, "first_price")
    signed = await harness.run_slot(SLOT + 1)
    assert isinstance(signed, SignedBlock)
    lane = signed.block.txs[len(signed.block.txs) - signed.block.public_tx_count :]
    assert [to_hex(keccak256(raw)) for raw in lane] == [sent]


@pytest.mark.parametrize("harness", [{6: "equivocate"}], indirect=True)
async def test_second_block_for_a_signed_slot_is_refused_and_equivocation_recorded(
    harness: Harness,
) -> None:
    signed = await harness.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    await harness.settle()
    # Another valid block for the signed slot (its log without the last bid), as a buggy
    # coordinator or a second engine might propose it.
    result = await harness.store.get_result(ROLLUP, SLOT)
    assert result is not None
    (part,) = (await harness.coordinator.build_proposal([result])).parts
    proposal = dataclasses.replace(part, parent=None)
    alt_log = proposal.log[:-1]
    alt = dataclasses.replace(proposal, log=alt_log, block=result_of(alt_log, SLOT).block)
    assert alt.block.block_hash != signed.block.block_hash
    collection = await harness.coordinator.solicit(slot_of(alt))
    # Every honest member refuses; the equivocating one signs, and that is recorded.
    assert collection.refused == {i: "double_sign" for i in range(1, 11) if i != 6}
    assert set(collection.valid) == {6}
    page = await harness.store.list_evidence(ROLLUP, before=None, limit=10)
    (evidence,) = [e for _, e in page]
    assert evidence.kind == EVIDENCE_EQUIVOCATION and evidence.member == 6
    assert evidence.first is not None and evidence.second is not None
    assert evidence.first.block_hash == signed.block.block_hash
    assert evidence.second.block_hash == alt.block.block_hash
    key6 = harness.dealt.committee.member_public_key(6)
    for record in (evidence.first, evidence.second):
        assert threshold.verify_partial(key6, record.signing_root, record.partial)
    # The slot stays signed with the first block.
    assert await harness.store.get_signed_block(ROLLUP, SLOT) == signed


async def test_recover_settles_a_slot_closed_before_a_restart(harness: Harness) -> None:
    # The engine stored slot SLOT's result and died before proposing it.
    harness.engine.signer = SignsNothing(harness.coordinator)
    harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT) + 1
    await harness.bid(SLOT, 1)
    harness.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
    await harness.engine.close_slot(SLOT)
    await harness.coordinator.recover()  # still within the signing window: it signs
    assert isinstance(await harness.outcome(SLOT), SignedBlock)
    # Past the window the slot may have been signed by some members before the restart: it
    # is pending, and completed (late) before the next block, which is built on it.
    harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 1) + 1
    await harness.bid(SLOT + 1, 2)
    harness.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
    await harness.engine.close_slot(SLOT + 1)
    harness.clock.ms += 10 * SLOT_MS
    await harness.coordinator.recover()
    assert await harness.outcome(SLOT + 1) is None
    harness.engine.signer = harness.coordinator  # back up
    nxt = await harness.run_slot(SLOT + 12)
    late = await harness.outcome(SLOT + 1)
    assert isinstance(late, SignedBlock) and isinstance(nxt, SignedBlock)
    assert nxt.block.parent_hash == late.block.block_hash


@pytest.mark.parametrize("harness", [{}], indirect=True)
async def test_restarted_engine_builds_on_the_last_signed_block(
    harness: Harness, tmp_path: Path
) -> None:
    signed = await harness.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    members_use_policy(harness, "vcg")
    assert isinstance(await harness.run_slot(SLOT + 1), FailedSlot)
    await harness.settle()
    await harness.coordinator.aclose()
    # A new engine process on the same store: its newest result is the failed slot's, but its
    # parent must be the last signed block.
    restarted = Harness(harness.dealt, tmp_path, harness.clock, {}, harness.store,
                        streaming=harness.coordinator.feeder is not None)
    await restarted.engine.start(run_clock=False)
    try:
        nxt = await restarted.run_slot(SLOT + 2)
    finally:
        await restarted.coordinator.aclose()
    assert isinstance(nxt, SignedBlock)
    assert nxt.block.parent_hash == signed.block.block_hash


async def test_a_restarted_engine_completes_a_pending_block_it_finds_in_the_store(
    harness: Harness, tmp_path: Path
) -> None:
    signed = await harness.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    harness.down(1, 2, 3, 4)
    assert await harness.run_slot(SLOT + 1) is None  # pending: 6 of 7
    await harness.settle()
    await harness.coordinator.aclose()
    # A new engine process on the same store and the same members (their locks on disk)
    restarted = Harness(harness.dealt, tmp_path, harness.clock, {}, harness.store,
                        streaming=harness.coordinator.feeder is not None)
    await restarted.engine.start(run_clock=False)
    try:
        nxt = await restarted.run_slot(SLOT + 2)
    finally:
        await restarted.coordinator.aclose()
    completed = await harness.store.get_signed_block(ROLLUP, SLOT + 1)
    assert isinstance(nxt, SignedBlock) and completed is not None
    assert completed.block.parent_hash == signed.block.block_hash
    assert nxt.block.parent_hash == completed.block.block_hash


@pytest.mark.redis
async def test_committee_on_the_redis_store(
    dealt: Dealt, tmp_path: Path, clock: Clock, redis_server: RedisServer, streaming_on: bool
) -> None:
    """The same flow on Redis: signed, failed and evidence records, chain, history."""
    store = RedisStore(f"redis://127.0.0.1:{redis_server.port}/{COMMITTEE_DB}")
    await store.connect()
    await store.redis.flushdb()
    h = Harness(dealt, tmp_path, clock, {1: "garbage", 2: "garbage", 3: "garbage"}, store,
                streaming=streaming_on)
    await h.engine.start(run_clock=False)
    try:
        members_use_policy(h, "vcg")
        failed = await h.run_slot(SLOT)
        members_use_policy(h, "first_price")
        signed = await h.run_slot(SLOT + 1)
        h.down(1, 2, 3, 4)
        assert await h.run_slot(SLOT + 2) is None  # pending: 6 of 7 valid
        h.up(1, 2, 3, 4)
        for i in (1, 2, 3):
            h.member(i).member.fault = None
        after = await h.run_slot(SLOT + 3)
        await h.settle()
        assert isinstance(failed, FailedSlot) and isinstance(signed, SignedBlock)
        assert signed.block.parent_hash == ZERO_HASH
        completed = await store.get_signed_block(ROLLUP, SLOT + 2)
        assert isinstance(after, SignedBlock) and completed is not None
        assert after.block.parent_hash == completed.block.block_hash
        assert completed.block.parent_hash == signed.block.block_hash
        assert await store.latest_signed_block(ROLLUP) == after
        for b in (signed, completed, after):
            verify_signed_block(b, dealt.committee)
        page = await store.list_evidence(ROLLUP, before=None, limit=10)
        assert {e.member for _, e in page} == {1, 2, 3}
        summary = (await store.get_slot_summaries(ROLLUP, [SLOT]))[0]
        assert summary is not None and summary["committee"]["status"] == "failed"
    finally:
        await h.coordinator.aclose()
        await store.aclose()


async def test_published_blocks_reach_block_subscribers(harness: Harness) -> None:
    sub = Subscriber()
    harness.engine.notifier.watch_blocks(sub)
    signed = await harness.run_slot(SLOT)
    msg = sub.queue.get_nowait()
    result = msg["params"]["result"]
    assert msg["params"]["subscription"] == "blocks"
    assert result["status"] == "signed" and result["block_hash"] == signed.block.block_hash


# --- several engine processes on one store ---------------------------------------------------


def _second_engine(h: Harness) -> tuple[Engine, Coordinator]:
    """Another engine process on h's store, asking the same members (as ``serve --workers``)."""
    engine = Engine(
        store=h.store, rollups=SETTINGS.rollup_configs(), preset=MAINNET,
        slot_ms=SLOT_MS, clock_ms=h.clock, metrics=Metrics(),
    )  # fmt: skip
    coordinator = Coordinator(engine, h.dealt.committee, h.members, signing_window_ms=WINDOW_MS,
                              streaming=h.coordinator.feeder is not None)  # fmt: skip
    drive_streaming(coordinator)
    coordinator.attach()
    return engine, coordinator


def _blocks(sub: Subscriber) -> list[tuple[str, int, str]]:
    out = []
    while not sub.queue.empty():
        r = sub.queue.get_nowait()["params"]["result"]
        out.append((r["status"], r["slot"], r["block_hash"]))
    return out


async def test_engines_sharing_a_store_sign_one_chain(harness: Harness) -> None:
    other, coordinator = _second_engine(harness)
    await other.start(run_clock=False)
    subs = Subscriber(), Subscriber()
    harness.engine.notifier.watch_blocks(subs[0])
    other.notifier.watch_blocks(subs[1])
    try:
        # Slot 1 closes on the first engine; the second follows and adopts the signed head.
        first = await harness.run_slot(SLOT)
        await other.close_slot(SLOT)
        # Slot 2 closes on the second engine (it wins the close lease): it builds on slot 1.
        harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 1) + 1
        await harness.bid(SLOT + 1, 5)
        harness.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
        await other.close_slot(SLOT + 1)
        await harness.engine.close_slot(SLOT + 1)
        second = await harness.outcome(SLOT + 1)
        # Slot 3 on the first engine again: its head followed the second engine's block.
        third = await harness.run_slot(SLOT + 2)
        await other.close_slot(SLOT + 2)
    finally:
        await coordinator.aclose()
    assert isinstance(first, SignedBlock) and isinstance(second, SignedBlock)
    assert isinstance(third, SignedBlock)
    assert second.block.parent_hash == first.block.block_hash
    assert third.block.parent_hash == second.block.block_hash
    for b in (first, second, third):
        verify_signed_block(b, harness.dealt.committee)
    # Every process tells its own subscribers of every block, once.
    chain = [("signed", b.block.slot, b.block.block_hash) for b in (first, second, third)]
    assert _blocks(subs[0]) == chain
    assert _blocks(subs[1]) == chain


async def test_a_follower_completes_a_slot_its_closer_never_published(harness: Harness) -> None:
    other, coordinator = _second_engine(harness)
    await other.start(run_clock=False)
    sub = Subscriber()
    other.notifier.watch_blocks(sub)
    # The first engine closes the slot and dies before proposing it.
    harness.engine.signer = SignsNothing(harness.coordinator)
    try:
        harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT) + 1
        await harness.bid(SLOT, 1)
        harness.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
        await harness.engine.close_slot(SLOT)
        # The follower waits for an outcome until the signing deadline (plus a grace); some
        # members may have signed the block, so it is pending, not failed...
        harness.clock.ms = compute_deadline_ms(CLOCK, SLOT) + WINDOW_MS + FOLLOW_GRACE_MS + 1
        await other.close_slot(SLOT)
        assert await harness.store.get_failed_slot(ROLLUP, SLOT) is None
        # ... and whichever engine builds the next slot completes it first, then builds on it.
        harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 1) + 1
        await harness.bid(SLOT + 1, 2)
        harness.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
        await other.close_slot(SLOT + 1)
        completed = await harness.outcome(SLOT)
        signed = await harness.outcome(SLOT + 1)
    finally:
        await coordinator.aclose()
    assert isinstance(completed, SignedBlock) and completed.block.parent_hash == ZERO_HASH
    assert isinstance(signed, SignedBlock)
    assert signed.block.parent_hash == completed.block.block_hash
    assert [(status, slot) for status, slot, _ in _blocks(sub)] == [
        ("signed", SLOT), ("signed", SLOT + 1)
    ]


async def test_a_process_whose_follow_failed_still_builds_on_the_signed_head(
    harness: Harness,
) -> None:
    other, coordinator = _second_engine(harness)
    await other.start(run_clock=False)
    real_follow = coordinator.follow_slot
    calls = 0

    async def flaky_follow(result: SlotResult) -> SignedBlock | FailedSlot | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable("a store blip while following")
        return await real_follow(result)

    coordinator.follow_slot = flaky_follow  # type: ignore[method-assign]
    try:
        first = await harness.run_slot(SLOT)
        await other.close_slot(SLOT)  # its follow hook fails: no head adopted here
        harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 1) + 1
        await harness.bid(SLOT + 1, 5)
        harness.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
        await other.close_slot(SLOT + 1)  # builds: settles slot 1 first, no fork
        second = await harness.outcome(SLOT + 1)
    finally:
        await coordinator.aclose()
    assert calls >= 2
    assert isinstance(first, SignedBlock) and isinstance(second, SignedBlock)
    assert second.block.parent_hash == first.block.block_hash


async def test_a_failed_slots_public_tx_resent_meanwhile_is_not_logged_twice(
    harness: Harness,
) -> None:
    harness.down(1, 2, 3, 4)
    assert await harness.run_slot(SLOT) is None  # pending: 6 of 7 signed
    raw = "0x" + raw_tx(key(78), nonce=0, gas=21_000).hex()
    harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 1) + 1
    sent = await harness.engine.intake.submit_public_tx(
        [raw], endpoint_rollup=None, protected=False
    )
    # The sender resends it in the next slot, before it learns its slot was blocked.
    harness.clock.ms = compute_slot_start_ms(CLOCK, SLOT + 2) + 1
    await harness.engine.intake.submit_public_tx([raw], endpoint_rollup=None, protected=False)
    harness.clock.ms = compute_deadline_ms(CLOCK, SLOT + 1) + 5
    await harness.engine.close_slot(SLOT + 1)  # blocked: failed, never proposed
    blocked = await harness.outcome(SLOT + 1)
    harness.up(1, 2, 3, 4)
    harness.clock.ms = compute_deadline_ms(CLOCK, SLOT + 2) + 5
    await harness.engine.close_slot(SLOT + 2)
    signed = await harness.outcome(SLOT + 2)
    later = await harness.store.read_log(ROLLUP, SLOT + 3)
    assert isinstance(blocked, FailedSlot) and blocked.reason == FAILED_BLOCKED
    assert isinstance(signed, SignedBlock)
    assert [to_hex(keccak256(t)) for t in signed.block.txs].count(sent) == 1
    assert not [e for e in later if isinstance(e.event, PublicTx)]


# --- the blocks HTTP API ----------------------------------------------------------------------


@pytest.fixture
def api(dealt: Dealt, tmp_path: Path) -> Iterator[tuple[TestClient, Harness]]:
    h = Harness(
        dealt,
        tmp_path,
        Clock(compute_slot_start_ms(CLOCK, SLOT) + 1),
        {1: "garbage", 2: "garbage", 3: "garbage"},
    )
    with TestClient(create_app(engine=h.engine)) as client:
        client.portal.call(lambda: h.engine.start(run_clock=False))  # type: ignore[union-attr]
        yield client, h
        client.portal.call(h.coordinator.aclose)  # type: ignore[union-attr]


def test_blocks_api_serves_signed_failed_and_evidence(api: tuple[TestClient, Harness]) -> None:
    client, h = api
    assert client.get(f"/v1/blocks/{ROLLUP}/latest").json()["code"] == "block_not_found"
    portal = client.portal
    assert portal is not None
    members_use_policy(h, "vcg")
    failed = portal.call(h.run_slot, SLOT)
    assert isinstance(failed, FailedSlot)
    r = client.get(f"/v1/blocks/{ROLLUP}/{SLOT}")
    assert r.status_code == 404 and r.json()["code"] == "slot_failed"
    assert {x["code"] for x in r.json()["data"]["refused"]} == {"block_mismatch"}
    members_use_policy(h, "first_price")
    signed = portal.call(h.run_slot, SLOT + 1)
    assert isinstance(signed, SignedBlock)
    portal.call(h.settle)
    body = client.get(f"/v1/blocks/{ROLLUP}/{SLOT + 1}").json()
    assert body == orjson.loads(orjson.dumps(client.get(f"/v1/blocks/{ROLLUP}/latest").json()))
    assert body["status"] == "signed" and body["signers"] == list(signed.signers)
    verify_signed_block(signed_block_from_json(body), h.dealt.committee)
    r = client.get(f"/v1/blocks/{ROLLUP}/{SLOT + 7}")
    assert r.status_code == 404 and r.json()["code"] == "block_not_found"
    assert client.get("/v1/blocks/999/latest").status_code == 404
    page = client.get(f"/v1/committee/evidence/{ROLLUP}", params={"limit": 2}).json()
    assert len(page["evidence"]) == 2 and page["next"] == page["evidence"][-1]["id"]
    rest = client.get(f"/v1/committee/evidence/{ROLLUP}", params={"before": page["next"]}).json()
    assert len(page["evidence"]) + len(rest["evidence"]) == 3 and rest["next"] is None
    assert {e["member"] for e in page["evidence"] + rest["evidence"]} == {1, 2, 3}
    bad = client.get(f"/v1/committee/evidence/{ROLLUP}", params={"before": "x"})
    assert bad.status_code == 400 and bad.json()["data"] == {"field": "before"}


def test_blocks_subscription_over_the_websocket(api: tuple[TestClient, Harness]) -> None:
    client, h = api
    for i in (1, 2, 3):
        h.member(i).member.fault = None
    with client.websocket_connect("/ws") as ws:
        ws.send_text('{"jsonrpc":"2.0","id":1,"method":"bs_subscribe","params":["blocks"]}')
        assert ws.receive_json()["result"] == "blocks"
        portal = client.portal
        assert portal is not None
        signed = portal.call(h.run_slot, SLOT)
        msg = ws.receive_json()
    assert msg["params"]["result"]["block_hash"] == signed.block.block_hash
    assert msg["params"]["result"]["signature"] == "0x" + signed.signature.hex()


async def test_a_slot_another_process_signed_meanwhile_is_adopted_not_failed(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A restarted process recovered and signed the slot while its closer was paused; the
    # closer then asks to sign it too. The head is the slot's own block by now: the closer
    # takes the published outcome instead of logging a fault and publishing a failure.
    signed = await harness.run_slot(SLOT)
    assert isinstance(signed, SignedBlock)
    result = await harness.store.get_result(ROLLUP, SLOT)
    assert result is not None
    other = Harness(harness.dealt, tmp_path, harness.clock, {}, harness.store,
                    streaming=harness.coordinator.feeder is not None)
    await other.engine.start(run_clock=False)
    try:
        with caplog.at_level(logging.INFO, logger="blockspace"):
            outcome = await other.coordinator.sign_slot([result])
        assert outcome == (signed,)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert await harness.store.get_failed_slot(ROLLUP, SLOT) is None
    finally:
        await other.coordinator.aclose()
