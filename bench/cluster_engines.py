"""Intake with 1, 2 and 4 engine processes on one Redis Cluster, in one run (issue 12 item 5).

    .venv/bin/python -m bench.cluster_engines [--engines 1,2,4] [--seconds 8] [--repeat 2]
                                              [--bids 40000] [--connections 8] [--window 32]

Starts its own cluster of 3 masters and 3 replicas (``bench.cluster_intake.ClusterProcesses``:
temp dirs, free loopback ports, AOF everysec), then, for each engine count K, interleaved
``--repeat`` times: K ``blockspace serve`` processes on the cluster (each its own port, as on K
hosts; the cluster's default ``WAIT 1`` per batch), the load test's pre-signed websocket frames
(``loadtest.corpus``, ``loadtest.client``: one client process, connections spread over the
engines, each searcher on one connection), sent for ``--seconds``. Prints acknowledged bids/s,
ack latency p50/p99, engine and cluster CPU (share of one core, from /proc) and the server CPU per
acknowledged bid, each run and the medians, with each median's ratio to one engine.

The client, K engines and six redis-servers share this machine's cores, so the figures show where
the machine saturates, not what K hosts would do (docs/redis.md reads them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.cluster_intake import ClusterProcesses
from loadtest.client import GRACE_S, ClientPlan, ClientResult, client_process
from loadtest.corpus import CorpusSpec, load_bundles, sign_requests
from loadtest.servers import Proc, start_blockspace

SLOT_MS = 2000
SLOT_SPAN = 16  # the corpus spreads its bids over this many slots, the last 32 ahead


@dataclass
class Run:
    engines: int
    repeat: int
    accepted: int
    per_s: float
    p50_ms: float
    p99_ms: float
    cpu_engines: float  # share of one core, summed over the engines
    cpu_cluster: float  # the same, over the six redis-servers
    errors: dict[str, int]

    @property
    def us_per_ack(self) -> float:
        return 0.0 if not self.per_s else (self.cpu_engines / self.per_s) * 1e6

    def line(self) -> str:
        errors = ",".join(f"{k}:{v}" for k, v in sorted(self.errors.items())) or "0"
        return (f"{self.engines:>7} {self.repeat:>6} {self.accepted:>8} {self.per_s:>10,.0f} "
                f"{self.p50_ms:>7.1f} {self.p99_ms:>7.1f} {self.cpu_engines:>8.0%} "
                f"{self.cpu_cluster:>8.0%} {self.us_per_ack:>9.0f}  {errors}")


HEADER = (f"{'engines':>7} {'repeat':>6} {'accepted':>8} {'acked/s':>10} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'cpu eng':>8} {'cpu rds':>8} {'eng us/ack':>9}  errors")


def cpu_of_pids(pids: list[int]) -> float:
    """CPU seconds (user + system) of the processes, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_once(k: int, repeat: int, cluster: ClusterProcesses, spec: CorpusSpec,
             workdir: Path, args: argparse.Namespace) -> Run:
    """K engines on the cluster, the pre-signed frames through one client process, stop."""
    bundles = load_bundles(spec)
    engines: list[Proc] = []
    try:
        for _ in range(k):
            engines.append(start_blockspace(workdir, store=cluster.url, slot_ms=SLOT_MS))
        open_slot = int(time.time() * 1000) // SLOT_MS
        first_slot = open_slot + 33 - SLOT_SPAN
        signed = sign_requests(spec, bundles, first_slot)
        corpus_path = workdir / f"signed-{k}-{repeat}.pkl"
        with corpus_path.open("wb") as f:
            pickle.dump(signed, f, protocol=pickle.HIGHEST_PROTOCOL)
        rows: list[list[int]] = [[] for _ in range(args.connections)]
        for i, bid in enumerate(bundles):
            rows[bid.searcher % args.connections].append(i)
        ctx = multiprocessing.get_context("spawn")
        out, go, ready = ctx.Queue(), ctx.Event(), ctx.Event()
        cap = ctx.Value("d", args.seconds)
        plan = ClientPlan(
            transport="ws", host="127.0.0.1",
            ports=[engines[j % k].port for j in range(args.connections)], path="/ws",
            corpus_path=str(corpus_path), connections=rows, window=args.window,
            seconds=args.seconds,
        )  # fmt: skip
        client = ctx.Process(target=client_process, args=(plan, ready, go, cap, out), daemon=True)
        client.start()
        if not ready.wait(120):
            raise RuntimeError("the client did not get ready in 120 s")
        pids = [e.pid for e in engines]
        cpu0, rcpu0 = cpu_of_pids(pids), cpu_of_pids([p.pid for p in cluster.procs])
        t0 = time.monotonic()
        go.set()
        result: ClientResult = out.get(timeout=args.seconds + GRACE_S + 60)
        wall = time.monotonic() - t0
        cpu1, rcpu1 = cpu_of_pids(pids), cpu_of_pids([p.pid for p in cluster.procs])
        client.join(timeout=10)
        for e in engines:
            if not e.alive():
                raise RuntimeError(f"an engine died during the run:\n{e.log_tail()}")
    finally:
        for e in engines:
            e.stop()
    if result.setup_error:
        raise RuntimeError(f"client failed: {result.setup_error}")
    lat = np.frombuffer(result.latencies_ms, dtype=np.float64)
    span = max((result.t_last or result.t_go) - result.t_go, 1e-9)
    return Run(
        engines=k, repeat=repeat, accepted=result.accepted,
        per_s=result.accepted / span,
        p50_ms=float(np.percentile(lat, 50)) if lat.size else float("nan"),
        p99_ms=float(np.percentile(lat, 99)) if lat.size else float("nan"),
        cpu_engines=(cpu1 - cpu0) / wall, cpu_cluster=(rcpu1 - rcpu0) / wall,
        errors=dict(result.errors),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="1,2,4", help="engine counts, comma separated")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--bids", type=int, default=40_000, help="pre-signed bids (count cap)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--window", type=int, default=32, help="requests in flight per conn")
    args = parser.parse_args()
    counts = [int(x) for x in args.engines.split(",")]
    spec = CorpusSpec(bids=args.bids)
    load_bundles(spec)  # sign (and cache) the corpus before any server runs
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        cluster_dir = Path(tmp) / "cluster"
        cluster_dir.mkdir()
        cluster = ClusterProcesses(cluster_dir)
        try:
            print(HEADER, flush=True)
            for repeat in range(1, args.repeat + 1):
                for k in counts:
                    run = run_once(k, repeat, cluster, spec, Path(tmp), args)
                    runs.append(run)
                    print(run.line(), flush=True)
        finally:
            cluster.stop()
    load = os.getloadavg()
    print(f"\nmedians of {args.repeat} runs, {args.seconds:g} s each, ws, {args.connections} "
          f"connections x {args.window} in flight; load average {load[0]:.1f} {load[1]:.1f}:")
    base = statistics.median(r.per_s for r in runs if r.engines == counts[0])
    for k in counts:
        mine = [r for r in runs if r.engines == k]
        per_s = statistics.median(r.per_s for r in mine)
        print(f"  {k} engine(s): {per_s:9,.0f} acked/s ({per_s / base:4.2f}x {counts[0]}), "
              f"p50 {statistics.median(r.p50_ms for r in mine):6.1f} ms, "
              f"p99 {statistics.median(r.p99_ms for r in mine):6.1f} ms, "
              f"engines {statistics.median(r.cpu_engines for r in mine):5.0%} + cluster "
              f"{statistics.median(r.cpu_cluster for r in mine):5.0%} of a core, "
              f"{statistics.median(r.us_per_ack for r in mine):5.0f} us engine CPU per ack")


if __name__ == "__main__":
    main()
