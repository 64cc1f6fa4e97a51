"""Benchmark: joint packing of shared slots vs HiGHS and vs independent sequencers.

Per generated shared slot (``bench.generate_joint``: 2 to 8 rollups, 1,000 to 20,000 bundles,
10-30% cross-rollup) it prints, measured in the same run:

- our CPU time: the array encoding (``compute_joint_arrays``), the solve from the arrays
  (``solve_joint_arrays`` + ``compute_joint_packing``) and their sum, medians of repeats after
  warm-up (``pack_joint`` does exactly these two steps after validating the input);
- revenue / the exact joint optimum (HiGHS, 1 thread, with a time limit; ``proven`` says
  whether HiGHS proved it: if not, the ratio is over HiGHS's best packing, so it may exceed 1);
- the bound gap (our certified bound / optimum - 1);
- HiGHS's CPU time to its proven optimum (model building included) and the speed ratio
  ``x opt`` = that time / our total time;
- independent sequencers: each rollup packed alone by the single-rollup solver with the same
  budget, a cross-rollup bundle bidding on each rollup the share of its bid proportional to the
  leg's gas; a cross bundle counts (its whole bid) only if it won on every rollup, otherwise it
  is dropped. ``indep/opt`` and ``joint/indep``.

    .venv/bin/python -m bench.joint            # full run (about 15 minutes: run it niced)
    .venv/bin/python -m bench.joint --quick    # a subset
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bench.generate_joint import generate_joint_instance
from ordering.arrays import JointArrays, compute_joint_arrays
from ordering.exact import pack_joint_exact
from ordering.joint import compute_joint_packing, solve_joint_arrays
from ordering.packer import pack, pack_joint, warm_up
from ordering.problem import Item, JointInput, JointPacking, PackingInput
from ordering.reference import check_joint_packing
from ordering.solver import compute_work_limit

T = TypeVar("T")

# Budget (ms) per slot size: sized so the whole pack fits the targets (see the summary).
BUDGET_MS = {1000: 5, 5000: 20, 20000: 30}


def _timed(fn: Callable[[], T], repeats: int) -> tuple[T, float]:
    """Result and median CPU seconds over ``repeats`` calls."""
    cpus: list[float] = []
    out: T | None = None
    for _ in range(repeats):
        c0 = time.process_time()
        out = fn()
        cpus.append(time.process_time() - c0)
    assert out is not None
    return out, statistics.median(cpus)


def compute_independent_revenue(inp: JointInput, budget_ms: int) -> int:
    """Revenue of independent sequencers: each rollup packed alone (single-rollup solver), a
    cross bundle bidding on each rollup its bid's share proportional to the leg's gas (the
    remainder on its first leg), counted only when it won on every rollup it spans."""
    per_rollup: dict[int, list[Item]] = {r.rollup: [] for r in inp.rollups}
    for it in inp.items:
        total = max(it.gas, 1)
        shares = [it.bid_wei * leg.gas // total for leg in it.legs]
        shares[0] += it.bid_wei - sum(shares)
        for leg, share in zip(it.legs, shares, strict=True):
            per_rollup[leg.rollup].append(Item(it.id, it.searcher, share, leg.gas, leg.keys))
    won: dict[str, int] = {}
    for cap in inp.rollups:
        single = PackingInput(cap.gas_limit, tuple(per_rollup[cap.rollup]),
                              cap.max_gas_per_searcher)  # fmt: skip
        for i in pack(single, budget_ms).included:
            won[i] = won.get(i, 0) + 1
    return sum(it.bid_wei for it in inp.items if won.get(it.id, 0) == len(it.legs))


@dataclass
class Row:
    ratio: float
    proven: bool
    total_ms: float
    speed: float
    joint_vs_indep: float


def solve_encoded(arrays: JointArrays, budget_ms: int) -> JointPacking:
    """The timed solve step: the joint kernel on encoded arrays, then the packing it selects
    (what ``pack_joint`` does after the encoding)."""
    sel, bound, _ = solve_joint_arrays(arrays, compute_work_limit(budget_ms))
    return compute_joint_packing(arrays, sel, bound, solver="numba-joint")


def _run_one(inp: JointInput, budget_ms: int, repeats: int, highs_limit_s: float) -> Row:
    arrays, enc = _timed(lambda: compute_joint_arrays(inp), repeats)
    p, sol = _timed(lambda: solve_encoded(arrays, budget_ms), repeats)
    check_joint_packing(inp, p)
    # pack_joint is the same two steps (after validation): same block, checked here
    if pack_joint(inp, budget_ms).included != p.included:
        raise SystemExit("pack_joint and the timed steps disagree")
    c0 = time.process_time()
    h, proven = pack_joint_exact(inp, time_limit_s=highs_limit_s)
    highs_s = time.process_time() - c0
    check_joint_packing(inp, h)
    opt = max(h.revenue_wei, 1)
    indep = compute_independent_revenue(inp, budget_ms)
    total = enc + sol
    speed = highs_s / total if proven else float("nan")
    cross = sum(1 for it in inp.items if len(it.legs) > 1) / max(len(inp.items), 1)
    print(
        f"{len(inp.rollups):>2} {len(inp.items):>6} {cross:>5.1%} {budget_ms:>4} | "
        f"{enc * 1e3:>6.1f} {sol * 1e3:>6.1f} {total * 1e3:>6.1f} | {p.revenue_wei / opt:>8.5f} "
        f"{p.upper_bound_wei / opt - 1:>7.4f} | {highs_s:>7.2f} {'yes' if proven else 'NO':>6} "
        f"{speed:>6.0f} | {indep / opt:>8.4f} {p.revenue_wei / max(indep, 1):>7.3f}",
        flush=True,
    )
    return Row(p.revenue_wei / opt, proven, total * 1e3, speed, p.revenue_wei / max(indep, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a subset: fewer sizes, one seed")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--highs-limit-s", type=float, default=120.0)
    a = ap.parse_args()
    if a.quick:
        grid = [(2, 1000), (4, 5000), (8, 20000)]
        seeds = [0]
    else:
        grid = [(r, n) for n in (1000, 5000, 20000) for r in (2, 4, 8)]
        seeds = [0, 1]
    shares = (0.1, 0.2, 0.3)
    warm_up()
    print(f"{'R':>2} {'n':>6} {'cross':>5} {'ms':>4} | {'enc':>6} {'solve':>6} {'total':>6} | "
          f"{'rev/opt':>8} {'ub gap':>7} | {'highs s':>7} {'proven':>6} {'x opt':>6} | "
          f"{'ind/opt':>8} {'j/ind':>7}")  # fmt: skip
    rows: list[tuple[int, int, Row]] = []
    for k, (n_rollups, n) in enumerate(grid):
        for seed in seeds:
            inp = generate_joint_instance(n, n_rollups, seed, shares[(k + seed) % 3])
            rows.append((n_rollups, n, _run_one(inp, BUDGET_MS[n], a.repeats, a.highs_limit_s)))
    ratios = [r.ratio for _, _, r in rows]
    speeds = [r.speed for _, _, r in rows if r.proven]
    print(f"\nrevenue / exact optimum: mean {statistics.mean(ratios):.5f}, worst {min(ratios):.5f}"
          f" ({sum(1 for _, _, r in rows if not r.proven)} of {len(rows)} optima not proven)")
    print(f"x opt (HiGHS to its proven optimum / our total CPU): median "
          f"{statistics.median(speeds):.0f}, min {min(speeds):.0f}")  # fmt: skip
    big = [r.total_ms for rr, n, r in rows if rr == 8 and n == 20000]
    if big:
        print(f"20,000 bundles over 8 rollups: total CPU {', '.join(f'{t:.1f}' for t in big)} ms")
    print(f"joint / independent revenue: mean "
          f"{statistics.mean(r.joint_vs_indep for _, _, r in rows):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
