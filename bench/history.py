"""Auction history at scale on Redis: data API latency, stats, memory per bid, intake under paging.

    .venv/bin/python -m bench.history [--slots 10000] [--bids 100] [--samples 200] [--repeat 3]

What it does, all on this machine:
1. Starts its own redis-server (temp dir, free port; never the one on 6379), AOF everysec.
2. Fills it through the real write path: for each slot, bids without real ECDSA (made directly as
   ``Bid`` values, realistic sizes) -> ``compute_slot_result`` (the real solver) ->
   ``compute_slot_history`` -> ``RedisStore.save_result(result, history=...)``, the one Lua
   script the engine runs at close. ~3% refusals are filed per slot as the engine files them.
3. Memory: ``used_memory`` before/after, and ``MEMORY USAGE`` summed per key family, per bid.
4. Serves it with ``blockspace serve`` (a separate process, uvicorn on loopback) and measures
   each endpoint sequentially with one keep-alive client: p50/p99 over ``--samples`` requests
   (pages walked with their cursors), medians over ``--repeat`` runs.
5. Intake: ``--writers`` tasks appending bids through ``RedisStore.append_bid`` (the engine's
   store path, group-committed) for ``--seconds``, alone and while a pager process walks
   /v1/data/bids and /v1/data/slots pages (paced at ``--pager-rate`` pages/s, and unthrottled).
   Medians over ``--repeat`` runs, interleaved.

``--keep`` leaves the filled redis-server running (it prints its URL); ``--reuse URL`` measures
such a server again without refilling it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from auction import constants as C
from auction.history import BidRecord, SlotHistory, compute_slot_history
from auction.presets import MAINNET, Rollup
from auction.results import compute_slot_result
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from auction.types import Bid, Cancel, Evidence, LoggedEvent, SlotResult, Tx
from node.stores import keys
from node.stores.base import IntakeLimits
from node.stores.redis import RedisStore

ROLLUP = 167_001
SLOT_MS = 2_000
CLOCK = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
# A fairness cap that binds for the busiest searchers, so the price of fairness is not always 0.
# The solver's budget only changes how long the fill takes, not what the history stores.
POLICY = MAINNET.policy.with_(max_gas_share_per_searcher=0.15, time_budget_ms=1)
RULES = Rollup(ROLLUP, "bench", POLICY)
WIDE = IntakeLimits(max_bundles=10**9, max_bytes=10**12)
GAS_CHOICES = (21_000, 60_000, 120_000, 250_000, 500_000, 900_000)
REFUSAL_CODES = ("bid_too_low", "slot_closed", "rate_limited", "invalid_transaction")


# --- data ---------------------------------------------------------------------------------------


def searchers(n: int) -> tuple[list[str], list[float]]:
    """``n`` addresses with Zipf-like activity (the busiest sends ~15% of the bids)."""
    addresses = [f"0x{i:04x}" + "5e" * 18 for i in range(n)]
    weights = [1 / (i + 1) ** 1.1 for i in range(n)]
    return addresses, weights


def make_events(rng: random.Random, slot: int, n: int, n_searchers: int) -> list[Bid | Cancel]:
    """``n`` bids for ``slot`` with realistic sizes (one 110-400 byte tx, the signed JSON body)."""
    addresses, weights = searchers(n_searchers)
    start = compute_deadline_ms(CLOCK, slot) - SLOT_MS
    events: list[Bid | Cancel] = []
    for k in range(n):
        searcher = rng.choices(addresses, weights)[0]
        raw = rng.randbytes(rng.randint(110, 400))
        gas = rng.choice(GAS_CHOICES)
        bid_wei = int(gas * rng.lognormvariate(math.log(5e9), 0.8))  # ~5 gwei per gas
        uuid = f"{rng.randrange(4):032x}" if rng.random() < 0.1 else None
        body = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": k,
                "method": "eth_sendBundle",
                "params": [
                    {"txs": ["0x" + raw.hex()], "blockNumber": hex(slot), "bid": str(bid_wei)}
                ],
            }
        )
        tx = Tx(
            raw=raw,
            hash="0x" + rng.randbytes(32).hex(),
            tx_type=2,
            chain_id=ROLLUP,
            sender=searcher,
            nonce=k,
            gas_limit=gas,
            priority_fee_wei=2 * 10**9,
            max_fee_wei=100 * 10**9,
            to="0x" + "bb" * 20,
        )
        events.append(
            Bid(
                bid_id="0x" + rng.randbytes(32).hex(),
                rollup=ROLLUP,
                slot=slot,
                searcher=searcher,
                bundle_hash="0x" + rng.randbytes(32).hex(),
                txs=(tx,),
                bid_wei=bid_wei,
                gas=gas,
                received_ms=start + rng.randrange(SLOT_MS),
                evidence=Evidence(body, f"{searcher}:0x{rng.randbytes(65).hex()}"),
                replacement_uuid=uuid,
                explicit_bid=True,
            )
        )
        if uuid is not None and rng.random() < 0.2:
            events.append(
                Cancel(ROLLUP, searcher, uuid, start + rng.randrange(SLOT_MS), Evidence(b"{}", "x"))
            )
    return events


def build_slot(args: tuple[int, int, int, int]) -> tuple[SlotResult, SlotHistory]:
    """One closed slot (worker process): the real auction, then its history with refusals."""
    slot, n, n_searchers, seed = args
    rng = random.Random(seed * 1_000_003 + slot)
    start_ms = compute_deadline_ms(CLOCK, slot) - SLOT_MS
    events = make_events(rng, slot, n, n_searchers)
    log = [LoggedEvent(f"{start_ms + i}-0", ev) for i, ev in enumerate(events)]
    result = compute_slot_result(
        RULES, slot, compute_deadline_ms(CLOCK, slot), "0x" + "00" * 32, log
    )
    addresses, weights = searchers(n_searchers)
    refusals = [
        BidRecord(
            rollup=ROLLUP,
            slot=slot,
            searcher=rng.choices(addresses, weights)[0],
            bundle_hash="0x" + rng.randbytes(32).hex(),
            bid_wei=rng.randrange(10**15),
            gas=None,
            received_ms=compute_deadline_ms(CLOCK, slot) - rng.randrange(SLOT_MS),
            outcome=C.OUTCOME_REJECTED,
            code=rng.choice(REFUSAL_CODES),
            tx_count=1,
        )
        for _ in range(max(0, round(rng.gauss(n * 0.03, 1))))
    ]
    history = compute_slot_history(
        result,
        refusals,
        recorded_ms=compute_deadline_ms(CLOCK, slot) + 5,
        gas_limit=POLICY.gas_limit,
    )
    return result, history


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A redis-server we own, in a temp dir, on a free port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--logfile", str(workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: _pong(self.port), "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def wait_for(ready: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start in {timeout_s:.0f} s")
        time.sleep(0.05)


def start_server(redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--store", redis_url, "--appendfsync", "unmanaged", "--rollup", str(ROLLUP),
         "--slot-ms", str(SLOT_MS)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, "blockspace serve")
    return proc, base


# --- fill and memory --------------------------------------------------------------------------


async def fill(url: str, slots: range, bids: int, n_searchers: int, seed: int) -> tuple[int, float]:
    """Write every slot's result and history; returns (bids recorded, seconds)."""
    # A long socket timeout: the fill is not measured, and must not die on a busy host.
    store = RedisStore(url, appendfsync="unmanaged", socket_timeout_s=60)
    await store.connect()
    loop = asyncio.get_running_loop()
    recorded = 0
    t0 = time.perf_counter()
    workers = max(1, (os.cpu_count() or 2))
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        pending: set[asyncio.Future[tuple[SlotResult, SlotHistory]]] = set()
        todo = iter(slots)
        in_flight = 4 * workers

        def submit() -> bool:
            slot = next(todo, None)
            if slot is None:
                return False
            pending.add(loop.run_in_executor(pool, build_slot, (slot, bids, n_searchers, seed)))
            return True

        for _ in range(in_flight):
            submit()
        done_slots = 0
        while pending:
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                pending.discard(fut)
                result, history = fut.result()
                await store.save_result(result, history=history)
                recorded += len(history.bids)
                done_slots += 1
                submit()
                if done_slots % 1000 == 0:
                    print(f"  filled {done_slots:,} slots, {recorded:,} bids", flush=True)
    seconds = time.perf_counter() - t0
    await store.aclose()
    return recorded, seconds


