"""Local-search moves keep the solution state exact: checked after every single move.

``check_state`` is the invariant checker: it recomputes from scratch what the kernels maintain
incrementally (selection feasibility, gas, value, per-searcher gas, conflict counts and index
sums, key owners, the swap list) and compares.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench.dckp import to_packing_input
from bench.generate import generate_instance
from ordering.arrays import PackingArrays, compute_packing_arrays
from ordering.problem import Item, PackingInput
from ordering.reference import is_feasible_set
from ordering.solver import (
    _greedy_fill,
    _insert,
    _new_state,
    _next_random,
    _restrict_keys,
    _tabu_move,
    efficiency_order,
    pack,
    prepare_candidates,
)


def _setup(arrays: PackingArrays):  # type: ignore[no-untyped-def]
    n = arrays.n
    banned = np.zeros(n, dtype=np.uint8)
    cand, scap, _fgas = prepare_candidates(
        arrays.gas, arrays.positive, arrays.forced, banned, arrays.searcher, arrays.key_ptr,
        arrays.key_idx, arrays.key_item_ptr, arrays.key_items, np.int64(arrays.gas_limit),
        np.int64(arrays.searcher_cap), arrays.n_searchers,
    )  # fmt: skip
    core = efficiency_order(np.flatnonzero(cand).astype(np.int64), arrays.value, arrays.gas)
    kp, ki = _restrict_keys(core, n, arrays.key_item_ptr, arrays.key_items)
    P = (arrays.gas, arrays.value, arrays.searcher, arrays.key_ptr, arrays.key_idx, kp, ki, scap,
         arrays.forced)  # fmt: skip
    lmask = np.zeros(n, dtype=np.uint8)
    lmask[core] = 1
    St = _new_state(n, arrays.n_keys, arrays.n_searchers, lmask)
    _greedy_fill(core, P, St, np.int64(arrays.gas_limit))
    return core, P, St, scap


def check_state(inp: PackingInput, arrays: PackingArrays, P, St) -> None:  # type: ignore[no-untyped-def]
    """Every incrementally maintained quantity equals its recomputation; the selection is valid."""
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    kp, ki = P[5], P[6]
    chosen = np.flatnonzero(sel).tolist()
    by_id = {it.id: it for it in inp.items}
    # Verify that the selection is a valid block
    assert is_feasible_set(inp, [by_id[arrays.ids[i]] for i in chosen])
    assert sorted(slist[: acc[3]].tolist()) == chosen
    assert acc[0] == int(arrays.gas[chosen].sum())
    assert acc[1] == int(arrays.value[chosen].sum())
    for s in range(arrays.n_searchers):
        assert sgas[s] == int(arrays.gas[[i for i in chosen if arrays.searcher[i] == s]].sum())
    # Verify the conflict counts and sums over the (core-restricted) key lists
    n = arrays.n
    c2 = np.zeros(n, dtype=np.int64)
    s1 = np.zeros(n, dtype=np.int64)
    s2 = np.zeros(n, dtype=np.int64)
    for i in chosen:
        for p in range(arrays.key_ptr[i], arrays.key_ptr[i + 1]):
            k = arrays.key_idx[p]
            assert owner[k] == i
            for q in range(kp[k], kp[k + 1]):
                x = ki[q]
                c2[x] += 1
                s1[x] += i
                s2[x] += i * i
    assert np.array_equal(c2, cnt) and np.array_equal(s1, csum) and np.array_equal(s2, csq)
    # Verify the swap list: unselected core items whose conflicts come from one item at most
    want = set()
    for x in range(n):
        if lmask[x] and not sel[x]:
            owners = set()
            for p in range(arrays.key_ptr[x], arrays.key_ptr[x + 1]):
                k = arrays.key_idx[p]
                if owner[k] >= 0 and owner[k] != x:
                    owners.add(int(owner[k]))
            if len(owners) <= 1:
                want.add(x)
    assert set(clist[: acc[4]].tolist()) == want
    for t in range(acc[4]):
        assert cpos[clist[t]] == t


def _random_instance(rng: random.Random, n: int) -> PackingInput:
    keys = [f"k{j}" for j in range(max(2, n // 2))]
    items = tuple(
        Item(
            id=f"b{i:03d}",
            searcher=f"s{rng.randint(0, 4)}",
            bid_wei=rng.randint(1, 200),
            gas=rng.randint(1, 40),
            keys=tuple(rng.sample(keys, rng.randint(0, 3))),
        )
        for i in range(n)
    )
    cap = rng.choice([None, rng.randint(40, 120)])
    return PackingInput(rng.randint(60, 250), items, cap)


def _dckp_instance(rng: random.Random, n: int, density: float) -> PackingInput:
    profits = [0] * n
    weights = [0] * n
    for i in range(n):
        weights[i] = rng.randint(1, 30)
        profits[i] = weights[i] + 10
    edges = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density]
    return to_packing_input(profits, weights, 8 * n, edges)


@pytest.mark.parametrize("case", range(12))
def test_every_tabu_and_insert_move_keeps_the_state_exact(case: int) -> None:
    rng = random.Random(case)
    inp = _random_instance(rng, 30) if case % 2 else _dckp_instance(rng, 30, 0.2)
    arrays = compute_packing_arrays(inp)
    core, P, St, _scap = _setup(arrays)
    check_state(inp, arrays, P, St)
    n = arrays.n
    tin = np.zeros(n, dtype=np.int64)
    tout = np.zeros(n, dtype=np.int64)
    tabu = np.zeros(n, dtype=np.int64)
    rng_state = np.array([case + 1], dtype=np.uint64)
    buf = [np.zeros(n, dtype=np.int64) for _ in range(6)]
    reduced = np.full(n, np.inf)
    m = core.shape[0]
    minsuf = np.empty(m + 1, dtype=np.int64)
    minsuf[m] = np.iinfo(np.int64).max
    for pos in range(m - 1, -1, -1):
        minsuf[pos] = min(minsuf[pos + 1], arrays.gas[core[pos]])
    gas_limit = np.int64(arrays.gas_limit)
    best = St[6][1]
    for it in range(1, 150):
        if it % 10 == 0 and m:
            # a kick: forced insert of a random core item (evictions + greedy refill)
            j = core[_next_random(rng_state) % m]
            if not St[0][j]:
                _insert(j, it, core, minsuf, tabu, P, St, gas_limit, buf[0], buf[1], buf[2])
        else:
            _tabu_move(it, P, St, gas_limit, tin, tout, rng_state, best, reduced, -1e300,
                       buf[3], buf[4], buf[5])  # fmt: skip
        best = max(best, St[6][1])
        check_state(inp, arrays, P, St)


def test_dense_dckp_is_deterministic_and_valid() -> None:
    rng = random.Random(5)
    inp = _dckp_instance(rng, 120, 0.3)
    a = pack(inp, time_budget_ms=3, seed=2)
    assert pack(inp, time_budget_ms=3, seed=2) == a
    by_id = {it.id: it for it in inp.items}
    assert is_feasible_set(inp, [by_id[i] for i in a.included])
    assert a.upper_bound_wei >= a.revenue_wei


def test_generated_with_caps_every_move_valid() -> None:
    inp = generate_instance(60, seed=9, searcher_share=0.2, n_forced=0)
    arrays = compute_packing_arrays(inp)
    core, P, St, _scap = _setup(arrays)
    n = arrays.n
    tin = np.zeros(n, dtype=np.int64)
    tout = np.zeros(n, dtype=np.int64)
    rng_state = np.array([7], dtype=np.uint64)
    bufs = [np.zeros(n, dtype=np.int64) for _ in range(3)]
    best = St[6][1]
    for it in range(1, 120):
        _tabu_move(it, P, St, np.int64(arrays.gas_limit), tin, tout, rng_state, best,
                   np.full(n, np.inf), -1e300, bufs[0], bufs[1], bufs[2])  # fmt: skip
        best = max(best, St[6][1])
        check_state(inp, arrays, P, St)
