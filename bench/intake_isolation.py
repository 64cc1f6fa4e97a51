"""Does one searcher's large bundle delay everyone else's acknowledgement? (issue 9, finding 9)

Two ``blockspace serve`` processes (memory store), measured in the same run: one decodes large
signed requests in a worker thread (``decode_offload_bytes`` = 32 KiB, the default), the other
on the event loop (offload off). On each, an honest searcher sends small signed bundles one at a
time over a websocket and times every acknowledgement, while an attacker sends bundles whose
access lists take tens of milliseconds to decode (about 200 kB each, 4,000 storage keys) on two
other connections. Prints honest ack p50 / p99 with and without the attacker, per mode, medians
of ``--repeats`` rounds, and the ratio between the modes.

    python -m bench.intake_isolation [--seconds 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import websockets

from api.searcher import SearcherKey, bundle_params
from loadtest.servers import start_blockspace

ROLLUP = 167_001
GWEI = 10**9
SLOT_MS = 2000
OFF = str(10**9)  # no request is that large: decoding never leaves the event loop


def attack_frames(n: int, slot: int, keys: int = 4_000) -> list[str]:
    """Signed bundles for ``slot`` with one transaction naming ``keys`` storage keys."""
    frames = []
    access = [{"address": "0x" + "22" * 20,
               "storageKeys": ["0x" + f"{j:064x}" for j in range(keys)]}]
    for i in range(n):
        k = SearcherKey.from_seed(100 + i % 8)
        raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=i, maxPriorityFeePerGas=GWEI,
                        maxFeePerGas=100 * GWEI, gas=5_000_000, to="0x" + "66" * 20, value=0,
                        data=b"", accessList=access)
        frames.append(k.ws_frame(k.request("eth_sendBundle", [bundle_params([raw], slot)])))
    return frames


async def honest(port: int, seconds: float) -> list[float]:
    k = SearcherKey.from_seed(1)
    lat: list[float] = []
    nonce = 0
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2**22) as ws:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            slot = int(time.time() * 1000) // SLOT_MS + 1
            nonce += 1
            raw = k.sign_tx(type=2, chainId=ROLLUP, nonce=nonce, maxPriorityFeePerGas=2 * GWEI,
                            maxFeePerGas=100 * GWEI, gas=60_000, to="0x" + "42" * 20, value=0,
                            data=b"")
            frame = k.ws_frame(k.request("eth_sendBundle",
                                         [bundle_params([raw], slot, bid_wei=10**15)]))
            t0 = time.perf_counter()
            await ws.send(frame)
            while "id" not in orjson.loads(await ws.recv()):
                pass
            lat.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(0.01)
    return lat


async def attacker(port: int, frames: list[str], stop: asyncio.Event) -> int:
    sent = 0
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2**22) as ws:
        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        while not stop.is_set():
            await ws.send(frames[sent % len(frames)])
            sent += 1
            await asyncio.sleep(0.05)
        reader.cancel()
    return sent


async def round_of(port: int, seconds: float, attack: list[str] | None) -> tuple[float, float]:
    stop = asyncio.Event()
    attackers = [asyncio.create_task(attacker(port, attack, stop)) for _ in range(2)] if attack \
        else []
    lat = await honest(port, seconds)
    stop.set()
    await asyncio.gather(*attackers)
    lat.sort()
    return statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]


async def measure(port: int, seconds: float, repeats: int) -> dict[str, tuple[float, float]]:
    slot = int(time.time() * 1000) // SLOT_MS + 8  # far enough ahead for the whole run
    attack = attack_frames(24, slot)
    quiet, loud = [], []
    for _ in range(repeats):
        quiet.append(await round_of(port, seconds, None))
        loud.append(await round_of(port, seconds, attack))
    return {
        "quiet": (statistics.median(q[0] for q in quiet), statistics.median(q[1] for q in quiet)),
        "attacked": (statistics.median(x[0] for x in loud), statistics.median(x[1] for x in loud)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, offload in (("offload 32 KiB", "32768"), ("on the event loop", OFF)):
            proc = start_blockspace(Path(tmp), store="memory", slot_ms=SLOT_MS,
                                    env_extra={"BLOCKSPACE_DECODE_OFFLOAD_BYTES": offload})
            try:
                results[mode] = asyncio.run(measure(proc.port, args.seconds, args.repeats))
            finally:
                proc.stop()
    print(f"honest ack latency, ms (median of {args.repeats} rounds of {args.seconds:.0f} s; "
          "attacker: 2 connections of ~200 kB access-list bundles)")
    print(f"{'mode':<20} {'quiet p50':>10} {'quiet p99':>10} {'attacked p50':>13} "
          f"{'attacked p99':>13}")
    for mode, r in results.items():
        print(f"{mode:<20} {r['quiet'][0]:>10.2f} {r['quiet'][1]:>10.2f} "
              f"{r['attacked'][0]:>13.2f} {r['attacked'][1]:>13.2f}")
    on, off = results["offload 32 KiB"], results["on the event loop"]
    print(f"attacked p50: event loop / offload = x{off['attacked'][0] / on['attacked'][0]:.1f}; "
          f"p99 x{off['attacked'][1] / on['attacked'][1]:.1f}")


if __name__ == "__main__":
    main()
