"""Deadline-to-published latency of signed blocks with real signer processes on this machine.

    .venv/bin/python -m bench.committee_latency [--n 10] [--t 7] [--sizes 100 2000]
        [--samples 12] [--repeat 3] [--slot-ms 2000] [--path both|whole|streaming]
        [--stream-check full|sample] [--sealed] [--shared-rollups R [--same-space]]

By default (``--path both``) it runs two deployments of n signer processes each, alternating
repeats: the whole-log path (each member re-checks the closed slot's log at the deadline,
proposal version 5) and the streaming path (members follow the open slot's log and check each
event as it arrives; at the deadline the proposal carries only the tail, version 7;
docs/committee.md), and prints p50/p99 of deadline -> published for both and their ratio.
``--path whole`` or ``streaming`` runs one deployment as before (with the one-member-alone
figure).

Starts n ``blockspace signer`` processes on loopback and an engine (memory store) in this
process with the coordinator attached, then for each slot: appends that many real signed bids
(real transactions; only the request bodies are re-signed per slot), waits for the deadline,
closes the slot and times until the signed block is published. Prints, per slot size, the
median over repeats of p50 and p99 of deadline -> published, and where the time went (medians):
the engine's close, building the proposal, members re-checking and signing (their own wall
times, under contention for the cores), the coordinator verifying the partials, and the CPU
every signer process and the engine's process spent from the deadline to the signed block
(with the wall-time floor it implies on this machine's cores). Each fresh deployment first
runs one untimed slot (its processes' first slot is not the steady state) and prints what it
took (decision 167). For scale it
also times one member checking the same proposal alone in this process (no contention), which
is what a deployment with one member per host pays.

With ``--shared-rollups R`` (issue 13's target), each size is run twice in the same run, on two
deployments each with its own n signer processes (started together, used in alternating
repeats): today's single rollup with that many bids, and R rollups under one signed slot root
with the same total, ``--cross-share`` of the bundles spanning two rollups (one bid each, a copy
in each spanned rollup's log) and the rest split evenly. It prints p50/p99 of deadline -> signed
slot root for both, the ratio shared / single, and both breakdowns. ``--same-space`` adds a
deployment (its own n signer processes, in the same alternation): one rollup whose gas limit is
R times the preset's, fed the single rollup's bids, so the shared slot is also compared with a
single rollup of the same block space (the shared slot has R gas limits, and so more winners);
the ratio printed is then shared / each other deployment. Every deployment's table also gives
the median per slot of the winning entries in its blocks (a cross-rollup bundle is an entry in
each block it wins in; distinct bundles in brackets) and of the gas they use.

With ``--sealed`` (issue 14's figure), each size is run on two deployments in the same run: the
plaintext bids, and the same bundles sent encrypted to the committee's slot key
(``bs_sendEncryptedBundle``; ``size / 10`` searchers, every searcher's bids of a slot under one
encapsulation), so the close also has the members commit to the ciphertext set, release their
key shares, and the engine and every member open and validate every bid. ``--path whole`` or
``streaming`` picks the path both deployments use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from api.engine import Engine
from api.searcher import BundleEncryptor, SearcherKey, bundle_params, encrypted_bundle_params
from auction.bundles import compute_bid, compute_bid_id
from auction.intake import compute_intake_event
from auction.results import compute_slot_result
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, Evidence, LoggedEvent, SealedBid
from committee import keyfiles, threshold
from committee.coordinator import Coordinator, HttpMember
from committee.local import SignerProcesses, compute_settings_env, write_committee_files
from committee.member import Member
from committee.proposal import Proposal, compute_slot_proposal, encode_proposal
from committee.protection import ProtectionStore
from committee.records import FAILED_KEY_NOT_RELEASED
from committee.reopening import compute_sealed_context
from committee.signer import compute_member_config
from node.metrics import Metrics
from node.settings import Settings
from node.stores.base import IntakeLimits, Store
from node.stores.memory import MemoryStore
from ordering import packer

ROLLUP = 167_001
GWEI = 10**9
WIDE = IntakeLimits(max_bundles=10**9, max_bytes=10**12)


# Engines whose untimed warm-up slots have run (``run_size``), and how many slots that is.
_WARMED: set[Engine] = set()
WARM_UP_SLOTS = 1

# Every group of signer processes this run started: stopped however the run ends (an error,
# Ctrl-C, SIGTERM), so that no signer outlives the benchmark.
_STARTED: list[SignerProcesses] = []


def start_signers(procs: SignerProcesses) -> None:
    """Start ``procs`` (registered first, so that any exit stops them)."""
    _STARTED.append(procs)
    procs.start_all()


def stop_signers() -> None:
    """Stop every signer process this run started (stopping twice is harmless)."""
    while _STARTED:
        _STARTED.pop().stop_all()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM unwinds the run as Ctrl-C does: every ``finally`` runs, signers included."""
    raise KeyboardInterrupt(f"signal {signum}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


class BidPool:
    """``size`` signed bundles whose transactions are signed once; per slot only the request
    body is re-signed (the Bid is exactly what ``compute_bid`` derives for that slot)."""

    def __init__(
        self,
        size: int,
        settings: Settings,
        seed: int = 1,
        rollup: int = ROLLUP,
        searchers: int | None = None,
    ) -> None:
        rng = random.Random(seed)
        count = searchers if searchers is not None else max(8, size // 25)
        keys = [SearcherKey.from_seed(1_000 + i) for i in range(count)]
        rollups = settings.rollup_configs()
        self.settings = settings
        self.templates: list[tuple[SearcherKey, list[bytes], int, Bid]] = []
        clock = Engine(
            store=MemoryStore(),
            rollups=rollups,
            preset=settings.base_preset(),
            slot_ms=settings.slot_ms,
        ).clock
        slot0 = (int(time.time() * 1000) - settings.genesis_ms) // settings.slot_ms + 1
        nonces: dict[str, int] = {}
        for i in range(size):
            # Heavy-tailed by default; every searcher bidding when a count is asked for.
            k = (keys[i % count] if searchers is not None
                 else keys[int(rng.paretovariate(1.2)) % count])  # fmt: skip
            txs = []
            for _ in range(rng.choice((1, 1, 2))):
                nonces[k.address] = nonces.get(k.address, 0) + 1
                hot = rng.random() < 0.5
                access = (
                    [
                        {
                            "address": "0x" + "aa" * 20,
                            "storageKeys": ["0x" + f"{rng.randrange(40):064x}"],
                        }
                    ]
                    if hot
                    else []
                )
                txs.append(
                    k.sign_tx(
                        type=2,
                        chainId=rollup,
                        nonce=nonces[k.address],
                        maxPriorityFeePerGas=rng.randint(1, 40) * GWEI,
                        maxFeePerGas=200 * GWEI,
                        gas=rng.choice((21_000, 90_000, 150_000, 400_000)),
                        to="0x" + "bb" * 20,
                        value=0,
                        data=b"",
                        accessList=access,
                    )
                )
            bid_wei = int(rng.paretovariate(1.5) * 10**15) + i
            params = bundle_params(txs, slot0, bid_wei=bid_wei)
            body = k.request("eth_sendBundle", [params])
            template = compute_bid(
                params,
                searcher=k.address,
                evidence=Evidence(body, k.sign_body(body)),
                rollups=rollups,
                clock=clock,
                now_ms=compute_slot_start_ms(clock, slot0),
                max_slots_ahead=settings.base_preset().max_slots_ahead,
            )
            self.templates.append((k, txs, bid_wei, template))

    def bids_for(self, slot: int, now_ms: int) -> list[Bid]:
        out = []
        for k, txs, bid_wei, template in self.templates:
            body = k.request("eth_sendBundle", [bundle_params(txs, slot, bid_wei=bid_wei)])
            evidence = Evidence(body, k.sign_body(body))
            out.append(
                dataclasses.replace(
                    template,
                    slot=slot,
                    evidence=evidence,
                    bid_id=compute_bid_id(evidence),
                    received_ms=now_ms,
                )
            )
        return out

    async def log(self, store: Store, slot: int, now_ms: int) -> None:
        """Log this pool's bids for ``slot`` as intake would."""
        for bid in self.bids_for(slot, now_ms):
            await store.append_bid(bid, WIDE)


class SealedPool:
    """The bundles of a ``BidPool``, each sent encrypted (``bs_sendEncryptedBundle``) to the
    committee's key for the slot, every searcher's bids of a slot under one encapsulation
    (issue 14's case: 2,000 bids from 200 searchers). Per slot, each bundle is encrypted anew
    and its call signed; the engine's intake rules derive the ``SealedBid`` it logs."""

    def __init__(self, plain: BidPool, committee: threshold.CommitteeInfo) -> None:
        self.plain = plain
        self.committee = committee
        config = compute_member_config(plain.settings, committee, 1)
        self.context = compute_sealed_context(config, ROLLUP)

    def sealed_for(self, slot: int, now_ms: int) -> list[SealedBid]:
        encryptors: dict[str, BundleEncryptor] = {}
        out = []
        for k, txs, bid_wei, _ in self.plain.templates:
            enc = encryptors.setdefault(
                k.address, BundleEncryptor(self.committee, slot, searcher=k.address)
            )
            body = k.request("eth_sendBundle", [bundle_params(txs, slot, bid_wei=bid_wei)])
            call = k.request("bs_sendEncryptedBundle",
                             [encrypted_bundle_params(enc.encrypt(body))])  # fmt: skip
            event = compute_intake_event(call, k.sign_body(call), now_ms, self.context)
            if not isinstance(event, SealedBid):
                raise RuntimeError(f"intake refused a bench bid: {event}")
            out.append(event)
        return out

    async def log(self, store: Store, slot: int, now_ms: int) -> None:
        for sealed in self.sealed_for(slot, now_ms):
            await store.append_sealed_bid(sealed, WIDE)


async def run_size(
    engine: Engine,
    coordinator: Coordinator,
    pool: BidPool | SealedPool | list[Any],
    samples: int,
    cross: Any = None,
) -> list[dict[str, Any]]:
    """Time ``samples`` slots of ``len(pool.templates)`` bids (or of every pool's, and the
    cross-rollup bundles of ``cross``, a ``bench.shared_slot.CrossPool``); one record per slot."""
    pools = pool if isinstance(pool, list) else [pool]
    out = []
    if engine not in _WARMED:
        # A deployment's first slots after its processes start are not the steady state the
        # target is about (first connections, first proposal in each member, first close):
        # run them untimed, and say what they took.
        _WARMED.add(engine)
        first = await run_size(engine, coordinator, pool, WARM_UP_SLOTS, cross)
        print("  untimed warm-up slot(s) of a fresh deployment, deadline -> published: "
              + ", ".join(f"{r.get('deadline_to_published_ms', float('nan')):.0f} ms"
                          for r in first), flush=True)  # fmt: skip
    for _ in range(samples):
        slot = engine.open_slot() + 1
        start = compute_slot_start_ms(engine.clock, slot)
        await asyncio.sleep(max(0.0, (start - engine.now_ms()) / 1000 + 0.005))
        for p in pools:
            await p.log(engine.store, slot, engine.now_ms())
        copies = cross.copies_for(slot, engine.now_ms()) if cross is not None else []
        for i in range(0, len(copies), 2):  # CrossPool's bundles span two rollups
            await engine.store.append_bid_copies(copies[i : i + 2], [WIDE, WIDE])
        deadline = compute_deadline_ms(engine.clock, slot)
        await asyncio.sleep(max(0.0, (deadline - time.time() * 1000) / 1000))
        t0 = time.time()
        cpu0 = compute_cpu_ms()
        await engine.close_or_fail(slot)  # as the engine's clock closes it
        cpu1 = compute_cpu_ms()
        failed = await engine.store.get_failed_slot(ROLLUP, slot)
        if failed is not None and failed.reason == FAILED_KEY_NOT_RELEASED:
            # Fewer than t key releases by the signing deadline: published as failed; counted,
            # not timed
            detail = f"released by {list(failed.valid)}, no answer from {list(failed.missing)}"
            out.append({"status": "key_not_released", "detail": detail, "members": {},
                        "proposal_bytes": 0})  # fmt: skip
            continue
        done_ms = (time.time() - deadline / 1000) * 1000
        timing = dict(coordinator.timings[-1])
        timing["deadline_to_published_ms"] = done_ms
        timing["late_start_ms"] = (t0 * 1000) - deadline
        # CPU spent from the deadline to the signed block: every signer process (ten members on
        # two cores make the window CPU-bound) and this process (engine and coordinator)
        timing["cpu_members_ms"] = sum(v - cpu0.get(k, 0.0) for k, v in cpu1.items() if k)
        timing["cpu_engine_ms"] = cpu1[0] - cpu0[0]
        # After the clock stops: what the slot's blocks hold (the timings count bids, not winners)
        timing.update(await compute_winners(engine.store, timing["rollups"], slot))
        out.append(timing)
    return out


def compute_cpu_ms() -> dict[int, float]:
    """CPU ms used so far by every signer process this run started (by pid) and by this
    process (key 0). Linux ``/proc``; clock-tick resolution (10 ms per process)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for procs in _STARTED:
        for p in procs.procs.values():
            try:
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited
            out[p.pid] = (int(fields[11]) + int(fields[12])) * 1000 / tick
    t = os.times()
    out[0] = (t.user + t.system) * 1000
    return out


async def compute_winners(store: Store, rollups: list[int], slot: int) -> dict[str, int]:
    """The winning entries of ``slot``'s stored blocks over ``rollups`` (a cross-rollup bundle
    is one in each block it wins in), the distinct bundles among them, and the gas they use."""
    entries = 0
    bundles: set[str] = set()
    gas = 0
    for rollup in rollups:
        result = await store.get_result(rollup, slot)
        if result is None:
            continue
        entries += len(result.block.bundles)
        bundles.update(b.bid_id for b in result.block.bundles)
        gas += sum(b.gas for b in result.block.bundles)
    return {"winners": entries, "winning_bundles": len(bundles), "winners_gas": gas}


def member_phase(records: list[dict[str, Any]], phases: tuple[str, ...]) -> float:
    """Median over slots of the median member's time in ``phases`` (members that answered)."""
    per_slot = []
    for r in records:
        sums = [sum(m.get(p, 0.0) for p in phases) for m in r["members"].values()]
        if sums:
            per_slot.append(statistics.median(sums))
    return statistics.median(per_slot) if per_slot else float("nan")


def alone_ms(
    pool: BidPool,
    settings: Settings,
    committee: threshold.CommitteeInfo,
    share: threshold.KeyShare,
    workdir: Path,
    engine: Engine,
) -> dict[str, float]:
    """One member checking one proposal of this size in this process, without contention."""
    slot = engine.open_slot() + 3
    log = tuple(
        LoggedEvent(f"{i}-0", b)
        for i, b in enumerate(pool.bids_for(slot, compute_slot_start_ms(engine.clock, slot)))
    )
    t0 = time.perf_counter()
    result = compute_slot_result(
        settings.rollup_configs()[ROLLUP],
        slot,
        compute_deadline_ms(engine.clock, slot),
        "0x" + "00" * 32,
        log,
    )
    engine_ms = (time.perf_counter() - t0) * 1e3
    part = Proposal(committee.committee_id, ROLLUP, slot, result.block, None, (), log)
    body = encode_proposal(compute_slot_proposal(committee.committee_id, slot, [part]))
    member = Member(
        share,
        compute_member_config(settings, committee, share.index),
        ProtectionStore(workdir / f"alone-{slot}.sqlite3"),
        evidence_sample=settings.signer_evidence_sample,
        clock_ms=lambda: compute_deadline_ms(engine.clock, slot) + 1,
    )
    t0 = time.perf_counter()
    reply = member.sign_proposal(body)
    total = (time.perf_counter() - t0) * 1e3
    return {
        "engine_result_ms": engine_ms,
        "member_total_ms": total,
        **reply.timings_ms,
        "proposal_mb": len(body) / 1e6,
    }


async def main_async(args: argparse.Namespace) -> None:
    if args.shared_rollups:
        await main_shared(args)
        return
    if args.sealed:
        await main_sealed(args)
        return
    if args.path == "both":
        await main_paths(args)
        return
    t = args.t or threshold.default_threshold(args.n)
    settings = Settings(
        slot_ms=args.slot_ms,
        rollups=[ROLLUP],
        genesis_ms=0,
        committee_streaming=args.path == "streaming",
        signer_stream_check=args.stream_check,
    )
    packer.warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-committee-") as tmp:
        workdir = Path(tmp)
        committee_path, share_paths = write_committee_files(workdir, args.n, t)
        committee = keyfiles.read_committee_file(committee_path)
        share = keyfiles.read_share_file(share_paths[0])[0]
        procs = SignerProcesses(share_paths, env=compute_settings_env(settings))
        start_signers(procs)
        try:
            await asyncio.to_thread(procs.wait_ready, None, 300)
            engine = Engine(
                store=MemoryStore(),
                rollups=settings.rollup_configs(),
                preset=settings.base_preset(),
                slot_ms=settings.slot_ms,
                metrics=Metrics(),
            )
            client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=args.n))
            coordinator = Coordinator(
                engine,
                committee,
                [HttpMember(i, u, client) for i, u in enumerate(procs.urls, start=1)],
                signing_window_ms=settings.slot_ms,
                owned_client=client,
                streaming=settings.committee_streaming,
            )
            coordinator.attach()
            await engine.start(run_clock=False)
            print(
                f"committee {t} of {args.n} signer processes, slots of {args.slot_ms} ms, "
                f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            for size in args.sizes:
                pool = BidPool(size, settings)
                rounds = []
                for _ in range(args.repeat):
                    rounds.append(await run_size(engine, coordinator, pool, args.samples))
                report(size, rounds, alone_ms(pool, settings, committee, share, workdir, engine))
            await engine.stop()
            await coordinator.aclose()
        finally:
            procs.stop_all()


@contextlib.asynccontextmanager
async def running(
    args: argparse.Namespace, deployments: tuple[Deployment, ...], path: str
) -> AsyncIterator[None]:
    """Start every deployment's signer processes and engine and print the run's header; stop
    them all however the run ends (the signers even if an engine fails to start)."""
    for d in deployments:
        start_signers(d.procs)
    try:
        for d in deployments:
            await d.start()
        print(
            f"committee {deployments[0].t} of {args.n} signer processes per deployment, slots "
            f"of {args.slot_ms} ms, {path}, {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} at start",
            flush=True,
        )
        yield
        print(f"load average at end {os.getloadavg()[0]:.1f}", flush=True)
        for d in deployments:
            await d.stop()
    finally:
        for d in deployments:
            d.procs.stop_all()


class Deployment:
    """An engine (memory store) serving ``rollups`` with its coordinator and n real signer
    processes configured for the same rollups."""

    def __init__(
        self,
        args: argparse.Namespace,
        rollups: list[int],
        workdir: Path,
        streaming: bool = False,
        gas_limit: int | None = None,
    ) -> None:
        self.t = args.t or threshold.default_threshold(args.n)
        self.streaming = streaming
        # gas_limit: every rollup's, in the engine and the signers alike (None: the preset's)
        self.settings = Settings(
            slot_ms=args.slot_ms,
            rollups=rollups,
            genesis_ms=0,
            committee_streaming=streaming,
            signer_stream_check=args.stream_check,
            gas_limit=gas_limit,
        )
        committee_path, share_paths = write_committee_files(workdir, args.n, self.t)
        self.committee = keyfiles.read_committee_file(committee_path)
        self.procs = SignerProcesses(share_paths, env=compute_settings_env(self.settings))
        self.n = args.n

    async def start(self) -> None:
        await asyncio.to_thread(self.procs.wait_ready, None, 300)
        s = self.settings
        self.engine = Engine(
            store=MemoryStore(),
            rollups=s.rollup_configs(),
            preset=s.base_preset(),
            slot_ms=s.slot_ms,
            metrics=Metrics(),
        )
        client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=self.n))
        self.coordinator = Coordinator(
            self.engine,
            self.committee,
            [HttpMember(i, u, client) for i, u in enumerate(self.procs.urls, start=1)],
            signing_window_ms=s.slot_ms,
            owned_client=client,
            streaming=self.streaming,
        )
        self.coordinator.attach()
        await self.engine.start(run_clock=False)

    async def stop(self) -> None:
        await self.engine.stop()
        await self.coordinator.aclose()