async def memory_report(url: str) -> dict[str, int]:
    """MEMORY USAGE summed over every key, by family."""
    store = RedisStore(url, appendfsync="unmanaged", socket_timeout_s=60)
    await store.connect()
    r = store.redis
    families: dict[str, int] = {}
    batch: list[bytes] = []

    async def flush() -> None:
        pipe = r.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(batch, await pipe.execute(), strict=True):
            parts = key.decode().split(":")
            family = ":".join(parts[2:4]) if parts[2] == "history" else parts[2]
            families[family] = families.get(family, 0) + int(used or 0)
        batch.clear()

    async for key in r.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await flush()
    if batch:
        await flush()
    families["used_memory"] = int((await r.info("memory"))["used_memory"])
    await store.aclose()
    return families


# --- latency ------------------------------------------------------------------------------------


def walk(client: httpx.Client, path: str, params: dict[str, Any], n: int) -> list[float]:
    """``n`` pages of ``path`` following next_cursor (from the top again at the end)."""
    samples = []
    cursor = None
    for _ in range(n):
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        t0 = time.perf_counter()
        r = client.get(path, params=q)
        samples.append(time.perf_counter() - t0)
        r.raise_for_status()
        cursor = r.json()["next_cursor"]
    return samples


def each(client: httpx.Client, paths: Iterator[str]) -> list[float]:
    samples = []
    for path in paths:
        t0 = time.perf_counter()
        r = client.get(path)
        samples.append(time.perf_counter() - t0)
        r.raise_for_status()
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure_latency(
    base: str, slots: range, samples: int, seed: int
) -> dict[str, tuple[float, float]]:
    """(p50, p99) in ms per endpoint: pages walked with their cursors, or random slots."""
    rng = random.Random(seed)
    addresses, _ = searchers(200)
    top, rare = addresses[0], addresses[150]
    few = max(10, samples // 10)
    last = slots.stop - 1

    def pages(path: str, **params: Any) -> Callable[[httpx.Client], list[float]]:
        return lambda c: walk(c, path, {**params, "limit": 100}, samples)

    def paths(make: Callable[[], str], n: int = samples) -> Callable[[httpx.Client], list[float]]:
        return lambda c: each(c, (make() for _ in range(n)))

    def csv_path() -> str:
        s = rng.choice(slots[:-10])
        return f"/v1/data/export/bids.csv?rollup={ROLLUP}&from_slot={s}&to_slot={s + 9}"

    runs: dict[str, Callable[[httpx.Client], list[float]]] = {
        "slots page (100)": pages("/v1/data/slots", rollup=ROLLUP),
        "slot detail (~100 bids)": paths(lambda: f"/v1/data/slots/{ROLLUP}/{rng.choice(slots)}"),
        "bids by rollup (100)": pages("/v1/data/bids", rollup=ROLLUP),
        "bids by slot (100)": paths(lambda: f"/v1/data/bids?slot={rng.choice(slots)}&limit=100"),
        "bids by busiest searcher (100)": pages("/v1/data/bids", searcher=top),
        "bids by rare searcher (100)": pages("/v1/data/bids", searcher=rare),
        "bids won (100)": pages("/v1/data/bids", outcome="won"),
        "bids rejected (100)": pages("/v1/data/bids", outcome="rejected"),
        "searcher record": paths(lambda: f"/v1/data/searchers/{rng.choice(addresses)}"),
        f"stats ({len(slots):,} slots)": paths(
            lambda: f"/v1/data/stats?rollup={ROLLUP}&from_slot={slots.start}&to_slot={last}", few
        ),
        "CSV of bids, 10 slots": paths(csv_path, few),
    }
    out: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=base, timeout=30) as c:
        c.get("/v1/data/slots", params={"limit": 1}).raise_for_status()  # warm the connection
        for name, run in runs.items():
            got = run(c)
            out[name] = (pct(got, 0.50), pct(got, 0.99))
    return out


