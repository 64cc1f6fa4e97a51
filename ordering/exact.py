"""Exact reference optimiser: the packing MILP solved by HiGHS. Tests and benchmarks only.

MILP: binary x_i; gas knapsack row; one clique row per conflict key (sum over its items <= 1);
one row per searcher when a cap is set; forced items fixed to 1, non-positive bids fixed to 0
unless forced (they cannot raise revenue). The objective uses the same scaled values as the
numba solver (``ordering.arrays``), divided by a power of two to keep HiGHS's tolerances
meaningful; revenue is recomputed exactly from the chosen ids.
"""

from __future__ import annotations

import math
from dataclasses import replace

import highspy
import numpy as np

from ordering.arrays import JointArrays, PackingArrays, compute_joint_arrays, compute_packing_arrays
from ordering.joint import compute_joint_packing
from ordering.problem import (
    Item,
    JointInput,
    JointItem,
    JointPacking,
    Packing,
    PackingInput,
    compute_block_order,
)
from ordering.reference import (
    check_forced_feasible,
    check_joint_forced_feasible,
    check_joint_input,
    is_feasible_joint_set,
    is_feasible_set,
)


def build_highs(
    arrays: PackingArrays, time_limit_s: float, threads: int = 1, presolve: bool = True
) -> highspy.Highs:
    """The MILP of ``arrays`` loaded into a fresh HiGHS instance (not solved).

    ``presolve=False`` for references that must be right: HiGHS 1.16's MIP presolve (with its
    restarts) returned a packing 0.3% below the optimum as ``kOptimal`` on a 38-bundle slot
    (tests/ordering/test_packing_exact.py), a known class of HiGHS bugs (ERGO-Code/HiGHS#3094,
    #3073, #1273). Benchmarks keep it on: it is HiGHS's normal speed.
    """
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if not presolve:
        h.setOptionValue("presolve", "off")
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    n = arrays.n
    scale = _objective_scale(arrays)
    lower = arrays.forced.astype(np.float64)
    upper = np.where((arrays.positive == 1) | (arrays.forced == 1), 1.0, 0.0)
    cost = arrays.value.astype(np.float64) * scale
    h.addVars(n, lower, upper)
    h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
    h.changeColsIntegrality(
        n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger)
    )
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    # Gas knapsack
    h.addRow(-highspy.kHighsInf, float(arrays.gas_limit), n, np.arange(n, dtype=np.int32),
             arrays.gas.astype(np.float64))  # fmt: skip
    # One clique row per key shared by at least two items (added in bulk: DCKP has 10^5 keys)
    _add_key_cliques(h, arrays.key_item_ptr, arrays.key_items)
    # Per-searcher gas cap
    if arrays.searcher_cap >= 0:
        for s in range(arrays.n_searchers):
            idx = np.flatnonzero(arrays.searcher == s).astype(np.int32)
            if int(arrays.gas[idx].sum()) > arrays.searcher_cap:
                h.addRow(-highspy.kHighsInf, float(arrays.searcher_cap), idx.shape[0], idx,
                         arrays.gas[idx].astype(np.float64))  # fmt: skip
    return h


def _objective_scale(arrays: PackingArrays) -> float:
    """Power of two bringing the largest value to at most 2**30 (HiGHS tolerances are absolute)."""
    vmax = int(arrays.value.max()) if arrays.n else 0
    return 2.0 ** -max(0, vmax.bit_length() - 30)


def pack_exact(
    inp: PackingInput, time_limit_s: float = 60.0, threads: int = 1, presolve: bool = True
) -> tuple[Packing, bool]:
    """Best packing HiGHS finds within the limit, and whether it is proven optimal.

    The bound is HiGHS's dual bound (tolerance-based, not certified like the numba solver's),
    mapped back to wei and rounded up. ``proven`` means HiGHS proved the scaled problem optimal:
    exact in wei when ``value_shift == 0``, else within n * 2**value_shift wei (about 2**-53 of
    the total bids). Raises InfeasibleInstance like every packer.
    """
    check_forced_feasible(inp)
    arrays = compute_packing_arrays(inp)
    h = build_highs(arrays, time_limit_s, threads, presolve)
    h.run()
    info = h.getInfo()
    by_id = {it.id: it for it in inp.items}
    chosen: list[Item] = []
    if info.primal_solution_status == 2:  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value)
        chosen = [by_id[arrays.ids[i]] for i in np.flatnonzero(x > 0.5).tolist()]
    if not chosen or not is_feasible_set(inp, chosen):
        chosen = [by_id[f] for f in sorted(inp.forced)]
    ordered = compute_block_order(chosen)
    revenue = sum(it.bid_wei for it in ordered)
    status = h.getModelStatus()
    # Optimal for the scaled values; exact in wei when the shift is 0, else within n * 2**shift.
    proven = status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kModelEmpty)
    scale = _objective_scale(arrays)
    dual = float(info.mip_dual_bound)
    forced_wei = sum(arrays.bids_wei[i] for i in np.flatnonzero(arrays.forced).tolist())
    forced_scaled = int(arrays.value[arrays.forced == 1].sum())
    if proven and arrays.value_shift == 0:
        bound = revenue
    elif math.isfinite(dual):
        free_scaled = max(0, math.ceil(dual / scale * (1 + 1e-9)) - forced_scaled)
        slack = arrays.n if arrays.value_shift else 0
        bound = max(revenue, forced_wei + ((free_scaled + slack) << arrays.value_shift))
    else:
        everything = int(arrays.value.sum()) + arrays.n
        bound = max(revenue, forced_wei + (everything << arrays.value_shift))
    packing = Packing(
        included=tuple(it.id for it in ordered),
        revenue_wei=revenue,
        gas_used=sum(it.gas for it in ordered),
        upper_bound_wei=bound,
        solver="highs",
        proven_optimal=proven and bound == revenue,
    )
    return packing, proven


