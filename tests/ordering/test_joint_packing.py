"""Joint (multi-rollup) packing: atomic, valid, optimal on small slots, deterministic, with a
sound slot bound; one rollup is exactly the single-rollup packer; bad input has stable codes."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joint_cases import is_feasible, joint_instances, optimum_or_none

from bench.generate_joint import generate_joint_instance
from ordering import packer
from ordering.arrays import compute_joint_arrays
from ordering.errors import InfeasibleInstance, InvalidJointInput
from ordering.exact import pack_joint_exact
from ordering.joint import (
    _jadd,
    _jevict_set,
    _jnew_state,
    _jrow_orders,
    compute_joint_from_single,
    compute_joint_packing,
    compute_single_input,
    pack_joint_kernel,
    solve_joint_arrays,
)
from ordering.problem import JointInput, JointItem, Leg, RollupCapacity
from ordering.reference import check_joint_input, check_joint_packing
from ordering.solver import EXACT_MAX_ITEMS, GAP_TOLERANCE, compute_work_limit


def _shuffled(inp: JointInput, seed: int) -> JointInput:
    items = list(inp.items)
    random.Random(seed).shuffle(items)
    return JointInput(inp.rollups, tuple(items), inp.forced)


@settings(max_examples=300, deadline=None)
@given(joint_instances(max_items=EXACT_MAX_ITEMS))
def test_joint_kernel_is_valid_atomic_and_optimal_on_small_slots(inp: JointInput) -> None:
    # Up to EXACT_MAX_ITEMS candidates the kernel enumerates: it must equal brute force, and
    # every invariant (atomicity, capacities, caps, per-rollup conflicts, forced, revenue,
    # bound, order) must hold.
    opt = optimum_or_none(inp)
    if opt is None:
        with pytest.raises(InfeasibleInstance):
            pack_joint_kernel(inp, time_budget_ms=1)
        return
    p = pack_joint_kernel(inp, time_budget_ms=1)
    check_joint_packing(inp, p)
    assert p.revenue_wei == opt
    assert p.upper_bound_wei >= opt


@settings(max_examples=60, deadline=None)
@given(joint_instances(max_items=24), st.integers(0, 3))
def test_search_path_is_valid_with_a_sound_bound(inp: JointInput, seed: int) -> None:
    # Above EXACT_MAX_ITEMS candidates: the search path (bound, core, insert moves)
    opt = optimum_or_none(inp)
    if opt is None:
        return
    arrays = compute_joint_arrays(inp)
    sel, bound, _ = solve_joint_arrays(arrays, compute_work_limit(2), seed=seed, exact_max=0)
    p = compute_joint_packing(arrays, sel, bound, solver="numba-joint")
    check_joint_packing(inp, p)
    assert p.upper_bound_wei >= opt >= p.revenue_wei


def test_search_finds_the_optimum_on_most_small_slots() -> None:
    # The local search alone (enumeration off) against brute force on random 14-20-bundle slots
    rng = random.Random(7)
    hits = 0
    total = 0
    for case in range(150):
        inp = _random_slot(rng, rng.randint(14, 20), case)
        opt = optimum_or_none(inp)
        if opt is None:
            continue
        arrays = compute_joint_arrays(inp)
        sel, _b, _ = solve_joint_arrays(arrays, compute_work_limit(5), exact_max=0)
        p = compute_joint_packing(arrays, sel, -1, solver="numba-joint")
        total += 1
        hits += p.revenue_wei == opt
    assert total > 100 and hits / total >= 0.95, (hits, total)


def _random_slot(rng: random.Random, n: int, case: int) -> JointInput:
    n_rollups = rng.randint(2, 4)
    rollups = tuple(RollupCapacity(r, rng.randint(80, 250), rng.choice([None, 120]))
                    for r in range(n_rollups))  # fmt: skip
    items = []
    for i in range(n):
        on = rng.sample(range(n_rollups), rng.choice([1, 1, 2, 3][: n_rollups + 1]))
        legs = tuple(Leg(r, rng.randint(5, 60), tuple(f"k{rng.randint(0, 6)}"
                                                      for _ in range(rng.randint(0, 2))))
                     for r in on)  # fmt: skip
        items.append(JointItem(f"c{case}-{i:02d}", f"s{rng.randint(0, 3)}",
                               rng.randint(1, 1000), legs))  # fmt: skip
    return JointInput(rollups, tuple(items))


@pytest.mark.parametrize(("n", "n_rollups", "cross"), [(400, 2, 0.3), (900, 3, 0.2), (800, 4, 0.1)])
def test_bound_is_at_least_the_exact_optimum_on_generated_slots(n, n_rollups, cross) -> None:
    inp = generate_joint_instance(n, n_rollups, seed=3, cross_share=cross, searcher_share=0.3)
    h, proven = pack_joint_exact(inp, time_limit_s=120, presolve=False)
    assert proven
    p = packer.pack_joint(inp, time_budget_ms=20)
    check_joint_packing(inp, p)
    assert p.upper_bound_wei >= h.revenue_wei >= p.revenue_wei
    assert p.revenue_wei >= 0.99 * h.revenue_wei


@settings(max_examples=100, deadline=None)
@given(joint_instances(max_items=12, max_rollups=1))
def test_one_rollup_is_the_single_rollup_packer(inp: JointInput) -> None:
    # pack_joint on one rollup is the single-rollup solver on the same instance: same block,
    # bound and revenue
    if optimum_or_none(inp) is None:
        return
    got = packer.pack_joint(inp, time_budget_ms=2)
    single = packer.pack(compute_single_input(inp), time_budget_ms=2)
    assert got == compute_joint_from_single(inp, single)
    assert got.included == single.included and got.upper_bound_wei == single.upper_bound_wei
    check_joint_packing(inp, got)


@settings(max_examples=40, deadline=None)
@given(joint_instances(max_items=24), st.integers(0, 2**32))
def test_result_does_not_depend_on_item_order(inp: JointInput, shuffle_seed: int) -> None:
    if optimum_or_none(inp) is None:
        return
    assert packer.pack_joint(inp, 3) == packer.pack_joint(_shuffled(inp, shuffle_seed), 3)


def test_deterministic_on_a_generated_slot() -> None:
    inp = generate_joint_instance(3000, 4, seed=5, cross_share=0.3)
    first = packer.pack_joint(inp, 10)
    again = packer.pack_joint(_shuffled(inp, 1), 10)
    assert first == again
    check_joint_packing(inp, first)
    assert sum(1 for i in first.included if len(_by_id(inp)[i].legs) > 1) > 0


def _by_id(inp: JointInput) -> dict[str, JointItem]:
    return {it.id: it for it in inp.items}


def test_same_key_on_two_rollups_is_not_a_conflict() -> None:
    rollups = (RollupCapacity(1, 100), RollupCapacity(2, 100))
    items = (JointItem("a", "s", 10, (Leg(1, 10, ("pool",)),)),
             JointItem("b", "s", 10, (Leg(2, 10, ("pool",)),)),
             JointItem("c", "s", 5, (Leg(1, 10, ("x",)), Leg(2, 10, ("pool",)))))  # fmt: skip
    p = packer.pack_joint(JointInput(rollups, items), 1)
    assert p.block(1) == ("a",) and p.block(2) == ("b",) and p.revenue_wei == 20


def test_a_cross_bundle_wins_on_all_its_rollups_or_on_none() -> None:
    # x pays more than a and b together but does not fit rollup 2 beside b's rival d
    rollups = (RollupCapacity(1, 100), RollupCapacity(2, 50, 40))
    items = (JointItem("x", "s1", 30, (Leg(1, 50, ("p",)), Leg(2, 30, ("q",)))),
             JointItem("a", "s2", 12, (Leg(1, 50, ("p",)),)),
             JointItem("d", "s2", 25, (Leg(2, 40, ("r",)),)))  # fmt: skip
    p = packer.pack_joint(JointInput(rollups, items), 1)
    check_joint_packing(JointInput(rollups, items), p)
    assert p.included_by_rollup == ((1, ("a",)), (2, ("d",))) and p.revenue_wei == 37
    # with more room on rollup 2, x is in both blocks; order: bid per total gas (d 25/40 first,
    # x 30/80 after)
    roomy = (RollupCapacity(1, 100), RollupCapacity(2, 70))
    p = packer.pack_joint(JointInput(roomy, items), 1)
    assert p.included_by_rollup == ((1, ("x",)), (2, ("d", "x"))) and p.revenue_wei == 55
    assert p.included == ("d", "x") and p.gas_used_by_rollup == ((1, 50), (2, 70))


def test_forced_cross_bundle_is_included_and_infeasible_forced_set_is_an_error() -> None:
    rollups = (RollupCapacity(1, 100), RollupCapacity(2, 50))
    items = (JointItem("f", "s", 1, (Leg(1, 10, ("p",)), Leg(2, 10, ("q",)))),
             JointItem("g", "s", 99, (Leg(2, 45, ("z",)),)))  # fmt: skip
    p = packer.pack_joint(JointInput(rollups, items, frozenset({"f"})), 1)
    assert p.included == ("f",) and p.block(2) == ("f",)
    with pytest.raises(InfeasibleInstance) as err:
        packer.pack_joint(JointInput(rollups, items, frozenset({"f", "g"})), 1)
    assert err.value.code == "infeasible_instance"
    with pytest.raises(InfeasibleInstance):
        packer.pack_joint(JointInput(rollups, items, frozenset({"nope"})), 1)


_R = (RollupCapacity(1, 100), RollupCapacity(2, 100))


@pytest.mark.parametrize(
    ("inp", "code"),
    [
        (JointInput(_R, (JointItem("a", "s", 1, (Leg(3, 1, ()),)),)), "leg_unknown_rollup"),
        (JointInput(_R, (JointItem("a", "s", 1, ()),)), "bundle_without_legs"),
        (JointInput(_R, (JointItem("a", "s", 1, (Leg(1, 1, ()), Leg(1, 2, ()))),)),
         "duplicate_leg_rollup"),
        (JointInput(_R, (JointItem("a", "s", 1, (Leg(1, -1, ()),)),)), "negative_gas"),
        (JointInput(_R, (JointItem("a", "s", 1, (Leg(1, 1, ()),)),) * 2), "duplicate_bundle_id"),
        (JointInput((_R[0], _R[0]), ()), "duplicate_rollup"),
        (JointInput((RollupCapacity(1, -5),), ()), "invalid_capacity"),
        (JointInput((RollupCapacity(1, 5, -1),), ()), "invalid_capacity"),
    ],
)  # fmt: skip
def test_bad_input_has_a_stable_code(inp: JointInput, code: str) -> None:
    for pack in (packer.pack_joint, pack_joint_kernel):
        with pytest.raises(InvalidJointInput) as err:
            pack(inp, 1)
        assert err.value.code == code


def test_empty_and_zero_capacity_slots() -> None:
    assert packer.pack_joint(JointInput(_R, ()), 1).included_by_rollup == ((1, ()), (2, ()))
    full = (RollupCapacity(1, 0), RollupCapacity(2, 100))
    items = (JointItem("a", "s", 5, (Leg(1, 1, ()), Leg(2, 1, ()))),
             JointItem("b", "s", 3, (Leg(1, 0, ()), Leg(2, 1, ()))))  # fmt: skip
    p = packer.pack_joint(JointInput(full, items), 1)
    assert p.included == ("b",) and is_feasible(JointInput(full, items), p.included)


@st.composite
def maybe_malformed(draw: st.DrawFn) -> JointInput:
    rollups = tuple(RollupCapacity(r, draw(st.integers(-1, 50)),
                                   draw(st.one_of(st.none(), st.integers(-1, 50))))
                    for r in draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))  # fmt: skip
    items = tuple(
        JointItem(draw(st.sampled_from(["a", "b", "c", "d"])), "s", 1,
                  tuple(Leg(draw(st.integers(0, 4)), draw(st.integers(-1, 9)), ("k",))
                        for _ in range(draw(st.integers(0, 3)))))
        for _ in range(draw(st.integers(0, 4)))
    )  # fmt: skip
    return JointInput(rollups, items)


@settings(max_examples=300, deadline=None)
@given(maybe_malformed())
def test_vectorised_shape_check_agrees_with_the_reference(inp: JointInput) -> None:
    # compute_joint_arrays checks the shape with numpy; check_joint_input is the readable rule
    def code(fn: object) -> str:
        try:
            fn(inp)  # type: ignore[operator]
        except InvalidJointInput as exc:
            return exc.code
        return ""

    ref = code(check_joint_input)
    got = code(compute_joint_arrays)
    assert (ref == "") == (got == ""), (ref, got)


def _same_arrays(a: object, b: object) -> bool:
    # (``order`` is where each item sat in the input: the one field that names the input order)
    return all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        for x, y in ((getattr(a, f.name), getattr(b, f.name))
                     for f in dataclasses.fields(a) if f.name != "order")  # type: ignore[arg-type]
    )


@settings(max_examples=200, deadline=None)
@given(joint_instances(max_items=14, max_rollups=4), st.integers(0, 3))
def test_joint_arrays_do_not_depend_on_item_order(inp: JointInput, shuffle_seed: int) -> None:
    # The encoding reads the objects in input order and permutes integers to the canonical order
    again = compute_joint_arrays(_shuffled(inp, shuffle_seed))
    assert _same_arrays(compute_joint_arrays(inp), again)


def _components_by_the_rule(inp: JointInput) -> list[tuple[tuple[int, ...], set[str], set[str]]]:
    """The readable rule: rollups sharing a bundle are one component (a fixpoint merge)."""
    groups = [{r.rollup} for r in inp.rollups]
    for it in inp.items:
        spans = {leg.rollup for leg in it.legs}
        linked = [g for g in groups if g & spans]
        groups = [g for g in groups if not g & spans] + [set().union(*linked)]
    order = [r.rollup for r in inp.rollups]
    out = []
    for g in sorted(groups, key=lambda g: min(order.index(r) for r in g)):
        ids = {it.id for it in inp.items if it.legs[0].rollup in g}
        out.append((tuple(r for r in order if r in g), ids, ids & set(inp.forced)))
    return out


@settings(max_examples=200, deadline=None)
@given(joint_instances(max_items=12, max_rollups=4))
def test_components_read_from_the_arrays_follow_the_rule(inp: JointInput) -> None:
    got = [(tuple(r.rollup for r in c.rollups), {it.id for it in c.items}, set(c.forced))
           for c in packer.compute_components(inp)]  # fmt: skip
    assert got == _components_by_the_rule(inp)


def _readable_canonical_fields(inp: JointInput) -> dict[str, object]:
    """The canonical form's item, bid and capacity-row fields by the documented rule, item by
    item (ordering/arrays.py, ``JointArrays``): items by ascending id; a bid's value is
    max(bid, 0) >> shift; searchers numbered by first appearance in canonical order; rows are
    the rollups, then the (capped rollup, searcher) pairs that occur, ascending; per leg its
    rollup's row and, where capped, its pair's row, with the leg's gas."""
    items = sorted(inp.items, key=lambda it: it.id)
    bids = tuple(it.bid_wei for it in items)
    total = sum(b for b in bids if b > 0)
    shift = max(0, total.bit_length() - 53)
    rindex = {r.rollup: j for j, r in enumerate(inp.rollups)}
    caps = [r.max_gas_per_searcher for r in inp.rollups]
    searcher_id: dict[str, int] = {}
    for it in items:
        searcher_id.setdefault(it.searcher, len(searcher_id))
    pairs = sorted({(rindex[leg.rollup], searcher_id[it.searcher]) for it in items
                    for leg in it.legs if caps[rindex[leg.rollup]] is not None})  # fmt: skip
    pair_row = {p: len(inp.rollups) + j for j, p in enumerate(pairs)}
    row_ptr, row_idx, row_gas = [0], [], []
    for it in items:
        for leg in it.legs:
            r = rindex[leg.rollup]
            row_idx.append(r)
            row_gas.append(leg.gas)
            if caps[r] is not None:
                row_idx.append(pair_row[(r, searcher_id[it.searcher])])
                row_gas.append(leg.gas)
        row_ptr.append(len(row_idx))
    return {
        "items": tuple(items),
        "ids": tuple(it.id for it in items),
        "bids_wei": bids,
        "value": [max(b, 0) >> shift for b in bids],
        "value_shift": shift,
        "positive": [int(b > 0) for b in bids],
        "forced": [int(it.id in inp.forced) for it in items],
        "row_ptr": row_ptr,
        "row_idx": row_idx,
        "row_gas": row_gas,
        "row_cap": [r.gas_limit for r in inp.rollups] + [caps[r] for r, _ in pairs],
        "row_rollup": list(range(len(inp.rollups))) + [r for r, _ in pairs],
    }