# --- intake under paging -------------------------------------------------------------------------


async def intake(url: str, slot: int, seconds: float, writers: int, seed: int) -> float:
    """Bids acknowledged per second through RedisStore.append_bid (group commit)."""
    store = RedisStore(url, appendfsync="unmanaged")
    await store.connect()
    rng = random.Random(seed)
    events = [e for e in make_events(rng, slot, 4000, 200) if isinstance(e, Bid)]
    done = 0
    end = time.perf_counter() + seconds

    async def writer(i: int) -> None:
        nonlocal done
        k = i
        while time.perf_counter() < end:
            bid = events[k % len(events)]
            # A fresh bid id each time: a resent id is answered from the index, not appended
            await store.append_bid(
                Bid(**{**_fields(bid), "bid_id": f"0x{slot:016x}{k:048x}"}), WIDE
            )
            done += 1
            k += writers

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    rate = done / (time.perf_counter() - t0)
    await store.aclose()
    return rate


def _fields(bid: Bid) -> dict[str, Any]:
    return {f: getattr(bid, f) for f in Bid.__dataclass_fields__}


def pager(base: str, rate: float, seconds: float) -> None:
    """Walk /v1/data/bids and /v1/data/slots pages of 100 (``rate`` pages/s; 0: unthrottled)."""
    end = time.monotonic() + seconds
    cursors: dict[str, str | None] = {"/v1/data/bids": None, "/v1/data/slots": None}
    pages = 0
    start = time.monotonic()
    with httpx.Client(base_url=base, timeout=30) as c:
        while time.monotonic() < end:
            path = "/v1/data/bids" if pages % 2 == 0 else "/v1/data/slots"
            q: dict[str, Any] = {"rollup": ROLLUP, "limit": 100}
            if cursors[path]:
                q["cursor"] = cursors[path]
            r = c.get(path, params=q)
            r.raise_for_status()
            cursors[path] = r.json()["next_cursor"]
            pages += 1
            if rate > 0:  # paced: page k goes out at start + k / rate
                time.sleep(max(0.0, start + pages / rate - time.monotonic()))
    print(pages, flush=True)


