"""The engine's side of deadline -> proposal: ``Engine.close_slot`` on Redis, its slot followed.

    PYTHONPATH=. .venv/bin/python -m bench.engine_close [--cases single shared] [--slots 6]
        [--bids 2000] [--rollups 3] [--cross-share 0.2] [--tail-share 0.05]
        [--baseline REV [--rounds 4]] [--profile single|shared]

Starts its own redis-server (temp dir, free port, AOF everysec) per run and one engine on it
(``RedisStore``, no committee: a timing ``UnsignedChain`` marks when the close hands the slot to
its signer, the point where a coordinator would send the proposal). Per slot the bids (real signed
bundles, ``bench.committee_latency.BidPool``; ``shared``: ``--rollups`` rollups, the same total
bids, ``--cross-share`` of them cross-rollup, ``bench.shared_slot.CrossPool``, as
``bench.committee_latency --shared-rollups`` builds them) are logged in 10 bursts with a
follower round (``engine.follower.follow``) after each, as the engine's 100 ms loop would, then a
last ``--tail-share`` of them after the last round (what arrived in the last 100 ms: the tail the
follower has not read at the deadline); then the slot is closed (``close_or_fail``, as the clock
does). Timed per close: wall and CPU (this process, ``time.process_time``) from the close's start
to the signer's ``sign`` (``to sign``: what is on the critical path before the proposal) and to
the close's end (``whole``), the redis-server's CPU over the close (from /proc), and the close
phases the engine reports (``blockspace_slot_close_seconds``: close_log, build, store).

``--baseline REV``: the same script runs as a child in revision ``REV`` (exported with ``git
archive`` to ``/tmp/blockspace-baseline-<rev>``, numba cache warmed) and in this tree, ``--rounds``
rounds alternating the order, each child its own redis-server and the same slots and bids; prints
the medians of both and the ratios, and checks both built the same blocks (block hashes).
``--profile CASE``: a cProfile of one more close of that case (top 30 by cumulative time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from api.chain import ChainState
from api.engine import Engine, UnsignedChain
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import LoggedEvent, SlotResult
from bench.committee_latency import ROLLUP, WIDE, BidPool
from bench.history import RedisProcess
from bench.member_recheck import _baseline_tree
from bench.shared_slot import ROLLUPS, CrossPool
from node.metrics import Metrics
from node.settings import Settings
from node.stores.fencing import CloseLease
from node.stores.redis import RedisStore
from ordering import packer

SLOT_MS = 2_000
BURSTS = 10
PHASES = ("close_log", "build", "store")


class TimedChain(UnsignedChain):
    """``UnsignedChain`` that notes when the close hands it the slot (where a coordinator
    would build and send the proposal)."""

    def __init__(self, store: Any, chains: Mapping[int, ChainState]) -> None:
        super().__init__(store, chains)
        self.at: tuple[float, float] | None = None  # (perf_counter, process_time) at sign

    async def sign(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]],
        lease: CloseLease | None = None,
    ) -> None:
        self.at = (time.perf_counter(), time.process_time())
        await super().sign(results, entries, lease)


def _redis_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _phase_sums(metrics: Metrics) -> dict[str, float]:
    m = metrics.slot_close_seconds
    return {p: m.labels(p)._sum.get() for p in PHASES}


class Case:
    """One case's engine and bid pools."""

    def __init__(self, name: str, args: argparse.Namespace, url: str) -> None:
        self.name = name
        ids = [ROLLUP] if name == "single" else [ROLLUP, *(r for r in ROLLUPS if r != ROLLUP)][
            : args.rollups
        ]
        self.settings = Settings(slot_ms=SLOT_MS, rollups=ids, genesis_ms=0)
        self.now = 0
        self.metrics = Metrics()
        self.store = RedisStore(url, socket_timeout_s=60.0)
        self.engine = Engine(
            store=self.store,
            rollups=self.settings.rollup_configs(),
            preset=self.settings.base_preset(),
            slot_ms=SLOT_MS,
            clock_ms=lambda: self.now,
            metrics=self.metrics,
        )
        self.chain = TimedChain(self.store, self.engine.chains)
        self.engine.signer = self.chain
        if name == "single":
            self.pools = [BidPool(args.bids, self.settings)]
            self.cross: CrossPool | None = None
        else:
            n_cross = int(args.bids * args.cross_share)
            rest = (args.bids - n_cross) // len(ids)
            self.pools = [
                BidPool(rest + (i < (args.bids - n_cross) % len(ids)), self.settings, seed=7 + i,
                        rollup=r)
                for i, r in enumerate(ids)
            ]  # fmt: skip
            self.cross = CrossPool(n_cross, self.settings, tuple(ids))
        self.tail_share = args.tail_share

    async def close_one(
        self, slot: int, redis_pid: int, profile: cProfile.Profile | None = None
    ) -> dict[str, Any]:
        """Log ``slot``'s bids (followed in bursts, a tail unread), close it; the figures."""
        engine = self.engine
        self.now = compute_slot_start_ms(engine.clock, slot) + 1
        bids = [b for p in self.pools for b in p.bids_for(slot, self.now)]
        copies = self.cross.copies_for(slot, self.now) if self.cross is not None else []
        groups: list[list[Any]] = [[b] for b in bids] + [
            copies[i : i + 2] for i in range(0, len(copies), 2)
        ]
        # a fixed interleaving: single bids and cross bundles spread over the slot
        groups.sort(key=lambda g: hashlib.sha256(g[0].bid_id.encode()).digest())
        tail = int(len(groups) * self.tail_share)
        body, last = groups[: len(groups) - tail], groups[len(groups) - tail :]
        for k in range(BURSTS):
            for g in body[k * len(body) // BURSTS : (k + 1) * len(body) // BURSTS]:
                if len(g) == 1:
                    await self.store.append_bid(g[0], WIDE)
                else:
                    await self.store.append_bid_copies(g, [WIDE] * len(g))
            await engine.follower.follow(slot)
        for g in last:
            if len(g) == 1:
                await self.store.append_bid(g[0], WIDE)
            else:
                await self.store.append_bid_copies(g, [WIDE] * len(g))
        self.now = compute_deadline_ms(engine.clock, slot)
        before = _phase_sums(self.metrics)
        self.chain.at = None
        r0 = _redis_cpu_s(redis_pid)
        if profile is not None:
            profile.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        if not await engine.close_or_fail(slot):
            raise RuntimeError(f"slot {slot} was not closed")
        t1, c1 = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.disable()
        r1 = _redis_cpu_s(redis_pid)
        if self.chain.at is None:
            raise RuntimeError(f"slot {slot} was never handed to the signer (a failed close?)")
        ts, cs = self.chain.at
        after = _phase_sums(self.metrics)
        hashes = [engine.chains[r].head for r in sorted(engine.rollups)]  # the blocks built
        return {
            "to_sign_wall": (ts - t0) * 1e3,
            "to_sign_cpu": (cs - c0) * 1e3,
            "whole_wall": (t1 - t0) * 1e3,
            "whole_cpu": (c1 - c0) * 1e3,
            "redis_cpu": (r1 - r0) * 1e3,
            **{p: (after[p] - before[p]) * 1e3 for p in PHASES},
            "hashes": hashes,
            "entries": len(bids) + len(copies),
        }


FIGURES = ("to_sign_cpu", "to_sign_wall", "whole_cpu", "whole_wall", "redis_cpu", *PHASES)


async def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """Every case's ``--slots`` closes on a redis-server of this run's own."""
    packer.warm_up()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-engine-close-") as tmp:
        redis = RedisProcess(Path(tmp))
        try:
            for n, name in enumerate(args.cases):
                case = Case(name, args, redis.url)
                await case.store.connect()
                await case.engine.start(run_clock=False)
                rows = []
                base = 1_000 * (n + 1)
                await case.close_one(base, redis.proc.pid)  # warm: not counted
                for s in range(1, args.slots + 1):
                    rows.append(await case.close_one(base + s, redis.proc.pid))
                if args.profile == name:
                    prof = cProfile.Profile()
                    await case.close_one(base + args.slots + 1, redis.proc.pid, prof)
                    text = io.StringIO()
                    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(30)
                    print(text.getvalue(), file=sys.stderr)
                await case.engine.stop()
                await case.store.aclose()
                out[name] = {
                    "rows": [{k: r[k] for k in FIGURES} for r in rows],
                    "hashes": [h for r in rows for h in r["hashes"]],
                    "entries": rows[0]["entries"],
                }
        finally:
            redis.stop()
    return out


def _child(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--cases", *args.cases,
           "--slots", str(args.slots), "--bids", str(args.bids), "--rollups", str(args.rollups),
           "--cross-share", str(args.cross_share),
           "--tail-share", str(args.tail_share)]  # fmt: skip
    done = subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                          check=True, capture_output=True, text=True)  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _medians(runs: list[dict[str, Any]], case: str) -> dict[str, float]:
    return {k: statistics.median(r[k] for run in runs for r in run[case]["rows"]) for k in FIGURES}


