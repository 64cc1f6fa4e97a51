"""Closer failover with real processes (issue 12 item 4): three ``blockspace serve`` engines on
one redis-server (and, for the SIGKILL test, on a Redis Cluster of 3 masters and 3 replicas)
with a 3-of-4 committee of ``blockspace signer`` processes; searchers bid into
every engine; the engine that closes a slot is SIGKILLed (or SIGSTOPped past its lease) in the
middle of the close, again and again.

The kill is hooked on a log line: with ``BLOCKSPACE_TEST_CLOSE_PAUSE_MS`` (test only, not a
setting; api/engine.py) the first holder of each slot's close lease logs "test fault: pausing
the close of slot N" after closing the logs and waits before storing the results, so the test
kills it there. Then it checks, from the store: every slot has exactly one outcome (a result
with a signed block, or a failure record) without gaps; the signed blocks form one chain, each
verifies under the committee's key, and no member ever gave partials for two signing roots of
one slot (no second block could be signed); every acknowledged bid is in its slot's log.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from api.searcher import SearcherKey, bundle_params
from auction.encoding import ZERO_HASH
from auction.slots import SlotClock, compute_deadline_ms
from auction.types import Bid
from committee import keyfiles
from committee.local import SignerProcesses, free_port
from committee.verify import verify_signed_block
from node.stores.redis import RedisStore
from ordering import packer
from tests.redis_server import RedisClusterServers, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.anyio]

ROLLUP = 167_001
BIN = Path(sys.executable).parent / "blockspace"
WORKTREE = Path(__file__).resolve().parents[2]
GWEI = 10**9
SLOT_MS = 2000
CLOCK = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
PAUSE_MS = 500  # the first closer's pause mid-close: the window the test kills it in
KILLS = int(os.environ.get("BLOCKSPACE_FAILOVER_KILLS", "6"))
# The default pause (after closing the logs) logs no point; the others name theirs.
PAUSED = re.compile(rb"test fault: pausing the close of slot (\d+)(?: at (\w+))?")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def warm_packer() -> None:
    packer.warm_up()


@pytest.fixture(params=["redis", "cluster"])
def store_url(request: pytest.FixtureRequest) -> str:
    """A store of the test's own: one redis-server, or a cluster of 3 masters and 3 replicas."""
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("fresh_cluster")
        return cluster.url
    server: RedisServer = request.getfixturevalue("fresh_redis")
    return server.url


def now_ms() -> int:
    return int(time.time() * 1000)


def open_slot() -> int:
    return now_ms() // SLOT_MS


