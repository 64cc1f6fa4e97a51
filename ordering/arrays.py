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
    row_idx: I64  # [nnz_rows] rows, ascending within an item
    row_gas: I64  # [nnz_rows] the leg's gas in that row
    row_cap: I64  # [n_rows] capacity of each row
    row_rollup: I64  # [n_rows] rollup index of each row
    total_gas: I64  # [n] gas over all legs
    key_ptr: I64  # [n + 1] CSR item -> keys
    key_idx: I32
    keys: tuple[tuple[int, str], ...]  # (rollup index, key), first appearance
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


def compute_joint_arrays(inp: JointInput) -> JointArrays:
    """Encode a (validated: ``check_joint_input``) joint instance canonically.

    O(n log n + total legs + total keys)."""
    items = sorted(inp.items, key=_get_id)
    n = len(items)
    ids = tuple(map(_get_id, items))
    bids = tuple(map(_get_bid, items))
    shift = compute_value_shift(bids)
    value, positive = _scaled_values(bids, shift)
    forced = np.zeros(n, dtype=np.uint8)
    if inp.forced:
        rank = {i: r for r, i in enumerate(ids)}
        for f in inp.forced:
            if f in rank:
                forced[rank[f]] = 1
    rindex = {r.rollup: j for j, r in enumerate(inp.rollups)}
    capped = [r.max_gas_per_searcher is not None for r in inp.rollups]
    row_of: dict[tuple[int, str], int] = {}
    caps = [int(r.gas_limit) for r in inp.rollups]
    row_rollup = list(range(len(caps)))
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    rows: list[int] = []
    rgas: list[int] = []
    lens = np.zeros(n, dtype=np.int64)
    key_first: dict[tuple[int, str], int] = {}
    first: list[int] = []
    for i, it in enumerate(items):
        entries: list[tuple[int, int]] = []
        for leg in it.legs:
            r = rindex[leg.rollup]
            entries.append((r, leg.gas))
            if capped[r]:
                row = row_of.get((r, it.searcher))
                if row is None:
                    row = row_of[(r, it.searcher)] = len(caps)
                    cap = inp.rollups[r].max_gas_per_searcher
                    caps.append(int(cap if cap is not None else 0))
                    row_rollup.append(r)
                entries.append((row, leg.gas))
            first.extend(map(key_first.setdefault, [(r, k) for k in leg.keys],
                             count(len(first))))  # fmt: skip
            lens[i] += len(leg.keys)
        entries.sort()
        rows.extend(e[0] for e in entries)
        rgas.extend(e[1] for e in entries)
        row_ptr[i + 1] = len(rows)
    row_gas = np.array(rgas, dtype=np.int64)
    total_gas = np.zeros(n, dtype=np.int64)
    for i, it in enumerate(items):
        total_gas[i] = it.gas
    key_ptr, key_idx, key_item_ptr, key_items = _build_csr(np.array(first, dtype=np.int64), lens)
    return JointArrays(
        items=tuple(items), ids=ids, bids_wei=bids, value=value, value_shift=shift,
        positive=positive, forced=forced, rollups=tuple(r.rollup for r in inp.rollups),
        row_ptr=row_ptr, row_idx=np.array(rows, dtype=np.int64), row_gas=row_gas,
        row_cap=np.array(caps, dtype=np.int64), row_rollup=np.array(row_rollup, dtype=np.int64),
        total_gas=total_gas, key_ptr=key_ptr, key_idx=key_idx, keys=tuple(key_first),
        key_item_ptr=key_item_ptr, key_items=key_items,
    )  # fmt: skip
