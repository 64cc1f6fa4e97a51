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
from itertools import chain

import numpy as np
import numpy.typing as npt

from ordering.problem import Item, PackingInput

# Sum of scaled values stays below this, so float64 and int64 hold every partial sum exactly.
VALUE_SUM_BITS = 53

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
    raw_ids = [it.id for it in inp.items]
    n = len(raw_ids)
    rank_order = sorted(range(n), key=raw_ids.__getitem__)
    items = [inp.items[r] for r in rank_order]
    ids = tuple([raw_ids[r] for r in rank_order])
    # Verify that ids are unique (the canonical order and the block order rely on it)
    if len(set(ids)) != n:
        raise ValueError("duplicate item ids")
    bids = tuple([it.bid_wei for it in items])
    shift = compute_value_shift(bids)
    value = np.array([(b >> shift) if b > 0 else 0 for b in bids], dtype=np.int64)
    positive = np.array([b > 0 for b in bids], dtype=np.uint8)
    gas = np.array([it.gas for it in items], dtype=np.int64)
    if n and int(gas.min()) < 0:
        raise ValueError("negative gas")
    forced = np.zeros(n, dtype=np.uint8)
    if inp.forced:
        rank = {i: r for r, i in enumerate(ids)}
        for f in inp.forced:
            if f in rank:
                forced[rank[f]] = 1

    # Ids for searchers and keys: first appearance in canonical item order.
    searcher_names = [it.searcher for it in items]
    searcher_id = {s: j for j, s in enumerate(dict.fromkeys(searcher_names))}
    searcher = np.array([searcher_id[s] for s in searcher_names], dtype=np.int32)
    key_lists = [it.keys for it in items]
    flat_keys = list(chain.from_iterable(key_lists))
    key_id: dict[str, int] = {}
    raw = np.array([key_id.setdefault(k, len(key_id)) for k in flat_keys], dtype=np.int64)
    n_keys = len(key_id)
    owner = np.repeat(np.arange(n, dtype=np.int64), [len(ks) for ks in key_lists])
    # Each item's keys ascending and distinct (an item may repeat a key).
    order = np.lexsort((raw, owner))
    raw = raw[order]
    owner = owner[order]
    if raw.shape[0]:
        keep = np.ones(raw.shape[0], dtype=bool)
        keep[1:] = (raw[1:] != raw[:-1]) | (owner[1:] != owner[:-1])
        raw = raw[keep]
        owner = owner[keep]
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
        keys=tuple(key_id),
        key_item_ptr=key_item_ptr,
        key_items=key_items,
        gas_limit=int(inp.gas_limit),
        searcher_cap=cap,
    )
