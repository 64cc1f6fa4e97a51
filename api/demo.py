"""``blockspace demo``: the real engine and server on loopback, with simulated searchers.

Searchers sign real transactions and requests and talk to the server over real websocket and
HTTP connections. Back-runs of shared victim transactions and arbitrages on one hot pool make the
conflicts the auction exists to resolve.

With ``--rollups N`` (N > 1) the engine serves N rollups (distinct chain ids) in one auction per
slot: today's searchers are spread over the rollups, and cross-rollup arbitrageurs send atomic
bundles that buy on one rollup's hot pool and sell on another's (a real signed transaction for
each chain), competing with the single-rollup bundles on the same hot keys. Each slot prints one
line: the slot root the committee signed, every rollup's block, the cross-rollup bundles won and
their share of the slot's revenue.

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
from api.engine import Engine, compute_cross_payments
from api.searcher import (
    BundleEncryptor,
    SearcherKey,
    bundle_params,
    cross_bundle_params,
    encrypted_bundle_params,
)
from auction.slots import compute_deadline_ms, compute_slot_at
from auction.types import SlotResult
from committee.local import start_local_committee
from committee.threshold import CommitteeInfo
from node.server import server_options
from node.settings import Settings
from node.stores.memory import MemoryStore
from ordering import packer

GWEI = 10**9
POOL = "0x" + "aa" * 20
# The rollups of ``--rollups N``: the default rollup first, then these chain ids.
EXTRA_CHAIN_IDS = (10, 8453, 42161, 324, 59144, 534352, 81457)
MAX_DEMO_ROLLUPS = 1 + len(EXTRA_CHAIN_IDS)


# What each simulated searcher deposits when deposits are enforced (BLOCKSPACE_DEPOSITS=true).
DEMO_DEPOSIT_WEI = 100 * 10**18


def compute_demo_chain_ids(default_chain_id: int, rollups: int) -> list[int]:
    """The chain ids of a demo with ``rollups`` rollups: the default one, then distinct others."""
    if not 1 <= rollups <= MAX_DEMO_ROLLUPS:
        raise ValueError(f"--rollups must be 1..{MAX_DEMO_ROLLUPS}")
    others = [c for c in EXTRA_CHAIN_IDS if c != default_chain_id]
    return [default_chain_id, *others[: rollups - 1]]


# Cold compile of every kernel on the reference machine (2 shared cores): 47-57 s wall for the
# single-rollup kernels, 80-85 s with the joint kernels (decision 40).
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
    def __init__(self, index: int, chain_id: int, rng: random.Random, use_ws: bool,
                 committee: CommitteeInfo | None = None) -> None:  # fmt: skip
        self.key = SearcherKey.from_seed(index)
        self.chain_id = chain_id
        self.rng = rng
        self.use_ws = use_ws
        self.nonce = 0
        self.sent = 0
        self.errors: list[str] = []
        # With a committee, this searcher encrypts its bundles to the slot's key (--encrypt):
        # one encryptor per slot, so its bundles of a slot share one encapsulation.
        self.committee = committee
        self._encryptor: BundleEncryptor | None = None

    def encrypted(self, slot: int, body: bytes) -> bytes | None:
        """``bs_sendEncryptedBundle`` for ``body`` if this searcher encrypts, else None."""
        if self.committee is None:
            return None
        if self._encryptor is None or self._encryptor.slot != slot:
            self._encryptor = BundleEncryptor(self.committee, slot, searcher=self.key.address)
        params = encrypted_bundle_params(self._encryptor.encrypt(body))
        return self.key.request("bs_sendEncryptedBundle", [params])

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


class CrossArbitrageur:
    """A searcher arbitraging the hot pool between two rollups: each bundle buys on one rollup
    and sells on another, one real signed transaction per chain, atomic (both legs or none)."""

    def __init__(self, index: int, chain_ids: list[int], rng: random.Random, use_ws: bool) -> None:
        self.key = SearcherKey.from_seed(index)
        self.chain_ids = chain_ids
        self.rng = rng
        self.use_ws = use_ws
        self.nonces = dict.fromkeys(chain_ids, 0)
        self.sent = 0
        self.errors: list[str] = []

    def leg(self, chain_id: int, side: bytes) -> bytes:
        self.nonces[chain_id] += 1
        return self.key.sign_tx(
            type=2,
            chainId=chain_id,
            nonce=self.nonces[chain_id],
            maxPriorityFeePerGas=self.rng.randint(1, 50) * GWEI,
            maxFeePerGas=100 * GWEI,
            gas=self.rng.choice([90_000, 150_000]),
            to=POOL,
            value=0,
            data=side,
            # The same hot key the single-rollup searchers' pool transactions touch.
            accessList=[{"address": POOL, "storageKeys": ["0x" + "00" * 32]}],
        )

    def bundles_for(self, slot: int, victims: list[bytes]) -> list[dict]:
        out = []
        for _ in range(self.rng.randint(1, 2)):
            buy_on, sell_on = self.rng.sample(self.chain_ids, 2)
            legs = {buy_on: [self.leg(buy_on, b"buy")], sell_on: [self.leg(sell_on, b"sell")]}
            # An arbitrage pays for two blocks' worth of opportunity: bids run higher.
            bid = int(self.rng.paretovariate(1.5) * 2 * 10**15)
            out.append(cross_bundle_params(legs, slot, bid_wei=bid))
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
    rollups: int = 1,
    encrypt: bool = False,
    streaming: bool = True,
) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chain_ids = compute_demo_chain_ids(Settings().rollups[0], rollups)
    settings = Settings(
        slot_ms=slot_ms, port=port, rollups=chain_ids, committee_streaming=streaming
    )
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
    # --encrypt: every other searcher seals its bundles (issue 14; decision 113 and after)
    sims: list[SimulatedSearcher | CrossArbitrageur] = [
        SimulatedSearcher(
            i, chain_ids[i % len(chain_ids)], random.Random(seed * 1000 + i), i % 2 == 0,
            committee.committee if encrypt and i % 2 == 1 else None,
        )  # fmt: skip
        for i in range(searchers)
    ]
    arbs = max(2, searchers // 2) if len(chain_ids) > 1 else 0
    sims += [
        CrossArbitrageur(5000 + i, chain_ids, random.Random(seed * 1000 + 500 + i), i % 2 == 1)
        for i in range(arbs)
    ]
    if engine.escrow is not None:  # deposits enforced: the demo plays the bridge
        for sim in sims:
            await engine.escrow.credit_deposit(
                sim.key.address, DEMO_DEPOSIT_WEI, f"demo-{sim.key.address}", engine.now_ms()
            )
    results: list[SlotResult] = []
    done = asyncio.Event()
    first_slot = engine.open_slot() + 1
    pending: dict[int, list[SlotResult]] = {}

    async def on_result(r: SlotResult) -> None:
        if r.slot < first_slot:
            return
        results.append(r)
        if len(chain_ids) == 1:
            print(_slot_line(r, await committee.describe(r.rollup, r.slot)), flush=True)
            if len(results) >= slots:
                done.set()
            return
        # One line per slot, once every rollup's result is in (the hooks run rollup by rollup).
        got = pending.setdefault(r.slot, [])
        got.append(r)
        if len(got) < len(chain_ids):
            return
        del pending[r.slot]
        signed = await engine.store.get_signed_block(got[0].rollup, r.slot)
        root = "0x" + signed.slot_root.hex() if signed is not None else None
        line = _shared_slot_line(got, root, await committee.describe(got[0].rollup, r.slot))
        print(line, flush=True)
        if len(results) >= slots * len(chain_ids):
            done.set()

    engine.result_hooks.append(on_result)
    where = (
        f"rollup {chain_id}"
        if len(chain_ids) == 1
        else f"rollups {', '.join(map(str, chain_ids))} (one auction per slot, {arbs} "
        "cross-rollup arbitrageurs)"
    )
    print(
        f"blockspace demo: {searchers} searchers, {slots} slots of {slot_ms} ms, "
        f"{where}, server on 127.0.0.1:{port}, committee "
        f"{committee.committee.t} of {committee.committee.n} "
        f"({'signer processes' if signer_processes else 'in-process'})"
        + (f", {searchers // 2} searchers encrypting their bundles" if encrypt else "")
        + ("" if streaming else ", streaming re-checks off"),
        flush=True,
    )
    print(f"dashboard: {url}/dashboard", flush=True)
    await _drive_slots(engine, url, sims, chain_ids, first_slot, until=done, stop=stop)
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
    line = _summary_line(results, sims, sum(s is not None for s in signed))
    if encrypt:
        line += "; " + _sealed_summary(results)
    if len(chain_ids) > 1:
        line += "; " + _cross_summary(results, sims)
    print(line, flush=True)
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
    sims: list[SimulatedSearcher | CrossArbitrageur],
    chain_ids: list[int],
    first_slot: int,
    *,
    until: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Each open slot from ``first_slot`` on: the searchers' bundles (with fresh victim
    transactions of every rollup to back-run), then wait for the next slot, until ``until`` or
    ``stop``."""
    flows = {c: VictimFlow(c) for c in chain_ids}
    ws_url = url.replace("http://", "ws://") + "/ws"
    stop_task = asyncio.create_task(stop.wait())
    async with httpx.AsyncClient(base_url=url) as http:
        while not until.is_set() and not stop.is_set():
            slot = max(engine.open_slot(), first_slot)
            victims = {c: flow.next(3) for c, flow in flows.items()}
            await _send_slot_bids(http, ws_url, sims, slot, victims)
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
    sims: list[SimulatedSearcher | CrossArbitrageur],
    slot: int,
    victims: dict[int, list[bytes]],
) -> None:
    """Every simulated searcher's bundles for ``slot``: over HTTP one by one, or together over
    one websocket session. Refusals are kept per searcher for the summary."""
    frames_by_ws: list[str] = []
    for sim in sims:
        own = victims.get(sim.chain_id, []) if isinstance(sim, SimulatedSearcher) else []
        for params in sim.bundles_for(slot, own):
            body = sim.key.request("eth_sendBundle", [params])
            if isinstance(sim, SimulatedSearcher):
                body = sim.encrypted(slot, body) or body
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


