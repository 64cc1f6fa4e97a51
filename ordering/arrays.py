"""Array encoding of a packing instance: what the numba kernels read.

Pure conversion, no policy: a ``PackingInput`` becomes flat numpy arrays in a canonical order
(items sorted by id), so the same instance given in any item order yields identical arrays and
therefore, downstream, the identical block.

Bids are Python ints in wei and may exceed int64 (about 9.2 ETH), so the kernels see a *scaled*
value ``value = max(bid, 0) >> value_shift``, with the smallest shift that keeps the sum of all
values below 2**53. Every partial sum of values is then an exact int64 and an exact float64, and
the resolution lost is at most 2**-53 of the slot's total bids. Revenue is always recomputed
exactly from the chosen ids; only the search objective and the bound use the scaled values.

Cost: the only per-object Python work is reading the items' fields and one dict lookup per key
occurrence (interning); both CSR forms are built by a compiled counting pass (``_build_csr``).
At 5,000 bundles that is about 5 ms on the reference machine, at 20,000 about 35 ms: reading
~100k Python strings is memory-latency bound there, and is the same cost any solver (HiGHS too)
pays to see the instance.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from itertools import chain, count, islice
from operator import attrgetter

import numpy as np
import numpy.typing as npt
from numba import njit

from ordering.problem import Item, JointInput, JointItem, PackingInput

# Sum of scaled values stays below this, so float64 and int64 hold every partial sum exactly.
VALUE_SUM_BITS = 53

_get_id = attrgetter("id")
_get_bid = attrgetter("bid_wei")
_get_gas = attrgetter("gas")
_get_searcher = attrgetter("searcher")
_get_keys = attrgetter("keys")

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class PackingArrays:
    """One instance in canonical array form (item index = rank of the id in ascending order)."""

    items: tuple[Item, ...]  # canonical order: ascending id
    ids: tuple[str, ...]  # ascending
    bids_wei: tuple[int, ...]  # exact bids, same order as ids
    gas: I64  # [n]
    value: I64  # [n] max(bid, 0) >> value_shift
    value_shift: int
    positive: U8  # [n] 1 when bid_wei > 0 (only those are worth including unless forced)
    forced: U8  # [n]
    searcher: I32  # [n] index into searchers
    searchers: tuple[str, ...]  # first appearance in canonical item order
    key_ptr: I64  # [n + 1] CSR item -> keys
    key_idx: I32  # [nnz] key ids, each item's keys distinct and ascending
    keys: tuple[str, ...]  # first appearance in canonical item order
    key_item_ptr: I64  # [n_keys + 1] CSR key -> items
    key_items: I32  # [nnz] item indices, ascending within a key
    gas_limit: int
    searcher_cap: int  # -1: no per-searcher cap

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def n_keys(self) -> int:
        return len(self.keys)

    @property
    def n_searchers(self) -> int:
        return len(self.searchers)


def compute_value_shift(bids_wei: list[int] | tuple[int, ...]) -> int:
    """Smallest right shift that keeps the sum of positive bids below 2**VALUE_SUM_BITS."""
    total = sum(bids_wei) if min(bids_wei, default=0) >= 0 else sum(b for b in bids_wei if b > 0)
    return max(0, total.bit_length() - VALUE_SUM_BITS)


def _scaled_values(bids: tuple[int, ...], shift: int) -> tuple[I64, U8]:
    """(max(bid, 0) >> shift, bid > 0) as arrays; numpy does it when every bid fits in int64."""
    try:
        exact = np.array(bids, dtype=np.int64)
    except OverflowError:
        value = np.array([(b >> shift) if b > 0 else 0 for b in bids], dtype=np.int64)
        return value, np.array([b > 0 for b in bids], dtype=np.uint8)
    positive = (exact > 0).astype(np.uint8)
    return np.maximum(exact, 0) >> shift, positive


# Items with more keys than this get their keys sorted by np.sort instead of insertion.
_SMALL_ITEM_KEYS = 16


@njit(cache=True)
def _build_csr(first, lens):  # pragma: no cover - compiled
    """Conflict incidence in CSR both ways, from each key occurrence's first position.

    ``first[p]`` is the position in the flat key list where the key of position p first appears
    (items in canonical order, each item's keys contiguous, ``lens[i]`` of them). Keys are
    numbered by first appearance; each item's keys come out distinct and ascending (insertion
    sort for the usual handful, a real sort above ``_SMALL_ITEM_KEYS``: a bundle's access list is
    the sender's to order, so no item may cost quadratic time); key -> items by a counting sort,
    so items ascend within a key. O(nnz log L_max), no comparison sort over all incidences."""
    nnz = first.shape[0]
    n = lens.shape[0]
    dense = np.empty(nnz, dtype=np.int64)
    n_keys = 0
    for p in range(nnz):
        if first[p] == p:
            dense[p] = n_keys
            n_keys += 1
        else:
            dense[p] = dense[first[p]]
    key_ptr = np.zeros(n + 1, dtype=np.int64)
    key_idx = np.empty(nnz, dtype=np.int32)
    w = 0
    p = 0
    for i in range(n):
        start = w
        if lens[i] > _SMALL_ITEM_KEYS:
            seg = np.sort(dense[p : p + lens[i]])
            p += lens[i]
            for t in range(seg.shape[0]):
                if t == 0 or seg[t] != seg[t - 1]:
                    key_idx[w] = seg[t]
                    w += 1
            key_ptr[i + 1] = w
            continue
        for _ in range(lens[i]):
            k = dense[p]
            p += 1
            # insert k into key_idx[start:w] (ascending), skipping a repeat
            q = w
            while q > start and key_idx[q - 1] > k:
                q -= 1
            if q > start and key_idx[q - 1] == k:
                continue
            for r in range(w, q, -1):
                key_idx[r] = key_idx[r - 1]
            key_idx[q] = k
            w += 1
        key_ptr[i + 1] = w
    key_idx = key_idx[:w].copy()
    key_item_ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for q in range(w):
        key_item_ptr[key_idx[q] + 1] += 1
    for k in range(n_keys):
        key_item_ptr[k + 1] += key_item_ptr[k]
    fill = key_item_ptr[:-1].copy()
    key_items = np.empty(w, dtype=np.int32)
    for i in range(n):
        for q in range(key_ptr[i], key_ptr[i + 1]):
            k = key_idx[q]
            key_items[fill[k]] = i
            fill[k] += 1
    return key_ptr, key_idx, key_item_ptr, key_items


def compute_packing_arrays(inp: PackingInput) -> PackingArrays:
    """Encode ``inp`` canonically. O(n log n + total keys); raises ValueError on duplicate ids."""
    # map() with C-level getters: at 20,000 items x 5 keys, per-element Python bytecode would cost
    # tens of milliseconds, which the slot pays before the solver starts.
    raw_ids = list(map(_get_id, inp.items))
    n = len(raw_ids)
    rank_order = sorted(range(n), key=raw_ids.__getitem__)
    items = list(map(inp.items.__getitem__, rank_order))
    ids = tuple(map(raw_ids.__getitem__, rank_order))
    # Verify that ids are unique (the canonical order and the block order rely on it): sorted,
    # so a repeat sits next to itself
    if any(map(operator.eq, ids, islice(ids, 1, None))):
        raise ValueError("duplicate item ids")
    bids = tuple(map(_get_bid, items))
    shift = compute_value_shift(bids)
    value, positive = _scaled_values(bids, shift)
    gas = np.fromiter(map(_get_gas, items), dtype=np.int64, count=n)
    if n and int(gas.min()) < 0:
        raise ValueError("negative gas")
    forced = np.zeros(n, dtype=np.uint8)
    if inp.forced:
        rank = {i: r for r, i in enumerate(ids)}
        for f in inp.forced:
            if f in rank:
                forced[rank[f]] = 1

    # Ids for searchers and keys: first appearance in canonical item order.
    searcher_names = list(map(_get_searcher, items))
    searcher_id = {name: j for j, name in enumerate(dict.fromkeys(searcher_names))}
    searcher = np.fromiter(map(searcher_id.__getitem__, searcher_names), dtype=np.int32, count=n)
    key_lists = list(map(_get_keys, items))
    lens = np.fromiter(map(len, key_lists), dtype=np.int64, count=n)
    nnz = int(lens.sum())
    # One dict pass interns the keys: each maps to the flat position of its first appearance
    # (the only per-key Python work); the kernel renumbers densely and builds both CSR forms.
    key_first: dict[str, int] = {}
    first = np.fromiter(
        map(key_first.setdefault, chain.from_iterable(key_lists), count()),
        dtype=np.int64,
        count=nnz,
    )
    key_ptr, key_idx, key_item_ptr, key_items = _build_csr(first, lens)

    cap = -1 if inp.max_gas_per_searcher is None else int(inp.max_gas_per_searcher)
    return PackingArrays(
        items=tuple(items),
        ids=ids,
        bids_wei=bids,
        gas=gas,
        value=value,
        value_shift=shift,
        positive=positive,
        forced=forced,
        searcher=searcher,
        searchers=tuple(searcher_id),
        key_ptr=key_ptr,
        key_idx=key_idx,
        keys=tuple(key_first),
        key_item_ptr=key_item_ptr,
        key_items=key_items,
        gas_limit=int(inp.gas_limit),
        searcher_cap=cap,
    )


# --- the joint (multi-rollup) problem -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JointArrays:
    """A joint instance in canonical array form (item index = rank of the id).

    Capacities are *rows*: row r < n_rollups is rollup r's gas for bundles (rollups in the input's
    order), then one row per (rollup with a cap, searcher with a leg there), in first appearance.
    Each item has one entry per leg in its rollup's gas row and, where that rollup caps searchers,
    one in its (rollup, searcher) row, with the leg's gas. Conflict keys are (rollup, key) pairs,
    so the same key string on two rollups is two keys."""

    items: tuple[JointItem, ...]  # canonical order: ascending id
    ids: tuple[str, ...]
    bids_wei: tuple[int, ...]
    value: I64  # [n] max(bid, 0) >> value_shift
    value_shift: int
    positive: U8  # [n]
    forced: U8  # [n]
    rollups: tuple[int, ...]  # rollup ids, input order (row r < n_rollups is rollups[r])
    row_ptr: I64  # [n + 1] CSR item -> capacity rows
    row_idx: I64  # [nnz_rows] rows: per leg its rollup's row, then its (rollup, searcher) row
    row_gas: I64  # [nnz_rows] the leg's gas in that row
    row_cap: I64  # [n_rows] capacity of each row
    row_rollup: I64  # [n_rows] rollup index of each row
    total_gas: I64  # [n] gas over all legs
    key_ptr: I64  # [n + 1] CSR item -> keys
    key_idx: I32
    n_keys: int  # distinct (rollup, key) pairs
    key_item_ptr: I64
    key_items: I32

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def n_rollups(self) -> int:
        return len(self.rollups)

    @property
    def n_rows(self) -> int:
        return int(self.row_cap.shape[0])


_get_legs = attrgetter("legs")
_get_rollup = attrgetter("rollup")


def compute_joint_arrays(inp: JointInput) -> JointArrays:
    """Encode a (validated: ``check_joint_input``) joint instance canonically.

    Columnar: the only per-object Python work is reading each item's and each leg's fields and
    one dict lookup per key occurrence (interned per rollup, so keys are (rollup, key) pairs
    without building a pair object); everything else is numpy or ``_build_csr``.
    O(n log n + total legs + total keys)."""
    raw_ids = list(map(_get_id, inp.items))
    rank_order = sorted(range(len(raw_ids)), key=raw_ids.__getitem__)
    items = list(map(inp.items.__getitem__, rank_order))
    n = len(items)
    ids = tuple(map(raw_ids.__getitem__, rank_order))
    bids = tuple(map(_get_bid, items))
    shift = compute_value_shift(bids)
    value, positive = _scaled_values(bids, shift)
    forced = np.zeros(n, dtype=np.uint8)
    if inp.forced:
        rank = {i: r for r, i in enumerate(ids)}
        for f in inp.forced:
            if f in rank:
                forced[rank[f]] = 1
    n_rollups = len(inp.rollups)
    rindex = {r.rollup: j for j, r in enumerate(inp.rollups)}
    leg_lists = list(map(_get_legs, items))
    legs = list(chain.from_iterable(leg_lists))
    n_legs = len(legs)
    leg_count = np.fromiter(map(len, leg_lists), dtype=np.int64, count=n)
    leg_item = np.repeat(np.arange(n, dtype=np.int64), leg_count)
    leg_r = np.fromiter(map(rindex.__getitem__, map(_get_rollup, legs)), np.int64, n_legs)
    leg_gas = np.fromiter(map(_get_gas, legs), dtype=np.int64, count=n_legs)
    # Capacity rows: one per rollup, then one per (capped rollup, searcher) that occurs
    names = list(map(_get_searcher, items))
    searcher_id = {name: j for j, name in enumerate(dict.fromkeys(names))}
    searcher = np.fromiter(map(searcher_id.__getitem__, names), dtype=np.int64, count=n)
    cap_of = [r.max_gas_per_searcher for r in inp.rollups]
    capped = np.array([c is not None for c in cap_of], dtype=bool)
    leg_capped = capped[leg_r] if n_legs else np.zeros(0, dtype=bool)
    pair = leg_r[leg_capped] * max(len(searcher_id), 1) + searcher[leg_item[leg_capped]]
    pairs, pair_row = np.unique(pair, return_inverse=True)
    pair_rollup = pairs // max(len(searcher_id), 1)
    caps = [int(r.gas_limit) for r in inp.rollups] + [int(cap_of[r] or 0) for r in pair_rollup]
    row_cap = np.array(caps, dtype=np.int64)
    row_rollup = np.concatenate([np.arange(n_rollups, dtype=np.int64), pair_rollup])
    entries = 1 + leg_capped.astype(np.int64)
    leg_at = np.zeros(n_legs + 1, dtype=np.int64)
    np.cumsum(entries, out=leg_at[1:])
    row_idx = np.empty(int(leg_at[-1]), dtype=np.int64)
    row_idx[leg_at[:-1]] = leg_r
    row_idx[leg_at[:-1][leg_capped] + 1] = n_rollups + pair_row
    row_gas = np.repeat(leg_gas, entries)
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(leg_item, weights=entries, minlength=n).astype(np.int64),
              out=row_ptr[1:])  # fmt: skip
    total_gas = np.bincount(leg_item, weights=leg_gas, minlength=n).astype(np.int64)
    # Keys, interned per rollup: each maps to the flat position of its first appearance
    key_lists = list(map(_get_keys, legs))
    leg_keys = np.fromiter(map(len, key_lists), dtype=np.int64, count=n_legs)
    key_at = np.zeros(n_legs + 1, dtype=np.int64)
    np.cumsum(leg_keys, out=key_at[1:])
    first = np.empty(int(key_at[-1]), dtype=np.int64)
    n_keys_total = 0
    for r in range(n_rollups):
        on_r = np.flatnonzero(leg_r == r)
        if not on_r.shape[0]:
            continue
        lens_r = leg_keys[on_r]
        # flat positions of the keys of rollup r's legs, in canonical order
        pos = np.repeat(key_at[on_r] - np.cumsum(lens_r) + lens_r, lens_r)
        pos += np.arange(pos.shape[0], dtype=np.int64)
        seen: dict[str, int] = {}
        chained = chain.from_iterable(map(key_lists.__getitem__, on_r.tolist()))
        first[pos] = np.fromiter(map(seen.setdefault, chained, pos.tolist()), np.int64,
                                 pos.shape[0])  # fmt: skip
        n_keys_total += len(seen)
    item_keys = np.bincount(leg_item, weights=leg_keys, minlength=n).astype(np.int64)
    key_ptr, key_idx, key_item_ptr, key_items = _build_csr(first, item_keys)
    return JointArrays(
        items=tuple(items), ids=ids, bids_wei=bids, value=value, value_shift=shift,
        positive=positive, forced=forced, rollups=tuple(r.rollup for r in inp.rollups),
        row_ptr=row_ptr, row_idx=row_idx, row_gas=row_gas, row_cap=row_cap,
        row_rollup=row_rollup, total_gas=total_gas, key_ptr=key_ptr, key_idx=key_idx,
        n_keys=n_keys_total, key_item_ptr=key_item_ptr, key_items=key_items,
    )  # fmt: skip
