"""The plain packer: greedy by bid per gas, skipping conflicts. Correct, simple, not optimal."""

from __future__ import annotations

from collections import defaultdict

from ordering.problem import Item, Packing, PackingInput, compute_block_order, compute_greedy_order
from ordering.reference import check_forced_feasible


def pack_greedy(inp: PackingInput) -> Packing:
    """Greedy packing. O(n log n + total keys). Forced items first, then by bid per gas.

    The upper bound is the fractional knapsack bound over all items (ignoring conflicts and the
    searcher cap), which is valid but loose.
    """
    forced = check_forced_feasible(inp)
    chosen: list[Item] = []
    used_keys: set[str] = set()
    per_searcher: dict[str, int] = defaultdict(int)
    gas = 0
    cap = inp.max_gas_per_searcher

    def take(it: Item) -> None:
        nonlocal gas
        chosen.append(it)
        used_keys.update(it.keys)
        per_searcher[it.searcher] += it.gas
        gas += it.gas

    for it in forced:
        take(it)
    for it in compute_greedy_order(inp.items):
        if it.id in inp.forced or it.bid_wei <= 0:
            continue
        if gas + it.gas > inp.gas_limit:
            continue
        if cap is not None and per_searcher[it.searcher] + it.gas > cap:
            continue
        if any(k in used_keys for k in it.keys):
            continue
        take(it)
    ordered = compute_block_order(chosen)
    revenue = sum(it.bid_wei for it in ordered)
    return Packing(
        included=tuple(it.id for it in ordered),
        revenue_wei=revenue,
        gas_used=gas,
        upper_bound_wei=max(revenue, compute_fractional_bound(inp)),
        solver="greedy",
    )


def compute_fractional_bound(inp: PackingInput) -> int:
    """Dantzig bound: fill the gas limit by bid per gas, taking a fraction of the last item."""
    remaining = inp.gas_limit
    bound_num = 0  # exact: accumulate in integers, round the fractional part up
    for it in compute_greedy_order(inp.items):
        if it.bid_wei <= 0:
            continue
        if it.gas <= remaining:
            bound_num += it.bid_wei
            remaining -= it.gas
        else:
            if it.gas > 0:
                bound_num += -(-it.bid_wei * remaining // it.gas)
            break
    return bound_num
