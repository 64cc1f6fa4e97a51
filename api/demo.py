"""``blockspace demo``: the real engine and server on loopback, with simulated searchers.

Searchers sign real transactions and requests and talk to the server over real websocket and
HTTP connections. Back-runs of shared victim transactions and arbitrages on one hot pool make the
conflicts the auction exists to resolve.

The first run on a machine compiles the solver (numba, cached afterwards): ``CompileReport``
prints its progress as it happens. ``--keep-serving`` leaves the server, engine and committee
up after the slots (the dashboard keeps working) until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import sys
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import TextIO

import httpx
import orjson
import uvicorn
import websockets
from fastapi import FastAPI

from api.app import build_engine, create_app
from api.engine import Engine
from api.searcher import SearcherKey, bundle_params
from auction.slots import compute_deadline_ms, compute_slot_at
from auction.types import SlotResult
from committee.local import start_local_committee
from node.server import server_options
from node.settings import Settings
from node.stores.memory import MemoryStore
from ordering import packer

GWEI = 10**9
POOL = "0x" + "aa" * 20


# Cold compile of every kernel on the reference machine (2 shared cores): 47-57 s wall for the
# single-rollup kernels, 80-85 s with the joint kernels (decision 35).
COMPILE_ESTIMATE_S = 80


class CompileReport:
    """Prints the solver's first-run compile progress (``packer.warm_up``'s progress hook).

    On a terminal one line is rewritten per kernel; into a pipe or file a line is printed when
    compiling starts and at every quarter. A warm start (everything loaded from numba's cache)
    prints nothing.
    """

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.out = out if out is not None else sys.stdout
        self.clock = clock
        self.tty = self.out.isatty()
        self.started_at: float | None = None
        self.last_quarter = -1

    def __call__(self, done: int, total: int) -> None:
        if self.started_at is None:
            self.started_at = self.clock()
        text = (
            f"compiling the solver (first run only, about {COMPILE_ESTIMATE_S} s): "
            f"{done}/{total} kernels"
        )
        if self.tty:
            self.out.write("\r" + text)
        else:
            quarter = 4 * done // max(total, 1)
            if quarter == self.last_quarter:
                return
            self.last_quarter = quarter
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        """End the progress line (if anything was compiled) with the time it took."""
        if self.started_at is None:
            return
        seconds = self.clock() - self.started_at
        self.out.write(
            ("\n" if self.tty else "")
            + f"compiled the solver in {seconds:.0f} s; later runs load it from the cache\n"
        )
        self.out.flush()


def compute_kernel_total(payment_rules: set[str]) -> int:
    """How many kernels ``packer.warm_up(payment_rules)`` compiles on a cold start."""
    return packer.compute_kernel_total(payment_rules)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo stops everything itself on Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.6f} ETH"


class SimulatedSearcher:
    def __init__(self, index: int, chain_id: int, rng: random.Random, use_ws: bool) -> None:
        self.key = SearcherKey.from_seed(index)
        self.chain_id = chain_id
        self.rng = rng
        self.use_ws = use_ws
        self.nonce = 0
        self.sent = 0
        self.errors: list[str] = []

    def own_tx(self, *, hot: bool) -> bytes:
        self.nonce += 1
        access = [{"address": POOL, "storageKeys": ["0x" + "00" * 32]}] if hot else []
        return self.key.sign_tx(
            type=2,
            chainId=self.chain_id,
            nonce=self.nonce,
            maxPriorityFeePerGas=self.rng.randint(1, 50) * GWEI,
            maxFeePerGas=100 * GWEI,
            gas=self.rng.choice([21_000, 90_000, 150_000, 400_000]),
            to="0x" + "bb" * 20,
            value=0,
            data=b"",
            accessList=access,
        )

    def bundles_for(self, slot: int, victims: list[bytes]) -> list[dict]:
        out = []
        for _ in range(self.rng.randint(1, 3)):
            kind = self.rng.random()
            if kind < 0.4 and victims:
                txs = [self.rng.choice(victims), self.own_tx(hot=False)]
            else:
                txs = [self.own_tx(hot=kind < 0.7)]
            bid = int(self.rng.paretovariate(1.5) * 10**15)
            uuid = str(uuidlib.UUID(int=self.rng.getrandbits(128)))
            out.append(bundle_params(txs, slot, bid_wei=bid, replacement_uuid=uuid))
        return out


async def _ws_session(url: str, frames: list[str]) -> list[dict]:
    replies: list[dict] = []
    async with websockets.connect(url) as ws:
        for f in frames:
            await ws.send(f)
        while len(replies) < len(frames):
            msg = orjson.loads(await ws.recv())
            if "id" in msg:
                replies.append(msg)
    return replies


async def run_demo(
    *,
    slots: int,
    slot_ms: int,
    searchers: int,
    seed: int,
    committee_size: int = 4,
    signer_processes: bool = False,
    keep_serving: bool = False,
) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(slot_ms=slot_ms, port=port)
    stop = _stop_on_signals()
    # Compile the solver first (once per machine), with progress, before anything waits on it;
    # the committee's and the engine's own warm-ups then find it compiled.
    rules = {r.policy.payment_rule for r in settings.rollup_configs().values()}
    report = CompileReport()
    await asyncio.to_thread(packer.warm_up, rules, report)
    report.finish()
    engine = build_engine(settings, MemoryStore())
    # The signing committee: in-process members, or real signer processes on loopback.
    committee = await start_local_committee(
        engine, settings, n=committee_size, processes=signer_processes
    )
    chain_id = engine.default_rollup
    server, server_task = await _serve(create_app(settings, engine=engine), settings)
    await engine.start()
    sims = [
        SimulatedSearcher(i, chain_id, random.Random(seed * 1000 + i), i % 2 == 0)
        for i in range(searchers)
    ]
    results: list[SlotResult] = []
    done = asyncio.Event()
    first_slot = engine.open_slot() + 1

    async def on_result(r: SlotResult) -> None:
        if r.slot < first_slot:
            return
        results.append(r)
        print(_slot_line(r, await committee.describe(r.rollup, r.slot)), flush=True)
        if len(results) >= slots:
            done.set()

    engine.result_hooks.append(on_result)
    print(
        f"blockspace demo: {searchers} searchers, {slots} slots of {slot_ms} ms, "
        f"rollup {chain_id}, server on 127.0.0.1:{port}, committee "
        f"{committee.committee.t} of {committee.committee.n} "
        f"({'signer processes' if signer_processes else 'in-process'})",
        flush=True,
    )
    print(f"dashboard: {url}/dashboard", flush=True)
    await _drive_slots(engine, url, sims, first_slot, until=done, stop=stop)
    if keep_serving and not stop.is_set():
        print(
            f"serving {url} (dashboard: {url}/dashboard); "
            "slots continue without searchers; Ctrl-C stops",
            flush=True,
        )
        await stop.wait()
    await engine.stop()
    signed = [await engine.store.get_signed_block(r.rollup, r.slot) for r in results]
    await committee.aclose()
    server.should_exit = True
    await server_task
    print(_summary_line(results, sims, sum(s is not None for s in signed)), flush=True)
    return 0


async def _serve(app: FastAPI, settings: Settings) -> tuple[_Server, asyncio.Task[None]]:
    """Serve ``app`` on loopback at ``settings.port``; return once it is listening."""
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            lifespan="on",
            **server_options(settings),
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task


async def _drive_slots(
    engine: Engine,
    url: str,
    sims: list[SimulatedSearcher],
    first_slot: int,
    *,
    until: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Each open slot from ``first_slot`` on: the searchers' bundles (with fresh victim
    transactions to back-run), then wait for the next slot, until ``until`` or ``stop``."""
    victims = VictimFlow(engine.default_rollup)
    ws_url = url.replace("http://", "ws://") + "/ws"
    stop_task = asyncio.create_task(stop.wait())
    async with httpx.AsyncClient(base_url=url) as http:
        while not until.is_set() and not stop.is_set():
            slot = max(engine.open_slot(), first_slot)
            await _send_slot_bids(http, ws_url, sims, slot, victims.next(3))
            # Wait for the next slot to open.
            next_open = compute_deadline_ms(engine.clock, slot)
            waiter = asyncio.create_task(until.wait())
            await asyncio.wait(
                [waiter, stop_task],
                timeout=max(0.0, next_open - engine.now_ms()) / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            if compute_slot_at(engine.clock, engine.now_ms()) <= slot:
                await asyncio.sleep(0.01)
    stop_task.cancel()


def _stop_on_signals() -> asyncio.Event:
    """An event Ctrl-C / SIGTERM sets: the demo stops the slots (or the serving) and shuts down
    in order; a second signal gets Python's default behaviour (KeyboardInterrupt, termination)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal() -> None:
        stop.set()
        for sig in signals:
            loop.remove_signal_handler(sig)

    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    return stop


class VictimFlow:
    """Ordinary users' swaps on the hot pool: the transactions searchers back-run."""

    def __init__(self, chain_id: int) -> None:
        self.key = SearcherKey.from_seed(10_000)
        self.chain_id = chain_id
        self.nonce = 0

    def next(self, count: int) -> list[bytes]:
        txs = []
        for _ in range(count):
            self.nonce += 1
            txs.append(
                self.key.sign_tx(
                    type=2,
                    chainId=self.chain_id,
                    nonce=self.nonce,
                    maxPriorityFeePerGas=GWEI,
                    maxFeePerGas=50 * GWEI,
                    gas=120_000,
                    to=POOL,
                    value=0,
                    data=b"\x01",
                )
            )
        return txs


async def _send_slot_bids(
    http: httpx.AsyncClient,
    ws_url: str,
    sims: list[SimulatedSearcher],
    slot: int,
    victims: list[bytes],
) -> None:
    """Every simulated searcher's bundles for ``slot``: over HTTP one by one, or together over
    one websocket session. Refusals are kept per searcher for the summary."""
    frames_by_ws: list[str] = []
    for sim in sims:
        for params in sim.bundles_for(slot, victims):
            body = sim.key.request("eth_sendBundle", [params])
            sim.sent += 1
            if sim.use_ws:
                frames_by_ws.append(sim.key.ws_frame(body))
                continue
            resp = await http.post(
                "/",
                content=body,
                headers={
                    "X-Flashbots-Signature": sim.key.sign_body(body),
                    "Content-Type": "application/json",
                },
            )
            reply = resp.json()
            if "error" in reply:
                sim.errors.append(reply["error"]["data"]["code"])
    for reply in await _ws_session(ws_url, frames_by_ws):
        if "error" in reply:
            sims[0].errors.append(reply["error"]["data"]["code"])


def _slot_line(r: SlotResult, committee: str) -> str:
    b = r.block
    gap = (r.upper_bound_wei - r.winning_bids_wei) / max(r.upper_bound_wei, 1)
    return (
        f"slot {r.slot}  bids {len(r.outcomes):3d}  winners {len(b.bundles):2d}  "
        f"revenue {_eth(b.revenue_wei)}  gas {b.gas_used:>10,}  "
        f"bound gap {gap:6.2%}  block {b.block_hash[:14]}  {committee}"
    )


def _summary_line(results: list[SlotResult], sims: list[SimulatedSearcher], signed: int) -> str:
    errors = [e for s in sims for e in s.errors]
    return (
        f"summary: {len(results)} slots, {sum(s.sent for s in sims)} bundles sent, "
        f"{sum(len(r.block.bundles) for r in results)} won, "
        f"{len(errors)} refused {sorted(set(errors))}, "
        f"revenue {_eth(sum(r.block.revenue_wei for r in results))}, "
        f"searchers {len(sims)}, signed {signed}/{len(results)}"
    )
