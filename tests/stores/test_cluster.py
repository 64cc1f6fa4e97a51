"""RedisStore on a real Redis Cluster under faults: a master killed mid-load, a replica that does
not confirm in time (WAIT), no replica at all. The contract suite itself runs on the cluster
through the ``store`` fixture (tests/stores/conftest.py).

The promise under test: a bid is acknowledged only once its master has it and a replica has
confirmed it (``wait_replicas``), so every acknowledged bid survives the master's SIGKILL and its
replica's promotion; a bid not confirmed is refused, never acknowledged.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import anyio
import pytest

from auction.errors import StoreUnavailable
from auction.types import Bid, LoggedEvent
from node.metrics import Metrics
from node.stores import keys
from node.stores.base import IntakeLimits
from node.stores.redis import RedisStore, parse_cluster_nodes
from tests.redis_server import RedisClusterServers, RedisServer
from tests.stores.bids import ROLLUP, make_bid
from tests.stores.conftest import STORE_DB, db_url, open_test_store
from tests.stores.test_durability import append_while_killing, logged_bids

pytestmark = pytest.mark.redis

WIDE = IntakeLimits(max_bundles=100_000, max_bytes=10**10)
STREAM_SLOTS = (400, 401, 402, 403, 404, 405)
STREAM_BIDS = 3_000
KILL_AFTER_ACKS = 1_000
WORKERS = 100


def stream_bid(n: int) -> Bid:
    return make_bid(
        n,
        slot=STREAM_SLOTS[n % len(STREAM_SLOTS)],
        searcher=f"0x{n % 32:040x}",
        size_bytes=200 + n % 500,
    )


def test_parse_cluster_nodes() -> None:
    assert parse_cluster_nodes("redis+cluster://10.0.0.1:7000, 10.0.0.2:7001/") == [
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7001),
    ]
    with pytest.raises(ValueError, match="host:port"):
        parse_cluster_nodes("redis+cluster://10.0.0.1")


@pytest.mark.slow
@pytest.mark.anyio
async def test_acknowledged_bids_survive_master_failover(
    fresh_cluster: RedisClusterServers, anyio_backend: str
) -> None:
    store = RedisStore(fresh_cluster.url)  # wait_replicas: 1 by default on a cluster
    await store.connect()
    assert store.wait_replicas == 1
    victim_key = keys.slot_log(ROLLUP, STREAM_SLOTS[0])
    victim = fresh_cluster.master_of(victim_key)
    bids = [stream_bid(n) for n in range(STREAM_BIDS)]
    acked, refused = await append_while_killing(
        store, bids, victim.kill, kill_after_acks=KILL_AFTER_ACKS, workers=WORKERS,
        within_s=120,
    )  # fmt: skip
    assert len(acked) >= KILL_AFTER_ACKS and len(acked) + len(refused) == STREAM_BIDS

    # The replica is promoted (cluster-node-timeout 1 s); the cluster is whole again without it
    await anyio.to_thread.run_sync(fresh_cluster.wait_ready)
    promoted = fresh_cluster.master_of(victim_key)
    assert promoted is not victim
    # The promoted master has no replica, so no bid of its hash slots can be confirmed (each is
    # refused: test_no_replica_confirmation_is_refused_not_acknowledged) until the old master
    # comes back, from its own AOF, as the new master's replica.
    victim.start()
    await anyio.to_thread.run_sync(fresh_cluster.wait_ready)
    assert fresh_cluster.replica_of(promoted) is victim

    # Refused bids resent through the same store object: it re-reads the slot map, and each is
    # acknowledged (once a replica of the new master has it), with its first seq if it was logged
    with anyio.fail_after(60):
        for bid in [b for b in bids if b.bid_id in refused]:
            for _ in range(100):
                try:
                    acked[bid.bid_id] = await store.append_bid(bid, WIDE)
                    break
                except StoreUnavailable:
                    await anyio.sleep(0.1)
    reader = RedisStore(fresh_cluster.url)
    await reader.connect()
    try:
        found = logged_bids([await reader.read_log(ROLLUP, s) for s in STREAM_SLOTS])
        by_id = {b.bid_id: b for b in bids}
        lost = [i for i in acked if i not in found]
        corrupted = [
            i for i, s in acked.items() if i in found and found[i] != LoggedEvent(s, by_id[i])
        ]
        print(
            f"\n[cluster failover] sent={STREAM_BIDS} acknowledged_before_resend="
            f"{STREAM_BIDS - len(refused)} refused={len(refused)} lost={len(lost)} "
            f"corrupted={len(corrupted)} faults={dict(store.faults)}"
        )
        assert lost == [] and corrupted == []
        assert set(found) == set(by_id) == set(acked)
        assert store.faults["write_failed"] > 0  # the kill was seen, counted and logged
    finally:
        await reader.aclose()
        await store.aclose()


@pytest.mark.anyio
async def test_no_replica_confirmation_is_refused_not_acknowledged(
    redis_server: RedisServer, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A single server has no replica: asking for one makes every WAIT time out
    plain = await open_test_store(db_url(redis_server, STORE_DB))
    await plain.aclose()
    store = RedisStore(db_url(redis_server, STORE_DB), wait_replicas=1, wait_timeout_ms=20)
    await store.connect()
    try:
        bid = make_bid(1, slot=80)
        with caplog.at_level(logging.WARNING, "blockspace.store"):
            with pytest.raises(StoreUnavailable, match="no replica confirmed"):
                await store.append_bid(bid, WIDE)
        assert store.faults["replica_timeout"] == 1
        assert "0 of 1 replicas confirmed" in caplog.text
        metrics = Metrics()
        metrics.watch_store(store)
        sample = {"kind": "replica_timeout"}
        assert metrics.registry.get_sample_value("blockspace_store_faults_total", sample) == 1
        # It is on the master (a resend answers its seq once a replica confirms)
        assert [e.event for e in await store.read_log(ROLLUP, 80)] == [bid]
        with pytest.raises(StoreUnavailable):
            await store.append_bid(bid, WIDE)
        assert len(await store.read_log(ROLLUP, 80)) == 1
    finally:
        await store.aclose()


@pytest.mark.slow
@pytest.mark.anyio
async def test_stalled_replica_refuses_then_resend_is_acknowledged(
    fresh_cluster: RedisClusterServers, anyio_backend: str
) -> None:
    store = RedisStore(fresh_cluster.url, wait_timeout_ms=200)
    await store.connect()
    bid = make_bid(1, slot=90)
    master = fresh_cluster.master_of(keys.slot_log(ROLLUP, 90))
    replica = fresh_cluster.replica_of(master)
    assert replica.proc is not None
    os.kill(replica.proc.pid, signal.SIGSTOP)  # the replica stops taking the stream
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no replica confirmed"):
            await store.append_bid(bid, WIDE)
        assert time.monotonic() - t0 >= 0.2
        assert store.faults["replica_timeout"] == 1
        seq = (await store.read_log(ROLLUP, 90))[0].seq
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    try:
        with anyio.fail_after(10):
            while True:  # the replica catches up: the same bid is acknowledged, its first seq
                try:
                    assert await store.append_bid(bid, WIDE) == seq
                    break
                except StoreUnavailable:
                    await anyio.sleep(0.1)
        assert len(await store.read_log(ROLLUP, 90)) == 1
    finally:
        await store.aclose()


@pytest.mark.slow
@pytest.mark.anyio
async def test_moved_hash_slot_is_followed_logged_and_counted(
    fresh_cluster: RedisClusterServers, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(fresh_cluster.url)
    await store.connect()
    try:
        first, second = make_bid(1, slot=95), make_bid(2, slot=95)
        first_seq = await store.append_bid(first, WIDE)
        log_key = keys.slot_log(ROLLUP, 95)
        source = fresh_cluster.master_of(log_key)
        target = next(m for m in fresh_cluster.masters() if m is not source)
        # The store's client still maps the hash slot to the source: the next write gets MOVED
        await anyio.to_thread.run_sync(fresh_cluster.move_hash_slot, log_key, target)
        with caplog.at_level(logging.WARNING, "blockspace.store"):
            with pytest.raises(StoreUnavailable, match="no replica confirmed"):
                await store.append_bid(second, WIDE)
        assert store.faults["slot_moved"] == 1
        assert "moved from" in caplog.text
        # Followed, not lost: resent, it is acknowledged on the new master with its first seq
        second_seq = (await store.read_log(ROLLUP, 95))[1].seq
        assert await store.append_bid(second, WIDE) == second_seq
        log = await store.read_log(ROLLUP, 95)
        assert log == [LoggedEvent(first_seq, first), LoggedEvent(second_seq, second)]
        assert fresh_cluster.master_of(log_key) is target
    finally:
        await store.aclose()