@st.composite
def _joint_instances_any_bids(draw: st.DrawFn) -> JointInput:
    """``joint_instances`` with the bids scaled up to beyond int64 (the encoding's fallback)."""
    inp = draw(joint_instances(max_items=14, max_rollups=4))
    scale = draw(st.sampled_from([1, 2**40, 2**58, 2**70]))
    items = tuple(dataclasses.replace(it, bid_wei=it.bid_wei * scale) for it in inp.items)
    return JointInput(inp.rollups, items, inp.forced)


@settings(max_examples=300, deadline=None)
@given(_joint_instances_any_bids())
def test_joint_arrays_from_scratch_follow_the_readable_rule(inp: JointInput) -> None:
    # The vectorised encoding (objects read in input order, integers permuted to the canonical
    # order) against the rule written item by item, bids beyond int64 included: any faster
    # from-scratch encoding must keep these fields, so the packing (which reads only the arrays)
    # stays the same (decision 155).
    try:
        arrays = compute_joint_arrays(inp)
    except InvalidJointInput:
        with pytest.raises(InvalidJointInput):
            check_joint_input(inp)
        return
    for name, want in _readable_canonical_fields(inp).items():
        got = getattr(arrays, name)
        if isinstance(got, np.ndarray):
            assert got.tolist() == want, name
        else:
            assert got == want, name
    assert all(type(b) is int for b in arrays.bids_wei)


