"""RedisStore under failure: SIGKILL mid-stream, restarts, a stalled server, lost scripts.

The promise under test (node/stores/base.py): ``append_bid`` returns only once the bid is durable.
So after a crash every acknowledged bid is in its slot's log with the seq it was given, decoded
equal to what was sent; a refused append (StoreUnavailable) promises nothing either way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import pytest

from auction.errors import SlotClosed, StoreUnavailable
from auction.ledger import DEPOSIT, Cause, Change, LedgerEntry
from auction.types import Bid, LoggedEvent
from node.stores.base import IntakeLimits
from node.stores.redis import RedisStore
from tests.redis_server import RedisServer
from tests.stores.bids import (
    OTHER_ROLLUP,
    ROLLUP,
    log_cancel,
    make_bid,
    make_cancel,
    make_cross_copies,
    parse_seq,
)
from tests.stores.conftest import STORE_DB, db_url, open_test_store

pytestmark = pytest.mark.redis

WIDE = IntakeLimits(max_bundles=100_000, max_bytes=10**10)
STREAM_BIDS = 8_000
KILL_AFTER_ACKS = 4_000
WORKERS = 200
STREAM_SLOTS = (300, 301, 302, 303)


def stream_bid(n: int) -> Bid:
    return make_bid(
        n,
        slot=STREAM_SLOTS[n % len(STREAM_SLOTS)],
        searcher=f"0x{n % 32:040x}",
        size_bytes=200 + n % 700,
    )


def logged_bids(logs: list[list[LoggedEvent]]) -> dict[str, LoggedEvent]:
    """Every logged bid by id; fails on a duplicate or a seq out of order."""
    out: dict[str, LoggedEvent] = {}
    for log in logs:
        seqs = [parse_seq(e.seq) for e in log]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for e in log:
            assert isinstance(e.event, Bid)
            assert e.event.bid_id not in out, "a bid is logged twice"
            out[e.event.bid_id] = e
    return out


async def append_while_killing(
    store: RedisStore,
    bids: list[Bid],
    kill: Callable[[], object],
    *,
    kill_after_acks: int,
    workers: int,
    within_s: float,
) -> tuple[dict[str, str], set[str]]:
    """Append ``bids`` from ``workers`` concurrent tasks and call ``kill`` (from a thread, so
    appends keep flowing on the loop while the process dies) once ``kill_after_acks`` are
    acknowledged. Returns the acknowledged seqs by bid id and the refused bid ids."""
    acked: dict[str, str] = {}
    refused: set[str] = set()
    enough_acked = anyio.Event()

    async def worker(mine: list[Bid]) -> None:
        for bid in mine:
            try:
                acked[bid.bid_id] = await store.append_bid(bid, WIDE)
            except StoreUnavailable:
                refused.add(bid.bid_id)
            if len(acked) >= kill_after_acks:
                enough_acked.set()

    async def killer() -> None:
        await enough_acked.wait()
        await anyio.to_thread.run_sync(kill)

    with anyio.fail_after(within_s):
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            for k in range(workers):
                tg.start_soon(worker, bids[k::workers])
    return acked, refused


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
async def test_acknowledged_bids_survive_sigkill_mid_stream(
    fresh_redis: RedisServer, appendfsync: str, anyio_backend: str
) -> None:
    store = RedisStore(fresh_redis.url, appendfsync=appendfsync)
    await store.connect()
    # connect() sets the durability policy on the server
    config = await store.redis.config_get("append*")
    assert (config["appendfsync"], config["appendonly"]) == (appendfsync, "yes")

    bids = [stream_bid(n) for n in range(STREAM_BIDS)]
    acked, refused = await append_while_killing(
        store, bids, fresh_redis.kill, kill_after_acks=KILL_AFTER_ACKS, workers=WORKERS,
        within_s=30,
    )  # fmt: skip

    # The kill landed mid-stream: some appends were acknowledged, later ones refused
    assert len(acked) + len(refused) == STREAM_BIDS
    assert len(acked) >= KILL_AFTER_ACKS
    assert len(refused) > 0

    fresh_redis.start()  # same dir, same port: the server replays its AOF
    # The old store object carries on: it reconnects, and since the restarted server's script
    # cache is empty (nothing has loaded them yet), this append takes the NOSCRIPT reload path
    late = stream_bid(STREAM_BIDS)
    late_seq = await store.append_bid(late, WIDE)
    reader = RedisStore(fresh_redis.url, appendfsync=appendfsync)
    await reader.connect()
    try:
        found = logged_bids([await reader.read_log(ROLLUP, s) for s in STREAM_SLOTS])
        assert found.pop(late.bid_id) == LoggedEvent(late_seq, late)
        by_id = {b.bid_id: b for b in bids}
        lost = [i for i in acked if i not in found]
        corrupted = [
            i for i, seq in acked.items() if i in found and found[i] != LoggedEvent(seq, by_id[i])
        ]
        assert set(found) <= set(by_id), "the log holds a bid nobody sent"
        in_doubt = len(refused & set(found))  # refused, yet written before the crash
        print(
            f"\n[{appendfsync}] sent={STREAM_BIDS} acknowledged={len(acked)} "
            f"refused={len(refused)} refused_but_logged={in_doubt} "
            f"lost={len(lost)} corrupted={len(corrupted)}"
        )
        assert lost == []
        assert corrupted == []

        # Refused bids resent after the restart are acknowledged once each; one that was
        # written before the crash gets back the seq it was logged with
        resent = [b for b in bids if b.bid_id in refused]
        seqs = await asyncio.gather(*(store.append_bid(b, WIDE) for b in resent))
        for bid, seq in zip(resent, seqs, strict=True):
            if bid.bid_id in found:
                assert found[bid.bid_id].seq == seq
        after = logged_bids([await reader.read_log(ROLLUP, s) for s in STREAM_SLOTS])
        assert set(after) == set(by_id) | {late.bid_id}
    finally:
        await reader.aclose()
        await store.aclose()


@pytest.mark.anyio
async def test_noscript_after_script_flush_reloads_scripts(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    store = await open_test_store(db_url(redis_server, STORE_DB))
    assert isinstance(store, RedisStore)
    try:
        uuid = "0123456789abcdef0123456789abcdef"
        bid = make_bid(1, slot=60, replacement_uuid=uuid)
        # Group-commit path (a pipeline of EVALSHA)
        await store.redis.script_flush()
        seq = await store.append_bid(bid, WIDE)
        # Single-call paths (_evalsha)
        await store.redis.script_flush()
        assert await log_cancel(store, make_cancel(bid.searcher, uuid), [60]) == [60]
        await store.redis.script_flush()
        log = await store.close_slot(ROLLUP, 60)
        assert [e.seq for e in log][0] == seq and len(log) == 2
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_one_group_commit_over_several_slots_answers_each_slot_alone(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    # One batch holds bids for three slots, one of them closed, and the script cache is lost
    # just before it: the open slots' bids are logged once each and acknowledged with their
    # own seqs, the closed slot's are refused with slot_closed, nothing leaks across slots.
    store = await open_test_store(db_url(redis_server, STORE_DB))
    assert isinstance(store, RedisStore)
    try:
        await store.close_slot(ROLLUP, 91)
        bids = [make_bid(n, slot=90 + n % 3, searcher=f"0x{n:040x}") for n in range(12)]
        await store.redis.script_flush()
        answers = await asyncio.gather(
            *(store.append_bid(b, WIDE) for b in bids), return_exceptions=True
        )
        for bid, answer in zip(bids, answers, strict=True):
            if bid.slot == 91:
                assert isinstance(answer, SlotClosed)
            else:
                assert isinstance(answer, str), answer
        for slot in (90, 92):
            log = await store.read_log(ROLLUP, slot)
            expected = {b.bid_id: a for b, a in zip(bids, answers, strict=True) if b.slot == slot}
            assert {e.event.bid_id: e.seq for e in log} == expected
            assert len(log) == len(expected)
        assert await store.read_log(ROLLUP, 91) == []
    finally:
        await store.aclose()


# --- the server is gone or stuck ------------------------------------------------------------


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.anyio
async def test_connect_where_nothing_listens_raises_store_unavailable(anyio_backend: str) -> None:
    store = RedisStore(f"redis://127.0.0.1:{unused_port()}/0")
    with anyio.fail_after(5):
        with pytest.raises(StoreUnavailable):
            await store.connect()
    await store.aclose()


@pytest.mark.anyio
async def test_calls_while_server_down_raise_store_unavailable_promptly(
    fresh_redis: RedisServer, anyio_backend: str
) -> None:
    store = RedisStore(fresh_redis.url)
    await store.connect()
    try:
        before = make_bid(1, slot=70)
        seq = await store.append_bid(before, WIDE)
        fresh_redis.kill()

        t0 = time.monotonic()
        with anyio.fail_after(5):
            results = await asyncio.gather(
                *(store.append_bid(make_bid(n, slot=70), WIDE) for n in range(2, 52)),
                return_exceptions=True,
            )
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert time.monotonic() - t0 < 2.0
        # Every other call refuses the same way (the engine maps one error, not redis-py's)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: log_cancel(store, make_cancel(before.searcher, "ab" * 16), [70]),
            lambda: store.close_slot(ROLLUP, 70),
            lambda: store.read_log(ROLLUP, 70),
            lambda: store.find_bid_seq(ROLLUP, 70, before.bid_id),
            lambda: store.get_result(ROLLUP, 70),
            lambda: store.latest_result(ROLLUP),
            lambda: store.list_result_slots(ROLLUP, from_slot=None, to_slot=None, limit=5),
        ]
        for call in calls:
            with anyio.fail_after(5):
                with pytest.raises(StoreUnavailable):
                    await call()
        assert await store.ping() is False

        fresh_redis.start()
        assert await store.ping() is True
        assert await store.find_bid_seq(ROLLUP, 70, before.bid_id) == seq
        assert await store.append_bid(make_bid(99, slot=70), WIDE)
    finally:
        await store.aclose()


@pytest.fixture
def stoppable(fresh_redis: RedisServer) -> Iterator[RedisServer]:
    """fresh_redis, always continued after the test even if it stopped the process."""
    yield fresh_redis
    if fresh_redis.proc is not None and fresh_redis.proc.poll() is None:
        fresh_redis.proc.send_signal(signal.SIGCONT)


@pytest.mark.anyio
async def test_append_to_stalled_server_refused_within_timeout(
    stoppable: RedisServer, anyio_backend: str
) -> None:
    store = RedisStore(stoppable.url)  # default timeouts: what production runs
    await store.connect()
    try:
        stuck = make_bid(1, slot=80)
        assert stoppable.proc is not None
        stoppable.proc.send_signal(signal.SIGSTOP)  # alive, accepting TCP, never answering
        t0 = time.monotonic()
        with anyio.fail_after(10):
            with pytest.raises(StoreUnavailable):
                await store.append_bid(stuck, WIDE)
        assert time.monotonic() - t0 < 2 * store.socket_timeout_s + 0.5

        stoppable.proc.send_signal(signal.SIGCONT)
        # The refused bid may still have been written (the server got it before stalling):
        # resending it is safe, it is acknowledged once with one seq
        seq = await store.append_bid(stuck, WIDE)
        assert await store.append_bid(stuck, WIDE) == seq
        log = await store.read_log(ROLLUP, 80)
        assert [(e.seq, e.event) for e in log] == [(seq, stuck)]
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_unencodable_bid_fails_alone_and_intake_continues(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    store = await open_test_store(db_url(redis_server, STORE_DB))
    try:
        # compute_bid accepts maxTimestamp up to 2**256 - 1; the JSON codec stops at 2**64 - 1
        poison = dataclasses.replace(make_bid(0, slot=90), max_timestamp=2**64)
        good = [make_bid(n, slot=90) for n in range(1, 21)]
        with anyio.fail_after(5):
            results = await asyncio.gather(
                store.append_bid(poison, WIDE),
                *(store.append_bid(b, WIDE) for b in good),
                return_exceptions=True,
            )
        assert isinstance(results[0], Exception)
        assert all(isinstance(r, str) for r in results[1:])
        with anyio.fail_after(5):
            late = await store.append_bid(make_bid(21, slot=90), WIDE)
        log = await store.read_log(ROLLUP, 90)
        assert len(log) == 21 and log[-1].seq == late
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_acknowledged_cross_bundles_survive_sigkill_in_every_spanned_log(
    fresh_redis: RedisServer, anyio_backend: str
) -> None:
    # A cross-rollup bundle is acknowledged once one script logged it in every rollup it spans
    # (docs/shared-sequencing.md); after kill -9 and an AOF replay it is in all of them.
    store = RedisStore(fresh_redis.url, appendfsync="always")
    await store.connect()
    spans = [(OTHER_ROLLUP, ROLLUP), (1, OTHER_ROLLUP, ROLLUP), (1, ROLLUP)]
    bundles = [make_cross_copies(n, rollups=spans[n % 3], slot=310) for n in range(60)]
    acked = {}
    try:
        for copies in bundles:
            acked[copies[0].bid_id] = await store.append_bid_copies(copies, [WIDE] * len(copies))
    finally:
        fresh_redis.kill()  # SIGKILL: nothing is flushed on the way out
        await store.aclose()
    fresh_redis.start()
    reader = RedisStore(fresh_redis.url, appendfsync="always")
    await reader.connect()
    try:
        logs = {r: {e.seq: e.event for e in await reader.read_log(r, 310)}
                for r in (1, OTHER_ROLLUP, ROLLUP)}
        for copies in bundles:
            seqs = acked[copies[0].bid_id]
            for copy, seq in zip(copies, seqs, strict=True):
                assert logs[copy.rollup][seq] == copy
        assert sum(len(log) for log in logs.values()) == sum(len(c) for c in bundles)
    finally:
        await reader.aclose()


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
async def test_acknowledged_ledger_entries_survive_sigkill(
    fresh_redis: RedisServer, appendfsync: str, anyio_backend: str
) -> None:
    """Deposits and payments in flight when redis-server is SIGKILLed: every acknowledged
    entry is there after the restart, and every balance is the sum of its entries."""
    store = RedisStore(fresh_redis.url, appendfsync=appendfsync)
    await store.connect()
    accounts = [f"0x{n:040x}" for n in range(1, 9)]
    acked: dict[str, LedgerEntry] = {}
    enough = anyio.Event()

    async def worker(k: int) -> None:
        account = accounts[k % len(accounts)]
        for n in range(400):
            ref = f"{k}-{n}"
            try:
                [entry] = await store.apply_ledger(
                    [Change(account, DEPOSIT, 10**18 + n, Cause(ref=ref))],
                    once="deposit:" + ref,
                    at_ms=n,
                )
            except StoreUnavailable:
                return
            acked[entry.entry_id] = entry
            if len(acked) >= 1500:
                enough.set()

    async def killer() -> None:
        await enough.wait()
        await anyio.to_thread.run_sync(fresh_redis.kill)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            for k in range(32):
                tg.start_soon(worker, k)
    assert len(acked) >= 1500
    fresh_redis.start()
    reader = RedisStore(fresh_redis.url, appendfsync=appendfsync)
    await reader.connect()
    try:
        found: dict[str, LedgerEntry] = {}
        before = None
        while page := await reader.list_ledger_entries(None, before=before, limit=1000):
            found.update((e.entry_id, e) for e in page)
            before = page[-1].entry_id
        lost = [i for i in acked if found.get(i) != acked[i]]
        print(f"\n[{appendfsync}] acknowledged={len(acked)} found={len(found)} lost={len(lost)}")
        assert lost == []
        for account in accounts:
            entries = [e for e in found.values() if e.account == account]
            assert (await reader.get_balance(account))[0] == sum(e.amount_wei for e in entries)
    finally:
        await reader.aclose()
        await store.aclose()
