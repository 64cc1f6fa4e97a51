"""Server CPU per acknowledged bid on the intake path, in one process, without the sockets.

    python -m bench.intake_cpu [--bids 2000] [--repeats 5] [--store memory|redis]
                               [--in-flight 64] [--profile OUT.pstats]

Drives ``api.rpc.dispatch`` (what the websocket and HTTP transports call for every signed
request) of a real ``Engine`` with ``--bids`` signed one-transaction ``eth_sendBundle`` requests
(as searchers send them: signature header, strict RLP, sender recovery, every intake check, the
store append, the signed receipt), ``--in-flight`` at a time so the Redis store's group commit
batches them as it does under load. Prints the median over ``--repeats`` fresh engines of the
process CPU time per acknowledged bid, beside the cryptographic floor measured in the same run
(the searcher's signature and the sender recovery, ``recover_evidence`` + ``decode_transaction``,
as the load test's verifying echo does) and a receipt's signature alone. What the load test adds
on top is the transport (websocket framing, the event loop's socket work): see
``python -m loadtest.run``. With ``--store redis`` a redis-server of its own is started on a free
port (AOF on, ``appendfsync everysec``), and its CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from api.engine import Engine
from api.rpc import dispatch
from auction.auth import recover_evidence
from auction.presets import MAINNET, Rollup
from auction.receipts import compute_operator_key
from auction.transactions import decode_transaction
from bench.receipts import CLOCK, ROLLUP, SLOT, signed_requests
from loadtest.servers import Proc, start_redis
from node.metrics import Metrics
from node.stores import open_store

OPERATOR = compute_operator_key(bytes([0x42]) * 32)


async def _run_engine(url: str, requests: list[tuple[bytes, str]], in_flight: int) -> float:
    """CPU seconds per acknowledged bid through one fresh engine (every bid must be acked)."""
    now_ms = SLOT * CLOCK.slot_ms + 5
    store = await open_store(url)
    engine = Engine(store=store, rollups={ROLLUP: Rollup(ROLLUP, policy=MAINNET.policy)},
                    preset=MAINNET, slot_ms=CLOCK.slot_ms, clock_ms=lambda: now_ms,
                    metrics=Metrics(), operator_key=OPERATOR)  # fmt: skip
    try:
        await engine.start(run_clock=False)
        gate = asyncio.Semaphore(in_flight)
        acked = 0

        async def one(body: bytes, sig: str) -> None:
            nonlocal acked
            async with gate:
                answer, _ = await dispatch(engine, body, sig, endpoint_rollup=None, transport="ws")
            if "result" in answer:
                acked += 1
            else:
                raise RuntimeError(f"bid refused: {answer}")

        start = time.process_time()
        await asyncio.gather(*(one(body, sig) for body, sig in requests))
        cpu = (time.process_time() - start) / acked
        receipter = engine.intake.receipter
        batches = getattr(receipter, "batches", 0)  # an engine from before batched receipts: 0
        print(f"  receipts per signature: {acked / batches if batches else 1.0:.1f}")
        return cpu
    finally:
        await engine.stop()
        await store.aclose()


def _floor_us(requests: list[tuple[bytes, str]]) -> float:
    """CPU per bid of its cryptography alone: the searcher's signature, the sender recovery."""
    import orjson

    raws = [bytes.fromhex(orjson.loads(b)["params"][0]["txs"][0][2:]) for b, _ in requests]
    start = time.process_time()
    for (body, sig), raw in zip(requests, raws, strict=True):
        recover_evidence(body, sig)
        decode_transaction(raw)
    return (time.process_time() - start) / len(requests) * 1e6


def _receipt_sign_us(n: int = 2000) -> float:
    digest = bytes(range(32))
    start = time.process_time()
    for _ in range(n):
        OPERATOR.private.sign_recoverable(digest, hasher=None)
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", choices=["memory", "redis"], default="redis")
    parser.add_argument("--in-flight", type=int, default=64, dest="in_flight")
    parser.add_argument("--profile", help="cProfile the engine runs into this file")
    args = parser.parse_args()
    requests = signed_requests(args.bids)
    # As ``blockspace serve`` does once started: what is loaded now is never collected
    gc.collect()
    gc.freeze()
    redis: Proc | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    if args.store == "redis":
        redis = start_redis(workdir)
    engine_us: list[float] = []
    floor_us: list[float] = []
    receipt_us: list[float] = []
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
    try:
        for repeat in range(args.repeats):
            url = "memory"
            if redis is not None:
                # A fresh database of our own server for every repeat (no bid seen before)
                url = f"redis://127.0.0.1:{redis.port}/{repeat % 16}"
            if profile is not None:
                profile.enable()
            engine_us.append(asyncio.run(_run_engine(url, requests, args.in_flight)) * 1e6)
            if profile is not None:
                profile.disable()
            floor_us.append(_floor_us(requests))
            receipt_us.append(_receipt_sign_us())
            print(f"  repeat {repeat + 1}: engine {engine_us[-1]:.1f}  floor {floor_us[-1]:.1f}"
                  f"  receipt signature {receipt_us[-1]:.1f} us/bid", flush=True)  # fmt: skip
    finally:
        if redis is not None:
            redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if profile is not None:
        profile.dump_stats(args.profile)
    engine, floor, receipt = (statistics.median(x) for x in (engine_us, floor_us, receipt_us))
    print(f"\n{args.bids} signed one-tx bundles, {args.in_flight} in flight, store {args.store}, "
          f"medians of {args.repeats} (process CPU time per acknowledged bid)")
    print(f"engine (dispatch -> ack, receipt included)   {engine:7.1f} us   rounds: "
          + " ".join(f"{x:.0f}" for x in engine_us))
    print(f"floor (signature + sender recovery)          {floor:7.1f} us   engine/floor "
          f"{engine / floor:.2f}x")
    print(f"receipt signature (ECDSA sign alone)         {receipt:7.1f} us")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