def compare(args: argparse.Namespace) -> None:
    here = Path(__file__).resolve().parent.parent
    trees = {"baseline": _baseline_tree(args.baseline), "this tree": here}
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    for n in range(args.rounds):
        order = list(trees) if n % 2 == 0 else list(trees)[::-1]
        for name in order:
            runs[name].append(_child(trees[name], args))
        print(f"  round {n + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}",
              flush=True)  # fmt: skip
    print(f"engine close on Redis, medians of {args.rounds} rounds x {args.slots} slots per tree, "
          f"alternating; baseline {args.baseline}, this tree {head}; ms; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    for case in args.cases:
        same = all(a[case]["hashes"] == b[case]["hashes"]
                   for a, b in zip(runs["baseline"], runs["this tree"], strict=True))  # fmt: skip
        base, this = _medians(runs["baseline"], case), _medians(runs["this tree"], case)
        entries = runs["baseline"][0][case]["entries"]
        print(f"  {case} ({entries} log entries; same blocks in both trees: "
              f"{'yes' if same else 'NO'})")  # fmt: skip
        print(f"    {'':<14} {'baseline':>10} {'this tree':>10} {'ratio':>7}")
        for k in FIGURES:
            ratio = this[k] / base[k] if base[k] else float("nan")
            print(f"    {k:<14} {base[k]:>10.1f} {this[k]:>10.1f} {ratio:>7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", choices=("single", "shared"),
                    default=["single", "shared"])  # fmt: skip
    ap.add_argument("--slots", type=int, default=6, help="closes timed per case and run")
    ap.add_argument("--bids", type=int, default=2000, help="bids per slot (in total)")
    ap.add_argument("--rollups", type=int, default=3, help="shared: the rollups")
    ap.add_argument("--cross-share", type=float, default=0.2, help="shared: cross-rollup share")
    ap.add_argument("--tail-share", type=float, default=0.05,
                    help="bids logged after the follower's last round")  # fmt: skip
    ap.add_argument("--baseline", default=None, metavar="REV")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--profile", choices=("single", "shared"), default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline is not None:
        compare(args)
        return
    result = asyncio.run(run_child(args))
    if args.child:
        print(json.dumps(result))
        return
    for case, got in result.items():
        med = {k: statistics.median(r[k] for r in got["rows"]) for k in FIGURES}
        print(f"{case} ({got['entries']} log entries), medians of {len(got['rows'])} closes, ms: "
              + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))  # fmt: skip


if __name__ == "__main__":
    main()
