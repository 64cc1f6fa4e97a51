"""Shared strategies and oracles for the joint (multi-rollup) packing tests."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from ordering.errors import InfeasibleInstance
from ordering.problem import JointInput, JointItem, Leg, RollupCapacity
from ordering.reference import compute_joint_optimum, is_feasible_joint_set


@st.composite
def joint_instances(draw: st.DrawFn, max_items: int = 10, max_rollups: int = 3) -> JointInput:
    """Tiny shared slots: 1-3 rollups, dense conflicts (the same key strings on every rollup,
    which must not conflict across rollups), per-rollup caps, cross-rollup items, odd bids and
    gas, forced items (possibly infeasible)."""
    n_rollups = draw(st.integers(1, max_rollups))
    rollups = tuple(
        RollupCapacity(
            rollup=100 + 7 * r,
            gas_limit=draw(st.integers(0, 200)),
            max_gas_per_searcher=draw(st.one_of(st.none(), st.integers(0, 150))),
        )
        for r in range(n_rollups)
    )
    keys = [f"k{j}" for j in range(draw(st.integers(1, 6)))]
    items = []
    for i in range(draw(st.integers(0, max_items))):
        on = draw(st.lists(st.sampled_from(rollups), min_size=1, max_size=3, unique=True))
        legs = tuple(
            Leg(r.rollup, draw(st.integers(0, 60)),
                tuple(draw(st.lists(st.sampled_from(keys), max_size=2))))
            for r in on
        )  # fmt: skip
        item_id = f"b{draw(st.integers(0, 10**6))}-{i}"
        searcher = f"s{draw(st.integers(0, 2))}"
        items.append(JointItem(item_id, searcher, draw(st.integers(-5, 1000)), legs))
    ids = [it.id for it in items]
    forced = draw(st.sets(st.sampled_from(ids), max_size=2)) if ids else set()
    return JointInput(rollups, tuple(items), frozenset(forced))


def optimum_or_none(inp: JointInput) -> int | None:
    """The exact optimum, or None when the forced items cannot all be included."""
    try:
        return compute_joint_optimum(inp)
    except InfeasibleInstance:
        return None


def compute_exact_vcg(inp: JointInput, included: tuple[str, ...]) -> dict[str, int]:
    """Exact VCG payments (brute force) for the packing ``included``: OPT(-w) - (V(S) - b_w),
    clamped to [0, b_w]."""
    by_id = {it.id: it for it in inp.items}
    revenue = sum(by_id[i].bid_wei for i in included)
    out = {}
    for w in included:
        without = replace(inp, forced=inp.forced - {w})
        opt = compute_joint_optimum(without, banned=frozenset({w}))
        others = revenue - by_id[w].bid_wei
        out[w] = min(max(opt - others, 0), by_id[w].bid_wei)
    return out


def is_feasible(inp: JointInput, ids: tuple[str, ...]) -> bool:
    by_id = {it.id: it for it in inp.items}
    return is_feasible_joint_set(inp, [by_id[i] for i in ids])
