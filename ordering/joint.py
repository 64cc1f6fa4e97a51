"""The numba joint packer: one auction over several rollups, atomic cross-rollup bundles.

Model (on the canonical arrays of ``ordering.arrays.JointArrays``): binary x_i per item (bundle);

    maximise   sum_i v_i x_i
    subject to sum_i a_ir x_i <= C_r       for every capacity row r: each rollup's gas for bundles,
                                           each (capped rollup, searcher) pair's gas cap
               sum_{i in k} x_i <= 1       for every conflict key k = (rollup, key): a clique
               x_f = 1                     for every forced item f

with a_ir the gas of i's leg in row r. One x_i per bundle is what makes a cross-rollup bundle
atomic: it is in the block of every rollup it has a leg on, or in none. This is a
multi-dimensional knapsack with conflict cliques; the one-rollup case is the single-rollup model
of ``ordering.solver`` (and ``pack_joint`` hands it to that solver, see docs/solver.md).

The solve follows ``ordering.solver`` step for step, with capacity *rows* where it has one gas
limit and a cap per searcher: forced items fixed, tiny instances enumerated, greedy starts (value
per normalised size, Lagrangian reduced value per size, largest bid), a Lagrangian bound with one
multiplier per row and per key (block-coordinate descent, then subgradient steps), reduced-cost
fixing to a core, and iterated local search with insert moves (add one bundle, evict the owners of
its keys on every rollup it touches and, per row it overflows, the cheapest set that frees
enough; refill greedily) and random kicks. Deterministic: work counts, never a clock; seeded
splitmix64; ties by canonical index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from ordering.arrays import JointArrays, compute_joint_arrays
from ordering.problem import (
    Item,
    JointInput,
    JointItem,
    JointPacking,
    Packing,
    PackingInput,
    compute_joint_order,
)
from ordering.reference import check_joint_forced_feasible
from ordering.solver import (
    DUAL_PASSES,
    DUAL_SHARE,
    DUAL_STALE_REL,
    EXACT_MAX_ITEMS,
    GAP_TOLERANCE,
    SUBGRADIENT_SHARE,
    SUBGRADIENT_STEPS,
    _critical_ratio,
    _next_random,
    _restrict_keys,
    _score_order,
    compute_work_limit,
)

# Largest core the joint local search moves around in. Every rollup's block needs its own
# contenders, so the single-rollup CORE_MAX (1,500) grows with the rollups (measured: see
# docs/solver.md, "Joint packing").
JOINT_CORE_MAX = 1500
JOINT_CORE_PER_ROLLUP = 500

# The dual descent runs at least this many passes (its DUAL_SHARE of the work cap allowing, or up
# to JOINT_DUAL_SHARE_MAX): on 20,000-bundle slots a pass costs ~0.7M work units, so DUAL_SHARE
# alone stopped it after 2-3 passes with a 10-20% gap, and the core chosen by those reduced costs
# cost up to 2.7% of revenue (decision 45).
JOINT_DUAL_PASSES = 5
JOINT_DUAL_SHARE_MAX = 0.5

# The search stops after this much work without a new best: JOINT_STALL_PER_CORE work units per
# core item (a few descent passes over the core), at least JOINT_STALL_MIN. A shared slot's
# certified bound is the LP relaxation at best, and on typical slots the LP is itself ~1e-4 above
# the optimum, so the gap stop (GAP_TOLERANCE) cannot fire there and the search used to run its
# whole work cap long after its last improvement (decision 163).
JOINT_STALL_PER_CORE = 2000
JOINT_STALL_MIN = 200_000

_U53 = 2.0**-53
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

# State St = (sel[n] u8, cnt[n] conflict incidences with selected items, owner[K], used[R] gas
# per row, slist[n] selected items, spos[n], acc[3]); acc = [value, work, n_selected].
# Instance P = (value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced).
J_SEL, J_CNT, J_OWNER, J_USED, J_SLIST, J_SPOS, J_ACC = 0, 1, 2, 3, 4, 5, 6
JA_VALUE, JA_WORK, JA_COUNT = 0, 1, 2


@njit(cache=True)
def _jnew_state(n, n_keys, n_rows):
    sel = np.zeros(n, dtype=np.uint8)
    cnt = np.zeros(n, dtype=np.int64)
    owner = np.full(n_keys, -1, dtype=np.int64)
    used = np.zeros(n_rows, dtype=np.int64)
    slist = np.zeros(n, dtype=np.int64)
    spos = np.full(n, -1, dtype=np.int64)
    acc = np.zeros(3, dtype=np.int64)
    return (sel, cnt, owner, used, slist, spos, acc)


@njit(cache=True)
def _jadd(i, P, St):
    value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced = P
    sel, cnt, owner, used, slist, spos, acc = St
    sel[i] = 1
    acc[JA_VALUE] += value[i]
    for p in range(row_ptr[i], row_ptr[i + 1]):
        used[row_idx[p]] += row_gas[p]
    slist[acc[JA_COUNT]] = i
    spos[i] = acc[JA_COUNT]
    acc[JA_COUNT] += 1
    for p in range(key_ptr[i], key_ptr[i + 1]):
        k = key_idx[p]
        owner[k] = i
        a = ki_ptr[k]
        b = ki_ptr[k + 1]
        for q in range(a, b):
            cnt[ki_items[q]] += 1
        acc[JA_WORK] += b - a + 1
    acc[JA_WORK] += row_ptr[i + 1] - row_ptr[i]


@njit(cache=True)
def _jremove(i, P, St):
    value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced = P
    sel, cnt, owner, used, slist, spos, acc = St
    sel[i] = 0
    acc[JA_VALUE] -= value[i]
    for p in range(row_ptr[i], row_ptr[i + 1]):
        used[row_idx[p]] -= row_gas[p]
    last = slist[acc[JA_COUNT] - 1]
    pos = spos[i]
    slist[pos] = last
    spos[last] = pos
    spos[i] = -1
    acc[JA_COUNT] -= 1
    for p in range(key_ptr[i], key_ptr[i + 1]):
        k = key_idx[p]
        owner[k] = -1
        a = ki_ptr[k]
        b = ki_ptr[k + 1]
        for q in range(a, b):
            cnt[ki_items[q]] -= 1
        acc[JA_WORK] += b - a + 1
    acc[JA_WORK] += row_ptr[i + 1] - row_ptr[i]


@njit(cache=True)
def _jfits(i, P, St):
    """Item i is out, conflict-free with the selection and fits every row it uses. O(rows of i)."""
    value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced = P
    sel, cnt, owner, used, slist, spos, acc = St
    if sel[i] or cnt[i]:
        return False
    for p in range(row_ptr[i], row_ptr[i + 1]):
        r = row_idx[p]
        if used[r] + row_gas[p] > cap[r]:
            return False
    # owners too: the greedy phase keeps no conflict counts (see _jsolve)
    for p in range(key_ptr[i], key_ptr[i + 1]):
        if owner[key_idx[p]] >= 0:
            return False
    return True


@njit(cache=True)
def _jgreedy_fill(order, P, St):
    """Add the items of ``order`` that fit, in that order. O(len(order) + updates)."""
    for t in range(order.shape[0]):
        if _jfits(order[t], P, St):
            _jadd(order[t], P, St)
    St[J_ACC][JA_WORK] += 2 * order.shape[0]


@njit(cache=True)
def _jrestore(target, P, St, mark):
    """Make the selection equal to ``target`` (forced items stay)."""
    forced = P[9]
    sel, cnt, owner, used, slist, spos, acc = St
    for t in range(target.shape[0]):
        mark[target[t]] = 1
    t = 0
    while t < acc[JA_COUNT]:
        i = slist[t]
        if not mark[i] and not forced[i]:
            _jremove(i, P, St)
        else:
            t += 1
    for t in range(target.shape[0]):
        if not sel[target[t]]:
            _jadd(target[t], P, St)
    for t in range(target.shape[0]):
        mark[target[t]] = 0


@njit(cache=True)
def _jprepare(positive, forced, banned, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr,
              ki_items):  # fmt: skip
    """Candidates after fixing the forced items: not forced, not banned, positive bid, no key
    shared with a forced item, fitting every row beside the forced items. Returns (cand mask,
    gas per row left after the forced items). O(nnz)."""
    n = positive.shape[0]
    used = np.zeros(cap.shape[0], dtype=np.int64)
    blocked = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if forced[i] and not banned[i]:
            for p in range(row_ptr[i], row_ptr[i + 1]):
                used[row_idx[p]] += row_gas[p]
            for p in range(key_ptr[i], key_ptr[i + 1]):
                k = key_idx[p]
                for q in range(ki_ptr[k], ki_ptr[k + 1]):
                    blocked[ki_items[q]] = 1
    cand = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if forced[i] or banned[i] or blocked[i] or not positive[i]:
            continue
        ok = True
        for p in range(row_ptr[i], row_ptr[i + 1]):
            if used[row_idx[p]] + row_gas[p] > cap[row_idx[p]]:
                ok = False
        if ok:
            cand[i] = 1
    return cand, cap - used


# --- Lagrangian bound --------------------------------------------------------------------------
# For any mu_k >= 0 (keys) and lam_r >= 0 (rows), every feasible x of the candidate problem has
#     sum_i v_i x_i <= sum_i v_i x_i + sum_k mu_k (1 - sum_{i in k} x_i)
#                                    + sum_r lam_r (C'_r - sum_i a_ir x_i)
#                    = sum_k mu_k + sum_r lam_r C'_r + sum_i d_i x_i
#                   <= sum_k mu_k + sum_r lam_r C'_r + sum_i max(0, d_i)   =: L(mu, lam)
# with d_i = v_i - sum_{k in K(i)} mu_k - sum_r lam_r a_ir. The single-rollup bound of
# ordering/solver.py is the case of one gas row plus one row per searcher. L is evaluated from
# scratch in float64 with the same rounding-error bound (gamma_N * A).


@njit(cache=True)
def _jevaluate(cand_items, value, row_ptr, row_idx, row_gas, key_ptr, key_idx, mu, lam, cap_rem,
               maxdeg, musum, lamsum):  # fmt: skip
    """L(mu, lam) from scratch and a bound on its rounding error; refreshes musum, lamsum."""
    total = 0.0
    absum = 0.0
    for k in range(mu.shape[0]):
        total += mu[k]
        absum += mu[k]
    for r in range(lam.shape[0]):
        if lam[r] > 0.0:
            total += lam[r] * cap_rem[r]
            absum += lam[r] * abs(cap_rem[r])
    for t in range(cand_items.shape[0]):
        i = cand_items[t]
        ms = 0.0
        for p in range(key_ptr[i], key_ptr[i + 1]):
            ms += mu[key_idx[p]]
        ls = 0.0
        for p in range(row_ptr[i], row_ptr[i + 1]):
            ls += lam[row_idx[p]] * row_gas[p]
        musum[i] = ms
        lamsum[i] = ls
        d = value[i] - ms - ls
        if d > 0.0:
            total += d
        absum += value[i] + ms + ls
    nops = cand_items.shape[0] + mu.shape[0] + lam.shape[0] + maxdeg + 8
    gamma = nops * _U53 / (1.0 - nops * _U53)
    return total, 2.0 * gamma * absum + 1e-300


@njit(cache=True)
def _jdual_bound(cand_items, cand, value, row_ptr, row_idx, row_gas, cap_rem, key_ptr, key_idx,
                 ki_ptr, ki_items, acc, dual_work, dual_cap, sub_work, lower,
                 gap_tolerance):  # fmt: skip
    """Block-coordinate descent on L(mu, lam), then Polyak subgradient steps (``_jsubgradient``).

    The descent stops when stale, or after ``dual_work`` once it made JOINT_DUAL_PASSES passes,
    and always at ``dual_cap``.

    One pass: each binding row's lam_r exactly for the rest fixed (critical ratio over the row's
    candidates); each key's mu_k exactly (midpoint of [a_(2), a_(1)] of the key's adjusted
    reduced values). Returns the descent's best point (mu, lam, L, err) and the best bound of
    either phase (bL, berr). O(passes * (nnz + n log n))."""
    n = value.shape[0]
    n_keys = ki_ptr.shape[0] - 1
    n_rows = cap_rem.shape[0]
    m = cand_items.shape[0]
    # row -> candidate CSR, with the gas of each entry
    rc_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    maxdeg = np.int64(0)
    for t in range(m):
        i = cand_items[t]
        maxdeg = max(maxdeg, key_ptr[i + 1] - key_ptr[i] + row_ptr[i + 1] - row_ptr[i])
        for p in range(row_ptr[i], row_ptr[i + 1]):
            rc_ptr[row_idx[p] + 1] += 1
    for r in range(n_rows):
        rc_ptr[r + 1] += rc_ptr[r]
    rc_items = np.empty(rc_ptr[n_rows], dtype=np.int64)
    rc_gas = np.empty(rc_ptr[n_rows], dtype=np.int64)
    fill = rc_ptr[:-1].copy()
    for t in range(m):
        i = cand_items[t]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            r = row_idx[p]
            rc_items[fill[r]] = i
            rc_gas[fill[r]] = row_gas[p]
            fill[r] += 1
    # rows that bind: their candidates' gas exceeds what is left
    binding = np.zeros(n_rows, dtype=np.uint8)
    for r in range(n_rows):
        tot = 0
        for q in range(rc_ptr[r], rc_ptr[r + 1]):
            tot += rc_gas[q]
        if tot > cap_rem[r]:
            binding[r] = 1
    active = np.zeros(n_keys, dtype=np.uint8)
    for k in range(n_keys):
        c = 0
        for q in range(ki_ptr[k], ki_ptr[k + 1]):
            c += cand[ki_items[q]]
        if c >= 2:
            active[k] = 1
    mu = np.zeros(n_keys, dtype=np.float64)
    lam = np.zeros(n_rows, dtype=np.float64)
    musum = np.zeros(n, dtype=np.float64)
    lamsum = np.zeros(n, dtype=np.float64)
    rr = np.zeros(n, dtype=np.float64)
    ga = np.zeros(n, dtype=np.int64)
    best_mu = mu.copy()
    best_lam = lam.copy()
    best_l = np.inf
    best_err = 0.0
    stale = 0
    work0 = acc[JA_WORK]
    acc[JA_WORK] += 2 * (key_ptr[-1] + row_ptr[-1]) + n_keys + n_rows
    for _ps in range(DUAL_PASSES):
        for r in range(n_rows):
            if not binding[r]:
                continue
            a = rc_ptr[r]
            b = rc_ptr[r + 1]
            for q in range(a, b):
                i = rc_items[q]
                ga[i] = rc_gas[q]
                rr[i] = value[i] - musum[i] - (lamsum[i] - lam[r] * rc_gas[q])
            new = _critical_ratio(rc_items[a:b], b - a, rr, ga, cap_rem[r])
            delta = new - lam[r]
            if delta != 0.0:
                lam[r] = new
                for q in range(a, b):
                    lamsum[rc_items[q]] += delta * rc_gas[q]
            acc[JA_WORK] += 3 * (b - a)
        for k in range(n_keys):
            if not active[k]:
                continue
            a1 = -np.inf
            a2 = -np.inf
            for q in range(ki_ptr[k], ki_ptr[k + 1]):
                i = ki_items[q]
                if not cand[i]:
                    continue
                a = value[i] - (musum[i] - mu[k]) - lamsum[i]
                if a > a1:
                    a2 = a1
                    a1 = a
                elif a > a2:
                    a2 = a
            acc[JA_WORK] += ki_ptr[k + 1] - ki_ptr[k]
            new = 0.5 * (max(a2, 0.0) + max(a1, 0.0))
            delta = new - mu[k]
            if delta != 0.0:
                mu[k] = new
                for q in range(ki_ptr[k], ki_ptr[k + 1]):
                    musum[ki_items[q]] += delta
        acc[JA_WORK] += 3 * (key_ptr[-1] + row_ptr[-1] + m)
        ell, err = _jevaluate(cand_items, value, row_ptr, row_idx, row_gas, key_ptr, key_idx, mu,
                              lam, cap_rem, maxdeg, musum, lamsum)  # fmt: skip
        if ell + err < best_l + best_err:
            stale = stale + 1 if best_l - ell < DUAL_STALE_REL * abs(ell) else 0
            best_l = ell
            best_err = err
            best_mu[:] = mu
            best_lam[:] = lam
        else:
            stale += 1
        used = acc[JA_WORK] - work0
        if stale >= 3 or used >= dual_cap or (used >= dual_work and _ps + 1 >= JOINT_DUAL_PASSES):
            break
    bl, be = best_l, best_err
    if acc[JA_WORK] - work0 < dual_work and best_l < np.inf:
        end = min(work0 + dual_work, acc[JA_WORK] + sub_work)
        bl, be = _jsubgradient(cand_items, value, row_ptr, row_idx, row_gas, key_ptr, key_idx,
                               active, binding, best_mu, best_lam, cap_rem, maxdeg, musum, lamsum,
                               lower, acc, end, best_l, best_err, gap_tolerance)  # fmt: skip
    return best_l, best_err, best_mu, best_lam, bl, be


@njit(cache=True)
def _jsubgradient(cand_items, value, row_ptr, row_idx, row_gas, key_ptr, key_idx, active, binding,
                  mu0, lam0, cap_rem, maxdeg, musum, lamsum, lower, acc, work_end, best_l,
                  best_err, gap_tolerance):  # fmt: skip
    """Polyak subgradient steps on L from (mu0, lam0), rows scaled to unit right-hand sides (as
    ``ordering.solver._subgradient``); returns the best L and its error. Any multipliers >= 0
    give a valid bound. O(SUBGRADIENT_STEPS * (nnz + n_keys + n_rows))."""
    n_keys = mu0.shape[0]
    n_rows = lam0.shape[0]
    m = cand_items.shape[0]
    nnz = 0
    for t in range(m):
        i = cand_items[t]
        nnz += key_ptr[i + 1] - key_ptr[i] + row_ptr[i + 1] - row_ptr[i]
    act = np.flatnonzero(active)
    mu = mu0.copy()
    lam = lam0.copy()
    g = np.zeros(n_keys, dtype=np.float64)
    gr = np.zeros(n_rows, dtype=np.float64)
    theta = 1.0
    noimp = 0
    for _step in range(SUBGRADIENT_STEPS):
        if acc[JA_WORK] >= work_end:
            break
        acc[JA_WORK] += 2 * (nnz + m) + n_keys + 3 * act.shape[0] + 3 * n_rows
        ell, err = _jevaluate(cand_items, value, row_ptr, row_idx, row_gas, key_ptr, key_idx, mu,
                              lam, cap_rem, maxdeg, musum, lamsum)  # fmt: skip
        if ell + err < best_l + best_err:
            noimp = 0 if (best_l + best_err) - (ell + err) > 1e-9 * abs(ell) else noimp + 1
            best_l = ell
            best_err = err
        else:
            noimp += 1
        if noimp >= 4:
            theta *= 0.5
            noimp = 0
            if theta < 1.0 / 1024.0:
                break
        if lower >= (best_l + best_err) * (1.0 + 4.0 * _U53) * (1.0 - gap_tolerance):
            break
        for t in range(act.shape[0]):
            g[act[t]] = 1.0
        for r in range(n_rows):
            gr[r] = float(cap_rem[r]) if binding[r] else 0.0
        for t in range(m):
            i = cand_items[t]
            if value[i] - musum[i] - lamsum[i] <= 0.0:
                continue
            for p in range(key_ptr[i], key_ptr[i + 1]):
                if active[key_idx[p]]:
                    g[key_idx[p]] -= 1.0
            for p in range(row_ptr[i], row_ptr[i + 1]):
                if binding[row_idx[p]]:
                    gr[row_idx[p]] -= row_gas[p]
        norm = 0.0
        for t in range(act.shape[0]):
            norm += g[act[t]] * g[act[t]]
        for r in range(n_rows):
            if binding[r]:
                norm += (gr[r] / max(float(cap_rem[r]), 1.0)) ** 2
        if norm <= 0.0:
            break
        step = theta * (ell - lower) / norm
        for t in range(act.shape[0]):
            k = act[t]
            if g[k] != 0.0:
                mu[k] = max(0.0, mu[k] - step * g[k])
        for r in range(n_rows):
            if binding[r]:
                cs = max(float(cap_rem[r]), 1.0)
                lam[r] = max(0.0, lam[r] - step * gr[r] / (cs * cs))
    return best_l, best_err


# --- local search --------------------------------------------------------------------------------


@njit(cache=True)
def _jrow_orders(core, value, row_ptr, row_idx, row_gas, n_rows):
    """Per capacity row, the core items with gas on it in the two orders ``_jevict_set`` walks:
    value per gas ascending and value ascending, ties by canonical index. Every selected item
    that is not forced is a core item (the search adds core items only, and the core holds the
    start), so these lists see the whole evictable selection. Returns (ptr, by ratio: items and
    gas, by value: items and gas). O(nnz(core) log nnz(core)), once per search."""
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    for t in range(core.shape[0]):
        i = core[t]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            if row_gas[p] > 0:
                ptr[row_idx[p] + 1] += 1
    for r in range(n_rows):
        ptr[r + 1] += ptr[r]
    total = ptr[n_rows]
    items = np.empty(total, dtype=np.int64)
    gas = np.empty(total, dtype=np.int64)
    fill = ptr[:-1].copy()
    for t in range(core.shape[0]):
        i = core[t]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            if row_gas[p] > 0:
                r = row_idx[p]
                items[fill[r]] = i
                gas[fill[r]] = row_gas[p]
                fill[r] += 1
    g_items = np.empty(total, dtype=np.int64)
    g_gas = np.empty(total, dtype=np.int64)
    v_items = np.empty(total, dtype=np.int64)
    v_gas = np.empty(total, dtype=np.int64)
    for r in range(n_rows):
        a = ptr[r]
        b = ptr[r + 1]
        if a == b:
            continue
        # canonical order first, then the key (stable): ties by index, as _jevict_set had
        o0 = np.argsort(items[a:b], kind="mergesort")
        seg_items = items[a:b][o0]
        seg_gas = gas[a:b][o0]
        ratio = np.empty(b - a, dtype=np.float64)
        for t in range(b - a):
            ratio[t] = value[seg_items[t]] / seg_gas[t]
        o1 = np.argsort(ratio, kind="mergesort")
        g_items[a:b] = seg_items[o1]
        g_gas[a:b] = seg_gas[o1]
        o2 = np.argsort(value[seg_items], kind="mergesort")
        v_items[a:b] = seg_items[o2]
        v_gas[a:b] = seg_gas[o2]
    return ptr, g_items, g_gas, v_items, v_gas


@njit(cache=True)
def _jevict_set(j, row, over, P, St, ebuf, R):
    """Selected items (not forced, not j) with gas in ``row`` freeing at least ``over`` of it at
    little value: the cheapest single item that frees enough, or the lowest value-per-gas items
    until enough is freed, pruned of the unneeded. Written to ebuf; returns its size or -1.
    Walks the row's presorted core lists (``_jrow_orders``), each only until it has what it
    needs: O(entries walked), no sort per move."""
    value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced = P
    sel, cnt, owner, used, slist, spos, acc = St
    ptr, g_items, g_gas, v_items, v_gas = R
    a = ptr[row]
    b = ptr[row + 1]
    # the cheapest single item that frees enough: first selected one in value order
    single = -1
    q = a
    while q < b:
        i = v_items[q]
        q += 1
        if sel[i] and i != j and not forced[i] and v_gas[q - 1] >= over:
            single = i
            break
    walked = q - a
    freed = 0
    lost = 0
    c = 0
    q = a
    while q < b and freed < over:
        i = g_items[q]
        if sel[i] and i != j and not forced[i]:
            ebuf[c] = q  # positions in the row's list for now
            c += 1
            freed += g_gas[q]
            lost += value[i]
        q += 1
    walked += q - a
    acc[JA_WORK] += 2 * walked + c
    if freed >= over:
        t = c - 1
        while t >= 0:
            u = ebuf[t]
            if freed - g_gas[u] >= over:
                freed -= g_gas[u]
                lost -= value[g_items[u]]
                for w in range(t, c - 1):
                    ebuf[w] = ebuf[w + 1]
                c -= 1
            t -= 1
    if single >= 0 and (freed < over or value[single] < lost):
        ebuf[0] = single
        return 1
    if freed < over:
        return -1
    for t in range(c):
        ebuf[t] = g_items[ebuf[t]]
    return c


@njit(cache=True)
def _jinsert(j, it, core, minsuf, tabu, P, St, rbuf, abuf, B):
    """Insert move for j: evict its key owners on every rollup, then per overflowing row the set
    ``_jevict_set`` picks, then refill from the core. Returns (n_removed, n_added), or (-1, -1)
    when impossible (the state is then unchanged)."""
    value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced = P
    sel, cnt, owner, used, slist, spos, acc = St
    ebuf, R = B
    nr = 0
    for p in range(key_ptr[j], key_ptr[j + 1]):
        o = owner[key_idx[p]]
        if o >= 0:
            if forced[o]:
                for t in range(nr - 1, -1, -1):
                    _jadd(rbuf[t], P, St)
                return -1, -1
            _jremove(o, P, St)
            rbuf[nr] = o
            nr += 1
    _jadd(j, P, St)
    ok = True
    for p in range(row_ptr[j], row_ptr[j + 1]):
        r = row_idx[p]
        if used[r] > cap[r]:
            ne = _jevict_set(j, r, used[r] - cap[r], P, St, ebuf, R)
            if ne < 0:
                ok = False
                break
            for t in range(ne):
                _jremove(ebuf[t], P, St)
                rbuf[nr] = ebuf[t]
                nr += 1
    if not ok:
        _jremove(j, P, St)
        for t in range(nr - 1, -1, -1):
            _jadd(rbuf[t], P, St)
        return -1, -1
    na = 0
    m = core.shape[0]
    n_roll = minsuf.shape[1]
    for pos in range(m):
        # no rollup has room for the smallest leg still ahead on it: nothing more fits
        room = False
        for r in range(n_roll):
            if cap[r] - used[r] >= minsuf[pos, r]:
                room = True
                break
        if not room:
            break
        i = core[pos]
        if tabu[i] > it or sel[i] or cnt[i]:
            continue
        if _jfits(i, P, St):
            _jadd(i, P, St)
            abuf[na] = i
            na += 1
    acc[JA_WORK] += m + 24
    return nr, na


@njit(cache=True)
def _jundo(j, nr, na, P, St, rbuf, abuf):
    for t in range(na - 1, -1, -1):
        _jremove(abuf[t], P, St)
    _jremove(j, P, St)
    for t in range(nr - 1, -1, -1):
        _jadd(rbuf[t], P, St)


@njit(cache=True)
def _jsearch(core, minsuf, P, St, work_limit, stall_work, target, seed, reduced, ell_err, fval):
    """Iterated local search from the current state; leaves the best solution in St.

    Rounds of first-improvement insert descent over the core (items whose reduced cost proves
    they cannot beat the best are skipped), then a kick: from the best (probability 3/4) or the
    current local optimum, one to three random core items (tournament of four by value) are
    inserted and what they evicted is tabu for a few rounds. Stops at the work cap, after
    ``stall_work`` work without a new best (counted from the move that made it, and checked
    inside a descent as well as between rounds: one descent could outlast the whole cap), or
    when the best reaches ``target``."""
    sel, cnt, owner, used, slist, spos, acc = St
    value = P[0]
    n = sel.shape[0]
    m = core.shape[0]
    rbuf = np.zeros(n, dtype=np.int64)
    abuf = np.zeros(n, dtype=np.int64)
    R = _jrow_orders(core, value, P[1], P[2], P[3], P[4].shape[0])
    B = (np.zeros(n, dtype=np.int64), R)
    mark = np.zeros(n, dtype=np.uint8)
    tabu = np.zeros(n, dtype=np.int64)
    rng = np.zeros(1, dtype=np.uint64)
    rng[0] = np.uint64(seed) * np.uint64(0x2545F4914F6CDD1D) + np.uint64(1)
    best = slist[: acc[JA_COUNT]].copy()
    best_val = acc[JA_VALUE]
    if m == 0:
        return best_val
    last_best = acc[JA_WORK]
    kround = np.int64(1)
    start = np.int64(0)
    while True:
        cut = float(best_val - fval) - ell_err
        improved = True
        while improved and acc[JA_WORK] < work_limit and acc[JA_WORK] - last_best < stall_work:
            improved = False
            acc[JA_WORK] += m
            for t in range(m):
                j = core[(t + start) % m]
                if sel[j] or tabu[j] > kround or reduced[j] <= cut:
                    continue
                before = acc[JA_VALUE]
                nr, na = _jinsert(j, kround, core, minsuf, tabu, P, St, rbuf, abuf, B)
                if nr < 0:
                    continue
                if acc[JA_VALUE] > before:
                    improved = True
                    if acc[JA_VALUE] > best_val:
                        last_best = acc[JA_WORK]
                else:
                    _jundo(j, nr, na, P, St, rbuf, abuf)
                if acc[JA_WORK] >= work_limit or acc[JA_WORK] - last_best >= stall_work:
                    break
        if acc[JA_VALUE] > best_val:
            best_val = acc[JA_VALUE]
            best = slist[: acc[JA_COUNT]].copy()
        work = acc[JA_WORK]
        if work >= work_limit or work - last_best >= stall_work or best_val >= target:
            break
        if acc[JA_VALUE] < best_val and _next_random(rng) % 4 != 0:
            _jrestore(best, P, St, mark)
        cut = float(best_val - fval) - ell_err
        kicks = 1 + _next_random(rng) % 3
        acc[JA_WORK] += 1 + kicks
        for _ in range(kicks):
            j = np.int64(-1)
            for _try in range(4):
                c = core[_next_random(rng) % m]
                if not sel[c] and tabu[c] <= kround and reduced[c] > cut:
                    if j < 0 or value[c] > value[j]:
                        j = c
            if j < 0:
                continue
            nr, na = _jinsert(j, kround, core, minsuf, tabu, P, St, rbuf, abuf, B)
            tenure = 3 + _next_random(rng) % 8
            for t in range(max(nr, 0)):
                tabu[rbuf[t]] = kround + tenure
        if acc[JA_VALUE] > best_val:  # the kick itself made a new best: the stall counts from it
            last_best = acc[JA_WORK]
        start = _next_random(rng) % m
        kround += 1
    _jrestore(best, P, St, mark)
    return best_val


# --- exact enumeration for tiny instances --------------------------------------------------------


@njit(cache=True)
def _jenumerate(cand_items, P, St, n_keys):
    """Exact optimum over subsets of cand_items (<= EXACT_MAX_ITEMS) by Gray code, added to the
    forced items already in St. O(2^m * (keys + rows) per item). Ties keep the first subset."""
    value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr, ki_items, forced = P
    used = St[J_USED].copy()
    m = cand_items.shape[0]
    kc = np.zeros(n_keys, dtype=np.int64)
    viol = 0
    over = 0
    val = 0
    mask = 0
    best_mask = 0
    best_val = 0
    for t in range(1, 1 << m):
        b = 0
        while not (t >> b) & 1:
            b += 1
        i = cand_items[b]
        sign = -1 if (mask >> b) & 1 else 1
        mask ^= 1 << b
        val += sign * value[i]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            r = row_idx[p]
            was = used[r] > cap[r]
            used[r] += sign * row_gas[p]
            over += int(used[r] > cap[r]) - int(was)
        for p in range(key_ptr[i], key_ptr[i + 1]):
            k = key_idx[p]
            if sign < 0:
                kc[k] -= 1
                if kc[k] >= 1:
                    viol -= 1
            else:
                if kc[k] >= 1:
                    viol += 1
                kc[k] += 1
        if viol == 0 and over == 0 and val > best_val:
            best_val = val
            best_mask = mask
    for b in range(m):
        if (best_mask >> b) & 1:
            _jadd(cand_items[b], P, St)
    St[J_ACC][JA_WORK] += 1 << m
    return best_val


# --- the whole solve ---------------------------------------------------------------------------


@njit(cache=True)
def _jscores(cand_items, value, row_ptr, row_idx, row_gas, cap_rem, n_rollups, musum):
    """Value (minus ``musum``) per normalised size: sum over the item's rollups of leg gas over
    the gas left on that rollup. The multi-rollup form of bid per gas."""
    score = np.zeros(value.shape[0], dtype=np.float64)
    for t in range(cand_items.shape[0]):
        i = cand_items[t]
        size = 0.0
        for p in range(row_ptr[i], row_ptr[i + 1]):
            r = row_idx[p]
            if r < n_rollups:
                size += row_gas[p] / max(float(cap_rem[r]), 1.0)
        score[i] = (value[i] - musum[i]) / max(size, 1e-12)
    return score


@njit(cache=True)
def _jsolve(value, positive, forced, banned, row_ptr, row_idx, row_gas, cap, n_rollups, key_ptr,
            key_idx, ki_ptr, ki_items, work_limit, seed, init, exact_max, stall_work, core_max,
            gap_tolerance):  # fmt: skip
    """Full joint solve on arrays. Returns (selected mask, scaled value, L, err, n candidates,
    work used, first greedy value, core, reduced costs, reported bound, its error)."""
    n = value.shape[0]
    n_keys = ki_ptr.shape[0] - 1
    n_rows = cap.shape[0]
    cand, cap_rem = _jprepare(positive, forced, banned, row_ptr, row_idx, row_gas, cap, key_ptr,
                              key_idx, ki_ptr, ki_items)  # fmt: skip
    # The greedy phase tests conflicts by key owner (O(keys of i)) and keeps no conflict counts:
    # counting them would touch every member of a hot key per add (thousands), three greedy
    # passes over. The search state below counts them for its core only.
    no_ptr = np.zeros(n_keys + 1, dtype=np.int64)
    no_items = np.empty(0, dtype=ki_items.dtype)
    P = (value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, no_ptr, no_items, forced)
    St = _jnew_state(n, n_keys, n_rows)
    acc = St[J_ACC]
    for i in range(n):
        if forced[i] and not banned[i]:
            _jadd(i, P, St)
    fval = acc[JA_VALUE]
    cand_items = np.flatnonzero(cand).astype(np.int64)
    m = cand_items.shape[0]
    if m <= exact_max:
        best = _jenumerate(cand_items, P, St, n_keys)
        return (
            St[J_SEL],
            acc[JA_VALUE],
            float(best),
            0.0,
            m,
            acc[JA_WORK],
            best,
            cand_items,
            np.zeros(n),
            float(best),
            0.0,
        )
    zero = np.zeros(n, dtype=np.float64)
    eff = _score_order(cand_items, _jscores(cand_items, value, row_ptr, row_idx, row_gas, cap_rem,
                                            n_rollups, zero))  # fmt: skip
    for t in range(init.shape[0]):
        if cand[init[t]] and _jfits(init[t], P, St):
            _jadd(init[t], P, St)
    _jgreedy_fill(eff, P, St)
    greedy_val = acc[JA_VALUE]
    first_greedy = greedy_val
    start_list = St[J_SLIST][: acc[JA_COUNT]].copy()
    ell, err, mu, lam, bell, berr = _jdual_bound(
        cand_items, cand, value, row_ptr, row_idx, row_gas, cap_rem, key_ptr, key_idx, ki_ptr,
        ki_items, acc, max(1, int(DUAL_SHARE * work_limit)),
        max(1, int(JOINT_DUAL_SHARE_MAX * work_limit)), int(SUBGRADIENT_SHARE * work_limit),
        float(greedy_val - fval), gap_tolerance)  # fmt: skip
    musum = np.zeros(n, dtype=np.float64)
    reduced = np.full(n, -np.inf, dtype=np.float64)
    for t in range(m):
        i = cand_items[t]
        ms = 0.0
        for p in range(key_ptr[i], key_ptr[i + 1]):
            ms += mu[key_idx[p]]
        ls = 0.0
        for p in range(row_ptr[i], row_ptr[i + 1]):
            ls += lam[row_idx[p]] * row_gas[p]
        musum[i] = ms
        reduced[i] = value[i] - ms - ls
    mark = np.zeros(n, dtype=np.uint8)
    empty = np.empty(0, dtype=np.int64)
    # greedy start 2: conflict-priced value per normalised size
    _jrestore(empty, P, St, mark)
    _jgreedy_fill(_score_order(cand_items, _jscores(cand_items, value, row_ptr, row_idx, row_gas,
                                                    cap_rem, n_rollups, musum)), P, St)  # fmt: skip
    if acc[JA_VALUE] > greedy_val:
        greedy_val = acc[JA_VALUE]
        start_list = St[J_SLIST][: acc[JA_COUNT]].copy()
    # greedy start 3: biggest bids first
    _jrestore(empty, P, St, mark)
    _jgreedy_fill(_score_order(cand_items, value.astype(np.float64)), P, St)
    if acc[JA_VALUE] < greedy_val:
        _jrestore(start_list, P, St, mark)
    # the sorts and the greedy passes are work too (fixed cost; as in ordering/solver.py)
    acc[JA_WORK] += 4 * m * (1 + int(math.log2(m + 1))) + ki_ptr[n_keys] // 2 + n // 2
    # core: items reduced-cost fixing cannot exclude, best reduced cost first, plus the selection
    inc = float(acc[JA_VALUE] - fval)
    keep = np.zeros(m, dtype=np.int64)
    nk = 0
    for t in range(m):
        i = cand_items[t]
        if St[J_SEL][i] or ell + min(reduced[i], 0.0) + err >= inc:
            keep[nk] = i
            nk += 1
    kept = _score_order(keep[:nk], reduced)
    if nk > core_max:
        chosen = np.empty(nk, dtype=np.int64)
        c = 0
        for t in range(nk):
            if t < core_max or St[J_SEL][kept[t]]:
                chosen[c] = kept[t]
                c += 1
        kept = chosen[:c]
    core = _score_order(kept, _jscores(kept, value, row_ptr, row_idx, row_gas, cap_rem, n_rollups,
                                       zero))  # fmt: skip
    # smallest leg gas per rollup from each core position on (the refill's early stop)
    minsuf = np.full((core.shape[0] + 1, n_rollups), np.iinfo(np.int64).max, dtype=np.int64)
    for pos in range(core.shape[0] - 1, -1, -1):
        minsuf[pos, :] = minsuf[pos + 1, :]
        i = core[pos]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            r = row_idx[p]
            if r < n_rollups and row_gas[p] < minsuf[pos, r]:
                minsuf[pos, r] = row_gas[p]
    # conflict counts for core items only (a hot key costs the search only its core members)
    ki_ptr_c, ki_items_c = _restrict_keys(core, n, ki_ptr, ki_items)
    Pc = (value, row_ptr, row_idx, row_gas, cap, key_ptr, key_idx, ki_ptr_c, ki_items_c, forced)
    Sc = _jnew_state(n, n_keys, n_rows)
    Sc[J_ACC][JA_WORK] = acc[JA_WORK]
    for i in range(n):
        if forced[i] and not banned[i]:
            _jadd(i, Pc, Sc)
    for t in range(acc[JA_COUNT]):
        if not forced[St[J_SLIST][t]]:
            _jadd(St[J_SLIST][t], Pc, Sc)
    if stall_work < 0:
        stall_work = max(np.int64(JOINT_STALL_MIN), np.int64(JOINT_STALL_PER_CORE) * core.shape[0])
    target = np.iinfo(np.int64).max
    if bell < np.inf:
        target = fval + np.int64(math.floor((bell + berr) * (1.0 + 4.0 * _U53)))
        target -= np.int64(math.floor(gap_tolerance * float(target)))
    _jsearch(core, minsuf, Pc, Sc, work_limit, stall_work, target, seed, reduced, ell + err, fval)
    acc = Sc[J_ACC]
    return (
        Sc[J_SEL],
        acc[JA_VALUE],
        ell,
        err,
        m,
        acc[JA_WORK],
        first_greedy,
        core,
        reduced,
        bell,
        berr,
    )


# --- Python entry points -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JointStats:
    """What a joint solve did (for benchmarks and payments)."""

    candidates: int
    core: int
    work_units: int
    greedy_value: int  # scaled


def compute_joint_core_max(n_rollups: int) -> int:
    """Core size cap for a slot of ``n_rollups`` rollups."""
    return JOINT_CORE_MAX + JOINT_CORE_PER_ROLLUP * max(0, n_rollups - 1)


def solve_joint_arrays(
    arrays: JointArrays,
    work_limit: int,
    seed: int = 0,
    banned: U8 | None = None,
    init: I64 | None = None,
    exact_max: int = EXACT_MAX_ITEMS,
    stall_work: int | None = None,
    gap_tolerance: float = GAP_TOLERANCE,
) -> tuple[U8, int, JointStats]:
    """Run the joint kernel; returns (selected mask, upper bound in wei, stats)."""
    n = arrays.n
    banned = np.zeros(n, dtype=np.uint8) if banned is None else banned
    init = np.zeros(0, dtype=np.int64) if init is None else init
    sel, _val, _ell, _err, n_cand, work, greedy, core, _red, bell, berr = _jsolve(
        arrays.value, arrays.positive, arrays.forced, banned, arrays.row_ptr, arrays.row_idx,
        arrays.row_gas, arrays.row_cap, np.int64(arrays.n_rollups), arrays.key_ptr,
        arrays.key_idx, arrays.key_item_ptr, arrays.key_items, np.int64(work_limit),
        np.uint64(seed & 0xFFFFFFFFFFFFFFFF), init, np.int64(exact_max),
        np.int64(stall_work if stall_work is not None else -1),
        np.int64(compute_joint_core_max(arrays.n_rollups)), gap_tolerance,
    )  # fmt: skip
    forced_wei = sum(
        arrays.bids_wei[i] for i in np.flatnonzero(arrays.forced & (banned == 0)).tolist()
    )
    free = (arrays.positive == 1) & (arrays.forced == 0) & (banned == 0)
    scaled = int(arrays.value[free].sum())
    if math.isfinite(bell):
        scaled = min(scaled, math.floor((bell + berr) * (1.0 + 4.0 * _U53)))
    slack = int(n_cand) if arrays.value_shift > 0 else 0
    bound = forced_wei + ((max(scaled, 0) + slack) << arrays.value_shift)
    stats = JointStats(int(n_cand), int(core.shape[0]), int(work), int(greedy))
    return sel.copy(), bound, stats


def compute_joint_packing(
    arrays: JointArrays, sel: U8, bound_wei: int, solver: str
) -> JointPacking:
    """JointPacking from a selection mask: exact revenue and gas, blocks in slot order."""
    chosen: list[JointItem] = [arrays.items[i] for i in np.flatnonzero(sel).tolist()]
    ordered = compute_joint_order(chosen)
    revenue = sum(it.bid_wei for it in ordered)
    blocks: dict[int, list[str]] = {r: [] for r in arrays.rollups}
    gas = dict.fromkeys(arrays.rollups, 0)
    for it in ordered:
        for leg in it.legs:
            blocks[leg.rollup].append(it.id)
            gas[leg.rollup] += leg.gas
    upper = revenue if bound_wei < 0 else max(bound_wei, revenue)
    return JointPacking(
        included_by_rollup=tuple((r, tuple(blocks[r])) for r in arrays.rollups),
        included=tuple(it.id for it in ordered),
        revenue_wei=revenue,
        gas_used_by_rollup=tuple((r, gas[r]) for r in arrays.rollups),
        upper_bound_wei=upper,
        solver=solver,
        proven_optimal=upper == revenue,
    )


def pack_joint_kernel(inp: JointInput, time_budget_ms: int = 50, seed: int = 0) -> JointPacking:
    """The joint kernel on any number of rollups (``ordering.packer.pack_joint`` hands one-rollup
    slots to the single-rollup solver instead). Validates ``inp`` (InvalidJointInput tree) and
    raises InfeasibleInstance when the forced items do not fit."""
    arrays = compute_joint_arrays(inp)  # checks the shape (check_joint_input's rules)
    if inp.forced:
        check_joint_forced_feasible(inp)
    return pack_joint_arrays(arrays, time_budget_ms, seed)


def pack_joint_arrays(arrays: JointArrays, time_budget_ms: int = 50, seed: int = 0) -> JointPacking:
    """``pack_joint_kernel`` on an instance already encoded (and so checked) whose forced items
    are known to fit."""
    sel, bound, _ = solve_joint_arrays(arrays, compute_work_limit(time_budget_ms), seed)
    return compute_joint_packing(arrays, sel, bound, solver="numba-joint")


JOINT_KERNELS: tuple[str, ...] = (
    "_jnew_state", "_jadd", "_jremove", "_jfits", "_jgreedy_fill", "_jrestore", "_jprepare",
    "_jevaluate", "_jdual_bound", "_jsubgradient", "_jrow_orders", "_jevict_set", "_jinsert",
    "_jundo", "_jsearch", "_jenumerate", "_jscores", "_jsolve", "_first_repeated_leg",
    "_first_on_rollup",
)  # fmt: skip


# --- one rollup: the single-rollup model -------------------------------------------------------


def compute_single_input(inp: JointInput) -> PackingInput:
    """A one-rollup joint instance as the single-rollup ``PackingInput`` (same model: one gas
    row, one cap per searcher, the leg's keys)."""
    (cap,) = inp.rollups
    items = tuple(Item(it.id, it.searcher, it.bid_wei, it.legs[0].gas, it.legs[0].keys)
                  for it in inp.items)  # fmt: skip
    return PackingInput(cap.gas_limit, items, cap.max_gas_per_searcher, inp.forced,
                        encoded=inp.encoded)  # fmt: skip


def compute_joint_from_single(inp: JointInput, packing: Packing) -> JointPacking:
    """A single-rollup packing of ``compute_single_input(inp)`` as a JointPacking (the block
    orders agree: one leg's gas is the bundle's total gas)."""
    rollup = inp.rollups[0].rollup
    return JointPacking(
        included_by_rollup=((rollup, packing.included),),
        included=packing.included,
        revenue_wei=packing.revenue_wei,
        gas_used_by_rollup=((rollup, packing.gas_used),),
        upper_bound_wei=packing.upper_bound_wei,
        solver=packing.solver,
        proven_optimal=packing.proven_optimal,
    )
