"""Benchmark: the numba packer vs the greedy packer vs HiGHS on generated slots.

Prints, per size: our CPU time split into the array encoding (``compute_packing_arrays``: reading
the Python items, a cost any solver pays to see the instance) and the solve from those arrays
(``solve_arrays`` + ``compute_packing``), medians of repeats after warm-up; revenue over the exact
optimum (HiGHS; when HiGHS does not finish, over its best bound); the solver's bound gap; the
same for greedy and HiGHS; and speed ratios measured in the same run:

- ``x opt``: HiGHS time to its proven optimum / our total time;
- ``x eq``: HiGHS time (model build + branch and bound) until its incumbent first reaches our
  revenue (its ``objective_target`` option) / our solve time, both from the same encoded arrays;
- ``x eq e2e``: the same with the shared encoding added to both sides (what a slot pays).

Also VCG time.

    .venv/bin/python -m bench.solver                 # full run (minutes: run it in background)
    .venv/bin/python -m bench.solver --quick         # sizes 100 and 1000, one seed
    .venv/bin/python -m bench.solver --budget-ms 1000:1/2/5,5000:5/10
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from bench.generate import generate_instance
from ordering.arrays import PackingArrays, compute_packing_arrays
from ordering.exact import _objective_scale, build_highs, pack_exact
from ordering.greedy import pack_greedy
from ordering.packer import warm_up
from ordering.payments import compute_payments
from ordering.problem import PAYMENT_VCG, Packing, PackingInput
from ordering.reference import check_packing
from ordering.solver import compute_packing, compute_work_limit, pack, solve_arrays

T = TypeVar("T")


def _timed(fn: Callable[[], T], repeats: int) -> tuple[T, float, float]:
    walls: list[float] = []
    cpus: list[float] = []
    out = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    assert out is not None
    return out, statistics.median(walls), statistics.median(cpus)


def highs_time_to(arrays: PackingArrays, target_scaled: int, limit_s: float) -> float:
    """CPU seconds for HiGHS, from the encoded arrays, to build its model and stop with an
    incumbent worth at least ``target_scaled`` (our block's value in the arrays' scaled units,
    the MILP's objective; its ``objective_target`` option); inf when it never gets there within
    ``limit_s``."""
    scale = _objective_scale(arrays)
    forced = int(arrays.value[arrays.forced == 1].sum())
    target = float(max(target_scaled, forced)) * scale * (1 - 1e-12)
    c0 = time.process_time()
    h = build_highs(arrays, limit_s)
    h.setOptionValue("objective_target", target)
    h.run()
    elapsed = time.process_time() - c0
    if h.getInfo().primal_solution_status != 2:
        return float("inf")
    x = np.asarray(h.getSolution().col_value)
    reached = float(arrays.value[x > 0.5].sum()) * scale >= target
    return elapsed if reached else float("inf")


@dataclass
class Row:
    enc: float  # CPU s, shared encoding
    solve: float  # CPU s, our solve from the arrays
    ratio: float  # revenue / optimum
    gap: float  # bound / optimum - 1
    x_opt: float  # HiGHS to proven optimum / our total
    x_eq: float  # HiGHS (from arrays) to our revenue / our solve
    x_eq_e2e: float  # the same, encoding added to both sides
    wall: float  # our total wall s


def _solve_from_arrays(inp: PackingInput, arrays: PackingArrays, budget_ms: int) -> Packing:
    sel, bound, _ = solve_arrays(arrays, compute_work_limit(budget_ms))
    return compute_packing(arrays, sel, bound, solver="numba")


def run(sizes: list[int], seeds: list[int], shares: list[float], budgets: dict[int, list[int]],
        repeats: int, highs_limit_s: float, vcg: bool) -> None:  # fmt: skip
    warm_up()
    print(
        f"{'n':>6} {'seed':>4} {'share':>5} {'ms':>3} | {'enc ms':>6} {'solve':>6} {'wall':>6} "
        f"{'rev/opt':>9} {'ub gap':>8} | {'greedy':>8} {'g ms':>6} | {'highs s':>8} {'h/opt':>8} "
        f"{'proven':>6} | {'x opt':>6} {'h->ours':>7} {'x eq':>6} {'x e2e':>6}"
    )
    rows: dict[tuple[int, int], list[Row]] = {}
    for n in sizes:
        for share in shares:
            for seed in seeds:
                inp: PackingInput = generate_instance(n, seed, searcher_share=share)
                arrays, _, enc = _timed(lambda: compute_packing_arrays(inp), repeats)  # noqa: B023
                g, gwall, _ = _timed(lambda: pack_greedy(inp), 1)  # noqa: B023
                rank = {item_id: r for r, item_id in enumerate(arrays.ids)}
                c0 = time.process_time()
                h, proven = pack_exact(inp, time_limit_s=highs_limit_s)
                hwall = time.process_time() - c0  # CPU, like ours
                check_packing(inp, h)
                for budget_ms in budgets.get(n, budgets[0]):
                    p, _, solve = _timed(
                        lambda: _solve_from_arrays(inp, arrays, budget_ms),  # noqa: B023
                        repeats,
                    )
                    _, wall, _ = _timed(lambda: pack(inp, time_budget_ms=budget_ms), repeats)  # noqa: B023
                    check_packing(inp, p)
                    ref = max(h.revenue_wei, p.revenue_wei) if proven else h.upper_bound_wei
                    ours = int(arrays.value[[rank[i] for i in p.included]].sum())
                    h_eq = highs_time_to(arrays, ours, highs_limit_s)
                    r = Row(
                        enc=enc,
                        solve=solve,
                        ratio=p.revenue_wei / ref,
                        gap=p.upper_bound_wei / max(ref, 1) - 1,
                        x_opt=hwall / (enc + solve),
                        x_eq=h_eq / solve,
                        x_eq_e2e=(enc + h_eq) / (enc + solve),
                        wall=wall,
                    )
                    rows.setdefault((n, budget_ms), []).append(r)
                    print(
                        f"{n:>6} {seed:>4} {share:>5} {budget_ms:>3} | {enc * 1e3:>6.2f} "
                        f"{solve * 1e3:>6.2f} {wall * 1e3:>6.2f} {r.ratio:>9.6f} {r.gap:>8.5f} | "
                        f"{g.revenue_wei / ref:>8.5f} {gwall * 1e3:>6.1f} | {hwall:>8.2f} "
                        f"{h.revenue_wei / ref:>8.5f} {str(proven):>6} | {r.x_opt:>6.1f} "
                        f"{h_eq:>7.3f} {r.x_eq:>6.1f} {r.x_eq_e2e:>6.1f}",
                        flush=True,
                    )
    print(
        "\nsummary per size: budget; CPU ms (encoding + solve = total) median and max; wall ms "
        "median; revenue/opt mean and worst; mean ub gap; speed-up vs HiGHS: to its proven "
        "optimum, and at equal revenue from the arrays and end to end (median, min)"
    )
    med, mean = statistics.median, statistics.mean
    for (n, budget_ms), rs in rows.items():
        tot = [r.enc + r.solve for r in rs]
        print(
            f"{n:>6}: budget {budget_ms:>3} ms  "
            f"cpu {med(r.enc for r in rs) * 1e3:.2f} + {med(r.solve for r in rs) * 1e3:.2f} = "
            f"{med(tot) * 1e3:.2f} / max {max(tot) * 1e3:.2f}  "
            f"wall {med(r.wall for r in rs) * 1e3:.2f}  "
            f"mean {mean(r.ratio for r in rs):.6f}  worst {min(r.ratio for r in rs):.6f}  "
            f"gap {mean(r.gap for r in rs):.5f}  "
            f"x{med(r.x_opt for r in rs):.0f} (min x{min(r.x_opt for r in rs):.0f}); "
            f"equal revenue x{med(r.x_eq for r in rs):.0f} (min x{min(r.x_eq for r in rs):.0f}), "
            f"end to end x{med(r.x_eq_e2e for r in rs):.0f} "
            f"(min x{min(r.x_eq_e2e for r in rs):.0f})"
        )
    if vcg:
        for n in [s for s in sizes if s >= 1000][:2] or sizes[:1]:
            inp = generate_instance(n, 0)
            p = pack(inp, time_budget_ms=budgets.get(n, budgets[0])[-1])
            _, wall, cpu = _timed(lambda: compute_payments(inp, p, PAYMENT_VCG), repeats)  # noqa: B023
            print(
                f"VCG n={n}: {len(p.included)} winners, wall {wall * 1e3:.1f} ms, "
                f"cpu {cpu * 1e3:.1f} ms"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sizes 100,1000; one seed; share 1.0")
    ap.add_argument("--sizes", default="100,1000,5000,20000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shares", default="1.0,0.2", help="max gas share per searcher")
    ap.add_argument(
        "--budget-ms",
        default="0:50,1000:1/2/3,5000:5/10,20000:25/50",
        help="budgets in ms per size, size:b1/b2/... (size 0: the default for other sizes)",
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--highs-limit", type=float, default=120.0)
    ap.add_argument("--no-vcg", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = list(range(a.seeds))
    shares = [float(s) for s in a.shares.split(",")]
    if a.quick:
        sizes, seeds, shares = [100, 1000], [0], [1.0]
    budgets = {0: [50]}
    for part in str(a.budget_ms).split(","):
        k, _, v = part.rpartition(":")
        budgets[int(k or 0)] = [int(b) for b in v.split("/")]
    run(sizes, seeds, shares, budgets, a.repeats, a.highs_limit, not a.no_vcg)


if __name__ == "__main__":
    main()
