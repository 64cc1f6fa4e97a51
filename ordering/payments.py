"""What each winning bundle pays: its bid (first price) or its VCG externality.

VCG: winner w pays  OPT(-w) - (V(S) - b_w),  where S is the chosen packing, V(S) its revenue and
OPT(-w) the best revenue without w. Computed with the same packer, so in practice OPT(-w) is the
packer's *best found* value, which is handled as follows (all in exact wei):

- OPT(-w) is taken as max(re-solve value, V(S) - b_w). The re-solve starts from S minus w, which is
  feasible without w, so the packer never reports less than V(S) - b_w anyway: payments are >= 0.
- A re-solve worth more than V(S) would mean S was not optimal; payments are clamped to the bid,
  so no winner ever pays more than it bid (individual rationality holds whatever the packer does).
- The re-solve for w may use every candidate that could be in a packing without w worth more
  than S minus w (``_Admission``: reduced-cost test with w's own bound), not just the full
  solve's core: that core was narrowed with w present, so w's rivals were outside it and OPT(-w)
  collapsed to V(S) - b_w (payment 0) from 17 bundles on (issue #9, finding 4).
- A certified bound on OPT(-w) gives each payment an upper end (``VcgQuote``): the exact VCG
  payment for S lies between the two, and equals the payment when they meet (proven).
- Every re-solve is deterministic: same seed, a work cap derived from the payment budget and the
  number of winners (both fixed by the input), winners processed in canonical id order, numpy
  selections with stable sorts. Every committee member computes the same payments bit for bit.

Small instances (at most ``EXACT_MAX_ITEMS`` candidates) are re-solved exactly, so there the
payments are the exact VCG payments for the chosen packing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ordering.arrays import PackingArrays, compute_joint_arrays, compute_packing_arrays
from ordering.joint import compute_single_input, solve_joint_arrays
from ordering.problem import (
    PAYMENT_FIRST_PRICE,
    PAYMENT_VCG,
    JointInput,
    JointPacking,
    Packing,
    PackingInput,
)
from ordering.solver import (
    EXACT_MAX_ITEMS,
    I64,
    STALL_FRACTION,
    U8,
    SolveStats,
    compute_work_limit,
    efficiency_order,
    prepare_candidates,
    resolve_without,
    solve_arrays,
)

# Smallest work cap of one VCG re-solve, whatever the budget and the number of winners.
MIN_RESOLVE_WORK = 20_000
# A re-solve's core beyond the full solve's core: at most this many of the winner's rivals, and
# this many other admitted candidates (best reduced cost first). See _Admission.core_without.
VCG_RIVALS_MAX = 256
VCG_EXTRA = 64


def compute_payments(
    inp: PackingInput,
    packing: Packing,
    rule: str,
    time_budget_ms: int = 200,
    seed: int = 0,
) -> dict[str, int]:
    """Payment in wei of every included bundle under ``rule`` (first_price or vcg).

    Complexity: first price O(k); VCG see ``compute_vcg_quotes``.
    """
    if rule == PAYMENT_FIRST_PRICE:
        # the winners' bids, looked up without a dict of every bundle (no re-solve either)
        won = set(packing.included)
        bid_of = {it.id: it.bid_wei for it in inp.items if it.id in won}
        return {i: bid_of[i] for i in packing.included}
    if rule != PAYMENT_VCG:
        raise ValueError(f"unknown payment rule {rule!r}")
    return compute_vcg_payments(inp, packing, time_budget_ms, seed)


def compute_vcg_payments(
    inp: PackingInput, packing: Packing, time_budget_ms: int = 200, seed: int = 0
) -> dict[str, int]:
    """VCG payments of the winners of ``packing`` (module docstring), clamped to [0, bid]."""
    quotes = compute_vcg_quotes(inp, packing, time_budget_ms, seed)
    return {w: q.payment_wei for w, q in quotes.items()}


@dataclass(frozen=True, slots=True)
class VcgQuote:
    """One winner's VCG payment and how far it can be from the exact one.

    ``payment_wei`` is computed from the best packing found without the winner; ``max_payment_wei``
    from a certified bound on the best packing without it. The exact VCG payment for the chosen
    block lies in [payment_wei, max_payment_wei]; they are equal when the re-solve is proven.
    """

    payment_wei: int
    max_payment_wei: int

    @property
    def proven(self) -> bool:
        return self.payment_wei == self.max_payment_wei


def compute_vcg_quotes(
    inp: PackingInput, packing: Packing, time_budget_ms: int = 200, seed: int = 0
) -> dict[str, VcgQuote]:
    """VCG payment of every winner of ``packing`` with its certified upper end (``VcgQuote``).

    Complexity: one solve of the full instance (reduced costs and bound), then per winner
    O(n + nnz) to pick its re-solve core plus a re-solve capped at
    max(MIN_RESOLVE_WORK, budget work / winners) work units.
    """
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
    # One solve of the full instance gives the Lagrangian bound and reduced costs.
    _sel, _bound, stats = solve_arrays(arrays, per_winner, seed)
    exact = stats.candidates <= EXACT_MAX_ITEMS
    no_ban = np.zeros(arrays.n, dtype=np.uint8)
    cand, scap, _fgas = prepare_candidates(
        arrays.gas, arrays.positive, arrays.forced, no_ban, arrays.searcher, arrays.key_ptr,
        arrays.key_idx, arrays.key_item_ptr, arrays.key_items, np.int64(arrays.gas_limit),
        np.int64(arrays.searcher_cap), arrays.n_searchers,
    )  # fmt: skip
    admission = None if exact else _Admission.build(arrays, cand, chosen, stats)
    quotes: dict[str, VcgQuote] = {}
    for w_id in winners:
        w = rank[w_id]
        others = revenue - bids[w]
        banned = np.zeros(arrays.n, dtype=np.uint8)
        banned[w] = 1
        init = chosen[chosen != w]
        if admission is None or arrays.forced[w]:
            # Exact re-solve (tiny instances), or a forced winner: its absence changes the
            # candidates themselves (items it blocked come back), so re-solve from scratch.
            sel, bound_wei, _s = solve_arrays(
                arrays, per_winner, seed, banned=banned, init=init, stall_work=stall,
                gap_tolerance=0.0,
            )  # fmt: skip
        else:
            core, bound_w = admission.core_without(w)
            target = max(0, math.floor(bound_w))
            sel, _v = resolve_without(
                arrays.gas, arrays.value, arrays.forced, banned, arrays.searcher,
                arrays.key_ptr, arrays.key_idx, arrays.key_item_ptr, arrays.key_items,
                np.int64(arrays.gas_limit), scap, arrays.n_searchers, core, init,
                stats.reduced, bound_w, np.int64(per_winner), np.int64(stall),
                np.uint64(seed & 0xFFFFFFFFFFFFFFFF), np.int64(admission.fval + target),
            )  # fmt: skip
            slack = stats.candidates if arrays.value_shift else 0
            bound_wei = admission.forced_wei + ((target + slack) << arrays.value_shift)
        without_w = sum(bids[i] for i in np.flatnonzero(sel).tolist())
        # OPT(-w) is at least the value of S minus w, which is feasible without w
        opt_without = max(without_w, others)
        payment = min(max(opt_without - others, 0), bids[w])
        top = min(max(max(bound_wei, opt_without) - others, 0), bids[w])
        quotes[w_id] = VcgQuote(payment, top)
    return quotes


# Float error allowance of the admission test and the re-solve bound: a multiple of the unit
# roundoff per key of the widest item (the reduced costs sum that many multipliers).
_U = 2.0**-53


@dataclass(frozen=True)
class _Admission:
    """Which candidates a re-solve without winner w must be able to use (docs/solver.md).

    With the full solve's multipliers, every packing without w that contains item j is worth at
    most  B_w + min(d_j, 0),  where  B_w = L - max(d_w, 0)  is the Lagrangian bound with x_w = 0
    (L: the full instance's bound, d: reduced costs). The packing S minus w is worth T_w, so an
    item with  B_w + min(d_j, 0) < T_w  is in no packing that beats it: a re-solve missing it loses
    nothing. Every other candidate is *admitted*. The admitted set is a prefix of the candidates by
    reduced cost (the test is monotone in d_j), so each winner costs one binary search.
    """

    by_reduced: I64  # candidates, best reduced cost first (ties: index ascending)
    neg_reduced: npt.NDArray[np.float64]  # -d of by_reduced (ascending)
    reduced: npt.NDArray[np.float64]
    value: I64
    gas: I64
    cand: U8
    selected: U8  # the chosen block, non-forced items
    key_ptr: I64
    key_idx: npt.NDArray[np.int32]
    key_item_ptr: I64
    key_items: npt.NDArray[np.int32]
    core: I64  # the full solve's core
    searcher: npt.NDArray[np.int32]
    searcher_items: list[I64]  # items of each searcher
    searcher_cap: int
    dual_bound: float  # L + its error, scaled candidate values
    margin: float  # float error allowance (absolute, scaled values)
    sel_value: int  # scaled value of the chosen block's non-forced items
    fval: int  # scaled value of the forced items
    forced_wei: int

    @classmethod
    def build(cls, arrays: PackingArrays, cand: U8, chosen: I64, stats: SolveStats) -> _Admission:
        cand_idx = np.flatnonzero(cand)
        red = stats.reduced
        by_reduced = cand_idx[np.argsort(-red[cand_idx], kind="stable")]
        selected = np.zeros(arrays.n, dtype=np.uint8)
        selected[chosen] = 1
        selected[arrays.forced == 1] = 0
        forced_idx = np.flatnonzero(arrays.forced)
        deg = int(np.diff(arrays.key_ptr).max()) if arrays.n else 0
        # Every term of a reduced cost is at most L in magnitude (docs/solver.md), so this bounds
        # the rounding of d_j, of L - max(d_w, 0) and of the sums compared with them.
        margin = (deg + 16) * 8 * _U * (abs(stats.dual_bound) + 1.0)
        return cls(
            by_reduced=by_reduced,
            neg_reduced=-red[by_reduced],
            reduced=red,
            value=arrays.value,
            gas=arrays.gas,
            cand=cand,
            selected=selected,
            key_ptr=arrays.key_ptr,
            key_idx=arrays.key_idx,
            key_item_ptr=arrays.key_item_ptr,
            key_items=arrays.key_items,
            core=stats.core_items,
            searcher=arrays.searcher,
            searcher_items=_group_by(arrays.searcher, arrays.n_searchers),
            searcher_cap=arrays.searcher_cap,
            dual_bound=stats.dual_bound,
            margin=margin,
            sel_value=int(arrays.value[selected == 1].sum()),
            fval=int(arrays.value[forced_idx].sum()),
            forced_wei=sum(arrays.bids_wei[i] for i in forced_idx.tolist()),
        )

    def core_without(self, w: int) -> tuple[I64, float]:
        """(re-solve core, bound B_w on the best packing without w, scaled candidate values).

        The core is the chosen block minus w, the full solve's core, w's rivals (items sharing
        a key with w, and w's searcher's items when a cap is set: what w's absence frees first,
        whatever their reduced cost under w's prices; at most VCG_RIVALS_MAX, best reduced cost
        first) and the VCG_EXTRA best other admitted candidates, all restricted to the admitted
        ones. So the core is *every* admitted candidate whenever there are at most VCG_EXTRA
        outside the full core and the rivals; beyond that it stays focused (a wider core spreads
        the same work over items that rarely matter: measured, decision in docs/solver.md)."""
        d_w = float(self.reduced[w])
        bound_w = self.dual_bound - max(d_w, 0.0) + self.margin
        target_w = self.sel_value - int(self.value[w])
        # Verify admission: j can be in a packing without w worth more than T_w only if
        # min(d_j, 0) >= T_w - B_w (the margin errs on the side of admitting)
        threshold = float(target_w) - bound_w
        n_adm = 0
        if threshold <= 0.0:
            n_adm = int(np.searchsorted(self.neg_reduced, -threshold, side="right"))
        admitted = self.by_reduced[:n_adm]
        ok = np.zeros(self.cand.shape[0], dtype=np.uint8)
        ok[admitted] = 1
        ok[w] = 0
        keys = self.key_idx[self.key_ptr[w] : self.key_ptr[w + 1]]
        parts = [self.key_items[self.key_item_ptr[k] : self.key_item_ptr[k + 1]] for k in keys]
        if self.searcher_cap >= 0:
            parts.append(self.searcher_items[self.searcher[w]])
        rivals = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        rivals = np.unique(rivals[ok[rivals] == 1])
        if rivals.shape[0] > VCG_RIVALS_MAX:
            rivals = rivals[np.argsort(-self.reduced[rivals], kind="stable")[:VCG_RIVALS_MAX]]
        mark = np.zeros(self.cand.shape[0], dtype=np.uint8)
        mark[self.core] = 1
        mark[rivals] = 1
        mark &= ok
        mark[admitted[mark[admitted] == 0][:VCG_EXTRA]] = 1
        mark[self.selected == 1] = 1
        mark[w] = 0
        core = efficiency_order(np.flatnonzero(mark), self.value, self.gas)
        return core, bound_w


def _group_by(labels: npt.NDArray[np.int32], n_groups: int) -> list[I64]:
    """Indices of each label's items, ascending. O(n log n)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_groups + 1))
    return [order[bounds[g] : bounds[g + 1]].astype(np.int64) for g in range(n_groups)]


# --- the joint (multi-rollup) slot ------------------------------------------------------------


def compute_joint_payments(
    inp: JointInput, packing: JointPacking, rule: str, time_budget_ms: int = 200, seed: int = 0
) -> dict[str, int]:
    """Payment in wei of every included bundle of a joint slot under ``rule``: first price (the
    bid, once per bundle whatever its legs) or VCG over the whole slot
    (``compute_joint_vcg_quotes``).
    A one-rollup slot is the single-rollup instance and pays exactly what it would pay there."""
    if rule == PAYMENT_FIRST_PRICE:
        # the winners' bids, looked up without a dict of every bundle (no re-solve either)
        won = set(packing.included)
        bid_of = {it.id: it.bid_wei for it in inp.items if it.id in won}
        return {i: bid_of[i] for i in packing.included}
    if rule != PAYMENT_VCG:
        raise ValueError(f"unknown payment rule {rule!r}")
    if len(inp.rollups) == 1:
        single = compute_single_input(inp)
        gas = packing.gas_used_by_rollup[0][1]
        block = Packing(packing.included, packing.revenue_wei, gas, packing.upper_bound_wei,
                        packing.solver, packing.proven_optimal)  # fmt: skip
        return compute_vcg_payments(single, block, time_budget_ms, seed)
    quotes = compute_joint_vcg_quotes(inp, packing, time_budget_ms, seed)
    return {w: q.payment_wei for w, q in quotes.items()}


def compute_joint_vcg_quotes(
    inp: JointInput, packing: JointPacking, time_budget_ms: int = 200, seed: int = 0
) -> dict[str, VcgQuote]:
    """VCG payment of every winner of a joint slot, with its certified upper end.

    Winner w pays OPT(-w) - (V(S) - b_w), clamped to [0, b_w], where OPT(-w) is the best joint
    packing without w. Each re-solve is a *full* solve of the slot with w banned (every item a
    candidate, its own Lagrangian bound and reduced-cost core computed without w: the narrowed-core
    failure of issue 9 cannot happen), warm-started from S minus w, stopping when proven optimal
    (no gap tolerance) or at max(MIN_RESOLVE_WORK, budget work / winners) work units. Winners in
    id order, same seed: deterministic. Complexity: winners x (O(passes x nnz) bound + that cap).
    """
    winners = sorted(packing.included)
    if not winners:
        return {}
    arrays = compute_joint_arrays(inp)
    rank = {i: r for r, i in enumerate(arrays.ids)}
    bids = arrays.bids_wei
    chosen = np.array(sorted(rank[i] for i in winners), dtype=np.int64)
    per_winner = max(MIN_RESOLVE_WORK, compute_work_limit(time_budget_ms) // len(winners))
    stall = int(STALL_FRACTION * per_winner)
    quotes: dict[str, VcgQuote] = {}
    for w_id in winners:
        w = rank[w_id]
        others = packing.revenue_wei - bids[w]
        banned = np.zeros(arrays.n, dtype=np.uint8)
        banned[w] = 1
        sel, bound_wei, _stats = solve_joint_arrays(
            arrays, per_winner, seed, banned=banned, init=chosen[chosen != w], stall_work=stall,
            gap_tolerance=0.0,
        )  # fmt: skip
        opt_without = max(sum(bids[i] for i in np.flatnonzero(sel).tolist()), others)
        payment = min(max(opt_without - others, 0), bids[w])
        top = min(max(max(bound_wei, opt_without) - others, 0), bids[w])
        quotes[w_id] = VcgQuote(payment, top)
    return quotes
