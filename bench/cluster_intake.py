"""Intake on a Redis Cluster against one Redis server, in one run (docs/redis.md, "Redis Cluster").

With engine processes in front (1, 2, 4 of them on the cluster): bench/cluster_engines.py.

    .venv/bin/python -m bench.cluster_intake [--seconds 5] [--writers 200] [--repeat 3]

Starts its own servers (temp dirs, free loopback ports, AOF everysec; never 6379): one
redis-server, and a cluster of 3 masters and 3 replicas (``redis-cli --cluster create``). Then
``--writers`` tasks append bids through ``RedisStore.append_bid`` (the engine's group-committed
path) for ``--seconds``, over two slots (the open one and the next, as intake sees them), in
three configurations, interleaved ``--repeat`` times:

- ``single``: one server, no replica confirmation (the baseline);
- ``cluster wait=0``: the cluster, acknowledged on the master alone;
- ``cluster wait=1``: the cluster's default, each batch confirmed by ``WAIT 1``.

Prints bids/s per run, the medians and each median's ratio to the baseline. Everything shares
this machine's cores with the servers, so the figures are for comparison, not capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from auction.types import Bid
from bench.history import WIDE, RedisProcess, _fields, _pong, free_port, make_events, wait_for
from node.stores.redis import RedisStore

SLOTS = (9_000_000, 9_000_001)


class ClusterProcesses:
    """Six redis-server nodes (cluster mode, AOF everysec) made into 3 masters + 3 replicas."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            raise SystemExit("redis-server and redis-cli are needed (apt-get install redis-server)")
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        while len(self.ports) < 6:
            port = free_port()
            if port + 10000 > 65535 or port in self.ports:
                continue  # the cluster bus listens on port + 10000
            node_dir = workdir / f"node{len(self.ports)}"
            node_dir.mkdir()
            self.ports.append(port)
            self.procs.append(
                subprocess.Popen(
                    [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                     "--logfile", str(node_dir / "redis.log")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        wait_for(lambda: all(_pong(p) for p in self.ports), "redis-server (cluster nodes)")
        out = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if "[OK] All 16384 slots covered" not in out.stdout:
            raise SystemExit(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        wait_for(self._ready, "the redis cluster")

    def _ready(self) -> bool:
        for port in self.ports:
            info = subprocess.run(
                ["redis-cli", "-p", str(port), "info", "replication"],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            state = subprocess.run(
                ["redis-cli", "-p", str(port), "cluster", "info"],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            if "cluster_state:ok" not in state:
                return False
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


async def intake(url: str, wait: int, seconds: float, writers: int, run: int) -> float:
    """Bids acknowledged per second through RedisStore.append_bid over ``SLOTS``."""
    store = RedisStore(url, appendfsync="unmanaged", wait_replicas=wait)
    await store.connect()
    rng = random.Random(run)
    events = [e for e in make_events(rng, SLOTS[0], 4000, 200) if isinstance(e, Bid)]
    done = 0
    end = time.perf_counter() + seconds

    async def writer(i: int) -> None:
        nonlocal done
        k = i
        while time.perf_counter() < end:
            fields: dict[str, Any] = _fields(events[k % len(events)])
            slot = SLOTS[k % len(SLOTS)]
            # A fresh bid id each time: a resent id is answered from the index, not appended
            fields.update(slot=slot, bid_id=f"0x{run:08x}{slot:016x}{k:040x}")
            await store.append_bid(Bid(**fields), WIDE)
            done += 1
            k += writers

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    rate = done / (time.perf_counter() - t0)
    await store.aclose()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        single_dir, cluster_dir = Path(tmp) / "single", Path(tmp) / "cluster"
        single_dir.mkdir()
        cluster_dir.mkdir()
        single = RedisProcess(single_dir)
        cluster = ClusterProcesses(cluster_dir)
        try:
            configs = {
                "single": (single.url, 0),
                "cluster wait=0": (cluster.url, 0),
                "cluster wait=1": (cluster.url, 1),
            }
            rates: dict[str, list[float]] = {name: [] for name in configs}
            for run in range(args.repeat):
                for name, (url, wait) in configs.items():
                    rate = asyncio.run(intake(url, wait, args.seconds, args.writers, run))
                    rates[name].append(rate)
                    print(f"run {run + 1} {name:15} {rate:9,.0f} bids/s", flush=True)
        finally:
            cluster.stop()
            single.stop()
    base = statistics.median(rates["single"])
    print(f"\nmedians over {args.repeat} runs ({args.writers} writers, {args.seconds:g} s each):")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"  {name:15} {median:9,.0f} bids/s  {median / base:5.2f}x single")


if __name__ == "__main__":
    main()