def intake_with_pager(
    url: str, base: str, slot: int, seconds: float, writers: int, rate: float | None, seed: int
) -> tuple[float, float, float]:
    """(intake bids/s, pager pages/s, redis main thread busy fraction); ``rate`` None: no pager."""
    proc = None
    if rate is not None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.history", "--pager", base, "--pager-rate", str(rate),
             "--seconds", str(seconds + 1)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(0.5)  # the pager is walking before intake starts
    cpu_before = redis_cpu_s(url)
    t0 = time.perf_counter()
    bids_per_s = asyncio.run(intake(url, slot, seconds, writers, seed))
    redis_busy = (redis_cpu_s(url) - cpu_before) / (time.perf_counter() - t0)
    pages_per_s = 0.0
    if proc is not None:
        out, _ = proc.communicate(timeout=60)
        pages_per_s = int(out.split()[-1]) / (seconds + 1)
    return bids_per_s, pages_per_s, redis_busy


def pager_alone(url: str, base: str, seconds: float) -> tuple[float, float]:
    """(pages/s, redis CPU ms per page) of an unthrottled pager with no intake running."""
    cpu_before = redis_cpu_s(url)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.history", "--pager", base, "--pager-rate", "0",
         "--seconds", str(seconds)],
        capture_output=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    pages = int(proc.stdout.split()[-1])
    return pages / seconds, (redis_cpu_s(url) - cpu_before) * 1000 / max(pages, 1)


def redis_cpu_s(url: str) -> float:
    """CPU seconds the redis-server has used (its main thread, user + system)."""
    import redis

    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