def test_search_stops_when_stalled_and_the_stop_is_deterministic() -> None:
    # A 3-rollup slot whose certified gap does not close under GAP_TOLERANCE: the default solve
    # stops after the stall work (JOINT_STALL_PER_CORE per core item) well before its cap, the
    # same way every run and for the input in any order, with a bound still above HiGHS's
    # optimum and the revenue of the search run to its cap
    inp = generate_joint_instance(2000, 3, seed=1, cross_share=0.2)
    arrays = compute_joint_arrays(inp)
    cap = compute_work_limit(50)
    sel, bound, stats = solve_joint_arrays(arrays, cap)
    assert stats.work_units < 0.7 * cap
    for again in (arrays, compute_joint_arrays(_shuffled(inp, 3))):
        sel2, bound2, stats2 = solve_joint_arrays(again, cap)
        assert stats2 == stats and bound2 == bound
        assert [again.ids[i] for i in np.flatnonzero(sel2)] == [
            arrays.ids[i] for i in np.flatnonzero(sel)
        ]
    p = compute_joint_packing(arrays, sel, bound, solver="numba-joint")
    check_joint_packing(inp, p)
    full_sel, _b, full_stats = solve_joint_arrays(arrays, cap, stall_work=cap)
    assert full_stats.work_units >= cap
    full = compute_joint_packing(arrays, full_sel, -1, solver="numba-joint")
    assert p.revenue_wei >= 0.999 * full.revenue_wei
    h, proven = pack_joint_exact(inp, time_limit_s=120)
    assert proven
    assert p.upper_bound_wei >= h.revenue_wei >= p.revenue_wei
    assert p.revenue_wei >= 0.995 * h.revenue_wei
    assert p.upper_bound_wei > (1 + GAP_TOLERANCE) * p.revenue_wei  # the gap did not close