# --- the joint (multi-rollup) problem ---------------------------------------------------------


def build_joint_highs(
    arrays: JointArrays, time_limit_s: float, threads: int = 1, presolve: bool = True
) -> highspy.Highs:
    """The joint MILP of ``arrays`` in a fresh HiGHS instance (not solved): one binary per
    bundle (atomicity), one row per binding capacity row (rollup gas, (rollup, searcher) cap),
    one clique row per (rollup, key) shared by two bundles or more."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if not presolve:
        h.setOptionValue("presolve", "off")
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    n = arrays.n
    scale = _scale_of(arrays.value)
    lower = arrays.forced.astype(np.float64)
    upper = np.where((arrays.positive == 1) | (arrays.forced == 1), 1.0, 0.0)
    h.addVars(n, lower, upper)
    h.changeColsCost(n, np.arange(n, dtype=np.int32), arrays.value.astype(np.float64) * scale)
    h.changeColsIntegrality(
        n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger)
    )
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    # Capacity rows: row -> (items, gas) from the item -> rows CSR
    owner = np.repeat(np.arange(n, dtype=np.int32), np.diff(arrays.row_ptr))
    order = np.argsort(arrays.row_idx, kind="stable")
    rows_sorted = arrays.row_idx[order]
    bounds = np.searchsorted(rows_sorted, np.arange(arrays.n_rows + 1))
    for r in range(arrays.n_rows):
        sel = order[bounds[r] : bounds[r + 1]]
        if int(arrays.row_gas[sel].sum()) > int(arrays.row_cap[r]):
            h.addRow(-highspy.kHighsInf, float(arrays.row_cap[r]), sel.shape[0], owner[sel],
                     arrays.row_gas[sel].astype(np.float64))  # fmt: skip
    _add_key_cliques(h, arrays.key_item_ptr, arrays.key_items)
    return h


def _scale_of(value: np.ndarray) -> float:
    """Power of two bringing the largest value to at most 2**30 (as ``_objective_scale``)."""
    vmax = int(value.max()) if value.shape[0] else 0
    return 2.0 ** -max(0, vmax.bit_length() - 30)


def pack_joint_exact(
    inp: JointInput, time_limit_s: float = 60.0, threads: int = 1, presolve: bool = True
) -> tuple[JointPacking, bool]:
    """Best joint packing HiGHS finds within the limit, and whether it is proven optimal (same
    conventions as ``pack_exact``; the bound is HiGHS's, not certified). Tests and benchmarks."""
    check_joint_input(inp)
    check_joint_forced_feasible(inp)
    arrays = compute_joint_arrays(inp)
    h = build_joint_highs(arrays, time_limit_s, threads, presolve)
    h.run()
    info = h.getInfo()
    by_id = {it.id: it for it in inp.items}
    chosen: list[JointItem] = []
    if info.primal_solution_status == 2:
        x = np.asarray(h.getSolution().col_value)
        chosen = [by_id[arrays.ids[i]] for i in np.flatnonzero(x > 0.5).tolist()]
    if not chosen or not is_feasible_joint_set(inp, chosen):
        chosen = [by_id[f] for f in sorted(inp.forced)]
    sel = np.zeros(arrays.n, dtype=np.uint8)
    rank = {i: r for r, i in enumerate(arrays.ids)}
    sel[[rank[it.id] for it in chosen]] = 1
    revenue = sum(it.bid_wei for it in chosen)
    proven = h.getModelStatus() in (highspy.HighsModelStatus.kOptimal,
                                    highspy.HighsModelStatus.kModelEmpty)  # fmt: skip
    dual = float(info.mip_dual_bound)
    forced_wei = sum(arrays.bids_wei[i] for i in np.flatnonzero(arrays.forced).tolist())
    forced_scaled = int(arrays.value[arrays.forced == 1].sum())
    scale = _scale_of(arrays.value)
    if proven and arrays.value_shift == 0:
        bound = revenue
    elif math.isfinite(dual):
        free_scaled = max(0, math.ceil(dual / scale * (1 + 1e-9)) - forced_scaled)
        slack = arrays.n if arrays.value_shift else 0
        bound = max(revenue, forced_wei + ((free_scaled + slack) << arrays.value_shift))
    else:
        bound = max(revenue, forced_wei + ((int(arrays.value.sum()) + arrays.n)
                                           << arrays.value_shift))  # fmt: skip
    packing = compute_joint_packing(arrays, sel, bound, solver="highs")
    return replace(packing, proven_optimal=proven and bound == revenue), proven


def _add_key_cliques(h: highspy.Highs, key_item_ptr: np.ndarray, key_items: np.ndarray) -> None:
    """One clique row (at most one item) per key shared by at least two items, added in bulk
    (DCKP has 10^5 keys)."""
    sizes = np.diff(key_item_ptr)
    multi = np.flatnonzero(sizes >= 2)
    if not multi.shape[0]:
        return
    starts = np.zeros(multi.shape[0], dtype=np.int32)
    np.cumsum(sizes[multi][:-1], out=starts[1:])
    index = np.concatenate(
        [key_items[key_item_ptr[k] : key_item_ptr[k + 1]] for k in multi]
    ).astype(np.int32)
    m = multi.shape[0]
    h.addRows(m, np.full(m, -highspy.kHighsInf), np.ones(m), index.shape[0], starts, index,
              np.ones(index.shape[0]))  # fmt: skip
