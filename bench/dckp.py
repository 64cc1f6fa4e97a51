"""Benchmark: the packer on the 112 published DCKP/KPCG instances (/work/shared/bench/dckp).

Each conflict edge (i, j) becomes a key only items i and j share; profit = bid, weight = gas,
capacity = gas limit. For each budget, reports per family the mean and worst gap to the best-known
value, and the share of instances where our value >= HiGHS's under the same time limit.

    .venv/bin/python -m bench.dckp                         # all, budgets 50 ms and 1 s (~1 h)
    .venv/bin/python -m bench.dckp --quick                 # 2 instances per family, 50 ms
    .venv/bin/python -m bench.dckp --family hifi2006 --budgets 1000 --no-highs
"""

from __future__ import annotations

import argparse
import csv
import gzip
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ordering.arrays import compute_packing_arrays
from ordering.exact import build_highs
from ordering.packer import warm_up
from ordering.problem import Item, PackingInput
from ordering.solver import compute_work_limit, solve_arrays

ROOT = Path("/work/shared/bench/dckp")


def read_instance(path: Path) -> tuple[list[int], list[int], int, list[tuple[int, int]]]:
    """(profits, weights, capacity, 0-based edges) from either published format."""
    text = gzip.open(path, "rt").read()
    if "param" in text:
        n = int(re.search(r"param n := (\d+)", text).group(1))  # type: ignore[union-attr]
        cap = int(re.search(r"param c := (\d+)", text).group(1))  # type: ignore[union-attr]
        body = text.split("param : V : p w :=")[1].split(";")[0].split()
        vals = list(map(int, body))
        profits = [0] * n
        weights = [0] * n
        for t in range(0, len(vals), 3):
            profits[vals[t]] = vals[t + 1]
            weights[vals[t]] = vals[t + 2]
        ebody = text.split("set E :=")[1].split(";")[0].split()
        ev = list(map(int, ebody))
        edges = [(ev[t], ev[t + 1]) for t in range(0, len(ev), 2)]
        return profits, weights, cap, edges
    tok = list(map(int, text.split()))
    n, m, cap = tok[0], tok[1], tok[2]
    profits = tok[3 : 3 + n]
    weights = tok[3 + n : 3 + 2 * n]
    e = tok[3 + 2 * n : 3 + 2 * n + 2 * m]
    edges = [(e[2 * t] - 1, e[2 * t + 1] - 1) for t in range(m)]
    return profits, weights, cap, edges


def to_packing_input(profits: list[int], weights: list[int], cap: int,
                     edges: list[tuple[int, int]]) -> PackingInput:  # fmt: skip
    keys: list[list[str]] = [[] for _ in profits]
    for a, b in edges:
        k = f"e{min(a, b)}-{max(a, b)}"
        keys[a].append(k)
        keys[b].append(k)
    items = tuple(
        Item(id=f"{i:05d}", searcher=f"s{i}", bid_wei=p, gas=w, keys=tuple(keys[i]))
        for i, (p, w) in enumerate(zip(profits, weights, strict=True))
    )
    return PackingInput(gas_limit=cap, items=items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", default="50,1000", help="ms, comma separated")
    ap.add_argument("--family", default="", help="only this family (e.g. hifi2006, C10)")
    ap.add_argument("--quick", action="store_true", help="2 instances per family, budget 50 ms")
    ap.add_argument("--no-highs", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    budgets = [int(b) for b in a.budgets.split(",")]
    rows = list(csv.DictReader(open(ROOT / "values.csv")))
    if a.family:
        rows = [r for r in rows if r["family"] == a.family]
    if a.quick:
        budgets = [50]
        seen: dict[str, int] = defaultdict(int)
        picked = []
        for r in rows:
            if seen[r["family"]] < 2:
                picked.append(r)
                seen[r["family"]] += 1
        rows = picked
    warm_up()
    results: dict[int, dict[str, list[tuple[float, bool]]]] = {
        b: defaultdict(list) for b in budgets
    }
    print(f"{'instance':48s} {'n':>5} {'best':>7} | per budget: ours gap wall_s highs")
    for r in rows:
        path = ROOT / "instances" / (r["instance"] + ".gz")
        profits, weights, cap, edges = read_instance(path)
        arrays = compute_packing_arrays(to_packing_input(profits, weights, cap, edges))
        best = int(r["best_known_value"])
        line = f"{r['instance']:48s} {len(profits):>5} {best:>7} |"
        for b in budgets:
            t0 = time.perf_counter()
            sel, _bound, _st = solve_arrays(arrays, compute_work_limit(b), a.seed)
            wall = time.perf_counter() - t0
            ours = int(arrays.value[sel == 1].sum())
            gap = (best - ours) / best
            highs_val = -1
            if not a.no_highs:
                h = build_highs(arrays, b / 1000.0)
                h.run()
                if h.getInfo().primal_solution_status == 2:
                    x = np.asarray(h.getSolution().col_value)
                    highs_val = int(arrays.value[x > 0.5].sum())
            results[b][r["family"]].append((gap, ours >= highs_val))
            line += f" {ours:>7} {gap * 100:6.2f}% {wall:5.2f}s {highs_val:>7} |"
        print(line, flush=True)
    for b in budgets:
        print(f"\nbudget {b} ms: family, instances, mean gap %, worst gap %, share ours >= HiGHS")
        allg: list[float] = []
        allw: list[bool] = []
        for fam, rs in sorted(results[b].items()):
            gaps = [g for g, _ in rs]
            wins = [w for _, w in rs]
            allg += gaps
            allw += wins
            print(
                f"  {fam:12s} {len(rs):3d} {statistics.mean(gaps) * 100:7.3f} "
                f"{max(gaps) * 100:7.3f} {sum(wins) / len(wins):6.2f}"
            )
        print(
            f"  {'ALL':12s} {len(allg):3d} {statistics.mean(allg) * 100:7.3f} "
            f"{max(allg) * 100:7.3f} {sum(allw) / len(allw):6.2f}"
        )


if __name__ == "__main__":
    main()
