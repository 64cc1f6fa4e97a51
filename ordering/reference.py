"""Executable specification of a valid block: every packer's answer is checked against this."""

from __future__ import annotations

from collections import defaultdict

from ordering.errors import InfeasibleInstance
from ordering.problem import Item, Packing, PackingInput, compute_block_order


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
