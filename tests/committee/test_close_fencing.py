"""Closer failover with fencing, in one process (two engines on one store, in-process members):
a closer that died holding the lease is taken over once it expires, and a closer that stalled
past its lease has its late writes refused and follows the newer closer's outcome.

The same with real processes (SIGKILL, SIGSTOP) is in test_close_failover_processes.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.engine import CLOSE_PAUSE_POINTS, _test_pause_points
from auction.errors import CloseFenced
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from committee.records import SignedBlock
from committee.verify import verify_signed_block
from node.stores.base import Store
from node.stores.fencing import CloseLease
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT
from tests.committee.test_coordinator import Clock, Harness, _second_engine
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The logical database these tests own on the session's Redis server (11-13 are taken).
FENCING_DB = 10


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def harness(
    dealt: Dealt, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    """Two engines' first one, on the embedded store or on a real Redis (its own database)."""
    store: Store = MemoryStore()
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisStore(f"redis://127.0.0.1:{server.port}/{FENCING_DB}")
        await store.connect()
        await store.redis.flushdb()
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {}, store)
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()
    await store.aclose()


class LeaseClock:
    """The memory store's lease clock, moved by the test (a stall, without stopping a process)."""

    def __init__(self) -> None:
        self.s = 1_000.0

    def __call__(self) -> float:
        return self.s


def sample(engine: object, name: str, **labels: str) -> float:
    value = engine.metrics.registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return value or 0.0


async def bid_slot(h: Harness, slot: int, bids: int = 3) -> None:
    h.clock.ms = compute_slot_start_ms(CLOCK, slot) + 1
    for i in range(bids):
        await h.bid(slot, 40 + i, 10**15 * (i + 1))
    h.clock.ms = compute_deadline_ms(CLOCK, slot) + 5


async def test_a_closer_that_died_holding_the_lease_is_taken_over_after_it_expires(
    harness: Harness,
) -> None:
    other, coordinator = _second_engine(harness)
    await other.start(run_clock=False)
    store = harness.store
    try:
        await bid_slot(harness, SLOT)
        # A process took the slot's lease, closed the logs and died: it never renews.
        dead = CloseLease(ROLLUP, SLOT, await store.claim_close(
            ROLLUP, SLOT, "dead-engine", other.close_lease_ms))  # fmt: skip
        await store.close_slot(ROLLUP, SLOT, dead)
        t0 = time.monotonic()
        results = await other.close_slot(SLOT)
        waited_s = time.monotonic() - t0
        signed = await store.get_signed_block(ROLLUP, SLOT)
        # The dead closer's token is stale everywhere now: it can write nothing of the slot.
        with pytest.raises(CloseFenced):
            await store.save_result(results[0], lease=dead)
        with pytest.raises(CloseFenced):
            await store.save_signed_blocks([signed] if signed else [], dead)
    finally:
        await coordinator.aclose()
    assert waited_s >= other.close_lease_ms / 1000 * 0.9  # only once the lease ran out
    assert isinstance(signed, SignedBlock) and signed.block == results[0].block
    verify_signed_block(signed, harness.dealt.committee)
    assert len(results[0].outcomes) == 3
    assert sample(other, "blockspace_close_takeovers_total") == 1


@pytest.fixture
async def memory_harness(dealt: Dealt, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {})
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


async def test_a_closer_stalled_past_its_lease_is_fenced_and_follows_the_new_one(
    memory_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # The stall is made with the embedded store's lease clock; on Redis it is a SIGSTOP
    # (test_close_failover_processes.py).
    harness = memory_harness
    store = harness.store
    assert isinstance(store, MemoryStore)
    lease_clock = LeaseClock()
    store.lease_clock_s = lease_clock
    stalled, (other, coordinator) = harness.engine, _second_engine(harness)
    await other.start(run_clock=False)
    # The first closer pauses mid-close (after closing the logs, before storing results) and
    # does not renew meanwhile (its renewal period is longer than the test).
    stalled._test_close_pause_ms = 1_000
    stalled.close_lease_ms = 60_000
    caplog.set_level(logging.WARNING, logger="blockspace.engine")
    try:
        await bid_slot(harness, SLOT)
        closing = asyncio.create_task(stalled.close_slot(SLOT))
        deadline = time.monotonic() + 10
        while "test fault: pausing" not in caplog.text:
            assert time.monotonic() < deadline, "the closer never paused"
            await asyncio.sleep(0.01)
        lease_clock.s += 61  # its lease runs out while it stalls
        taken = await other.close_slot(SLOT)
        followed = await closing
        signed = await store.get_signed_block(ROLLUP, SLOT)
    finally:
        await coordinator.aclose()
    # One result, one signed block: the new closer's; the stalled one adopted them.
    assert followed == taken
    assert await store.get_result(ROLLUP, SLOT) == taken[0]
    assert isinstance(signed, SignedBlock) and signed.block == taken[0].block
    assert sample(stalled, "blockspace_close_fenced_total", where="save_result") == 1
    assert sample(other, "blockspace_close_takeovers_total") == 1
    assert "close fenced: slot 1000" in caplog.text
    # Both processes see the same chain head afterwards.
    assert stalled.chains[ROLLUP].head == other.chains[ROLLUP].head == signed.block.block_hash


def test_the_test_pause_points_default_to_after_closing_the_logs() -> None:
    # Unset, the pause stays where it always was; a named point outside the close's list is
    # refused rather than silently never reached.
    assert _test_pause_points(None) == {"logs"}
    assert _test_pause_points("") == {"logs"}
    assert _test_pause_points("logs, opened,stored") == set(CLOSE_PAUSE_POINTS)
    with pytest.raises(ValueError, match="opening"):
        _test_pause_points("logs,opening")
