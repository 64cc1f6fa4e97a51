"""Executable specification of a valid block: every packer's answer is checked against this."""

from __future__ import annotations

from collections import defaultdict

from ordering.errors import (
    BundleWithoutLegs,
    DuplicateBundleId,
    DuplicateLegRollup,
    DuplicateRollup,
    InfeasibleInstance,
    InvalidCapacity,
    LegForUnknownRollup,
    NegativeGas,
)
from ordering.problem import (
    Item,
    JointInput,
    JointItem,
    JointPacking,
    Packing,
    PackingInput,
    compute_block_order,
    compute_joint_order,
)


def check_packing(inp: PackingInput, packing: Packing) -> None:
    """Raise AssertionError-free ValueError describing the first rule the packing breaks."""
    by_id = {it.id: it for it in inp.items}
    # Verify that every included id names an item, once
    if len(set(packing.included)) != len(packing.included):
        raise ValueError("an item is included twice")
    for i in packing.included:
        if i not in by_id:
            raise ValueError(f"unknown item {i!r} included")
    chosen = [by_id[i] for i in packing.included]
    # Verify that the gas limit holds
    gas = sum(it.gas for it in chosen)
    if gas > inp.gas_limit:
        raise ValueError(f"gas {gas} exceeds limit {inp.gas_limit}")
    if gas != packing.gas_used:
        raise ValueError(f"gas_used {packing.gas_used} != {gas}")
    # Verify that no two chosen items share a conflict key
    owner: dict[str, str] = {}
    for it in chosen:
        for k in set(it.keys):
            if k in owner:
                raise ValueError(f"items {owner[k]} and {it.id} share key {k}")
            owner[k] = it.id
    # Verify the per-searcher gas cap
    if inp.max_gas_per_searcher is not None:
        per: dict[str, int] = defaultdict(int)
        for it in chosen:
            per[it.searcher] += it.gas
        for s, g in per.items():
            if g > inp.max_gas_per_searcher:
                raise ValueError(f"searcher {s} uses {g} gas > cap {inp.max_gas_per_searcher}")
    # Verify that forced items are in
    missing = inp.forced - set(packing.included)
    if missing:
        raise ValueError(f"forced items missing: {sorted(missing)}")
    # Verify revenue and the bound
    revenue = sum(it.bid_wei for it in chosen)
    if revenue != packing.revenue_wei:
        raise ValueError(f"revenue {packing.revenue_wei} != {revenue}")
    if packing.upper_bound_wei < revenue:
        raise ValueError("upper bound below the packing's own revenue")
    # Verify the block order
    if [it.id for it in compute_block_order(chosen)] != list(packing.included):
        raise ValueError("included items are not in block order")


def is_feasible_set(inp: PackingInput, chosen: list[Item]) -> bool:
    """True when the items (any order) satisfy gas, conflicts and the searcher cap."""
    if sum(it.gas for it in chosen) > inp.gas_limit:
        return False
    seen: set[str] = set()
    per: dict[str, int] = defaultdict(int)
    for it in chosen:
        ks = set(it.keys)
        if ks & seen:
            return False
        seen |= ks
        per[it.searcher] += it.gas
    if inp.max_gas_per_searcher is not None and any(
        g > inp.max_gas_per_searcher for g in per.values()
    ):
        return False
    return True


def check_forced_feasible(inp: PackingInput) -> list[Item]:
    """Return the forced items, raising InfeasibleInstance when they cannot all be included."""
    by_id = {it.id: it for it in inp.items}
    unknown = sorted(f for f in inp.forced if f not in by_id)
    if unknown:
        raise InfeasibleInstance("forced bundles are not in the instance", unknown=unknown)
    forced = [by_id[f] for f in sorted(inp.forced)]
    if not is_feasible_set(inp, forced):
        raise InfeasibleInstance(
            "forced bundles cannot all be included (gas, conflicts or searcher cap)",
            forced=sorted(inp.forced),
        )
    return forced


# --- joint (multi-rollup) instances -----------------------------------------------------------


def check_joint_input(inp: JointInput) -> None:
    """Raise the stable error of the first shape rule ``inp`` breaks (InvalidJointInput tree)."""
    rollups = [r.rollup for r in inp.rollups]
    # Verify that each rollup appears once, with capacities >= 0
    if len(set(rollups)) != len(rollups):
        raise DuplicateRollup("a rollup appears twice in the slot", rollups=rollups)
    for r in inp.rollups:
        if r.gas_limit < 0 or (r.max_gas_per_searcher is not None and r.max_gas_per_searcher < 0):
            raise InvalidCapacity("a rollup's capacity is negative", rollup=r.rollup)
    known = set(rollups)
    seen: set[str] = set()
    for it in inp.items:
        # Verify that ids are unique and every bundle has legs, one per known rollup
        if it.id in seen:
            raise DuplicateBundleId("a bundle id appears twice", id=it.id)
        seen.add(it.id)
        if not it.legs:
            raise BundleWithoutLegs("a bundle has no legs", id=it.id)
        on = [leg.rollup for leg in it.legs]
        if len(set(on)) != len(on):
            raise DuplicateLegRollup("two legs of a bundle on one rollup", id=it.id)
        for leg in it.legs:
            if leg.rollup not in known:
                raise LegForUnknownRollup(
                    "a leg is on a rollup outside the slot", id=it.id, rollup=leg.rollup
                )
            if leg.gas < 0:
                raise NegativeGas("a leg has negative gas", id=it.id, rollup=leg.rollup)


