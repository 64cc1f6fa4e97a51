"""Array encoding of a packing instance: what the numba kernels read.

Pure conversion, no policy: a ``PackingInput`` becomes flat numpy arrays in a canonical order
(items sorted by id), so the same instance given in any item order yields identical arrays and
therefore, downstream, the identical block.

Bids are Python ints in wei and may exceed int64 (about 9.2 ETH), so the kernels see a *scaled*
value ``value = max(bid, 0) >> value_shift``, with the smallest shift that keeps the sum of all
values below 2**53. Every partial sum of values is then an exact int64 and an exact float64, and
the resolution lost is at most 2**-53 of the slot's total bids. Revenue is always recomputed
exactly from the chosen ids; only the search objective and the bound use the scaled values.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, count
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from ordering.problem import Item, PackingInput

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
    total = sum(b for b in bids_wei if b > 0)
    return max(0, total.bit_length() - VALUE_SUM_BITS)


def compute_packing_arrays(inp: PackingInput) -> PackingArrays:
    """Encode ``inp`` canonically. O(n log n + total keys); raises ValueError on duplicate ids."""
    # map() with C-level getters: at 20,000 items x 5 keys, per-element Python bytecode would cost
    # tens of milliseconds, which the slot pays before the solver starts.
    raw_ids = list(map(_get_id, inp.items))
    n = len(raw_ids)
    rank_order = sorted(range(n), key=raw_ids.__getitem__)
    items = list(map(inp.items.__getitem__, rank_order))
    ids = tuple(map(raw_ids.__getitem__, rank_order))
    # Verify that ids are unique (the canonical order and the block order rely on it)
    if len(set(ids)) != n:
        raise ValueError("duplicate item ids")
    bids = tuple(map(_get_bid, items))
    shift = compute_value_shift(bids)
    if shift == 0 and (n == 0 or min(bids) > -(2**62)):
        value = np.maximum(np.array(bids, dtype=np.int64), 0)
    else:
        value = np.array([(b >> shift) if b > 0 else 0 for b in bids], dtype=np.int64)
    positive = np.array([b > 0 for b in bids], dtype=np.uint8)
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
    flat_keys = list(chain.from_iterable(key_lists))
    # One dict pass: each key maps to the position of its first appearance in flat_keys; those
    # positions are then renumbered densely (first appearance order kept) with numpy.
    key_first: dict[str, int] = {}
    nnz = len(flat_keys)
    first = np.fromiter(map(key_first.setdefault, flat_keys, count()), dtype=np.int64, count=nnz)
    is_new = first == np.arange(nnz, dtype=np.int64)
    dense = np.cumsum(is_new) - 1
    raw = dense[first] if nnz else first
    n_keys = len(key_first)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.fromiter(map(len, key_lists), np.int64, n))
    # Each item's keys ascending and distinct (an item may repeat a key): one sort on a combined
    # key owner * n_keys + key (fits int64: n * n_keys < 2**62 for any real slot).
    combo = owner * max(n_keys, 1) + raw
    combo.sort()
    if combo.shape[0]:
        keep = np.ones(combo.shape[0], dtype=bool)
        keep[1:] = combo[1:] != combo[:-1]
        combo = combo[keep]
    owner = combo // max(n_keys, 1)
    raw = combo - owner * max(n_keys, 1)
    key_idx = raw.astype(np.int32)
    key_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=key_ptr[1:])

    # key -> items: a stable sort by key id keeps items ascending within a key.
    by_key = np.argsort(key_idx, kind="stable")
    key_items = owner[by_key].astype(np.int32)
    key_item_ptr = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(key_idx, minlength=n_keys), out=key_item_ptr[1:])

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