def _shared_slot_line(results: list[SlotResult], root: str | None, committee: str) -> str:
    """One slot of several rollups: its signed slot root, each rollup's block (bids, winners,
    block hash), the cross-rollup bundles won and their share of the slot's revenue."""
    revenue = sum(r.block.revenue_wei for r in results)
    paid = compute_cross_payments(results)
    blocks = "  ".join(
        f"{r.rollup}: {len(r.outcomes)} bids {len(r.block.bundles)} won {r.block.block_hash[:10]}"
        for r in sorted(results, key=lambda r: r.rollup)
    )
    share = sum(paid.values()) / revenue if revenue else 0.0
    return (
        f"slot {results[0].slot}  root {(root or 'unsigned')[:14]}  {blocks}  "
        f"cross won {len(paid)} ({share:.1%} of revenue {_eth(revenue)})  {committee}"
    )


def _cross_summary(
    results: list[SlotResult], sims: list[SimulatedSearcher | CrossArbitrageur]
) -> str:
    by_slot: dict[int, list[SlotResult]] = {}
    for r in results:
        by_slot.setdefault(r.slot, []).append(r)
    paid = [compute_cross_payments(rs) for rs in by_slot.values()]
    revenue = sum(r.block.revenue_wei for r in results)
    cross = sum(sum(p.values()) for p in paid)
    sent = sum(s.sent for s in sims if isinstance(s, CrossArbitrageur))
    return (
        f"cross-rollup bundles {sent} sent, {sum(len(p) for p in paid)} won, "
        f"{cross / revenue if revenue else 0.0:.1%} of revenue"
    )


def _sealed_summary(results: list[SlotResult]) -> str:
    """How many bids came from encrypted bundles, opened after their slots' deadlines."""
    opened = [o for r in results for o in r.outcomes
              if b"bs_sendEncryptedBundle" in o.bid.evidence.body]  # fmt: skip
    won = sum(o.outcome == "won" for o in opened)
    return f"{len(opened)} bids opened from encrypted bundles, {won} won"


def _summary_line(
    results: list[SlotResult], sims: list[SimulatedSearcher | CrossArbitrageur], signed: int
) -> str:
    errors = [e for s in sims for e in s.errors]
    return (
        f"summary: {len({r.slot for r in results})} slots, "
        f"{sum(s.sent for s in sims)} bundles sent, "
        f"{sum(len(r.block.bundles) for r in results)} won, "
        f"{len(errors)} refused {sorted(set(errors))}, "
        f"revenue {_eth(sum(r.block.revenue_wei for r in results))}, "
        f"searchers {len(sims)}, signed {signed}/{len(results)}"
    )