async def main_paths(args: argparse.Namespace) -> None:
    """The whole-log path (proposal version 5) and the streaming path (members follow the open
    slot's log; version 7) on two deployments of n signer processes each, alternating."""
    packer.warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-committee-paths-") as tmp:
        old = Deployment(args, [ROLLUP], Path(tmp) / "whole")
        new = Deployment(args, [ROLLUP], Path(tmp) / "streaming", streaming=True)
        async with running(args, (old, new), f"streaming check {args.stream_check}"):
            for size in args.sizes:
                pool = BidPool(size, old.settings)
                rounds: dict[str, list[list[dict[str, Any]]]] = {"whole": [], "streaming": []}
                for i in range(args.repeat):  # alternate, so both see the same load drift
                    order = [("whole", old), ("streaming", new)]
                    for name, d in order if i % 2 == 0 else reversed(order):
                        rounds[name].append(
                            await run_size(d.engine, d.coordinator, pool, args.samples)
                        )
                print(f"\n=== {size} bids/slot: whole log at the deadline vs streaming ===")
                report_pair(size, rounds, "deadline -> published", "whole", "streaming")


async def main_shared(args: argparse.Namespace) -> None:
    """Single rollup vs ``--shared-rollups`` rollups under one slot root, the same total bids."""
    from bench.shared_slot import ROLLUPS, CrossPool

    ids = [ROLLUP, *(r for r in ROLLUPS if r != ROLLUP)][: args.shared_rollups]
    packer.warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-committee-shared-") as tmp:
        # --path both: both streaming, and the single rollup's whole-log path (the engine as it
        # was when issue 13 set its target) as a third deployment, in the same run.
        on = args.path != "whole"
        single = Deployment(args, [ROLLUP], Path(tmp) / "single", streaming=on)
        shared = Deployment(args, ids, Path(tmp) / "shared", streaming=on)
        deployments = {"single": single}
        gas = single.settings.base_preset().policy.gas_limit
        space = ""
        if args.same_space:
            # One rollup with the block space of the shared slot's R rollups together
            deployments[f"single, {len(ids)}x gas"] = Deployment(
                args, [ROLLUP], Path(tmp) / "same-space", streaming=on, gas_limit=len(ids) * gas
            )
            space = f", and {ROLLUP} alone with {len(ids)} x {gas / 1e6:.0f}M gas"
        deployments["shared"] = shared  # last: report_group's ratios are shared / each other
        if args.path == "both":
            whole = Deployment(args, [ROLLUP], Path(tmp) / "whole", streaming=False)
            deployments = {"single, whole log": whole, **deployments}
        path = {"both": "streaming (and one whole-log single)", "streaming": "streaming"}
        async with running(args, tuple(deployments.values()), path.get(args.path, "whole log")):
            for size in args.sizes:
                n_cross = int(size * args.cross_share)
                rest = (size - n_cross) // len(ids)
                # Also the same-space deployment's bids: BidPool uses its settings for the clock
                # and for refusing bundles over the policy's limits, and a larger gas limit only
                # admits more, so the very same bids are valid there
                one_pool = BidPool(size, single.settings)
                pools = [
                    BidPool(
                        rest + (i < (size - n_cross) % len(ids)),
                        shared.settings,
                        seed=7 + i,
                        rollup=r,
                    )
                    for i, r in enumerate(ids)
                ]
                cross = CrossPool(n_cross, shared.settings, tuple(ids))
                rounds: dict[str, list[list[dict[str, Any]]]] = {k: [] for k in deployments}
                for _ in range(args.repeat):  # alternate, so all see the same load drift
                    for k, d in deployments.items():
                        bids = (pools, cross) if d is shared else (one_pool, None)
                        rounds[k].append(
                            await run_size(d.engine, d.coordinator, bids[0], args.samples, bids[1])
                        )
                print(
                    f"\n=== {size} bids in total: single rollup {ROLLUP} vs {len(ids)} rollups "
                    f"{ids} ({n_cross} cross-rollup bundles = {args.cross_share:.0%}, "
                    f"{rest} single-rollup bids per rollup{space}) ==="
                )
                report_group(size, rounds, "deadline -> signed slot root", list(deployments))