# --- report --------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    slots: range,
    recorded: int,
    families: dict[str, int],
    before: int | None,
    runs: list[dict[str, tuple[float, float]]],
    intake_runs: dict[str, list[tuple[float, float, float]]],
    modes: dict[str, float | None],
) -> None:
    history = sum(v for k, v in families.items() if k.startswith("history"))
    results = families.get("result", 0) + families.get("results", 0)
    print()
    print(f"history: {len(slots):,} slots, {recorded:,} bids")
    delta = (
        f", used_memory delta {(families['used_memory'] - before) / recorded:.0f} B"
        if before is not None
        else ""
    )
    print(
        f"memory per bid: history {history / recorded:.0f} B, result JSON {results / recorded:.0f}"
        f" B{delta}"
    )
    for family, used in sorted(families.items(), key=lambda kv: -kv[1]):
        if family != "used_memory" and used > 100_000:
            print(f"  {family:<28} {used / 1e6:9.1f} MB  {used / recorded:7.1f} B/bid")
    print()
    print(f"latency, one client, medians of {args.repeat} runs x {args.samples} requests:")
    print(f"  {'endpoint':<34} {'p50 ms':>8} {'p99 ms':>8}")
    for name in runs[0]:
        p50 = statistics.median(r[name][0] for r in runs)
        p99 = statistics.median(r[name][1] for r in runs)
        print(f"  {name:<34} {p50:8.2f} {p99:8.2f}")
    print()
    print(
        f"intake through RedisStore.append_bid, {args.writers} writers, {args.seconds:g} s runs"
        f" (medians of {args.repeat}):"
    )
    alone = statistics.median(r[0] for r in intake_runs["alone"])
    for mode, got in intake_runs.items():
        rate = statistics.median(r[0] for r in got)
        pages = statistics.median(r[1] for r in got)
        busy = statistics.median(r[2] for r in got)
        extra = f", pager {pages:,.0f} pages/s" if modes[mode] is not None else ""
        print(
            f"  {mode:<26} {rate:10,.0f} bids/s  ({rate / alone:6.1%} of alone), "
            f"redis busy {busy:5.1%}{extra}"
        )


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=10_000)
    parser.add_argument("--bids", type=int, default=100, help="bids per slot")
    parser.add_argument("--searchers", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200, help="requests per endpoint and run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="each intake run")
    parser.add_argument("--writers", type=int, default=256, help="concurrent intake tasks")
    parser.add_argument("--pager-rate", type=float, default=20.0, help="paced pager, pages/s")
    parser.add_argument("--pager", help=argparse.SUPPRESS)  # internal: run as the pager process
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the filled redis-server up")
    parser.add_argument("--reuse", metavar="URL", help="measure a server filled by --keep")
    args = parser.parse_args()
    if args.pager:
        pager(args.pager, args.pager_rate, args.seconds)
        return

    if args.reuse:
        measure(args, args.reuse, None)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-history-"))
    redis = RedisProcess(workdir)
    try:
        now_slot = compute_slot_at(CLOCK, int(time.time() * 1000))
        # Slots ahead of the clock: the served engine's newest result is then in the future, so
        # it closes nothing (no catch-up, no new slots) while the bench measures.
        slots = range(now_slot + 10**5, now_slot + 10**5 + args.slots)
        before = asyncio.run(memory_report(redis.url))["used_memory"]
        print(f"filling {args.slots:,} slots x {args.bids} bids into {redis.url} ...", flush=True)
        recorded, fill_s = asyncio.run(fill(redis.url, slots, args.bids, args.searchers, args.seed))
        print(f"filled in {fill_s:.0f} s")
        measure(args, redis.url, before)
    finally:
        if args.keep:
            print(f"redis-server kept: {redis.url} (pid {redis.proc.pid}, dir {workdir})")
        else:
            redis.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, url: str, before: int | None) -> None:
    """Memory, latency and intake figures of a filled server."""
    families = asyncio.run(memory_report(url))
    slots, recorded = asyncio.run(filled(url))
    server, base = start_server(url)
    try:
        runs = [
            measure_latency(base, slots, args.samples, args.seed + i) for i in range(args.repeat)
        ]
        modes = {
            "alone": None,
            f"paced pager ({args.pager_rate:g}/s)": args.pager_rate,
            "unthrottled pager": 0.0,
        }
        intake_runs: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
        # Slots the served engine never closes during the bench, new in every run (a bid id
        # appended twice would be answered from the index, not appended)
        far = slots.stop + 10**7 + (int(time.time()) % 100_000) * 100
        for i in range(args.repeat):  # interleaved, so drifts hit every mode alike
            for j, (mode, rate) in enumerate(modes.items()):
                slot = far + 10 * i + j
                run = intake_with_pager(
                    url, base, slot, args.seconds, args.writers, rate, args.seed + i
                )
                intake_runs[mode].append(run)
        alone_pager = [pager_alone(url, base, args.seconds) for _ in range(args.repeat)]
        report(args, slots, recorded, families, before, runs, intake_runs, modes)
        pages_s = statistics.median(p for p, _ in alone_pager)
        cpu_ms = statistics.median(c for _, c in alone_pager)
        print(
            f"  pager alone (no intake)    {pages_s:10,.0f} pages/s, redis CPU {cpu_ms:.2f} ms/page"
        )
        print(f"host load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        server.terminate()
        server.wait(timeout=30)


async def filled(url: str) -> tuple[range, int]:
    """The slot range with a history in a filled server, and how many bids it holds."""
    store = RedisStore(url, appendfsync="unmanaged")
    await store.connect()
    first = await store.list_history_slots(
        ROLLUP, from_slot=None, to_slot=None, limit=1, descending=False
    )
    last = await store.list_history_slots(ROLLUP, from_slot=None, to_slot=None, limit=1)
    recorded = int(await store.redis.xlen(keys.history_bids(ROLLUP)))
    await store.aclose()
    return range(first[0], last[0] + 1), recorded


if __name__ == "__main__":
    main()