class Engines:
    """``blockspace serve`` processes on one store, each on its own port, logs kept."""

    def __init__(self, tmp: Path, store_url: str, keys: Path, signer_urls: list[str],
                 n: int, env: Mapping[str, str] | None = None) -> None:
        self.tmp = tmp
        self.ports = [free_port() for _ in range(n)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopped: set[int] = set()
        self.offsets = [0] * n
        self.env = {**os.environ, "BLOCKSPACE_SLOT_MS": str(SLOT_MS),
                    "BLOCKSPACE_ROLLUPS": f"[{ROLLUP}]", "PYTHONPATH": str(WORKTREE),
                    "BLOCKSPACE_TEST_CLOSE_PAUSE_MS": str(PAUSE_MS), **(env or {})}
        signers = [x for url in signer_urls for x in ("--signer", url)]
        self.argv = [[str(BIN), "serve", "--port", str(port), "--slot-ms", str(SLOT_MS),
                      "--store", store_url, "--committee", str(keys / "committee.json"),
                      *signers] for port in self.ports]

    def log(self, i: int) -> Path:
        return self.tmp / f"engine-{i}.log"

    def start(self, i: int) -> None:
        with open(self.log(i), "ab") as out:
            self.procs[i] = subprocess.Popen(self.argv[i], env=self.env, cwd=WORKTREE,
                                             stdout=subprocess.DEVNULL, stderr=out)
        self.stopped.discard(i)

    def live(self) -> list[int]:
        return [i for i, p in self.procs.items() if p.poll() is None and i not in self.stopped]

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    async def wait_ready(self, indices: list[int], timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1.0) as http:
            for i in indices:
                while True:
                    proc = self.procs[i]
                    assert proc.poll() is None, self.log(i).read_text()[-3000:]
                    try:
                        if (await http.get(self.url(i) + "/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, f"engine {i} did not start"
                    await asyncio.sleep(0.1)

    def signal(self, i: int, sig: signal.Signals) -> None:
        self.procs[i].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[i].wait(timeout=10)
        if sig == signal.SIGSTOP:
            self.stopped.add(i)
        if sig == signal.SIGCONT:
            self.stopped.discard(i)

    def drain(self) -> None:
        """Skip what the logs say so far: only pauses logged from now on count."""
        for i in range(len(self.ports)):
            with open(self.log(i), "rb") as f:
                self.offsets[i] = f.seek(0, os.SEEK_END)

    async def next_pause(
        self, after_slot: int, timeout_s: float = 60, point: str = "logs"
    ) -> tuple[int, int]:
        """The next live engine to log a close pause at ``point`` (api/engine.py
        CLOSE_PAUSE_POINTS) for a slot above ``after_slot``."""
        self.drain()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i in self.live():
                with open(self.log(i), "rb") as f:
                    f.seek(self.offsets[i])
                    text = f.read()
                self.offsets[i] += len(text)
                slots = [int(m[0]) for m in PAUSED.findall(text)
                         if (m[1] or b"logs").decode() == point]
                if slots and slots[-1] > after_slot:
                    return i, slots[-1]
            await asyncio.sleep(0.01)
        raise AssertionError("no engine paused a close")

    def stop_all(self) -> None:
        for i, p in self.procs.items():
            if i in self.stopped:
                p.send_signal(signal.SIGCONT)
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class World:
    """The committee, the engines and the searchers' acknowledged bids."""

    def __init__(self, tmp: Path, store_url: str, n_engines: int = 3,
                 engine_env: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """``env``: settings of engines and members alike; ``engine_env``: the engines' only."""
        self.tmp, self.store_url = tmp, store_url
        self.keys = tmp / "keys"
        out = subprocess.run([str(BIN), "committee", "keygen", "--n", "4", "--out",
                              str(self.keys)], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(WORKTREE)}, cwd=WORKTREE)
        assert out.returncode == 0, out.stderr
        self.committee = keyfiles.read_committee_file(self.keys / "committee.json")
        common = dict(env or {})
        env = {"BLOCKSPACE_SLOT_MS": str(SLOT_MS), "BLOCKSPACE_ROLLUPS": f"[{ROLLUP}]",
               "PYTHONPATH": str(WORKTREE), **common}
        self.signers = SignerProcesses(sorted(self.keys.glob("member-*.share.json")), env=env,
                                       log_dir=tmp)
        self.n_engines = n_engines
        self.engine_env = {**common, **(engine_env or {})}
        self.engines: Engines | None = None
        self.acked: set[tuple[str, int, str]] = set()  # (searcher, slot, bundle hash)
        self.stop = asyncio.Event()

    async def start(self) -> Engines:
        self.signers.start_all()
        await asyncio.to_thread(self.signers.wait_ready, None, 240)
        self.engines = Engines(self.tmp, self.store_url, self.keys, self.signers.urls,
                               self.n_engines, self.engine_env)
        self.engines.start(0)  # alone first: it refreshes the solver cache if stale
        await self.engines.wait_ready([0])
        for i in range(1, self.n_engines):
            self.engines.start(i)
        await self.engines.wait_ready(list(range(self.n_engines)))
        return self.engines

    def close(self) -> None:
        if self.engines is not None:
            self.engines.stop_all()
        self.signers.stop_all()

    async def bid_forever(self, searcher_seed: int) -> None:
        """One searcher: a bundle into the open slot every ~150 ms, through any live engine."""
        assert self.engines is not None
        k, nonce = SearcherKey.from_seed(searcher_seed), 0
        async with httpx.AsyncClient(timeout=5) as http:
            while not self.stop.is_set():
                live = self.engines.live()
                if live:
                    nonce += 1
                    slot = open_slot()
                    raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=nonce,
                                    maxPriorityFeePerGas=2 * GWEI, maxFeePerGas=100 * GWEI,
                                    gas=60_000, to="0x" + "42" * 20, value=0, data=b"")
                    body = k.request("eth_sendBundle",
                                     [bundle_params([raw], slot, bid_wei=10**15 + nonce)])
                    url = self.engines.url(live[nonce % len(live)])
                    try:
                        r = await http.post(url + "/", content=body,
                                            headers={"X-Flashbots-Signature": k.sign_body(body)})
                        reply = r.json()
                        if "result" in reply:
                            self.acked.add((k.address, slot, reply["result"]["bundleHash"]))
                    except (httpx.HTTPError, ValueError):
                        pass  # that engine was just killed: the bid is not acknowledged
                await asyncio.sleep(0.15)

    async def closed_time(
        self, store: RedisStore, slot: int, timeout_s: float, *, signed: bool
    ) -> int:
        """Wall time (ms) at which the slot had its result (and, if ``signed``, its published
        outcome: signed blocks or failure records), or a failure record."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await store.get_failed_slot(ROLLUP, slot) is not None:
                return now_ms()
            if await store.get_result(ROLLUP, slot) is not None and (
                not signed or await store.get_signed_block(ROLLUP, slot) is not None
            ):
                return now_ms()
            await asyncio.sleep(0.01)
        raise AssertionError(f"slot {slot} has no outcome after {timeout_s} s")


async def check_store(store: RedisStore, world: World, first: int, last: int) -> dict[str, int]:
    """The invariants, read back from the store, over slots [first, last]."""
    counts = {"signed": 0, "failed": 0}
    parent = None
    head = await store.latest_signed_block(ROLLUP)
    assert head is not None
    for slot in range(first, last + 1):
        result = await store.get_result(ROLLUP, slot)
        signed = await store.get_signed_block(ROLLUP, slot)
        failed = await store.get_failed_slot(ROLLUP, slot)
        # No gap: every slot has exactly one outcome, signed or recorded as failed.
        assert (signed is None) != (failed is None), f"slot {slot}: signed {signed} failed {failed}"
        if signed is not None:
            counts["signed"] += 1
            assert result is not None and signed.block == result.block
            verify_signed_block(signed, world.committee)
            # One chain: each signed block extends the previous signed one.
            if parent is not None:
                assert signed.block.parent_hash == parent, f"slot {slot} forks the chain"
            parent = signed.block.block_hash
        else:
            counts["failed"] += 1
        # No member gave partials for two different blocks of the slot: a second signed block
        # could never have been assembled.
        roots: dict[int, set[bytes]] = {}
        for p in await store.list_partials(ROLLUP, slot):
            roots.setdefault(p.member, set()).add(p.signing_root)
        assert all(len(r) == 1 for r in roots.values()), f"slot {slot}: {roots}"
    assert await store.list_evidence(ROLLUP, before=None, limit=10) == []
    # Every acknowledged bid of the checked slots is in its slot's log.
    by_slot: dict[int, set[tuple[str, str]]] = {}
    for searcher, slot, bundle_hash in world.acked:
        if first <= slot <= last:
            by_slot.setdefault(slot, set()).add((searcher, bundle_hash))
    for slot, wanted in by_slot.items():
        logged = {(e.event.searcher, e.event.bundle_hash)
                  for e in await store.read_log(ROLLUP, slot) if isinstance(e.event, Bid)}
        assert wanted <= logged, f"slot {slot} lost acknowledged bids: {wanted - logged}"
    counts["acked"] = sum(len(v) for v in by_slot.values())
    assert parent is None or parent != ZERO_HASH
    return counts


async def test_sigkilled_closers_are_taken_over_and_every_slot_has_one_outcome(
    tmp_path: Path, store_url: str
) -> None:
    world = World(tmp_path, store_url)
    store = RedisStore(store_url)
    await store.connect()
    bidders: list[asyncio.Task[None]] = []
    closed_ms: dict[int, int] = {}  # killed slot -> its result stored, ms after its deadline
    signed_ms: dict[int, int] = {}  # killed slot -> its outcome published, ms after deadline
    killed: list[int] = []
    try:
        engines = await world.start()
        first = open_slot() + 1
        bidders = [asyncio.create_task(world.bid_forever(100 + s)) for s in range(3)]
        while len(killed) < KILLS:
            i, slot = await engines.next_pause(max(killed, default=first))
            engines.signal(i, signal.SIGKILL)  # mid-close: logs closed, results not stored
            engines.start(i)  # it rejoins once started; the others carry on meanwhile
            if await store.get_result(ROLLUP, slot) is not None:
                await engines.wait_ready([i])
                continue  # the kill came after the pause: not a kill mid-close, not counted
            killed.append(slot)
            deadline_ms = compute_deadline_ms(CLOCK, slot)
            closed = await world.closed_time(store, slot, 3 * SLOT_MS / 1000, signed=False)
            closed_ms[slot] = closed - deadline_ms
            published = await world.closed_time(store, slot, 6 * SLOT_MS / 1000, signed=True)
            signed_ms[slot] = published - deadline_ms
            await engines.wait_ready([i])  # a follower for the next kill
        world.stop.set()
        await asyncio.gather(*bidders)
        last = open_slot() - 2
        await world.closed_time(store, last, 6 * SLOT_MS / 1000, signed=True)
        counts = await check_store(store, world, first, last)
        logs = b"".join(engines.log(i).read_bytes() for i in range(world.n_engines))
    finally:
        world.stop.set()
        for task in bidders:
            task.cancel()
        world.close()
        await store.aclose()
    # Each killed close was taken over by another process (a new fencing token) ...
    takeovers = [int(m) for m in re.findall(rb"slot (\d+): close taken over", logs)]
    assert set(killed) <= set(takeovers), (killed, takeovers)
    # ... and closed within the next slot: its result was stored before the next deadline.
    for slot, ms in closed_ms.items():
        assert ms <= SLOT_MS, f"slot {slot} closed {ms} ms after its deadline"
    print(f"\nfailover: killed the closer of slots {killed}; results stored {closed_ms} and "
          f"outcomes published {signed_ms} ms after the deadline; {counts}")


async def test_a_closer_stalled_past_its_lease_is_fenced_when_it_resumes(
    tmp_path: Path, fresh_redis: RedisServer
) -> None:
    world = World(tmp_path, fresh_redis.url)
    store = RedisStore(fresh_redis.url)
    await store.connect()
    bidders: list[asyncio.Task[None]] = []
    try:
        engines = await world.start()
        first = open_slot() + 1
        bidders = [asyncio.create_task(world.bid_forever(200 + s)) for s in range(2)]
        i, slot = await engines.next_pause(first)
        engines.signal(i, signal.SIGSTOP)  # stalled mid-close, past its lease
        assert await store.get_result(ROLLUP, slot) is None, "stopped after the pause"
        await world.closed_time(store, slot, 6 * SLOT_MS / 1000, signed=True)
        engines.signal(i, signal.SIGCONT)
        # The stale closer wakes up: its writes are refused, logged and counted; it follows.
        deadline = time.monotonic() + 30
        while b"close fenced: slot %d" % slot not in engines.log(i).read_bytes():
            assert time.monotonic() < deadline, engines.log(i).read_text()[-3000:]
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(timeout=5) as http:
            metrics = (await http.get(engines.url(i) + "/metrics")).text
        await asyncio.sleep(3 * SLOT_MS / 1000)  # it carries on closing and following slots
        assert engines.procs[i].poll() is None
        world.stop.set()
        await asyncio.gather(*bidders)
        last = open_slot() - 2
        await world.closed_time(store, last, 6 * SLOT_MS / 1000, signed=True)
        counts = await check_store(store, world, first, last)
    finally:
        world.stop.set()
        for task in bidders:
            task.cancel()
        world.close()
        await store.aclose()
    fenced = re.findall(r'blockspace_close_fenced_total\{where="(\w+)"\} (\d+)', metrics)
    assert sum(float(n) for _, n in fenced) >= 1, metrics
    result = counts["signed"] + counts["failed"]
    assert result == last - first + 1
    print(f"\nstalled closer of slot {slot}: fenced {fenced}; {counts}")