async def main_sealed(args: argparse.Namespace) -> None:
    """Plaintext bids vs the same bundles encrypted (issue 14): two deployments of n signer
    processes each, the same path (``--path whole|streaming``), alternating repeats."""
    packer.warm_up()
    on = args.path == "streaming"
    with tempfile.TemporaryDirectory(prefix="bench-committee-sealed-") as tmp:
        plain = Deployment(args, [ROLLUP], Path(tmp) / "plaintext", streaming=on)
        sealed = Deployment(args, [ROLLUP], Path(tmp) / "encrypted", streaming=on)
        async with running(args, (plain, sealed), "streaming" if on else "whole log"):
            for size in args.sizes:
                searchers = max(1, size // 10)
                pool = BidPool(size, plain.settings, searchers=searchers)
                pools: dict[str, BidPool | SealedPool] = {
                    "plaintext": pool,
                    "encrypted": SealedPool(pool, sealed.committee),
                }
                deployments = {"plaintext": plain, "encrypted": sealed}
                rounds: dict[str, list[list[dict[str, Any]]]] = {k: [] for k in pools}
                for i in range(args.repeat):  # alternate, so both see the same load drift
                    order = list(pools) if i % 2 == 0 else list(reversed(pools))
                    for name in order:
                        d = deployments[name]
                        rounds[name].append(
                            await run_size(d.engine, d.coordinator, pools[name], args.samples)
                        )
                print(
                    f"\n=== {size} bids/slot from {searchers} searchers: plaintext vs the "
                    f"same bundles encrypted (one encapsulation per searcher and slot) ==="
                )
                report_pair(size, rounds, "deadline -> published", "plaintext", "encrypted")


def report_pair(
    size: int, rounds: dict[str, list[list[dict[str, Any]]]], what: str, base: str, other: str
) -> None:
    """Two deployments measured in one run: p50/p99 of each, their ratio, then each report."""
    report_group(size, rounds, what, [base, other])


def report_group(
    size: int, rounds: dict[str, list[list[dict[str, Any]]]], what: str, names: list[str]
) -> None:
    """Deployments measured in one run: p50/p99 of each, the last one's ratio to each of the
    others, then each report."""
    p = {k: compute_p50_p99(v) for k, v in rounds.items()}
    # winners: median per slot of the blocks' entries (distinct bundles) and the gas they use
    print(f"  {what:<34} p50        p99      winners (bundles)     gas")
    for k in names:
        w = compute_winners_median(rounds[k])
        print(
            f"    {k:<30} {p[k][0]:7.0f} ms {p[k][1]:7.0f} ms {w[0]:7.0f} ({w[1]:7.0f}) "
            f"{w[2] / 1e6:7.1f}M"
        )
    last = names[-1]
    for base in names[:-1]:
        ratio = f"ratio {last} / {base}"
        print(
            f"    {ratio:<30} {p[last][0] / p[base][0]:7.2f}    {p[last][1] / p[base][1]:7.2f}",
            flush=True,
        )
    for k in names:
        print(f"  --- {k} ---")
        report(size, rounds[k], None)


def compute_winners_median(rounds: list[list[dict[str, Any]]]) -> tuple[float, float, float]:
    """Medians over every signed slot of its winning entries, distinct winning bundles and
    their gas (``compute_winners``)."""
    signed = [r for rnd in rounds for r in rnd if r.get("status") == "signed" and "winners" in r]
    if not signed:
        return (float("nan"),) * 3
    return tuple(  # type: ignore[return-value]
        statistics.median(r[k] for r in signed)
        for k in ("winners", "winning_bundles", "winners_gas")
    )


def compute_p50_p99(rounds: list[list[dict[str, Any]]]) -> tuple[float, float]:
    """Median over repeats of p50 and of p99 of deadline -> published (slots whose key was not
    released, which publish nothing, are left out and counted by ``report``)."""
    timed = [[r["deadline_to_published_ms"] for r in rnd if "deadline_to_published_ms" in r]
             for rnd in rounds]  # fmt: skip
    timed = [t for t in timed if t] or [[float("nan")]]
    return tuple(  # type: ignore[return-value]
        statistics.median(percentile(t, q) for t in timed) for q in (50, 99)
    )


def report(size: int, rounds: list[list[dict[str, Any]]], alone: dict[str, float] | None) -> None:
    records = [r for rnd in rounds for r in rnd]
    signed = [r for r in records if r["status"] == "signed"]
    p50, p99 = compute_p50_p99(rounds)

    def med(key: str) -> float:
        values = [r[key] for r in signed if key in r]
        return statistics.median(values) if values else float("nan")

    total = med("deadline_to_published_ms")
    close = med("close_done_after_deadline_ms")
    proposal = med("proposal_ms")
    collect = med("collect_ms")
    recheck = member_phase(signed, ("decode", "checks", "evidence", "repack"))
    sign = member_phase(signed, ("sign",))
    # the coordinator's checks of the partials on the critical path: since decision 151 the
    # combination of the first t and its one verification (each partial alone only when that
    # fails); before, each partial as it arrived, without the combine
    verify = med("verify_ms")
    cpu_members, cpu_engine = med("cpu_members_ms"), med("cpu_engine_ms")
    winners, bundles, gas = compute_winners_median(rounds)
    print(
        f"\n{size} bids/slot: {len(signed)}/{len(records)} slots signed, proposal "
        f"{statistics.median(r['proposal_bytes'] for r in signed or records) / 1e6:.2f} MB, "
        f"median {winners:.0f} winning entries ({bundles:.0f} bundles, {gas / 1e6:.1f}M gas)"
    )
    failed = [r for r in records if r["status"] == "key_not_released"]
    if failed:
        print(f"  {len(failed)} slot(s) failed, key not released in the signing window: "
              f"{failed[0]['detail']}")  # fmt: skip
    print(
        f"  deadline -> published: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"(median over {len(rounds)} repeats of {len(rounds[0])} slots)"
    )
    print(f"  median breakdown of {total:.0f} ms:")
    for name, value in [
        ("engine close (log, slot result, history, store)", close),
        ("build + encode proposal", proposal),
        ("collect t partials (wall, send -> t-th valid)", collect),
        ("  member re-check: decode+checks+evidence+repack", recheck),
        ("  member sign: partial + fsync of protection", sign),
        ("coordinator verify partials (combined)", verify),
    ]:
        print(f"    {name:<52} {value:8.1f} ms  {value / total:6.1%}")
    print(
        f"    CPU from the deadline to the signed block: {cpu_members:.0f} ms in the signer "
        f"processes, {cpu_engine:.0f} ms in the engine's (on {os.cpu_count()} cores: at least "
        f"{(cpu_members + cpu_engine) / (os.cpu_count() or 1):.0f} ms of wall)"
    )
    if alone is None:
        names = sorted(
            {
                k
                for r in signed
                for m in r["members"].values()
                for k in m
                if isinstance(m.get(k), (int, float))
            }
        )
        detail = {k: round(member_phase(signed, (k,)), 1) for k in names}
        print(f"    member phases, median member (ms): {detail}", flush=True)
        return
    print(
        "  one member alone (no contention, this process): "
        f"{alone['member_total_ms']:.0f} ms = decode {alone['decode']:.0f} + checks "
        f"{alone['checks']:.0f} + evidence {alone['evidence']:.0f} + repack "
        f"{alone['repack']:.0f} + sign {alone['sign']:.0f}; engine slot result "
        f"{alone['engine_result_ms']:.0f} ms"
    )
    print(
        f"  contention ratio (member re-check+sign under load / alone): "
        f"{(recheck + sign) / max(alone['member_total_ms'], 1e-9):.1f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--t", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--samples", type=int, default=12, help="slots per repeat and size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slot-ms", type=int, default=2000, dest="slot_ms")
    parser.add_argument(
        "--shared-rollups",
        type=int,
        default=0,
        dest="shared_rollups",
        help="also run R rollups under one slot root with the same total bids",
    )
    parser.add_argument(
        "--cross-share",
        type=float,
        default=0.2,
        dest="cross_share",
        help="share of the shared slot's bundles spanning two rollups",
    )
    parser.add_argument(
        "--same-space",
        action="store_true",
        dest="same_space",
        help="with --shared-rollups R, also run one rollup with R times the gas limit, fed the "
        "single rollup's bids",
    )
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="plaintext vs the same bundles encrypted (issue 14), one run",
    )
    parser.add_argument(
        "--path",
        choices=("both", "whole", "streaming"),
        default="both",
        help="both: the whole-log and the streaming path side by side (one "
        "rollup); with --shared-rollups, whether both deployments stream",
    )
    parser.add_argument(
        "--stream-check",
        choices=("full", "sample"),
        default="full",
        dest="stream_check",
        help="how a streaming member checks each event",
    )
    args = parser.parse_args()
    if args.same_space and not args.shared_rollups:
        parser.error("--same-space needs --shared-rollups R")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted: stopping the signer processes", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        stop_signers()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
