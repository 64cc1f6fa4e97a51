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
  ``pack_joint`` per component).

``--profile`` adds a cProfile of ``pack_slot`` on the first large slot (top functions by own time).
The load average is printed with each row: the machine is shared, so compare figures of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

from auction.presets import Policy, Rollup
from auction.results import SlotPart, _RollupClose, compute_slot_input
from auction.types import Bid, Evidence, Tx
from auction.types import Leg as BidLeg
from bench.generate_joint import generate_joint_instance
from ordering.arrays import compute_joint_arrays
from ordering.joint import compute_joint_packing, solve_joint_arrays
from ordering.packer import compute_joint_payments, pack_joint, pack_slot, warm_up
from ordering.problem import PAYMENT_FIRST_PRICE, JointInput, JointItem
from ordering.problem import Leg as PackLeg
from ordering.solver import compute_work_limit

T = TypeVar("T")

# (rollups, bundles, seed, budget ms): the issue-13 target slots and a small one.
CASES = ((8, 20_000, 0, 30), (8, 20_000, 1, 30), (3, 2_000, 0, 10))


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
    work = compute_work_limit(budget_ms)

    def solve() -> object:
        sel, bound, _ = solve_joint_arrays(arrays, work)
        return compute_joint_packing(arrays, sel, bound, solver="numba-joint")

    _, sol = _timed(solve, repeats)
    packing, total = _timed(lambda: pack_joint(inp, budget_ms), repeats)
    _, pay = _timed(lambda: compute_joint_payments(inp, packing, PAYMENT_FIRST_PRICE), repeats)
    _, slot = _timed(lambda: pack_slot(inp, budget_ms), repeats)
    row = {"build": build, "encode": enc, "solve": sol, "pay": pay, "pack_joint": total,
           "pack_slot": slot}  # fmt: skip
    load = os.getloadavg()[0]
    print(f"{n_rollups:>2} {len(inp.items):>6} {seed:>4} {budget_ms:>4} | "
          + " ".join(f"{v * 1e3:>10.1f}" for v in row.values())
          + f" | {load:>5.2f}  rev {packing.revenue_wei}", flush=True)  # fmt: skip
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--profile", action="store_true", help="cProfile pack_slot on the first slot")
    a = ap.parse_args()
    warm_up()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; CPU ms, medians of "
          f"{a.repeats} after one warm call")  # fmt: skip
    print(f"{'R':>2} {'n':>6} {'seed':>4} {'ms':>4} | " + " ".join(
        f"{h:>10}" for h in ("build", "encode", "solve", "pay", "pack_joint", "pack_slot"))
        + " | load")  # fmt: skip
    for case in CASES:
        run_case(*case, a.repeats)
    if a.profile:
        profile_case(*CASES[0])


if __name__ == "__main__":
    main()
