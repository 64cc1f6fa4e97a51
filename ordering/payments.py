"""What each winning bundle pays: its bid (first price) or its VCG externality.

VCG: winner w pays  OPT(-w) - (V(S) - b_w),  where S is the chosen packing, V(S) its revenue and
OPT(-w) the best revenue without w. Computed with the same packer, so in practice OPT(-w) is the
packer's *best found* value, which is handled as follows (all in exact wei):

- OPT(-w) is taken as max(re-solve value, V(S) - b_w). The re-solve starts from S minus w, which is
  feasible without w, so the packer never reports less than V(S) - b_w anyway: payments are >= 0.
- A re-solve worth more than V(S) would mean S was not optimal; payments are clamped to the bid,
  so no winner ever pays more than it bid (individual rationality holds whatever the packer does).
- Every re-solve is deterministic: same seed, a work cap derived from the payment budget and the
  number of winners (both fixed by the input), winners processed in canonical id order. Every
  committee member computes the same payments bit for bit.

Small instances (at most ``EXACT_MAX_ITEMS`` candidates) are re-solved exactly, so there the
payments are the exact VCG payments for the chosen packing.
"""

from __future__ import annotations

import numpy as np

from auction import constants as C
from ordering.arrays import compute_packing_arrays
from ordering.problem import Packing, PackingInput
from ordering.solver import (
    EXACT_MAX_ITEMS,
    STALL_FRACTION,
    _prepare,
    _resolve,
    compute_work_limit,
    solve_arrays,
)

# Smallest work cap of one VCG re-solve, whatever the budget and the number of winners.
MIN_RESOLVE_WORK = 20_000


def compute_payments(
    inp: PackingInput,
    packing: Packing,
    rule: str,
    time_budget_ms: int = 200,
    seed: int = 0,
) -> dict[str, int]:
    """Payment in wei of every included bundle under ``rule`` (first_price or vcg).

    Complexity: first price O(k); VCG one solve (to get the core) plus one warm-started re-solve
    per winner, each capped at max(MIN_RESOLVE_WORK, budget work / winners) work units.
    """
    by_id = {it.id: it for it in inp.items}
    if rule == C.PAYMENT_FIRST_PRICE:
        return {i: by_id[i].bid_wei for i in packing.included}
    if rule != C.PAYMENT_VCG:
        raise ValueError(f"unknown payment rule {rule!r}")
    return compute_vcg_payments(inp, packing, time_budget_ms, seed)


def compute_vcg_payments(
    inp: PackingInput, packing: Packing, time_budget_ms: int = 200, seed: int = 0
) -> dict[str, int]:
    """VCG payments of the winners of ``packing`` (module docstring), clamped to [0, bid]."""
    winners = sorted(packing.included)
    if not winners:
        return {}
    arrays = compute_packing_arrays(inp)
    rank = {i: r for r, i in enumerate(arrays.ids)}
    bids = arrays.bids_wei
    revenue = packing.revenue_wei
    chosen = np.array(sorted(rank[i] for i in winners), dtype=np.int64)
    work_total = compute_work_limit(time_budget_ms)
    per_winner = max(MIN_RESOLVE_WORK, work_total // len(winners))
    stall = int(STALL_FRACTION * per_winner)
    # One solve of the full instance gives the core and the reduced costs the re-solves reuse.
    _sel, _bound, stats = solve_arrays(arrays, per_winner, seed)
    exact = stats.candidates <= EXACT_MAX_ITEMS
    no_ban = np.zeros(arrays.n, dtype=np.uint8)
    _cand, scap, _fgas = _prepare(
        arrays.gas, arrays.positive, arrays.forced, no_ban, arrays.searcher, arrays.key_ptr,
        arrays.key_idx, arrays.key_item_ptr, arrays.key_items, np.int64(arrays.gas_limit),
        np.int64(arrays.searcher_cap), arrays.n_searchers,
    )  # fmt: skip
    payments: dict[str, int] = {}
    for w_id in winners:
        w = rank[w_id]
        others = revenue - bids[w]
        banned = np.zeros(arrays.n, dtype=np.uint8)
        banned[w] = 1
        init = chosen[chosen != w]
        if exact or arrays.forced[w]:
            # Exact re-solve (tiny instances), or a forced winner: its absence frees items the
            # core never saw, so re-solve from scratch.
            sel, _b, _s = solve_arrays(arrays, per_winner, seed, banned=banned, init=init)
        else:
            core = stats.core_items[stats.core_items != w]
            sel, _v = _resolve(
                arrays.gas, arrays.value, arrays.forced, banned, arrays.searcher,
                arrays.key_ptr, arrays.key_idx, arrays.key_item_ptr, arrays.key_items,
                np.int64(arrays.gas_limit), scap, arrays.n_searchers, core, init,
                stats.reduced, stats.dual_bound, np.int64(per_winner), np.int64(stall),
                np.uint64(seed & 0xFFFFFFFFFFFFFFFF),
            )  # fmt: skip
        without_w = sum(bids[i] for i in np.flatnonzero(sel).tolist())
        # OPT(-w) is at least the value of S minus w, which is feasible without w
        opt_without = max(without_w, others)
        payments[w_id] = min(max(opt_without - others, 0), bids[w])
    return payments
