"""Where a shared slot's packing spends its CPU: input building, encoding, solve, payments.

    .venv/bin/python -m bench.joint_speed [--repeats 9] [--profile]

For the 8-rollup 20,000-bundle slots of ``bench.joint`` (seeds 0 and 1) and a 3-rollup
2,000-bundle slot it prints the median CPU (``time.process_time``, after warm-up) of:

- ``build``: the packing instance from the engine's bids (``auction.results.compute_slot_input``,
  the path the engine's close and every committee member take), the bids being the generated
  slot's bundles as engine ``Bid`` copies (one transaction per leg, with real-length hashes,
  addresses and storage keys, so the conflict keys are the engine's own strings);
- ``encode``: ``ordering.arrays.compute_joint_arrays`` (shape checks included);
- ``solve``: ``solve_joint_arrays`` + ``compute_joint_packing`` on those arrays;
- ``pay``: first-price payments (``compute_joint_payments``);
- ``pack_joint``: ``ordering.packer.pack_joint`` end to end (checks, encoding, solve);
- ``pack_slot``: ``ordering.packer.pack_slot`` (what the engine calls: components, then
  ``pack_joint`` per component);
- ``slow``: the solve's CPU over its work count at the solver's calibration
  (``WORK_UNITS_PER_MS`` on the reference machine): how much slower than that machine this one
  runs now (other tenants), and ``pj/slow``, ``pack_joint`` divided by it, an estimate of the
  figure on a quiet machine (the encoding, memory-bound, need not slow down by the same factor).

``--profile`` adds a cProfile of ``pack_slot`` on the first large slot (top functions by own time).
The load average is printed with each row: the machine is shared, so compare figures of one run.

``--baseline REV`` compares with the path as it was at git revision REV (before decisions 72-73),
in this process and interleaved round by round, so both see the same load: REV's
``ordering/arrays.py`` (its encoding) and REV's ``pack_slot`` steps (``check_joint_input``, REV's
``compute_components``, then per component REV's encoding and this tree's kernel, which the
change left alone). It prints both medians, their ratio, and whether the blocks are identical.

``--scratch REV`` times ``pack_joint`` on the same instance three ways, interleaved round by
round in this process: from scratch with REV's ``ordering/arrays.py`` (then this tree's kernel),
from scratch with this tree's, and from the encoder's columns; it prints the medians, the ratios
to REV's path and whether the three packings are identical (decision 155).

``--follow [--store redis|memory]`` measures the engine's side of decision 160 on a store of its
own (Redis: a redis-server started on a free port): a single-rollup 2,000-bid slot and the
8 x 20,000 shared slot are logged in 20 bursts (a slot's 100 ms follow rounds) and, after each
burst, read two ways interleaved: ``follow`` (``node.follower.OpenSlotFollower``: what is new,
from an offset, appended to the slot's encoder) and ``re-read`` (before: the whole log read
again, ``read_log_parts``, and what is beyond the encoder's count appended, as the feeder did);
it prints each one's CPU per bid over the open slot. Then the close's pure step
(``api.engine._compute_slot_results``: the closed log as the store hands it out, the encoder
checked against it, the results) from the follower's columns vs from scratch, interleaved
round by round (a new follower reads the closed log each round, untimed, so no round reuses
another's encoder), with their medians, ratio, and whether results are identical byte for byte
(``codec.result_to_json``); ``close_log`` is the common store read of the close, for scale.

``--columnar`` compares, interleaved round by round in this process, the close's packing from
scratch with the packing from the columns a ``SlotEncoder`` kept while the slot was open
(``auction.columnar``, decisions 137-140): ``build`` (``compute_slot_input`` with and without
the encoder), ``pack_joint`` and ``pack_slot`` on the instance (with its columns, or without),
whether the packings are identical, and ``append``: the CPU the encoder spent as the bids were
logged (spread over the open slot, once per slot, not per round); ``solve``, ``slow`` and
``col/slow`` as above (``pack_joint`` from columns divided by the measured slowness).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import cProfile
import dataclasses
import hashlib
import importlib.util
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import orjson

from api.engine import _compute_slot_results
from auction import codec
from auction.columnar import SlotEncoder
from auction.presets import Policy, Rollup
from auction.results import SlotPart, _RollupClose, compute_slot_input
from auction.types import Bid, Evidence, LoggedEvent, Tx
from auction.types import Leg as BidLeg
from bench.generate_joint import generate_joint_instance
from bench.joint import solve_encoded
from loadtest.servers import start_redis
from node.follower import OpenSlotFollower
from node.stores.base import IntakeLimits, Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from ordering import joint, packer
from ordering.arrays import compute_joint_arrays
from ordering.packer import compute_joint_payments, pack_joint, pack_slot, warm_up
from ordering.problem import (
    PAYMENT_FIRST_PRICE,
    ComponentPacking,
    JointInput,
    JointItem,
    JointPacking,
)
from ordering.problem import Leg as PackLeg
from ordering.reference import check_joint_input
from ordering.solver import WORK_UNITS_PER_MS, compute_work_limit

T = TypeVar("T")

# (rollups, bundles, seed, budget ms): the issue-13 target slots and a small one.
CASES = ((8, 20_000, 0, 30), (8, 20_000, 1, 30), (3, 2_000, 0, 10))
# ``--follow``: a single-rollup 2,000-bid slot and the 8 x 20,000 shared slot.
FOLLOW_CASES = ((1, 2_000, 0, 10), (8, 20_000, 0, 30))


def _timed(fn: Callable[[], T], repeats: int) -> tuple[T, float]:
    """Result and median CPU seconds over ``repeats`` calls (after one untimed call)."""
    out = fn()
    cpus: list[float] = []
    for _ in range(repeats):
        c0 = time.process_time()
        out = fn()
        cpus.append(time.process_time() - c0)
    return out, statistics.median(cpus)


def _hex(text: str, chars: int) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()[:chars]


def _leg_tx(rollup: int, leg: PackLeg) -> Tx:
    """One engine transaction carrying a generated leg's keys: its ``tx:`` key as the hash, its
    ``sn:`` key as (sender, nonce), every other key as an access-list storage location."""
    tx_hash = next((_hex(k, 64) for k in leg.keys if k.startswith("tx:")), _hex(repr(leg), 64))
    sn = next((k for k in leg.keys if k.startswith("sn:")), f"sn:{leg!r}:0")
    head, _, nonce = sn.rpartition(":")
    access = tuple(_hex(k, 40) + ":" + _hex(k + "/slot", 64) for k in leg.keys
                   if not k.startswith(("tx:", "sn:")))  # fmt: skip
    return Tx(raw=b"", hash=tx_hash, tx_type=2, chain_id=rollup, sender=_hex(head, 40),
              nonce=int(nonce) if nonce.isdigit() else 0, gas_limit=leg.gas, priority_fee_wei=0,
              max_fee_wei=0, to=None, access_keys=access)  # fmt: skip


def _bid_copies(it: JointItem) -> list[Bid]:
    """The engine's copies of one generated bundle: one ``Bid`` per leg's rollup."""
    txs = {leg.rollup: _leg_tx(leg.rollup, leg) for leg in it.legs}
    legs: tuple[BidLeg, ...] = ()
    if len(it.legs) > 1:
        legs = tuple(BidLeg(leg.rollup, (txs[leg.rollup],), leg.gas)
                     for leg in sorted(it.legs, key=lambda g: g.rollup))  # fmt: skip
    bid_id = _hex("bid:" + it.id, 64)
    return [
        Bid(bid_id=bid_id, rollup=leg.rollup, slot=1, searcher=_hex(it.searcher, 40),
            bundle_hash=_hex("bundle:" + it.id, 64), txs=(txs[leg.rollup],), bid_wei=it.bid_wei,
            gas=leg.gas, received_ms=0, evidence=Evidence(b"", ""), legs=legs)
        for leg in it.legs
    ]  # fmt: skip


def build_closes(inp: JointInput) -> list[_RollupClose]:
    """Each rollup's close as ``compute_slot_results`` holds it just before packing: every
    generated bundle eligible, no public lane (the generator's gas limits are for bundles)."""
    eligible: dict[int, list[Bid]] = {r.rollup: [] for r in inp.rollups}
    for it in inp.items:
        for b in _bid_copies(it):
            eligible[b.rollup].append(b)
    closes = []
    for cap in inp.rollups:
        cap_gas = cap.max_gas_per_searcher
        share = 1.0 if cap_gas is None else cap_gas / cap.gas_limit
        policy = Policy(gas_limit=cap.gas_limit, max_gas_share_per_searcher=share)
        part = SlotPart(Rollup(cap.rollup, policy=policy), "0x" + "00" * 32, ())
        closes.append(_RollupClose(part, None, [], [], 0, eligible[cap.rollup], {}))  # type: ignore[arg-type]
    return closes


def run_case(n_rollups: int, n: int, seed: int, budget_ms: int, repeats: int) -> dict[str, float]:
    """Median CPU ms of each step on one generated slot; prints one row."""
    closes = build_closes(generate_joint_instance(n, n_rollups, seed, 0.2))
    inp, build = _timed(lambda: compute_slot_input(closes), repeats)
    arrays, enc = _timed(lambda: compute_joint_arrays(inp), repeats)
    _, sol = _timed(lambda: solve_encoded(arrays, budget_ms), repeats)
    packing, total = _timed(lambda: pack_joint(inp, budget_ms), repeats)
    _, pay = _timed(lambda: compute_joint_payments(inp, packing, PAYMENT_FIRST_PRICE), repeats)
    _, slot = _timed(lambda: pack_slot(inp, budget_ms), repeats)
    row = {"build": build, "encode": enc, "solve": sol, "pay": pay, "pack_joint": total,
           "pack_slot": slot}  # fmt: skip
    # The solve's work is a fixed count of units, WORK_UNITS_PER_MS per ms on the reference
    # machine: its CPU over that is how much slower the machine runs now ("slow").
    work = joint.solve_joint_arrays(arrays, compute_work_limit(budget_ms))[2].work_units
    slow = sol / (work / WORK_UNITS_PER_MS / 1e3)
    load = os.getloadavg()[0]
    print(f"{n_rollups:>2} {len(inp.items):>6} {seed:>4} {budget_ms:>4} | "
          + " ".join(f"{v * 1e3:>10.1f}" for v in row.values())
          + f" | {slow:>4.2f} {total * 1e3 / slow:>8.1f} | {load:>5.2f}", flush=True)  # fmt: skip
    return row


def profile_case(n_rollups: int, n: int, seed: int, budget_ms: int) -> None:
    """cProfile of ``pack_slot`` (5 calls) on one slot: the top functions by own time."""
    inp = compute_slot_input(build_closes(generate_joint_instance(n, n_rollups, seed, 0.2)))
    pack_slot(inp, budget_ms)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        pack_slot(inp, budget_ms)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


class Baseline:
    """The encoding and ``pack_slot`` steps of git revision ``rev`` (see the module docstring)."""

    def __init__(self, rev: str) -> None:
        root = Path(__file__).resolve().parents[1]

        def show(path: str) -> str:
            return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, check=True,
                                  capture_output=True, text=True).stdout  # fmt: skip

        folder = Path(tempfile.mkdtemp(prefix="joint-baseline-"))
        (folder / "baseline_arrays.py").write_text(show("ordering/arrays.py"))
        spec = importlib.util.spec_from_file_location("baseline_arrays",
                                                      folder / "baseline_arrays.py")  # fmt: skip
        assert spec is not None and spec.loader is not None
        self.arrays: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules["baseline_arrays"] = self.arrays
        spec.loader.exec_module(self.arrays)
        source = show("ordering/packer.py")
        func = next(node for node in ast.parse(source).body
                    if isinstance(node, ast.FunctionDef)
                    and node.name == "compute_components")  # fmt: skip
        space: dict[str, Any] = {"JointInput": JointInput}
        exec("from __future__ import annotations\n" + str(ast.get_source_segment(source, func)),
             space)  # fmt: skip
        self.compute_components: Callable[[JointInput], tuple[JointInput, ...]] = space[
            "compute_components"
        ]

    def pack_joint(self, inp: JointInput, budget_ms: int) -> JointPacking:
        if len(inp.rollups) == 1:
            return pack_joint(inp, budget_ms)
        arrays = self.arrays.compute_joint_arrays(inp)
        sel, bound, _ = joint.solve_joint_arrays(arrays, compute_work_limit(budget_ms))
        return joint.compute_joint_packing(arrays, sel, bound, solver="numba-joint")

    def pack_slot(self, inp: JointInput, budget_ms: int) -> tuple[ComponentPacking, ...]:
        check_joint_input(inp)
        parts = self.compute_components(inp)
        budgets = packer.compute_component_budgets(parts, budget_ms)
        pairs = zip(parts, budgets, strict=True)
        return tuple(ComponentPacking(c, self.pack_joint(c, b), b) for c, b in pairs)