def is_feasible_joint_set(inp: JointInput, chosen: list[JointItem]) -> bool:
    """True when the items (each with all its legs) satisfy every rollup's gas, conflicts and
    searcher cap."""
    caps = {r.rollup: r for r in inp.rollups}
    gas: dict[int, int] = defaultdict(int)
    per: dict[tuple[int, str], int] = defaultdict(int)
    seen: set[tuple[int, str]] = set()
    for it in chosen:
        for leg in it.legs:
            ks = {(leg.rollup, k) for k in leg.keys}
            if ks & seen:
                return False
            seen |= ks
            gas[leg.rollup] += leg.gas
            per[(leg.rollup, it.searcher)] += leg.gas
    if any(g > caps[r].gas_limit for r, g in gas.items()):
        return False
    for (r, _s), g in per.items():
        cap = caps[r].max_gas_per_searcher
        if cap is not None and g > cap:
            return False
    return True


def check_joint_forced_feasible(inp: JointInput) -> list[JointItem]:
    """Return the forced items, raising InfeasibleInstance when they cannot all be included."""
    by_id = {it.id: it for it in inp.items}
    unknown = sorted(f for f in inp.forced if f not in by_id)
    if unknown:
        raise InfeasibleInstance("forced bundles are not in the instance", unknown=unknown)
    forced = [by_id[f] for f in sorted(inp.forced)]
    if not is_feasible_joint_set(inp, forced):
        raise InfeasibleInstance(
            "forced bundles cannot all be included (gas, conflicts or searcher cap on a rollup)",
            forced=sorted(inp.forced),
        )
    return forced


def check_joint_packing(inp: JointInput, packing: JointPacking) -> None:
    """Raise ValueError describing the first rule a joint packing breaks (the invariant checker:
    atomicity, capacities, caps, per-rollup conflicts, forced items, revenue, bound, order)."""
    by_id = {it.id: it for it in inp.items}
    # Verify that every included id names an item, once
    if len(set(packing.included)) != len(packing.included):
        raise ValueError("an item is included twice")
    if any(i not in by_id for i in packing.included):
        raise ValueError("unknown item included")
    chosen = [by_id[i] for i in packing.included]
    # Verify atomicity: an item is in the block of every rollup it has a leg on, and nowhere else
    blocks = dict(packing.included_by_rollup)
    if [r for r, _ in packing.included_by_rollup] != [r.rollup for r in inp.rollups]:
        raise ValueError("blocks are not one per rollup in the input's order")
    for r, ids in blocks.items():
        if len(set(ids)) != len(ids):
            raise ValueError(f"an item appears twice in rollup {r}'s block")
        expected = [it.id for it in chosen if any(leg.rollup == r for leg in it.legs)]
        if sorted(expected) != sorted(ids):
            raise ValueError(f"rollup {r}'s block breaks atomicity")
        # Verify the block order: the slot order restricted to this rollup
        if [it.id for it in compute_joint_order([by_id[i] for i in ids])] != list(ids):
            raise ValueError(f"rollup {r}'s block is not in block order")
    if [it.id for it in compute_joint_order(chosen)] != list(packing.included):
        raise ValueError("included items are not in slot order")
    # Verify capacities, caps and conflicts per rollup
    if not is_feasible_joint_set(inp, chosen):
        raise ValueError("gas, a searcher cap or a conflict is broken on some rollup")
    gas = {r.rollup: 0 for r in inp.rollups}
    for it in chosen:
        for leg in it.legs:
            gas[leg.rollup] += leg.gas
    if dict(packing.gas_used_by_rollup) != gas:
        raise ValueError("gas_used does not match the blocks")
    # Verify that forced items are in
    missing = inp.forced - set(packing.included)
    if missing:
        raise ValueError(f"forced items missing: {sorted(missing)}")
    # Verify revenue (each bid once) and the bound
    revenue = sum(it.bid_wei for it in chosen)
    if revenue != packing.revenue_wei:
        raise ValueError(f"revenue {packing.revenue_wei} != {revenue}")
    if packing.upper_bound_wei < revenue:
        raise ValueError("upper bound below the packing's own revenue")


def compute_joint_optimum(inp: JointInput, banned: frozenset[str] = frozenset()) -> int:
    """Best revenue over all feasible sets holding the forced items and none of ``banned``
    (exhaustive depth-first search, pruning infeasible branches: tests only, O(2^n)). Raises
    InfeasibleInstance when the forced items do not fit."""
    check_joint_forced_feasible(inp)
    forced = [it for it in inp.items if it.id in inp.forced and it.id not in banned]
    free = [it for it in inp.items if it.id not in inp.forced and it.id not in banned
            and it.bid_wei > 0]  # fmt: skip
    base = sum(it.bid_wei for it in forced)
    best = base
    # suffix sums of the free bids: a branch that cannot beat the best is cut
    rest = [0] * (len(free) + 1)
    for t in range(len(free) - 1, -1, -1):
        rest[t] = rest[t + 1] + free[t].bid_wei

    def visit(t: int, chosen: list[JointItem], value: int) -> None:
        nonlocal best
        best = max(best, value)
        if t == len(free) or value + rest[t] <= best:
            return
        chosen.append(free[t])
        if is_feasible_joint_set(inp, chosen):
            visit(t + 1, chosen, value + free[t].bid_wei)
        chosen.pop()
        visit(t + 1, chosen, value)

    visit(0, list(forced), base)
    return best