@settings(max_examples=60, deadline=None)
@given(joint_instances(max_items=24), st.integers(0, 2**31))
def test_eviction_set_is_the_cheapest_rule_over_the_selection(inp: JointInput, seed: int) -> None:
    # _jevict_set walks presorted core lists; it must pick what the rule says over the whole
    # selection: the cheapest (value, index) single item freeing enough, or the lowest
    # value-per-gas prefix (ties by index) pruned from its end, whichever loses less
    arrays = compute_joint_arrays(inp)
    n = arrays.n
    if n == 0:
        return
    rng = random.Random(seed)
    P = (arrays.value, arrays.row_ptr, arrays.row_idx, arrays.row_gas, arrays.row_cap,
         arrays.key_ptr, arrays.key_idx.astype(np.int64), arrays.key_item_ptr,
         arrays.key_items.astype(np.int64), arrays.forced)  # fmt: skip
    St = _jnew_state(n, arrays.n_keys, arrays.n_rows)
    chosen = [i for i in range(n) if rng.random() < 0.6]
    for i in chosen:
        _jadd(np.int64(i), P, St)
    core = np.array(sorted(set(range(n)) - {i for i in range(n) if arrays.forced[i]}),
                    dtype=np.int64)  # fmt: skip
    R = _jrow_orders(core, arrays.value, arrays.row_ptr, arrays.row_idx, arrays.row_gas,
                     arrays.n_rows)  # fmt: skip
    ebuf = np.zeros(n, dtype=np.int64)
    for _ in range(5):
        j = rng.randrange(n)
        row = rng.randrange(arrays.n_rows)
        over = rng.randint(1, 200)
        ne = _jevict_set(np.int64(j), np.int64(row), np.int64(over), P, St, ebuf, R)
        assert _evict_rule(arrays, chosen, j, row, over) == (
            sorted(ebuf[:ne].tolist()) if ne >= 0 else None
        )


def _evict_rule(arrays, chosen: list[int], j: int, row: int, over: int) -> list[int] | None:
    gas = {}
    for i in chosen:
        if i == j or arrays.forced[i]:
            continue
        for p in range(arrays.row_ptr[i], arrays.row_ptr[i + 1]):
            if arrays.row_idx[p] == row and arrays.row_gas[p] > 0:
                gas[i] = int(arrays.row_gas[p])
    value = arrays.value
    singles = sorted((int(value[i]), i) for i, g in gas.items() if g >= over)
    prefix, freed, lost = [], 0, 0
    for i in sorted(gas, key=lambda i: (value[i] / gas[i], i)):
        if freed >= over:
            break
        prefix.append(i)
        freed += gas[i]
        lost += int(value[i])
    if freed >= over:
        for i in reversed(list(prefix)):
            if freed - gas[i] >= over:
                freed -= gas[i]
                lost -= int(value[i])
                prefix.remove(i)
    if singles and (freed < over or singles[0][0] < lost):
        return [singles[0][1]]
    return sorted(prefix) if freed >= over else None
