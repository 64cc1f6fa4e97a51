"""Benchmark: the numba packer vs the greedy packer vs HiGHS on generated slots.

Prints, per size: solver wall time and CPU time (medians of repeats after warm-up; both include
the array encoding, which the slot pays), revenue over the exact optimum (HiGHS; when HiGHS does
not finish, over its best bound), the solver's bound gap, the same for greedy and HiGHS, and two
speed ratios measured in the same run: HiGHS time to its proven optimum / our CPU time, and HiGHS
time until its incumbent first reached our revenue (improving-solution callback) / our CPU time,
i.e. the speed-up at equal or better revenue. Also VCG time.

    .venv/bin/python -m bench.solver                 # full run (minutes: run it in background)
    .venv/bin/python -m bench.solver --quick         # sizes 100 and 1000, one seed
    .venv/bin/python -m bench.solver --budget-ms 1000:8,5000:10,20000:50
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from auction import constants as C
from bench.generate import generate_instance
from ordering.arrays import compute_packing_arrays
from ordering.exact import _objective_scale, build_highs, pack_exact
from ordering.greedy import pack_greedy
from ordering.payments import compute_payments
from ordering.problem import Packing, PackingInput
from ordering.reference import check_packing
from ordering.solver import pack, warm_up


def _timed(fn, repeats: int) -> tuple[Packing, float, float]:  # type: ignore[no-untyped-def]
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


def highs_time_to(inp: PackingInput, target_wei: int, limit_s: float) -> float:
    """Seconds until HiGHS stops with an incumbent worth at least ``target_wei`` (its
    ``objective_target`` option); inf when it never gets there within ``limit_s``."""
    arrays = compute_packing_arrays(inp)
    scale = _objective_scale(arrays)
    forced = int(arrays.value[arrays.forced == 1].sum())
    # the MILP objective is on scaled values: compare in the same units (slightly generous)
    target = float(max(target_wei >> arrays.value_shift, forced)) * scale * (1 - 1e-12)
    h = build_highs(arrays, limit_s)
    h.setOptionValue("objective_target", target)
    t0 = time.perf_counter()
    h.run()
    elapsed = time.perf_counter() - t0
    if h.getInfo().primal_solution_status != 2:
        return float("inf")
    x = np.asarray(h.getSolution().col_value)
    reached = float(arrays.value[x > 0.5].sum()) * scale >= target
    return elapsed if reached else float("inf")


def run(sizes: list[int], seeds: list[int], shares: list[float], budgets: dict[int, int],
        repeats: int, highs_limit_s: float, vcg: bool) -> None:  # fmt: skip
    warm_up()
    print(
        f"{'n':>6} {'seed':>4} {'share':>5} | {'wall ms':>8} {'cpu ms':>7} {'rev/opt':>9} "
        f"{'ub gap':>8} | {'greedy':>8} {'g ms':>6} | {'highs s':>8} {'h/opt':>8} {'proven':>6} "
        f"| {'x opt':>6} {'h->ours':>7} {'x eq':>6}"
    )
    rows: dict[int, list[tuple[float, float, float, float, float, float]]] = {}
    for n in sizes:
        budget_ms = budgets.get(n, budgets[0])
        for share in shares:
            for seed in seeds:
                inp: PackingInput = generate_instance(n, seed, searcher_share=share)
                p, wall, cpu = _timed(lambda: pack(inp, time_budget_ms=budget_ms), repeats)  # noqa: B023
                check_packing(inp, p)
                g, gwall, _ = _timed(lambda: pack_greedy(inp), 1)  # noqa: B023
                t0 = time.perf_counter()
                h, proven = pack_exact(inp, time_limit_s=highs_limit_s)
                hwall = time.perf_counter() - t0
                check_packing(inp, h)
                ref = max(h.revenue_wei, p.revenue_wei) if proven else h.upper_bound_wei
                ratio = p.revenue_wei / ref
                gap = p.upper_bound_wei / max(ref, 1) - 1
                h_eq = highs_time_to(inp, p.revenue_wei, highs_limit_s)
                rows.setdefault(n, []).append((cpu, ratio, gap, hwall / cpu, h_eq / cpu, wall))
                print(
                    f"{n:>6} {seed:>4} {share:>5} | {wall * 1e3:>8.2f} {cpu * 1e3:>7.2f} "
                    f"{ratio:>9.6f} {gap:>8.5f} | {g.revenue_wei / ref:>8.5f} {gwall * 1e3:>6.1f} "
                    f"| {hwall:>8.2f} {h.revenue_wei / ref:>8.5f} {str(proven):>6} "
                    f"| {hwall / cpu:>6.1f} {h_eq:>7.3f} {h_eq / cpu:>6.1f}",
                    flush=True,
                )
    print(
        "\nsummary per size: budget, CPU ms median and max, wall ms median, mean and worst "
        "revenue/opt, mean ub gap, speed-up vs HiGHS (to proven optimum; to our revenue), "
        "median and min"
    )
    for n, rs in rows.items():
        print(
            f"{n:>6}: budget {budgets.get(n, budgets[0]):>3} ms  "
            f"cpu {statistics.median(r[0] for r in rs) * 1e3:7.2f} / "
            f"{max(r[0] for r in rs) * 1e3:7.2f}"
            f"  wall {statistics.median(r[5] for r in rs) * 1e3:7.2f}  "
            f"mean {statistics.mean(r[1] for r in rs):.6f}  worst {min(r[1] for r in rs):.6f}  "
            f"gap {statistics.mean(r[2] for r in rs):.5f}  "
            f"x{statistics.median(r[3] for r in rs):.0f} (min x{min(r[3] for r in rs):.0f}); "
            f"equal revenue x{statistics.median(r[4] for r in rs):.0f} "
            f"(min x{min(r[4] for r in rs):.0f})"
        )
    if vcg:
        for n in [s for s in sizes if s >= 1000][:2] or sizes[:1]:
            inp = generate_instance(n, 0)
            p = pack(inp, time_budget_ms=budgets.get(n, budgets[0]))
            _, wall, cpu = _timed(lambda: compute_payments(inp, p, C.PAYMENT_VCG), repeats)  # noqa: B023
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
    ap.add_argument("--budget-ms", default="0:50,1000:10,5000:10,20000:50",
                    help="budget in ms, or size:budget pairs (size 0: the default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--highs-limit", type=float, default=120.0)
    ap.add_argument("--no-vcg", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    seeds = list(range(a.seeds))
    shares = [float(s) for s in a.shares.split(",")]
    if a.quick:
        sizes, seeds, shares = [100, 1000], [0], [1.0]
    budgets = {0: 50}
    for part in str(a.budget_ms).split(","):
        if ":" in part:
            k, v = part.split(":")
            budgets[int(k)] = int(v)
        else:
            budgets[0] = int(part)
    run(sizes, seeds, shares, budgets, a.repeats, a.highs_limit, not a.no_vcg)


if __name__ == "__main__":
    main()
