"""The numba packer: greedy starts, a Lagrangian bound, and iterated local search.

Model (all on the canonical arrays of ``ordering.arrays``): binary x_i per item;

    maximise   sum_i v_i x_i
    subject to sum_i g_i x_i <= C                       (block gas for bundles)
               sum_{i in s} g_i x_i <= c                for every searcher s (fairness cap)
               sum_{i in k} x_i <= 1                    for every conflict key k (a clique)
               x_f = 1                                  for every forced item f

Forced items are fixed first: they use gas and searcher gas, and every item sharing a key with a
forced item is excluded. What remains (the *candidates*) is solved by:

1. two greedy starts (bid per gas; Lagrangian-reduced bid per gas) - O(nnz + n log n);
2. a Lagrangian dual bound by block-coordinate descent (see ``_dual_bound``), which also yields
   reduced costs used to pick a *core* of items worth moving (reduced-cost fixing);
3. iterated local search on the core: ``insert`` moves (add one item, evict the items it conflicts
   with, evict the cheapest items until gas and searcher caps hold, greedily refill) with
   first-improvement descent, random kicks with a short tabu, and a return to the best solution.

Instances with at most ``EXACT_MAX_ITEMS`` candidates are solved exactly by enumeration.

Determinism: every kernel is integer/IEEE arithmetic without fastmath, the random stream is a
seeded splitmix64, loops run in canonical index order and the search stops on a *work count*
(elementary inner-loop steps), never on a clock. ``time_budget_ms`` is translated into a work cap
by the fixed constant ``WORK_UNITS_PER_MS``, so the same input, seed and budget give the same block
on every machine; a slow machine just takes longer. See docs/solver.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit
from numba.core import event

from ordering.arrays import PackingArrays, compute_packing_arrays
from ordering.problem import Item, JointItem, Packing, PackingInput, compute_ratio_order
from ordering.reference import check_forced_feasible

# Work units (inner-loop steps) per millisecond of budget. Calibrated once on the reference
# machine (see docs/solver.md); a constant, so the result never depends on the machine's speed.
WORK_UNITS_PER_MS = 200_000
# Instances with at most this many candidates are enumerated exactly (2**16 Gray-code steps).
EXACT_MAX_ITEMS = 16
# Iterated local search stops when this share of the work cap passed without a new best.
STALL_FRACTION = 0.1
# The search stops once its block is proven within this relative gap of the optimum (the bound):
# HiGHS's default MIP gap. Most small slots prove it within the greedy starts and stop at once.
GAP_TOLERANCE = 1e-4
# Swap tabu search: moves without a better solution of the round before it ends.
TABU_DEPTH = 400
# Largest core the local search moves around in (items with the best reduced costs).
CORE_MAX = 1500
# Block-coordinate passes of the dual bound, and the relative gain below which a pass is stale
# (three stale passes end the descent).
DUAL_PASSES = 40
DUAL_STALE_REL = 1e-6
# Polyak subgradient steps after the block-coordinate descent stalls (at most this many, and at
# most SUBGRADIENT_SHARE of the work cap: the search keeps the rest; the step halves after 4
# steps without a better bound and the phase ends below 1/1024).
SUBGRADIENT_STEPS = 300
SUBGRADIENT_SHARE = 0.05
# Share of the work cap the dual bound may use (it stops after the pass that crosses it; the
# first pass always runs, so even a 1 ms budget gets a valid bound and reduced costs).
DUAL_SHARE = 0.3

_U53 = 2.0**-53

# Compile note: numba compiles a kernel once per tuple of argument *types*, and an int literal
# (``-1``, ``0``, a global constant such as TABU_DEPTH) is a type of its own (Literal[int](-1)).
# Calls between kernels therefore pass ``np.int64(...)`` values, never literals, so each kernel
# compiles once: literal arguments had made 15 extra copies (_insert 3x, _evict_set 4x, ...),
# a third of the cold compile. tests/ordering/test_packing_compile.py keeps it that way.

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


# --- random stream ------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _next_random(rng: np.ndarray) -> np.int64:
    """splitmix64 step on rng[0]; returns a non-negative int63."""
    rng[0] = rng[0] + np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(1))


# --- instance preparation ------------------------------------------------------------------------


@njit(cache=True)
def prepare_candidates(gas, positive, forced, banned, searcher, key_ptr, key_idx, ki_ptr, ki_items,
             gas_limit, searcher_cap, n_searchers):  # fmt: skip
    """Candidates after fixing forced items, and per-searcher gas caps.

    Returns (cand mask, scap[S] total cap per searcher, forced gas). O(nnz).
    """
    n = gas.shape[0]
    scap = np.empty(n_searchers, dtype=np.int64)
    for s in range(n_searchers):
        scap[s] = searcher_cap if searcher_cap >= 0 else gas_limit
    fgas = 0
    sforced = np.zeros(n_searchers, dtype=np.int64)
    blocked = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if forced[i] and not banned[i]:
            fgas += gas[i]
            sforced[searcher[i]] += gas[i]
            for p in range(key_ptr[i], key_ptr[i + 1]):
                k = key_idx[p]
                for q in range(ki_ptr[k], ki_ptr[k + 1]):
                    blocked[ki_items[q]] = 1
    cand = np.zeros(n, dtype=np.uint8)
    for i in range(n):
        if forced[i] or banned[i] or blocked[i] or not positive[i]:
            continue
        s = searcher[i]
        if fgas + gas[i] > gas_limit or sforced[s] + gas[i] > scap[s]:
            continue
        cand[i] = 1
    return cand, scap, fgas


# --- solution state --------------------------------------------------------------------------
# St = (sel[n] u8, cnt[n] i64 conflict incidences with selected items, owner[K] i64,
#       sgas[S] i64, slist[n] i64 selected items, spos[n] i64, acc[5] i64,
#       csum[n] i64 sum of the conflicting selected items' indices (one term per incidence),
#       csq[n] i64 the same sum of squares, clist[n] i64 / cpos[n] i64 the *swap list*,
#       lmask[n] u8 items allowed in the swap list)
# acc = [gas_used, value, work, n_selected, swap list length]
# Named positions (numba folds these module constants at compile time):
ST_SEL, ST_CNT, ST_OWNER, ST_SGAS, ST_SLIST, ST_SPOS, ST_ACC = 0, 1, 2, 3, 4, 5, 6
ACC_GAS, ACC_VALUE, ACC_WORK, ACC_COUNT, ACC_SWAPS = 0, 1, 2, 3, 4
# P = (gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced): the instance.
P_GAS, P_VALUE, P_FORCED = 0, 1, 8
# The swap list holds the unselected items of lmask whose conflicts with the selection all come
# from at most one selected item: the only items an ADD or a SWAP(1,1) move can bring in. "All
# from one item" is tested in O(1): by Cauchy-Schwarz, cnt * csq == csum^2 exactly when every
# incidence carries the same index (csum / cnt). Indices < 2^20 and degrees < 2^10 keep every
# product below 2^63; a misclassification could only make a move fail its re-check, never break
# feasibility (moves are re-verified when applied).


@njit(cache=True)
def _new_state(n, n_keys, n_searchers, lmask):
    sel = np.zeros(n, dtype=np.uint8)
    cnt = np.zeros(n, dtype=np.int64)
    owner = np.full(n_keys, -1, dtype=np.int64)
    sgas = np.zeros(n_searchers, dtype=np.int64)
    slist = np.zeros(n, dtype=np.int64)
    spos = np.full(n, -1, dtype=np.int64)
    acc = np.zeros(5, dtype=np.int64)
    csum = np.zeros(n, dtype=np.int64)
    csq = np.zeros(n, dtype=np.int64)
    clist = np.zeros(n, dtype=np.int64)
    cpos = np.full(n, -1, dtype=np.int64)
    St = (sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask)
    for i in range(n):
        _touch(i, St)
    return St


@njit(cache=True)
def _touch(x, St):
    """Re-file item x in or out of the swap list after its conflict counts changed. O(1)."""
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    _file(x, sel, cnt, csum, csq, clist, cpos, lmask, acc)


@njit(cache=True, inline="always")
def _file(x, sel, cnt, csum, csq, clist, cpos, lmask, acc):
    c = cnt[x]
    want = lmask[x] != 0 and sel[x] == 0 and (c == 0 or c * csq[x] == csum[x] * csum[x])
    if want:
        if cpos[x] < 0:
            cpos[x] = acc[ACC_SWAPS]
            clist[acc[ACC_SWAPS]] = x
            acc[ACC_SWAPS] += 1
    elif cpos[x] >= 0:
        last = clist[acc[ACC_SWAPS] - 1]
        pos = cpos[x]
        clist[pos] = last
        cpos[last] = pos
        cpos[x] = -1
        acc[ACC_SWAPS] -= 1


@njit(cache=True)
def _add(i, P, St):
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    sel[i] = 1
    acc[ACC_GAS] += gas[i]
    acc[ACC_VALUE] += value[i]
    sgas[searcher[i]] += gas[i]
    slist[acc[ACC_COUNT]] = i
    spos[i] = acc[ACC_COUNT]
    acc[ACC_COUNT] += 1
    i2 = i * i
    for p in range(key_ptr[i], key_ptr[i + 1]):
        k = key_idx[p]
        owner[k] = i
        a = ki_ptr[k]
        b = ki_ptr[k + 1]
        for q in range(a, b):
            x = ki_items[q]
            c = cnt[x] + 1
            cnt[x] = c
            csum[x] += i
            csq[x] += i2
            # an item outside the list with a conflict already is mixed and stays so
            if lmask[x] and sel[x] == 0 and (c <= 1 or cpos[x] >= 0):
                # (inlined _file: a call per incidence costs numba several times the loop)
                want = c == 0 or c * csq[x] == csum[x] * csum[x]
                if want:
                    if cpos[x] < 0:
                        cpos[x] = acc[ACC_SWAPS]
                        clist[acc[ACC_SWAPS]] = x
                        acc[ACC_SWAPS] += 1
                elif cpos[x] >= 0:
                    last = clist[acc[ACC_SWAPS] - 1]
                    pos = cpos[x]
                    clist[pos] = last
                    cpos[last] = pos
                    cpos[x] = -1
                    acc[ACC_SWAPS] -= 1
        acc[ACC_WORK] += 2 * (b - a) + 1
    _touch(i, St)


@njit(cache=True)
def _remove(i, P, St):
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    sel[i] = 0
    acc[ACC_GAS] -= gas[i]
    acc[ACC_VALUE] -= value[i]
    sgas[searcher[i]] -= gas[i]
    last = slist[acc[ACC_COUNT] - 1]
    pos = spos[i]
    slist[pos] = last
    spos[last] = pos
    spos[i] = -1
    acc[ACC_COUNT] -= 1
    i2 = i * i
    for p in range(key_ptr[i], key_ptr[i + 1]):
        k = key_idx[p]
        owner[k] = -1
        a = ki_ptr[k]
        b = ki_ptr[k + 1]
        for q in range(a, b):
            x = ki_items[q]
            c = cnt[x] - 1
            cnt[x] = c
            csum[x] -= i
            csq[x] -= i2
            # an item in the list stays single-owner (or free) when a conflict leaves
            if lmask[x] and cpos[x] < 0 and sel[x] == 0:
                want = c == 0 or c * csq[x] == csum[x] * csum[x]
                if want:
                    if cpos[x] < 0:
                        cpos[x] = acc[ACC_SWAPS]
                        clist[acc[ACC_SWAPS]] = x
                        acc[ACC_SWAPS] += 1
                elif cpos[x] >= 0:
                    last = clist[acc[ACC_SWAPS] - 1]
                    pos = cpos[x]
                    clist[pos] = last
                    cpos[last] = pos
                    cpos[x] = -1
                    acc[ACC_SWAPS] -= 1
        acc[ACC_WORK] += 2 * (b - a) + 1
    _touch(i, St)


@njit(cache=True)
def _fits(i, P, St, gas_limit):
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    s = searcher[i]
    return (
        sel[i] == 0
        and cnt[i] == 0
        and acc[ACC_GAS] + gas[i] <= gas_limit
        and sgas[s] + gas[i] <= scap[s]
    )


@njit(cache=True)
def _greedy_fill(order, P, St, gas_limit):
    """Add items of ``order`` that fit, in that order. O(len(order) + updates)."""
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    for t in range(order.shape[0]):
        i = order[t]
        # inlined _fits: numba passes every array of P and St to a call (refcounts included)
        s = searcher[i]
        if (sel[i] == 0 and cnt[i] == 0 and acc[ACC_GAS] + gas[i] <= gas_limit
                and sgas[s] + gas[i] <= scap[s]):  # fmt: skip
            _add(i, P, St)
    acc[ACC_WORK] += order.shape[0]


@njit(cache=True)
def efficiency_order(items, value, gas):
    """Items by value per gas descending, then index ascending (stable sort)."""
    m = items.shape[0]
    key = np.empty(m, dtype=np.float64)
    for t in range(m):
        i = items[t]
        key[t] = -(value[i] / max(gas[i], 1))
    return items[np.argsort(key, kind="mergesort")]


@njit(cache=True)
def _score_order(items, score):
    m = items.shape[0]
    key = np.empty(m, dtype=np.float64)
    for t in range(m):
        key[t] = -score[items[t]]
    return items[np.argsort(key, kind="mergesort")]


# --- Lagrangian bound ----------------------------------------------------------------------------
# For any mu_k >= 0 (keys), lam >= 0 (block gas) and nu_s >= 0 (searcher caps), every feasible x
# of the candidate problem satisfies
#     sum_i v_i x_i <= sum_i v_i x_i + sum_k mu_k (1 - sum_{i in k} x_i) + lam (C' - sum_i g_i x_i)
#                                    + sum_s nu_s (c'_s - sum_{i in s} g_i x_i)
#                    = sum_k mu_k + lam C' + sum_s nu_s c'_s + sum_i d_i x_i
#                   <= sum_k mu_k + lam C' + sum_s nu_s c'_s + sum_i max(0, d_i)   =: L(mu, lam, nu)
# with d_i = v_i - sum_{k ni i} mu_k - (lam + nu_{s(i)}) g_i, because each added term is >= 0 for
# a feasible x and x_i in {0, 1}. So L is an upper bound for *every* choice of multipliers (weak
# duality of the LP with one clique row per key); the descent below only makes it tighter. L is
# evaluated in float64 from scratch, and the rounding error of that evaluation is bounded by
# gamma_N * A with A the sum of the absolute values of all terms (Higham, "Accuracy and Stability of
# Numerical Algorithms", eq. 3.5); the kernel returns L and that error, and the caller adds it,
# rounds up and floors (the optimum of integer values is an integer).


@njit(cache=True)
def _critical_ratio(items, m, r, gas, cap):
    """lam minimising lam*cap + sum max(0, r_i - lam g_i) over items[:m]: the ratio r/g at which
    the items taken by decreasing ratio first overflow ``cap`` (0 when they all fit).

    Weighted quickselect with a deterministic median-of-three pivot: O(m) expected."""
    cnt = 0
    tot = 0
    for t in range(m):
        i = items[t]
        if r[i] > 0.0 and gas[i] > 0:
            cnt += 1
            tot += gas[i]
    if tot <= cap:
        return 0.0
    ratio = np.empty(cnt, dtype=np.float64)
    w = np.empty(cnt, dtype=np.int64)
    c = 0
    for t in range(m):
        i = items[t]
        if r[i] > 0.0 and gas[i] > 0:
            ratio[c] = r[i] / gas[i]
            w[c] = gas[i]
            c += 1
    lo = 0
    hi = cnt  # search ratio[lo:hi]; ``before`` = gas of items known to rank above the window
    before = 0
    while hi - lo > 1:
        a = ratio[lo]
        b = ratio[(lo + hi) // 2]
        d = ratio[hi - 1]
        pivot = max(min(a, b), min(max(a, b), d))
        # three-way partition: > pivot | == pivot | < pivot
        i = lo
        lt = lo
        gt = hi
        while i < gt:
            if ratio[i] > pivot:
                ratio[i], ratio[lt] = ratio[lt], ratio[i]
                w[i], w[lt] = w[lt], w[i]
                lt += 1
                i += 1
            elif ratio[i] < pivot:
                gt -= 1
                ratio[i], ratio[gt] = ratio[gt], ratio[i]
                w[i], w[gt] = w[gt], w[i]
            else:
                i += 1
        g_hi = 0
        for t in range(lo, lt):
            g_hi += w[t]
        g_eq = 0
        for t in range(lt, gt):
            g_eq += w[t]
        if before + g_hi > cap:
            hi = lt
        elif before + g_hi + g_eq > cap:
            return pivot
        else:
            before += g_hi + g_eq
            lo = gt
    if hi - lo == 1 and before + w[lo] > cap:
        return ratio[lo]
    return 0.0


@njit(cache=True)
def _evaluate_dual(cand_items, value, gas, searcher, key_ptr, key_idx, mu, lam, nu, cap_rem,
                   key_rem, n_keys_max_deg, musum):  # fmt: skip
    """L(mu, lam, nu) from scratch, with a bound on its float rounding error; refreshes
    ``musum`` (the sum of mu over each item's keys) on the way. O(nnz)."""
    total = 0.0
    absum = 0.0
    for k in range(mu.shape[0]):
        total += mu[k]
        absum += mu[k]
    total += lam * key_rem
    absum += lam * key_rem
    for s in range(nu.shape[0]):
        if nu[s] > 0.0:
            total += nu[s] * cap_rem[s]
            absum += nu[s] * abs(cap_rem[s])
    for t in range(cand_items.shape[0]):
        i = cand_items[t]
        ms = 0.0
        for p in range(key_ptr[i], key_ptr[i + 1]):
            ms += mu[key_idx[p]]
        musum[i] = ms
        pr = (lam + nu[searcher[i]]) * gas[i]
        d = value[i] - ms - pr
        if d > 0.0:
            total += d
        absum += value[i] + ms + pr
    nops = cand_items.shape[0] + mu.shape[0] + nu.shape[0] + n_keys_max_deg + 8
    gamma = nops * _U53 / (1.0 - nops * _U53)
    return total, 2.0 * gamma * absum + 1e-300


@njit(cache=True)
def _dual_bound(cand_items, value, gas, searcher, key_ptr, key_idx, ki_ptr, ki_items, cand,
                gas_rem, cap_rem, cap_binding, s_ptr, s_items, passes, stale_rel, acc,
                dual_work, lower, sub_work, gap_tolerance):  # fmt: skip
    """Block-coordinate descent on L(mu, lam, nu), then subgradient steps from its best point
    (``_subgradient``; ``lower`` is a feasible value, the Polyak target). Returns the descent's
    best point with its L and error (the reduced costs, core and search use these), and the best
    bound of either phase with its error (what the block reports and the gap stop uses: the
    subgradient phase tightens the proof without moving the search).

    One pass: lam exactly for fixed (mu, nu) (critical ratio, O(n log n)); each binding nu_s
    exactly (critical ratio within the searcher); each mu_k exactly for the others fixed (the
    minimiser of mu + sum max(0, a_i - mu) is any mu in [a_(2), a_(1)]; we take the midpoint,
    clipped at 0). O(passes * (nnz + n log n)).
    """
    n = value.shape[0]
    n_keys = ki_ptr.shape[0] - 1
    n_s = cap_rem.shape[0]
    mu = np.zeros(n_keys, dtype=np.float64)
    nu = np.zeros(n_s, dtype=np.float64)
    lam = 0.0
    musum = np.zeros(n, dtype=np.float64)
    r = np.zeros(n, dtype=np.float64)
    m = cand_items.shape[0]
    maxdeg = np.int64(0)  # not a literal (compile note at the top)
    for t in range(m):
        i = cand_items[t]
        maxdeg = max(maxdeg, key_ptr[i + 1] - key_ptr[i])
    best_mu = mu.copy()
    best_nu = nu.copy()
    best_lam = 0.0
    best_l = np.inf
    best_err = 0.0
    # keys that bind: at least two candidates
    active = np.zeros(n_keys, dtype=np.uint8)
    for k in range(n_keys):
        c = 0
        for q in range(ki_ptr[k], ki_ptr[k + 1]):
            c += cand[ki_items[q]]
        if c >= 2:
            active[k] = 1
    stale = 0
    work0 = acc[ACC_WORK]
    for _ps in range(passes):
        # lam for fixed mu, nu
        for t in range(m):
            i = cand_items[t]
            r[i] = value[i] - musum[i] - nu[searcher[i]] * gas[i]
        lam = _critical_ratio(cand_items, m, r, gas, gas_rem)
        # nu_s for fixed mu, lam
        for s in range(n_s):
            if not cap_binding[s]:
                continue
            a = s_ptr[s]
            b = s_ptr[s + 1]
            for q in range(a, b):
                i = s_items[q]
                r[i] = value[i] - musum[i] - lam * gas[i]
            nu[s] = _critical_ratio(s_items[a:b], b - a, r, gas, cap_rem[s])
        # mu_k for the rest fixed
        for k in range(n_keys):
            if not active[k]:
                continue
            a1 = -np.inf
            a2 = -np.inf
            for q in range(ki_ptr[k], ki_ptr[k + 1]):
                i = ki_items[q]
                if not cand[i]:
                    continue
                a = value[i] - (musum[i] - mu[k]) - (lam + nu[searcher[i]]) * gas[i]
                if a > a1:
                    a2 = a1
                    a1 = a
                elif a > a2:
                    a2 = a
            acc[ACC_WORK] += ki_ptr[k + 1] - ki_ptr[k]
            lo = max(a2, 0.0)
            hi = max(a1, 0.0)
            new = 0.5 * (lo + hi)
            delta = new - mu[k]
            if delta != 0.0:
                mu[k] = new
                for q in range(ki_ptr[k], ki_ptr[k + 1]):
                    musum[ki_items[q]] += delta
        acc[ACC_WORK] += 3 * (key_ptr[-1] + m)
        ell, err = _evaluate_dual(cand_items, value, gas, searcher, key_ptr, key_idx, mu, lam,
                                  nu, cap_rem, gas_rem, maxdeg, musum)  # fmt: skip
        if ell + err < best_l + best_err:
            stale = stale + 1 if best_l - ell < stale_rel * abs(ell) else 0
            best_l = ell
            best_err = err
            best_mu[:] = mu
            best_nu[:] = nu
            best_lam = lam
        else:
            stale += 1
        if stale >= 3 or acc[ACC_WORK] - work0 >= dual_work:
            break
    bound_l, bound_err = best_l, best_err
    if acc[ACC_WORK] - work0 < dual_work and best_l < np.inf:
        end = min(work0 + dual_work, acc[ACC_WORK] + sub_work)
        bound_l, bound_err = _subgradient(cand_items, value, gas, searcher, key_ptr, key_idx,
                                          active, best_mu, best_lam, best_nu, gas_rem, cap_rem,
                                          cap_binding, maxdeg, musum, lower, acc, end, best_l,
                                          best_err, gap_tolerance)  # fmt: skip
    return best_l, best_err, best_mu, best_lam, best_nu, bound_l, bound_err


@njit(cache=True)
def _subgradient(cand_items, value, gas, searcher, key_ptr, key_idx, active, mu0, lam0, nu0,
                 gas_rem, cap_rem, cap_binding, maxdeg, musum, lower, acc, work_end, best_l,
                 best_err, gap_tolerance):  # fmt: skip
    """Polyak subgradient steps on L from (mu0, lam0, nu0); returns the best L and its error.

    Coordinate descent on this nonsmooth dual can stall short of its minimum (the LP bound);
    moving all multipliers along a subgradient gets past that. The subgradient at a point is
    the slack of each dualised row for the items with positive reduced cost; rows are scaled to
    a unit right-hand side (gas rows by their capacity) so that one step length suits them all:
    step = theta * (L - lower) / |g|^2. Any multipliers >= 0 give a valid bound, so the result
    is as sound as the descent's. O(SUBGRADIENT_STEPS * (nnz + n_keys))."""
    n_keys = mu0.shape[0]
    n_s = nu0.shape[0]
    m = cand_items.shape[0]
    nnz = 0
    for t in range(m):
        i = cand_items[t]
        nnz += key_ptr[i + 1] - key_ptr[i]
    act = np.flatnonzero(active)  # keys shared by two candidates: the only rows that move
    n_act = act.shape[0]
    mu = mu0.copy()
    nu = nu0.copy()
    lam = lam0
    g = np.zeros(n_keys, dtype=np.float64)
    gs = np.zeros(n_s, dtype=np.float64)
    cg = max(float(gas_rem), 1.0)
    theta = 1.0
    noimp = 0
    acc[ACC_WORK] += n_keys
    for _step in range(SUBGRADIENT_STEPS):
        if acc[ACC_WORK] >= work_end:
            break
        # evaluating L: items x keys, every key once; the step: items x keys, active rows x 3
        acc[ACC_WORK] += 2 * (nnz + m) + n_keys + 3 * n_act + 3 * n_s
        ell, err = _evaluate_dual(cand_items, value, gas, searcher, key_ptr, key_idx, mu, lam,
                                  nu, cap_rem, gas_rem, maxdeg, musum)  # fmt: skip
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
            break  # the bound proves a feasible value within the tolerance: nothing left to do
        for t in range(n_act):
            g[act[t]] = 1.0
        glam = float(gas_rem)
        for s in range(n_s):
            gs[s] = float(cap_rem[s]) if cap_binding[s] else 0.0
        for t in range(m):
            i = cand_items[t]
            s = searcher[i]
            if value[i] - musum[i] - (lam + nu[s]) * gas[i] <= 0.0:
                continue
            for p in range(key_ptr[i], key_ptr[i + 1]):
                if active[key_idx[p]]:
                    g[key_idx[p]] -= 1.0
            glam -= gas[i]
            if cap_binding[s]:
                gs[s] -= gas[i]
        norm = (glam / cg) ** 2
        for t in range(n_act):
            norm += g[act[t]] * g[act[t]]
        for s in range(n_s):
            if cap_binding[s]:
                cs = max(float(cap_rem[s]), 1.0)
                norm += (gs[s] / cs) ** 2
        if norm <= 0.0:
            break  # a zero subgradient: this point minimises L
        step = theta * (ell - lower) / norm
        for t in range(n_act):
            k = act[t]
            if g[k] != 0.0:
                mu[k] = max(0.0, mu[k] - step * g[k])
        lam = max(0.0, lam - step * glam / (cg * cg))
        for s in range(n_s):
            if cap_binding[s]:
                cs = max(float(cap_rem[s]), 1.0)
                nu[s] = max(0.0, nu[s] - step * gs[s] / (cs * cs))
    return best_l, best_err


# --- local search ----------------------------------------------------------------------------


@njit(cache=True)
def _evict_set(j, scope_searcher, over, P, St, ebuf):
    """Choose selected items (not forced, not j) freeing at least ``over`` gas at little value.

    Two candidates: the cheapest single item that frees enough, and the lowest-value-per-gas
    items taken until enough is freed (then pruned of items no longer needed, most efficient
    first); the cheaper set is written to ``ebuf``. scope_searcher >= 0 restricts to that
    searcher. Returns the set's size, -1 when nothing frees enough. O(|S| log |S|)."""
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    ns = acc[ACC_COUNT]
    pool = np.empty(ns, dtype=np.int64)
    key = np.empty(ns, dtype=np.float64)
    npool = 0
    single = -1
    for t in range(ns):
        i = slist[t]
        if i == j or forced[i]:
            continue
        if scope_searcher >= 0 and searcher[i] != scope_searcher:
            continue
        pool[npool] = i
        npool += 1
        if gas[i] >= over and (
            single < 0 or value[i] < value[single] or (value[i] == value[single] and i < single)
        ):
            single = i
    acc[ACC_WORK] += ns
    if npool == 0:
        return -1
    pool = pool[:npool]
    # canonical order first (slist order depends on history), then by value per gas ascending
    pool.sort()
    for t in range(npool):
        key[t] = value[pool[t]] / max(gas[pool[t]], 1)
    order = np.argsort(key[:npool], kind="mergesort")
    freed = 0
    lost = 0
    c = 0
    for t in range(npool):
        i = pool[order[t]]
        ebuf[c] = i
        c += 1
        freed += gas[i]
        lost += value[i]
        if freed >= over:
            break
    if freed < over:
        if single < 0:
            return -1
    else:
        # drop items the prefix no longer needs, most efficient first
        t = c - 1
        while t >= 0:
            i = ebuf[t]
            if freed - gas[i] >= over:
                freed -= gas[i]
                lost -= value[i]
                for u in range(t, c - 1):
                    ebuf[u] = ebuf[u + 1]
                c -= 1
            t -= 1
    if single >= 0 and (freed < over or value[single] < lost):
        ebuf[0] = single
        return 1
    return c


@njit(cache=True)
def _insert(j, it, core, minsuf, tabu, P, St, gas_limit, rbuf, abuf, ebuf):
    """Apply the insert move for j; returns (n_removed, n_added) or (-1, -1) when impossible."""
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    nr = 0
    for p in range(key_ptr[j], key_ptr[j + 1]):
        o = owner[key_idx[p]]
        if o >= 0:
            if forced[o]:
                for t in range(nr - 1, -1, -1):
                    _add(rbuf[t], P, St)
                return -1, -1
            _remove(o, P, St)
            rbuf[nr] = o
            nr += 1
    _add(j, P, St)
    s = searcher[j]
    ok = True
    if sgas[s] > scap[s]:
        ne = _evict_set(j, np.int64(s), sgas[s] - scap[s], P, St, ebuf)
        if ne < 0:
            ok = False
        for t in range(max(ne, 0)):
            _remove(ebuf[t], P, St)
            rbuf[nr] = ebuf[t]
            nr += 1
    if ok and acc[ACC_GAS] > gas_limit:
        ne = _evict_set(j, np.int64(-1), acc[ACC_GAS] - gas_limit, P, St, ebuf)
        if ne < 0:
            ok = False
        for t in range(max(ne, 0)):
            _remove(ebuf[t], P, St)
            rbuf[nr] = ebuf[t]
            nr += 1
    if not ok:
        _remove(j, P, St)
        for t in range(nr - 1, -1, -1):
            _add(rbuf[t], P, St)
        return -1, -1
    na = 0
    m = core.shape[0]
    for pos in range(m):
        slack = gas_limit - acc[ACC_GAS]
        if slack < minsuf[pos]:
            break
        i = core[pos]
        if tabu[i] > it:
            continue
        s = searcher[i]
        if (sel[i] == 0 and cnt[i] == 0 and gas[i] <= slack
                and sgas[s] + gas[i] <= scap[s]):  # fmt: skip
            _add(i, P, St)
            abuf[na] = i
            na += 1
    acc[ACC_WORK] += m + 24  # + the call itself
    return nr, na


@njit(cache=True)
def _undo_insert(j, nr, na, P, St, rbuf, abuf):
    for t in range(na - 1, -1, -1):
        _remove(abuf[t], P, St)
    _remove(j, P, St)
    for t in range(nr - 1, -1, -1):
        _add(rbuf[t], P, St)


@njit(cache=True)
def _descent(it, core, minsuf, tabu, P, St, gas_limit, work_limit, rbuf, abuf, ebuf, start,
             reduced, cut):  # fmt: skip
    """First-improvement insert moves over the core until none improves.

    Items with reduced cost d_j <= cut are skipped: every solution containing j is worth at most
    L + d_j, which is no better than the best solution found so far."""
    sel = St[ST_SEL]
    acc = St[ST_ACC]
    m = core.shape[0]
    improved = True
    while improved and acc[ACC_WORK] < work_limit:
        improved = False
        # the scan itself is work: a pass that skips every item still ends the search
        acc[ACC_WORK] += m
        for t in range(m):
            j = core[(t + start) % m]
            if sel[j] or tabu[j] > it or reduced[j] <= cut:
                continue
            before = acc[ACC_VALUE]
            nr, na = _insert(j, it, core, minsuf, tabu, P, St, gas_limit, rbuf, abuf, ebuf)
            if nr < 0:
                continue
            if acc[ACC_VALUE] > before:
                improved = True
            else:
                _undo_insert(j, nr, na, P, St, rbuf, abuf)
            if acc[ACC_WORK] >= work_limit:
                break


@njit(cache=True)
def _restore(target, nt, P, St, mark):
    """Make the selection equal to target[:nt] (forced items stay)."""
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    forced = P[P_FORCED]
    for t in range(nt):
        mark[target[t]] = 1
    t = 0
    while t < acc[ACC_COUNT]:
        i = slist[t]
        if not mark[i] and not forced[i]:
            _remove(i, P, St)
        else:
            t += 1
    for t in range(nt):
        i = target[t]
        if not sel[i]:
            _add(i, P, St)
    for t in range(nt):
        mark[target[t]] = 0


@njit(cache=True)
def _tabu_move(it, P, St, gas_limit, tin, tout, rng, best_val, reduced, cut, sbuf, sgasb, smin):
    """Choose and apply one move of the swap tabu search; returns False when no move exists.

    Moves (all O(1) to evaluate per swap-list item, thanks to the conflict sums):
    ADD j (no conflict, fits), SWAP(i, j) with i the one selected item j conflicts with, or the
    selected item of least value whose gas makes room for a conflict-free j, and DROP i when no
    add or swap is admissible. Best gain first, ties broken at random; an item dropped may not
    come back before ``tin[i]``, an item added may not leave before ``tout[j]``, unless the move
    yields a new best (aspiration). O(swap list + |S| log |S|) plus the move's updates."""
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    ns = acc[ACC_COUNT]
    nl = acc[ACC_SWAPS]
    cur = acc[ACC_VALUE]
    bgain = np.iinfo(np.int64).min
    bj = np.int64(-1)
    bi = np.int64(-1)
    ties = 0
    built = False
    nb = 0
    for t in range(nl):
        j = clist[t]
        if reduced[j] <= cut:
            continue
        c = cnt[j]
        sj = searcher[j]
        i = -1
        if c == 0:
            over = acc[ACC_GAS] + gas[j] - gas_limit
            if sgas[sj] + gas[j] > scap[sj]:
                continue  # searcher cap: left to the insert moves (they evict within a searcher)
            if over > 0:
                if not built:
                    # selected, removable items by gas ascending, with the index of the least
                    # valuable one from each position on (suffix minimum)
                    nb = 0
                    for u in range(ns):
                        x = slist[u]
                        if not forced[x]:
                            sbuf[nb] = x
                            nb += 1
                    for u in range(nb):
                        sgasb[u] = gas[sbuf[u]]
                    order = np.argsort(sgasb[:nb])
                    tmp = sbuf[:nb][order]
                    sbuf[:nb] = tmp
                    for u in range(nb):
                        sgasb[u] = gas[sbuf[u]]
                    for u in range(nb - 1, -1, -1):
                        if u == nb - 1 or value[sbuf[u]] < value[sbuf[smin[u + 1]]]:
                            smin[u] = u
                        else:
                            smin[u] = smin[u + 1]
                    acc[ACC_WORK] += 4 * nb + 8
                    built = True
                if nb == 0:
                    continue
                if sgasb[nb - 1] < over:
                    continue
                lo = 0
                hi = nb - 1  # first position with gas >= over (binary search, inlined)
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if sgasb[mid] < over:
                        lo = mid + 1
                    else:
                        hi = mid
                u = lo
                i = sbuf[smin[u]]
                if searcher[i] == sj and sgas[sj] - gas[i] + gas[j] > scap[sj]:
                    continue
        else:
            i = csum[j] // c
            if i < 0 or i >= sel.shape[0] or not sel[i] or forced[i]:
                continue
            if acc[ACC_GAS] - gas[i] + gas[j] > gas_limit:
                continue
            sg = sgas[sj] + gas[j]
            if searcher[i] == sj:
                sg -= gas[i]
            if sg > scap[sj]:
                continue
        gain = value[j]
        if i >= 0:
            gain -= value[i]
        if tin[j] > it or (i >= 0 and tout[i] > it):
            if cur + gain <= best_val:
                continue
        if gain > bgain:
            bgain = gain
            bj = j
            bi = i
            ties = 1
        elif gain == bgain:
            ties += 1
            if _next_random(rng) % ties == 0:
                bj = j
                bi = i
    acc[ACC_WORK] += 2 * nl + 40  # fixed: the call itself (numba passes every state array)
    if bj < 0:
        # DROP: the least valuable removable, non-tabu item
        bi = np.int64(-1)
        bv = np.iinfo(np.int64).max
        ties = 0
        for u in range(ns):
            x = slist[u]
            if forced[x] or tout[x] > it:
                continue
            if value[x] < bv:
                bv = value[x]
                bi = x
                ties = 1
            elif value[x] == bv:
                ties += 1
                if _next_random(rng) % ties == 0:
                    bi = x
        acc[ACC_WORK] += ns
        if bi < 0:
            return False
        _remove(bi, P, St)
        tin[bi] = it + 7 + _next_random(rng) % 8
        return True
    if bi >= 0:
        _remove(bi, P, St)
    if not _fits(bj, P, St, gas_limit):
        # the O(1) classification was wrong (cannot happen within the index/degree limits):
        # undo and bar j for a while
        if bi >= 0:
            _add(bi, P, St)
        tin[bj] = it + 1000
        return True
    _add(bj, P, St)
    if bi >= 0:
        tin[bi] = it + 7 + _next_random(rng) % 8
    tout[bj] = it + 3 + _next_random(rng) % 4
    return True


@njit(cache=True)
def _search(core, P, St, gas_limit, work_limit, stall_work, target, seed, reduced, ell_err, fval,
            depth):  # fmt: skip
    """Hybrid local search from the current state; leaves the best solution found in St.

    Rounds of: first-improvement *insert* descent (compound moves: add one item, evict what it
    conflicts with and what overflows gas or its searcher's cap, refill greedily), then a *swap
    tabu search* (ADD / SWAP(1,1) / DROP, ``_tabu_move``) until ``depth`` moves bring no better
    solution of the round; a round that improved its start continues from its best, otherwise
    the search restarts from the global best (probability 3/4) and *kicks* 1-3 random core items
    in. Stops at the work cap, after ``stall_work`` work without a new best, or when the best
    reaches ``target`` (the bound: proven optimal). Returns the best value."""
    sel, cnt, owner, sgas, slist, spos, acc, csum, csq, clist, cpos, lmask = St
    n = sel.shape[0]
    gas = P[P_GAS]
    value = P[P_VALUE]
    m = core.shape[0]
    rbuf = np.zeros(n, dtype=np.int64)
    abuf = np.zeros(n, dtype=np.int64)
    ebuf = np.zeros(n, dtype=np.int64)
    sbuf = np.zeros(n, dtype=np.int64)
    sgasb = np.zeros(n, dtype=np.int64)
    smin = np.zeros(n, dtype=np.int64)
    mark = np.zeros(n, dtype=np.uint8)
    tabu = np.zeros(n, dtype=np.int64)
    tin = np.zeros(n, dtype=np.int64)
    tout = np.zeros(n, dtype=np.int64)
    minsuf = np.empty(m + 1, dtype=np.int64)
    minsuf[m] = np.iinfo(np.int64).max
    for pos in range(m - 1, -1, -1):
        minsuf[pos] = min(minsuf[pos + 1], gas[core[pos]])
    rng = np.zeros(1, dtype=np.uint64)
    rng[0] = np.uint64(seed) * np.uint64(0x2545F4914F6CDD1D) + np.uint64(1)
    best = slist[: acc[ACC_COUNT]].copy()
    best_val = acc[ACC_VALUE]
    if m == 0:
        return best_val
    last_best_work = acc[ACC_WORK]
    # not literals (compile note at the top)
    kround = np.int64(1)
    tit = np.int64(1)
    start = np.int64(0)
    while True:
        cut = float(best_val - fval) - ell_err
        _descent(kround, core, minsuf, tabu, P, St, gas_limit, work_limit, rbuf, abuf, ebuf, start,
                 reduced, cut)  # fmt: skip
        if acc[ACC_VALUE] > best_val:
            best_val = acc[ACC_VALUE]
            best = slist[: acc[ACC_COUNT]].copy()
            last_best_work = acc[ACC_WORK]
        work = acc[ACC_WORK]
        if work >= work_limit or work - last_best_work >= stall_work or best_val >= target:
            break
        # swap tabu search from this local optimum
        round_val = acc[ACC_VALUE]
        round_best = round_val
        round_list = slist[: acc[ACC_COUNT]].copy()
        acc[ACC_WORK] += 64 + acc[ACC_COUNT]
        noimp = 0
        while noimp < depth and acc[ACC_WORK] < work_limit:
            cut = float(best_val - fval) - ell_err
            if not _tabu_move(tit, P, St, gas_limit, tin, tout, rng, best_val, reduced, cut,
                              sbuf, sgasb, smin):  # fmt: skip
                break
            tit += 1
            if acc[ACC_VALUE] > round_best:
                round_best = acc[ACC_VALUE]
                round_list = slist[: acc[ACC_COUNT]].copy()
                noimp = 0
                if acc[ACC_VALUE] > best_val:
                    best_val = acc[ACC_VALUE]
                    best = round_list.copy()
                    last_best_work = acc[ACC_WORK]
                    if best_val >= target:
                        break
            else:
                noimp += 1
        work = acc[ACC_WORK]
        if work >= work_limit or work - last_best_work >= stall_work or best_val >= target:
            break
        if round_best > round_val:
            _restore(round_list, round_list.shape[0], P, St, mark)
            continue
        if acc[ACC_VALUE] < best_val and _next_random(rng) % 4 != 0:
            _restore(best, best.shape[0], P, St, mark)
        # kick: force one to three random core items in, make what they evicted tabu
        cut = float(best_val - fval) - ell_err
        kicks = 1 + _next_random(rng) % 3
        acc[ACC_WORK] += 1 + kicks
        for _ in range(kicks):
            j = np.int64(-1)
            # tournament of four by value: big bids are where compound moves pay off
            for _try in range(4):
                c = core[_next_random(rng) % m]
                if not sel[c] and tabu[c] <= kround and reduced[c] > cut:
                    if j < 0 or value[c] > value[j]:
                        j = c
            if j < 0:
                continue
            nr, na = _insert(j, kround, core, minsuf, tabu, P, St, gas_limit, rbuf, abuf, ebuf)
            tenure = 3 + _next_random(rng) % 8
            for t in range(max(nr, 0)):
                tabu[rbuf[t]] = kround + tenure
                tin[rbuf[t]] = tit + 7 + _next_random(rng) % 8
        start = _next_random(rng) % m
        kround += 1
    _restore(best, best.shape[0], P, St, mark)
    return best_val


@njit(cache=True)
def _restrict_keys(core, n, ki_ptr, ki_items):
    """key -> items CSR keeping only the items of ``core``. O(nnz)."""
    inc = np.zeros(n, dtype=np.uint8)
    for t in range(core.shape[0]):
        inc[core[t]] = 1
    n_keys = ki_ptr.shape[0] - 1
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for k in range(n_keys):
        c = 0
        for q in range(ki_ptr[k], ki_ptr[k + 1]):
            c += inc[ki_items[q]]
        ptr[k + 1] = ptr[k] + c
    out = np.empty(ptr[n_keys], dtype=ki_items.dtype)
    c = 0
    for q in range(ki_ptr[n_keys]):
        if inc[ki_items[q]]:
            out[c] = ki_items[q]
            c += 1
    return ptr, out


# --- exact enumeration for tiny instances ------------------------------------------------------


@njit(cache=True)
def _enumerate(cand_items, P, St, gas_limit, n_keys):
    """Exact optimum over subsets of cand_items (len <= EXACT_MAX_ITEMS) by Gray code, added to
    the forced items already in St. O(2^m * deg). Ties keep the first subset in Gray order."""
    gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced = P
    sgas = St[ST_SGAS].copy()
    g = St[ST_ACC][ACC_GAS]
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
        s = searcher[i]
        was_over = sgas[s] > scap[s]
        if (mask >> b) & 1:
            mask ^= 1 << b
            g -= gas[i]
            val -= value[i]
            sgas[s] -= gas[i]
            for p in range(key_ptr[i], key_ptr[i + 1]):
                k = key_idx[p]
                kc[k] -= 1
                if kc[k] >= 1:
                    viol -= 1
        else:
            mask |= 1 << b
            g += gas[i]
            val += value[i]
            sgas[s] += gas[i]
            for p in range(key_ptr[i], key_ptr[i + 1]):
                k = key_idx[p]
                if kc[k] >= 1:
                    viol += 1
                kc[k] += 1
        is_over = sgas[s] > scap[s]
        over += int(is_over) - int(was_over)
        if viol == 0 and over == 0 and g <= gas_limit and val > best_val:
            best_val = val
            best_mask = mask
    for b in range(m):
        if (best_mask >> b) & 1:
            _add(cand_items[b], P, St)
    St[ST_ACC][ACC_WORK] += 1 << m
    return best_val


# --- the whole solve -------------------------------------------------------------------------


@njit(cache=True)
def _solve(gas, value, positive, forced, banned, searcher, key_ptr, key_idx, ki_ptr, ki_items,
           gas_limit, searcher_cap, n_searchers, work_limit, seed, init, use_bound, exact_max,
           stall_work, core_max, dual_passes, dual_stale_rel, tabu_depth,
           gap_tolerance):  # fmt: skip
    """Full solve on arrays. Returns (selected mask, scaled value, L, L error, n candidates,
    work used, greedy value). ``init`` (item indices, may be empty) is a warm start; ``banned``
    items are treated as absent. Complexity: see ``pack``."""
    n = gas.shape[0]
    n_keys = ki_ptr.shape[0] - 1
    cand, scap, fgas = prepare_candidates(gas, positive, forced, banned, searcher, key_ptr, key_idx,
                                ki_ptr, ki_items, gas_limit, searcher_cap, n_searchers)  # fmt: skip
    P = (gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced)
    St = _new_state(n, n_keys, n_searchers, np.zeros(n, dtype=np.uint8))
    acc = St[ST_ACC]
    for i in range(n):
        if forced[i] and not banned[i]:
            _add(i, P, St)
    m = 0
    for i in range(n):
        m += cand[i]
    cand_items = np.empty(m, dtype=np.int64)
    c = 0
    for i in range(n):
        if cand[i]:
            cand_items[c] = i
            c += 1
    ell = np.inf
    err = 0.0
    bell = np.inf  # the reported bound (descent, or tighter after subgradient steps)
    berr = 0.0
    fval = acc[ACC_VALUE]
    if m <= exact_max:
        best = _enumerate(cand_items, P, St, gas_limit, n_keys)
        return (St[ST_SEL], acc[ACC_VALUE], float(best), 0.0, m, acc[ACC_WORK], best, cand_items,
                np.zeros(n), float(best), 0.0)
    # greedy start 1: value per gas (after the warm start, if any)
    eff = efficiency_order(cand_items, value, gas)
    for t in range(init.shape[0]):
        if cand[init[t]] and _fits(init[t], P, St, gas_limit):
            _add(init[t], P, St)
    _greedy_fill(eff, P, St, gas_limit)
    greedy_val = acc[ACC_VALUE]
    first_greedy = acc[ACC_VALUE]
    start_list = St[ST_SLIST][: acc[ACC_COUNT]].copy()
    reduced = np.full(n, np.inf, dtype=np.float64)
    core = eff
    if use_bound:
        gas_rem = gas_limit - fgas
        cap_rem = np.empty(n_searchers, dtype=np.int64)
        sforced = np.zeros(n_searchers, dtype=np.int64)
        for i in range(n):
            if forced[i] and not banned[i]:
                sforced[searcher[i]] += gas[i]
        scand = np.zeros(n_searchers, dtype=np.int64)
        s_count = np.zeros(n_searchers + 1, dtype=np.int64)
        for t in range(m):
            i = cand_items[t]
            scand[searcher[i]] += gas[i]
            s_count[searcher[i] + 1] += 1
        cap_binding = np.zeros(n_searchers, dtype=np.uint8)
        for s in range(n_searchers):
            cap_rem[s] = scap[s] - sforced[s]
            if searcher_cap >= 0 and scand[s] > cap_rem[s] and cap_rem[s] < gas_rem:
                cap_binding[s] = 1
        s_ptr = np.cumsum(s_count)
        s_items = np.empty(m, dtype=np.int64)
        fill = s_ptr[:-1].copy()
        for t in range(m):
            i = cand_items[t]
            s_items[fill[searcher[i]]] = i
            fill[searcher[i]] += 1
        ell, err, mu, lam, nu, bell, berr = _dual_bound(cand_items, value, gas, searcher,
                                                        key_ptr, key_idx,
                                            ki_ptr, ki_items, cand, gas_rem, cap_rem,
                                            cap_binding, s_ptr, s_items, dual_passes,
                                            dual_stale_rel, acc,
                                            max(1, int(DUAL_SHARE * work_limit)),
                                            float(greedy_val - fval),
                                            int(SUBGRADIENT_SHARE * work_limit),
                                            gap_tolerance)  # fmt: skip
        # greedy start 2: Lagrangian-reduced value per gas (mu only: the conflict prices)
        lscore = np.zeros(n, dtype=np.float64)
        for t in range(m):
            i = cand_items[t]
            ms = 0.0
            for p in range(key_ptr[i], key_ptr[i + 1]):
                ms += mu[key_idx[p]]
            lscore[i] = (value[i] - ms) / max(gas[i], 1)
            reduced[i] = value[i] - ms - (lam + nu[searcher[i]]) * gas[i]
        lorder = _score_order(cand_items, lscore)
        mark = np.zeros(n, dtype=np.uint8)
        _restore(np.empty(0, dtype=np.int64), np.int64(0), P, St, mark)
        _greedy_fill(lorder, P, St, gas_limit)
        if acc[ACC_VALUE] > greedy_val:
            greedy_val = acc[ACC_VALUE]
            start_list = St[ST_SLIST][: acc[ACC_COUNT]].copy()
        # greedy start 3: biggest bids first (heavy tails: one bundle can be worth a dozen)
        _restore(np.empty(0, dtype=np.int64), np.int64(0), P, St, mark)
        _greedy_fill(_score_order(cand_items, value.astype(np.float64)), P, St, gas_limit)
        if acc[ACC_VALUE] < greedy_val:
            _restore(start_list, start_list.shape[0], P, St, mark)
        # the sorts, the greedy passes and the core's key restriction are work too (fixed cost)
        acc[ACC_WORK] += 4 * m * (1 + int(math.log2(m + 1))) + ki_ptr[n_keys] // 2 + n // 2
        # core: items not excluded by reduced-cost fixing (L + d_i <= incumbent => x_i = 0 in any
        # better solution), best reduced cost first, capped at core_max, always with the selection
        inc = float(acc[ACC_VALUE] - fval)
        keep = np.zeros(m, dtype=np.int64)
        nk = 0
        for t in range(m):
            i = cand_items[t]
            if St[ST_SEL][i] or ell + min(reduced[i], 0.0) + err >= inc:
                keep[nk] = i
                nk += 1
        kept = _score_order(keep[:nk], reduced)
        if nk > core_max:
            extra = 0
            for t in range(core_max, nk):
                if St[ST_SEL][kept[t]]:
                    extra += 1
            chosen = np.empty(core_max + extra, dtype=np.int64)
            for t in range(core_max):
                chosen[t] = kept[t]
            c = core_max
            for t in range(core_max, nk):
                if St[ST_SEL][kept[t]]:
                    chosen[c] = kept[t]
                    c += 1
            kept = chosen
        core = efficiency_order(kept, value, gas)
    # The local search only ever adds core items, so conflict counts are kept for core items only:
    # a hot key shared by thousands of bundles costs the search only its few core members.
    ki_ptr_c, ki_items_c = _restrict_keys(core, n, ki_ptr, ki_items)
    Pc = (gas, value, searcher, key_ptr, key_idx, ki_ptr_c, ki_items_c, scap, forced)
    lmask = np.zeros(n, dtype=np.uint8)
    for t in range(core.shape[0]):
        lmask[core[t]] = 1
    Sc = _new_state(n, n_keys, n_searchers, lmask)
    Sc[6][2] = acc[ACC_WORK]
    for i in range(n):
        if forced[i] and not banned[i]:
            _add(i, Pc, Sc)
    for t in range(acc[ACC_COUNT]):
        if not forced[St[ST_SLIST][t]]:
            _add(St[ST_SLIST][t], Pc, Sc)
    St = Sc
    acc = St[ST_ACC]
    target = np.iinfo(np.int64).max
    if bell < np.inf:
        target = fval + np.int64(math.floor((bell + berr) * (1.0 + 4.0 * _U53)))
        # proven within the gap tolerance: best >= (1 - tol) * bound >= (1 - tol) * optimum
        target -= np.int64(math.floor(gap_tolerance * float(target)))
    _search(core, Pc, St, gas_limit, work_limit, stall_work, target, seed, reduced, ell + err, fval,
            tabu_depth)  # fmt: skip
    return (St[ST_SEL], acc[ACC_VALUE], ell, err, m, acc[ACC_WORK], first_greedy, core, reduced,
            bell, berr)


@njit(cache=True)
def resolve_without(gas, value, forced, banned, searcher, key_ptr, key_idx, ki_ptr, ki_items,
                    gas_limit, scap, n_searchers, core, init, reduced, ell_err, work_limit,
                    stall_work, seed, target):  # fmt: skip
    """Warm-started solve on a given core (VCG re-solves): ``init`` plus a greedy refill, then
    iterated local search, stopping early once the value (forced items included) reaches
    ``target`` (a bound: proven optimal). ``banned`` items must not be in ``core`` or ``init``.
    Returns the selection mask and its scaled value. O(nnz_core + work_limit)."""
    n = gas.shape[0]
    n_keys = ki_ptr.shape[0] - 1
    ki_ptr_c, ki_items_c = _restrict_keys(core, n, ki_ptr, ki_items)
    P = (gas, value, searcher, key_ptr, key_idx, ki_ptr_c, ki_items_c, scap, forced)
    lmask = np.zeros(n, dtype=np.uint8)
    for t in range(core.shape[0]):
        lmask[core[t]] = 1
    St = _new_state(n, n_keys, n_searchers, lmask)
    fval = 0
    for i in range(n):
        if forced[i] and not banned[i]:
            _add(i, P, St)
    fval = St[ST_ACC][ACC_VALUE]
    for t in range(init.shape[0]):
        if _fits(init[t], P, St, gas_limit):
            _add(init[t], P, St)
    _greedy_fill(core, P, St, gas_limit)
    _search(core, P, St, gas_limit, work_limit, stall_work, target, seed, reduced, ell_err, fval,
            np.int64(TABU_DEPTH))  # fmt: skip
    return St[ST_SEL], St[ST_ACC][ACC_VALUE]


# --- Python entry points -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SolveStats:
    """What a solve did (for benchmarks and logs)."""

    candidates: int
    core: int  # items the local search moved around in
    work_units: int
    greedy_value: int  # scaled
    core_items: I64  # the core (item indices), for warm-started re-solves
    reduced: npt.NDArray[np.float64]  # Lagrangian reduced costs (+inf: no bound computed)
    dual_bound: float  # L + its rounding error, scaled candidate values (inf: none)


def compute_work_limit(time_budget_ms: int) -> int:
    """Deterministic work cap for a time budget: the only way the budget reaches the search."""
    return max(1, int(time_budget_ms)) * WORK_UNITS_PER_MS


def compute_bound_wei(arrays: PackingArrays, forced_wei: int, ell: float, err: float,
                      n_cand: int, cand_value_sum: int) -> int:  # fmt: skip
    """Turn the kernel's float bound on scaled candidate values into a valid bound in wei.

    The optimum of the scaled problem is an integer <= L + err, so it is <= floor((L + err)(1+4u)).
    A scaled value under-counts each bid by less than 2**shift, hence the ``n_cand`` term.
    """
    scaled = cand_value_sum
    if math.isfinite(ell):
        scaled = min(scaled, math.floor((ell + err) * (1.0 + 4.0 * _U53)))
    scaled = max(scaled, 0)
    slack = n_cand if arrays.value_shift > 0 else 0
    return forced_wei + ((scaled + slack) << arrays.value_shift)


def solve_arrays(
    arrays: PackingArrays,
    work_limit: int,
    seed: int = 0,
    banned: U8 | None = None,
    init: I64 | None = None,
    use_bound: bool = True,
    exact_max: int = EXACT_MAX_ITEMS,
    stall_work: int | None = None,
    gap_tolerance: float = GAP_TOLERANCE,
) -> tuple[U8, int, SolveStats]:
    """Run the kernel; returns (selected mask, upper bound in wei, stats). O(see ``pack``)."""
    n = arrays.n
    if banned is None:
        banned = np.zeros(n, dtype=np.uint8)
    if init is None:
        init = np.zeros(0, dtype=np.int64)
    sel, _val, ell, err, n_cand, work, greedy_val, core, reduced, bell, berr = _solve(
        arrays.gas, arrays.value, arrays.positive, arrays.forced, banned, arrays.searcher,
        arrays.key_ptr, arrays.key_idx, arrays.key_item_ptr, arrays.key_items,
        np.int64(arrays.gas_limit), np.int64(arrays.searcher_cap), arrays.n_searchers,
        np.int64(work_limit), np.uint64(seed & 0xFFFFFFFFFFFFFFFF), init, use_bound,
        exact_max, np.int64(stall_work if stall_work is not None else work_limit), CORE_MAX,
        DUAL_PASSES, DUAL_STALE_REL, TABU_DEPTH, gap_tolerance,
    )  # fmt: skip
    sel = sel.copy()
    forced_wei = sum(
        arrays.bids_wei[i] for i in np.flatnonzero(arrays.forced & (banned == 0)).tolist()
    )
    # Trivial cap on the candidates' bound: all positive, non-forced, non-banned values.
    free = (arrays.positive == 1) & (arrays.forced == 0) & (banned == 0)
    cand_value_sum = int(arrays.value[free].sum())
    bound = compute_bound_wei(arrays, forced_wei, bell, berr, n_cand, cand_value_sum)
    stats = SolveStats(
        candidates=int(n_cand),
        core=int(core.shape[0]),
        work_units=int(work),
        greedy_value=int(greedy_val),
        core_items=core,
        reduced=reduced,
        dual_bound=float(ell + err),
    )
    return sel, bound, stats


def pack(inp: PackingInput, time_budget_ms: int = 50, seed: int = 0) -> Packing:
    """Maximum-revenue block for ``inp``, anytime and deterministic.

    The result depends only on (inp as a set of items, time_budget_ms, seed): the budget becomes
    a work cap (``compute_work_limit``), never a clock. Raises InfeasibleInstance when the forced
    items cannot all be included.

    Complexity: O(nnz + n log n) to encode and start, O(DUAL_PASSES * (nnz_c + n log n)) for the
    bound (nnz_c: key incidences summed over key sizes), then at most the work cap for the local
    search. Instances with <= EXACT_MAX_ITEMS candidates are solved exactly in O(2^m * deg).
    """
    if inp.forced:
        check_forced_feasible(inp)
    return pack_arrays(compute_packing_arrays(inp), time_budget_ms, seed)


def pack_arrays(arrays: PackingArrays, time_budget_ms: int = 50, seed: int = 0) -> Packing:
    """``pack`` on an instance already encoded (``compute_packing_arrays``, or
    ``ordering.arrays.compute_single_arrays``) whose forced items are known to fit."""
    sel, bound, _stats = solve_arrays(arrays, compute_work_limit(time_budget_ms), seed)
    return compute_packing(arrays, sel, bound, solver="numba")


def compute_packing(arrays: PackingArrays, sel: U8, bound_wei: int, solver: str) -> Packing:
    """Packing from a selection mask: exact revenue and gas, block order, bound (-1: exact).
    (A joint item's gas is its legs' total: its one leg's here, the same as the item's.)"""
    chosen: list[Item | JointItem] = [arrays.items[i] for i in np.flatnonzero(sel).tolist()]
    ordered = compute_ratio_order(chosen)
    revenue = sum(it.bid_wei for it in ordered)
    gas_used = sum(it.gas for it in ordered)
    upper = revenue if bound_wei < 0 else max(bound_wei, revenue)
    return Packing(
        included=tuple(it.id for it in ordered),
        revenue_wei=revenue,
        gas_used=gas_used,
        upper_bound_wei=upper,
        solver=solver,
        proven_optimal=upper == revenue,
    )


def compute_greedy_selection(arrays: PackingArrays) -> U8:
    """The kernel's first greedy start alone (forced items, then bid per gas): the deterministic
    step that ``ordering.greedy.pack_greedy`` implements in pure Python. O(nnz + n log n)."""
    n = arrays.n
    banned = np.zeros(n, dtype=np.uint8)
    return _greedy_only(
        arrays.gas, arrays.value, arrays.positive, arrays.forced, banned, arrays.searcher,
        arrays.key_ptr, arrays.key_idx, arrays.key_item_ptr, arrays.key_items,
        np.int64(arrays.gas_limit), np.int64(arrays.searcher_cap), arrays.n_searchers,
    ).copy()  # fmt: skip


@njit(cache=True)
def _greedy_only(gas, value, positive, forced, banned, searcher, key_ptr, key_idx, ki_ptr,
                 ki_items, gas_limit, searcher_cap, n_searchers):  # fmt: skip
    n = gas.shape[0]
    cand, scap, _fgas = prepare_candidates(gas, positive, forced, banned, searcher, key_ptr,
                                           key_idx, ki_ptr, ki_items, gas_limit, searcher_cap,
                                           n_searchers)  # fmt: skip
    P = (gas, value, searcher, key_ptr, key_idx, ki_ptr, ki_items, scap, forced)
    St = _new_state(n, ki_ptr.shape[0] - 1, n_searchers, np.zeros(n, dtype=np.uint8))
    for i in range(n):
        if forced[i] and not banned[i]:
            _add(i, P, St)
    cand_items = np.flatnonzero(cand).astype(np.int64)
    _greedy_fill(efficiency_order(cand_items, value, gas), P, St, gas_limit)
    return St[ST_SEL]


# The kernels a slot's packing compiles (first), and what VCG payments add; each compiles once
# (compile note at the top). warm_up reports progress against these counts.
PACK_KERNELS: tuple[str, ...] = (
    "_build_csr", "prepare_candidates", "_touch", "_new_state", "_add", "_enumerate",
    "efficiency_order", "_fits", "_greedy_fill", "_critical_ratio", "_evaluate_dual",
    "_subgradient", "_dual_bound", "_score_order", "_remove", "_restore", "_restrict_keys",
    "_evict_set", "_insert", "_undo_insert", "_descent", "_tabu_move", "_search", "_solve",
)  # fmt: skip
VCG_KERNELS: tuple[str, ...] = ("resolve_without",)

WarmUpProgress = Callable[[int, int], None]


class CompileProgress(event.Listener):
    """Counts this package's kernels as numba finishes compiling them (a kernel loaded from the
    cache is not compiled, so a warm start reports nothing)."""

    def __init__(self, progress: WarmUpProgress, total: int) -> None:
        self.progress = progress
        self.total = total
        self.started = False
        self.done: set[str] = set()

    @staticmethod
    def _ours(ev: event.Event) -> str | None:
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if func is None or not func.__module__.startswith("ordering."):
            return None
        return str(func.__name__)

    def on_start(self, ev: event.Event) -> None:
        if not self.started and self._ours(ev) is not None:
            self.started = True
            self.progress(0, self.total)

    def on_end(self, ev: event.Event) -> None:
        name = self._ours(ev)
        if name is not None and name not in self.done:
            self.done.add(name)
            self.progress(min(len(self.done), self.total), self.total)