def interleaved_cpu_ms(steps: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each step's median CPU time in ms over ``rounds``, the steps interleaved round by round
    (so load drift hits all alike)."""
    cpus: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, f in steps.items():
            c0 = time.process_time()
            f()
            cpus[k].append(time.process_time() - c0)
    return {k: statistics.median(v) * 1e3 for k, v in cpus.items()}


def compare_case(base: Baseline, case: tuple[int, int, int, int], rounds: int) -> None:
    """Baseline and this tree, interleaved: encoding and ``pack_slot`` medians, ratios, and
    whether the packings are identical; prints one row."""
    n_rollups, n, seed, budget_ms = case
    inp = compute_slot_input(build_closes(generate_joint_instance(n, n_rollups, seed, 0.2)))
    steps: dict[str, Callable[[], object]] = {
        "enc": lambda: base.arrays.compute_joint_arrays(inp),
        "enc new": lambda: packer.compute_joint_arrays(inp),
        "slot": lambda: base.pack_slot(inp, budget_ms),
        "slot new": lambda: pack_slot(inp, budget_ms),
    }
    base_parts, new_parts = base.pack_slot(inp, budget_ms), pack_slot(inp, budget_ms)
    same = [c.packing for c in base_parts] == [c.packing for c in new_parts]
    m = interleaved_cpu_ms(steps, rounds)
    print(f"{n_rollups:>2} {len(inp.items):>6} {seed:>4} {budget_ms:>4} | {m['enc']:>8.1f} "
          f"{m['enc new']:>8.1f} {m['enc new'] / m['enc']:>6.2f} | {m['slot']:>8.1f} "
          f"{m['slot new']:>8.1f} {m['slot new'] / m['slot']:>6.2f} | {'yes' if same else 'NO':>4} "
          f"| {os.getloadavg()[0]:>5.2f}", flush=True)  # fmt: skip


def columnar_case(case: tuple[int, int, int, int], rounds: int) -> None:
    """From scratch and from the encoder's columns, interleaved; prints one row."""
    n_rollups, n, seed, budget_ms = case
    closes = build_closes(generate_joint_instance(n, n_rollups, seed, 0.2))
    encoder = SlotEncoder()
    c0 = time.process_time()
    for c in closes:  # each rollup's log as it was appended (its eligible bids, in log order)
        for i, b in enumerate(c.eligible):
            encoder.append(c.chain_id, LoggedEvent(f"{i}-0", b))
    append = time.process_time() - c0
    inp = compute_slot_input(closes)
    enc = compute_slot_input(closes, encoder=encoder)
    assert enc == inp and enc.encoded is not None
    steps: dict[str, Callable[[], object]] = {
        "build": lambda: compute_slot_input(closes),
        "build col": lambda: compute_slot_input(closes, encoder=encoder),
        "pj": lambda: pack_joint(inp, budget_ms),
        "pj col": lambda: pack_joint(enc, budget_ms),
        "slot": lambda: pack_slot(inp, budget_ms),
        "slot col": lambda: pack_slot(enc, budget_ms),
        "solve": lambda: solve_encoded(arrays, budget_ms),
    }
    arrays = compute_joint_arrays(enc)
    same = pack_joint(inp, budget_ms) == pack_joint(enc, budget_ms) and [
        c.packing for c in pack_slot(inp, budget_ms)] == [
        c.packing for c in pack_slot(enc, budget_ms)]  # fmt: skip
    m = interleaved_cpu_ms(steps, rounds)
    work = joint.solve_joint_arrays(arrays, compute_work_limit(budget_ms))[2].work_units
    slow = m["solve"] / (work / WORK_UNITS_PER_MS)
    cols = " | ".join(f"{m[k]:>7.1f} {m[k + ' col']:>7.1f} {m[k + ' col'] / m[k]:>5.2f}"
                      for k in ("build", "pj", "slot"))  # fmt: skip
    print(f"{n_rollups:>2} {len(inp.items):>6} {seed:>4} {budget_ms:>4} | {cols} | "
          f"{append * 1e3:>7.1f} | {m['solve']:>6.1f} {slow:>4.2f} {m['pj col'] / slow:>7.1f} | "
          f"{'yes' if same else 'NO':>4} | {os.getloadavg()[0]:>5.2f}",
          flush=True)  # fmt: skip


def scratch_case(base: Baseline, case: tuple[int, int, int, int], rounds: int) -> None:
    """``pack_joint`` from scratch with REV's encoding, from scratch with this tree's, and from
    the encoder's columns, interleaved round by round; prints one row (CPU medians, ratios to
    REV's path, whether the three packings are identical)."""
    n_rollups, n, seed, budget_ms = case
    closes = build_closes(generate_joint_instance(n, n_rollups, seed, 0.2))
    encoder = SlotEncoder()
    for c in closes:
        for i, b in enumerate(c.eligible):
            encoder.append(c.chain_id, LoggedEvent(f"{i}-0", b))
    inp = compute_slot_input(closes)
    enc = compute_slot_input(closes, encoder=encoder)
    assert enc == inp and enc.encoded is not None and inp.encoded is None
    steps: dict[str, Callable[[], JointPacking]] = {
        "base": lambda: base.pack_joint(inp, budget_ms),
        "new": lambda: pack_joint(inp, budget_ms),
        "col": lambda: pack_joint(enc, budget_ms),
    }
    outs = [f() for f in steps.values()]
    same = outs[0] == outs[1] == outs[2]
    m = interleaved_cpu_ms(steps, rounds)
    print(f"{n_rollups:>2} {len(inp.items):>6} {seed:>4} {budget_ms:>4} | {m['base']:>8.1f} "
          f"{m['new']:>8.1f} {m['new'] / m['base']:>6.2f} | {m['col']:>8.1f} "
          f"{m['col'] / m['base']:>6.2f} | {'yes' if same else 'NO':>4} "
          f"| {os.getloadavg()[0]:>5.2f}", flush=True)  # fmt: skip


def _follow_bids(closes: list[_RollupClose], slot: int) -> list[Bid]:
    """The slot's bid copies in one arrival order (the rollups interleaved: a cross-rollup
    bundle's copies together, as intake logs them), for ``slot``."""
    by_id: dict[str, list[Bid]] = {}
    for c in closes:
        for b in c.eligible:
            by_id.setdefault(b.bid_id, []).append(dataclasses.replace(b, slot=slot))
    return [b for copies in by_id.values() for b in copies]


async def _follow_case_async(case: tuple[int, int, int, int], rounds: int, url: str) -> None:
    n_rollups, n, seed, budget_ms = case
    closes = build_closes(generate_joint_instance(n, n_rollups, seed, 0.2))
    rollups = {c.chain_id: c.part.rollup for c in closes}
    slot = 100 + seed + 10 * n_rollups
    bids = _follow_bids(closes, slot)
    store: Store = MemoryStore() if url == "memory" else RedisStore(url, socket_timeout_s=60)
    if isinstance(store, RedisStore):
        await store.connect()
    limits = IntakeLimits(max_bundles=10**9, max_bytes=10**12)
    follower = OpenSlotFollower(store, sorted(rollups))
    old = SlotEncoder()  # the whole-log re-read's encoder (the feeder's, before)
    cpu = {"follow": 0.0, "re-read": 0.0}
    bursts = 20
    for k in range(bursts):
        burst = bids[k * len(bids) // bursts : (k + 1) * len(bids) // bursts]
        by_copies: dict[str, list[Bid]] = {}
        for b in burst:
            by_copies.setdefault(b.bid_id, []).append(b)
        groups = list(by_copies.values())
        for i in range(0, len(groups), 128):  # concurrent appends, within the client's pool
            await asyncio.gather(*(store.append_bid_copies(cs, [limits] * len(cs))
                                   if len(cs) > 1 else store.append_bid(cs[0], limits)
                                   for cs in groups[i : i + 128]))  # fmt: skip
        order = ("follow", "re-read") if k % 2 else ("re-read", "follow")
        for way in order:
            c0 = time.process_time()
            if way == "follow":
                await follower.follow(slot)
            else:
                for r in sorted(rollups):
                    whole, _ = await store.read_log_parts(r, slot)
                    old.extend(r, whole[old.count(r):])
            cpu[way] += time.process_time() - c0
    per_bid = {k: v / len(bids) * 1e6 for k, v in cpu.items()}
    closed = {r: await store.close_slot(r, slot) for r in sorted(rollups)}
    followed = follower.take_encoder(slot)
    assert followed is not None
    assert all(followed.count(r) == len(closed[r]) for r in rollups)
    parts = [SlotPart(rollups[r], "0x" + "00" * 32, closed[r]) for r in sorted(rollups)]
    deadline = 10**12

    async def fresh_encoder() -> SlotEncoder:
        again = OpenSlotFollower(store, sorted(rollups))
        await again.follow(slot)
        taken = again.take_encoder(slot)
        assert taken is not None
        return taken

    scratch = _compute_slot_results(slot, deadline, parts, None)
    cols = _compute_slot_results(slot, deadline, parts, followed)
    same = scratch == cols and [orjson.dumps(codec.result_to_json(r)) for r in scratch] == [
        orjson.dumps(codec.result_to_json(r)) for r in cols]  # fmt: skip
    times: dict[str, list[float]] = {"scratch": [], "columns": [], "close_log": []}
    for i in range(rounds):
        encoder = await fresh_encoder()
        order2 = ("scratch", "columns") if i % 2 else ("columns", "scratch")
        for way in order2:
            c0 = time.process_time()
            _compute_slot_results(slot, deadline, parts, encoder if way == "columns" else None)
            times[way].append(time.process_time() - c0)
        c0 = time.process_time()
        for r in sorted(rollups):
            await store.close_slot(r, slot)  # again: the same log (the close's common read)
        times["close_log"].append(time.process_time() - c0)
        del encoder
    m = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"{n_rollups:>2} {n:>6} {len(bids):>6} | {per_bid['re-read']:>8.1f} "
          f"{per_bid['follow']:>8.1f} {per_bid['follow'] / per_bid['re-read']:>6.3f} | "
          f"{m['scratch']:>8.1f} {m['columns']:>8.1f} {m['columns'] / m['scratch']:>6.2f} | "
          f"{m['close_log']:>8.1f} | {'yes' if same else 'NO':>4} | {os.getloadavg()[0]:>5.2f}",
          flush=True)  # fmt: skip
    await store.aclose()


def follow_cases(rounds: int, store: str) -> None:
    """``--follow``: see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="bench-follow-") as tmp:
        redis = start_redis(Path(tmp)) if store == "redis" else None
        try:
            print(f"the open slot followed (follow) vs its whole log re-read (re-read), CPU us per "
                  f"bid over the slot; the close's pure step from the follower's columns vs "
                  f"from scratch, interleaved, CPU ms medians of {rounds}; store {store}; load "
                  f"average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
            print(f"{'R':>2} {'n':>6} {'copies':>6} | {'re-read':>8} {'follow':>8} {'ratio':>6} | "
                  f"{'scratch':>8} {'columns':>8} {'ratio':>6} | {'closelog':>8} | same | "
                  "load")  # fmt: skip
            for db, case in enumerate(FOLLOW_CASES):
                url = f"redis://127.0.0.1:{redis.port}/{db}" if redis is not None else "memory"
                asyncio.run(_follow_case_async(case, rounds, url))
        finally:
            if redis is not None:
                redis.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--profile", action="store_true", help="cProfile pack_slot on the first slot")
    ap.add_argument("--baseline", metavar="REV", help="compare with git revision REV's path")
    ap.add_argument("--columnar", action="store_true",
                    help="compare the packing from scratch with the packing from columns")
    ap.add_argument("--scratch", metavar="REV",
                    help="pack_joint from scratch: REV's encoding vs this tree's vs columns")
    ap.add_argument("--follow", action="store_true",
                    help="the open slot followed vs re-read; the close from its columns vs not")
    ap.add_argument("--store", choices=["redis", "memory"], default="redis",
                    help="with --follow: the store the slot is logged in")
    a = ap.parse_args()
    warm_up()
    if a.follow:
        follow_cases(a.repeats, a.store)
        return
    if a.scratch:
        base = Baseline(a.scratch)
        print(f"pack_joint: from scratch with {a.scratch}'s encoding (base) vs this tree's (new) "
              f"vs from the encoder's columns (col), interleaved; CPU ms, medians of "
              f"{a.repeats}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'R':>2} {'n':>6} {'seed':>4} {'ms':>4} | {'base':>8} {'new':>8} {'ratio':>6} | "
              f"{'col':>8} {'ratio':>6} | same | load")  # fmt: skip
        for case in CASES:
            scratch_case(base, case, a.repeats)
        return
    if a.columnar:
        print(f"from scratch vs from the encoder's columns, interleaved; CPU ms, medians of "
              f"{a.repeats}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'R':>2} {'n':>6} {'seed':>4} {'ms':>4} | {'build':>7} {'col':>7} {'ratio':>5} | "
              f"{'pk_joint':>7} {'col':>7} {'ratio':>5} | {'pk_slot':>7} {'col':>7} {'ratio':>5} | "
              f"{'append':>7} | {'solve':>6} {'slow':>4} {'col/slow':>7} | same "
              "| load")  # fmt: skip
        for case in CASES:
            columnar_case(case, a.repeats)
        return
    if a.baseline:
        base = Baseline(a.baseline)
        print(f"baseline {a.baseline} vs this tree, interleaved; CPU ms, medians of {a.repeats}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
        print(f"{'R':>2} {'n':>6} {'seed':>4} {'ms':>4} | {'enc base':>8} {'enc new':>8} "
              f"{'ratio':>6} | {'slot base':>8} {'slot new':>8} {'ratio':>6} | same "
              "| load")  # fmt: skip
        for case in CASES:
            compare_case(base, case, a.repeats)
        return
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; CPU ms, medians of "
          f"{a.repeats} after one warm call")  # fmt: skip
    print(f"{'R':>2} {'n':>6} {'seed':>4} {'ms':>4} | " + " ".join(
        f"{h:>10}" for h in ("build", "encode", "solve", "pay", "pack_joint", "pack_slot"))
        + f" | {'slow':>4} {'pj/slow':>8} | load")  # fmt: skip
    for case in CASES:
        run_case(*case, a.repeats)
    if a.profile:
        profile_case(*CASES[0])


if __name__ == "__main__":
    main()
