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
from itertools import chain, count, islice, pairwise, repeat
from operator import attrgetter

import numpy as np
import numpy.typing as npt
from numba import njit

from ordering.errors import (
    BundleWithoutLegs,
    DuplicateBundleId,
    DuplicateLegRollup,
    DuplicateRollup,
    InvalidCapacity,
    LegForUnknownRollup,
    NegativeGas,
)
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

    # canonical order: ascending id (the joint items themselves when read from a one-rollup
    # joint encoding, ``compute_single_arrays``: the same ids, bids and gas)
    items: tuple[Item, ...] | tuple[JointItem, ...]
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
    # key names, read only by tests and diagnostics (``keys``): the names themselves, or, read
    # from columns, the columns' strings and each key's string id (resolving ~5,000 scattered
    # strings cost about 0.7 ms at the deadline for nothing)
    key_strings: tuple[str, ...]
    key_string_ids: I64 | None
    key_item_ptr: I64  # [n_keys + 1] CSR key -> items
    key_items: I32  # [nnz] item indices, ascending within a key
    gas_limit: int
    searcher_cap: int  # -1: no per-searcher cap

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def n_keys(self) -> int:
        return int(self.key_item_ptr.shape[0]) - 1

    @property
    def keys(self) -> tuple[str, ...]:
        """Key names by key id: first appearance in canonical item order."""
        if self.key_string_ids is None:
            return self.key_strings
        return tuple(map(self.key_strings.__getitem__, self.key_string_ids.tolist()))

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
    if inp.encoded is not None:
        _, gas, lens, key_ids = inp.encoded.gather(np.array(rank_order, dtype=np.int64))
    else:
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
    if inp.encoded is not None:
        # Keys interned while the slot was open: the first position of each id, no strings
        # read (the key strings, in first appearance, only for ``keys``).
        first = _first_on_rollup(key_ids, np.zeros(key_ids.shape[0], dtype=np.int64),
                                 np.int64(inp.encoded.columns.n_strings))  # fmt: skip
        string_ids = key_ids[first == np.arange(first.shape[0], dtype=np.int64)]
        key_strings = inp.encoded.columns.names
    else:
        key_lists = list(map(_get_keys, items))
        lens = np.fromiter(map(len, key_lists), dtype=np.int64, count=n)
        nnz = int(lens.sum())
        # One dict pass interns the keys: each maps to the flat position of its first
        # appearance (the only per-key Python work); the kernel renumbers densely and builds
        # both CSR forms.
        key_first: dict[str, int] = {}
        first = np.fromiter(
            map(key_first.setdefault, chain.from_iterable(key_lists), count()),
            dtype=np.int64,
            count=nnz,
        )
        key_strings, string_ids = tuple(key_first), None
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
        key_strings=key_strings,
        key_string_ids=string_ids,
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
    order: I64  # [n] input position of each canonical item

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
    """Encode a joint instance canonically, checking its shape on the way (the rules of
    ``ordering.reference.check_joint_input``, vectorised: the same stable errors).

    Every Python object is read once, in the *input* order (``_JointColumns``): the items, legs
    and key strings of an instance sit in memory roughly in the order they were built, and at
    20,000 bundles the encoding is bound by the cache misses of reading them, not by the
    arithmetic; read in canonical order (a random permutation of memory) it cost about twice as
    much (docs/solver.md, "Joint packing"). The canonical order is then applied to integer
    arrays. Keys are interned in one dict pass over every key string and told apart by rollup
    on integers (``_first_on_rollup``), so keys are (rollup, key) pairs without a pair object.
    O(n log n + total legs + total keys)."""
    _check_rollups(inp)
    src = inp.items
    raw_ids = list(map(_get_id, src))
    n = len(raw_ids)
    # a plain sort of the strings and a dict back to input positions: about half the cost of a
    # keyed sort of positions, and the dict's size is the duplicate check
    ids = tuple(sorted(raw_ids))
    position = dict(zip(raw_ids, range(n), strict=True))
    # Verify that ids are unique: sorted, so a repeat sits next to itself
    if len(position) != n:
        at = next(i for i, (a, b) in enumerate(pairwise(ids)) if a == b)
        raise DuplicateBundleId("a bundle id appears twice", id=ids[at])
    order = list(map(position.__getitem__, ids))
    items = tuple(map(src.__getitem__, order))
    raw_bids = list(map(_get_bid, src))
    bids = tuple(map(raw_bids.__getitem__, order))
    shift = compute_value_shift(raw_bids)
    value, positive = _scaled_values(bids, shift)
    forced = np.zeros(n, dtype=np.uint8)
    if inp.forced:
        rank = {i: r for r, i in enumerate(ids)}
        for f in inp.forced:
            if f in rank:
                forced[rank[f]] = 1
    in_order = np.array(order, dtype=np.int64)
    legs = _JointLegs.read(inp, in_order, ids)
    searchers = None
    if any(r.max_gas_per_searcher is not None for r in inp.rollups):
        names = list(map(_get_searcher, src))
        searchers = list(map(names.__getitem__, order))
    rows = _joint_rows(inp, n, searchers, legs)
    item_keys = np.bincount(legs.item, weights=legs.n_keys, minlength=n).astype(np.int64)
    key_ptr, key_idx, key_item_ptr, key_items = _build_csr(legs.key_first, item_keys)
    total_gas = np.bincount(legs.item, weights=legs.gas, minlength=n).astype(np.int64)
    return JointArrays(
        items=items, ids=ids, bids_wei=bids, value=value, value_shift=shift,
        positive=positive, forced=forced, rollups=tuple(r.rollup for r in inp.rollups),
        row_ptr=rows[0], row_idx=rows[1], row_gas=rows[2], row_cap=rows[3], row_rollup=rows[4],
        total_gas=total_gas, key_ptr=key_ptr, key_idx=key_idx,
        n_keys=int(key_item_ptr.shape[0] - 1), key_item_ptr=key_item_ptr, key_items=key_items,
        order=in_order,
    )  # fmt: skip


def compute_single_arrays(inp: JointInput, arrays: JointArrays) -> PackingArrays:
    """``compute_packing_arrays(ordering.joint.compute_single_input(inp))`` read from ``arrays``
    (``compute_joint_arrays(inp)``, of a one-rollup instance): the same arrays, field for field,
    except that ``items`` are ``inp``'s joint items (same ids, bids and gas), without building a
    one-leg ``Item`` per bundle or encoding the instance a second time.

    Why they are the same (``keys`` read the same; ``key_strings`` may hold the columns'
    strings): both orders are ascending id; with one rollup every item has exactly
    one leg (``compute_joint_arrays`` refused two on one rollup), so its first capacity row entry
    holds that leg's gas, and the (rollup, key) pairs are the key strings, numbered by first
    appearance in canonical order in both: the conflict CSR comes out of the same ``_build_csr``
    call. Only the searchers and the key names are read again (``tests/ordering/
    test_packing_arrays.py`` checks the equality). O(n + total keys) integer work, plus the
    key names from the columns (or the key strings without them)."""
    (cap,) = inp.rollups
    items = arrays.items
    n = arrays.n
    gas = arrays.row_gas[arrays.row_ptr[:-1]]
    searcher_names = list(map(_get_searcher, items))
    searcher_id = {name: j for j, name in enumerate(dict.fromkeys(searcher_names))}
    searcher = np.fromiter(map(searcher_id.__getitem__, searcher_names), dtype=np.int32, count=n)
    if inp.encoded is not None:
        _, _, _, key_ids = inp.encoded.gather(arrays.order)
        first = _first_on_rollup(key_ids, np.zeros(key_ids.shape[0], dtype=np.int64),
                                 np.int64(inp.encoded.columns.n_strings))  # fmt: skip
        string_ids: I64 | None = key_ids[first == np.arange(first.shape[0], dtype=np.int64)]
        key_strings = inp.encoded.columns.names
    else:
        key_strings = tuple(dict.fromkeys(k for it in items for k in it.legs[0].keys))
        string_ids = None
    return PackingArrays(
        items=items,
        ids=arrays.ids,
        bids_wei=arrays.bids_wei,
        gas=gas,
        value=arrays.value,
        value_shift=arrays.value_shift,
        positive=arrays.positive,
        forced=arrays.forced,
        searcher=searcher,
        searchers=tuple(searcher_id),
        key_ptr=arrays.key_ptr,
        key_idx=arrays.key_idx,
        key_strings=key_strings,
        key_string_ids=string_ids,
        key_item_ptr=arrays.key_item_ptr,
        key_items=arrays.key_items,
        gas_limit=int(cap.gas_limit),
        searcher_cap=-1 if cap.max_gas_per_searcher is None else int(cap.max_gas_per_searcher),
    )


def _check_rollups(inp: JointInput) -> None:
    rollups = [r.rollup for r in inp.rollups]
    # Verify that each rollup appears once, with capacities >= 0
    if len(set(rollups)) != len(rollups):
        raise DuplicateRollup("a rollup appears twice in the slot", rollups=rollups)
    for r in inp.rollups:
        if r.gas_limit < 0 or (r.max_gas_per_searcher is not None and r.max_gas_per_searcher < 0):
            raise InvalidCapacity("a rollup's capacity is negative", rollup=r.rollup)


@njit(cache=True)
def _first_repeated_leg(count, rollup, n_rollups):  # pragma: no cover - compiled
    """Index of the first item with two legs on one rollup, else -1. O(legs + rollups)."""
    last = np.full(max(n_rollups, 1), -1, dtype=np.int64)
    p = 0
    for i in range(count.shape[0]):
        for _ in range(count[i]):
            r = rollup[p]
            p += 1
            if last[r] == i:
                return i
            last[r] = i
    return -1


def _gather_runs(starts: I64, lens: I64) -> I64:
    """Positions of the runs [starts[j], starts[j] + lens[j]) concatenated in j order."""
    total = int(lens.sum())
    out_start = np.zeros(lens.shape[0], dtype=np.int64)
    np.cumsum(lens[:-1], out=out_start[1:])
    return np.repeat(starts - out_start, lens) + np.arange(total, dtype=np.int64)


@njit(cache=True)
def _first_on_rollup(string, rollup, n_strings):  # pragma: no cover - compiled
    """Per key occurrence (canonical order), the position of the first occurrence of the same
    key string *on the same rollup*. ``string[p]`` numbers the key's string (any numbering
    below ``n_strings``: positions of first occurrences, or ids interned while the slot was
    open), ``rollup[p]`` its leg's rollup. A string's first occurrences on distinct rollups are
    chained from its first one, so an occurrence walks at most as many links as its string has
    rollups. O(n_strings + nnz x rollups per string)."""
    nnz = string.shape[0]
    head = np.full(n_strings, -1, dtype=np.int64)  # first occurrence of each string, any rollup
    link = np.full(nnz, -1, dtype=np.int64)  # next first occurrence of the string, other rollup
    first = np.empty(nnz, dtype=np.int64)
    for p in range(nnz):
        rep = head[string[p]]
        if rep < 0:
            head[string[p]] = p
            rep = p
        while rollup[rep] != rollup[p]:
            if link[rep] < 0:
                link[rep] = p
                rep = p
            else:
                rep = link[rep]
        first[p] = rep
    return first


@dataclass(frozen=True, slots=True)
class _JointLegs:
    """Every leg of a joint instance as columns, in canonical item order."""

    item: I64  # owning item index
    rollup: I64  # rollup index (input order)
    gas: I64
    n_keys: I64
    key_first: I64  # per key occurrence: flat position of the first one of its (rollup, key)

    @classmethod
    def read(cls, inp: JointInput, order: I64, ids: tuple[str, ...]) -> _JointLegs:
        """Read the legs in input order (``order[i]`` is the input position of canonical item
        i), put them in canonical order and raise the shape errors: no legs, unknown rollup,
        two legs on one rollup, negative gas (the canonically first offender's id)."""
        rindex = {r.rollup: j for j, r in enumerate(inp.rollups)}
        if inp.encoded is not None:
            return cls._read_encoded(inp, order, ids, rindex)
        n = order.shape[0]
        leg_lists = list(map(_get_legs, inp.items))
        legs = list(chain.from_iterable(leg_lists))
        n_legs = len(legs)
        count_in = np.fromiter(map(len, leg_lists), dtype=np.int64, count=n)
        counts = count_in[order]
        if n and int(counts.min()) == 0:
            raise BundleWithoutLegs("a bundle has no legs", id=ids[int(np.argmin(counts))])
        start_in = np.zeros(n, dtype=np.int64)
        np.cumsum(count_in[:-1], out=start_in[1:])
        leg_order = _gather_runs(start_in[order], counts)  # canonical leg -> input leg
        item = np.repeat(np.arange(n, dtype=np.int64), counts)
        raw = list(map(_get_rollup, legs))
        rollup = np.fromiter(map(rindex.get, raw, repeat(-1)), np.int64, n_legs)[leg_order]
        if n_legs and int(rollup.min()) < 0:
            at = int(np.argmin(rollup))
            raise LegForUnknownRollup("a leg is on a rollup outside the slot",
                                      id=ids[int(item[at])],
                                      rollup=raw[int(leg_order[at])])  # fmt: skip
        repeated = int(_first_repeated_leg(counts, rollup, np.int64(len(rindex))))
        if repeated >= 0:
            raise DuplicateLegRollup("two legs of a bundle on one rollup", id=ids[repeated])
        gas = np.fromiter(map(_get_gas, legs), dtype=np.int64, count=n_legs)[leg_order]
        if n_legs and int(gas.min()) < 0:
            at = int(np.argmin(gas))
            raise NegativeGas("a leg has negative gas", id=ids[int(item[at])],
                              rollup=raw[int(leg_order[at])])  # fmt: skip
        keys = list(map(_get_keys, legs))
        n_keys_in = np.fromiter(map(len, keys), dtype=np.int64, count=n_legs)
        n_keys = n_keys_in[leg_order]
        # one dict pass over every key string, in input order: a string's number is the
        # position of its first occurrence (the only per-key Python work)
        seen: dict[str, int] = {}
        string = np.fromiter(map(seen.setdefault, chain.from_iterable(keys), count()),
                             dtype=np.int64, count=int(n_keys_in.sum()))  # fmt: skip
        key_start_in = np.zeros(n_legs, dtype=np.int64)
        np.cumsum(n_keys_in[:-1], out=key_start_in[1:])
        string = string[_gather_runs(key_start_in[leg_order], n_keys)]
        key_first = _first_on_rollup(string, np.repeat(rollup, n_keys), np.int64(string.shape[0]))
        return cls(item, rollup, gas, n_keys, key_first)

    @classmethod
    def _read_encoded(
        cls, inp: JointInput, order: I64, ids: tuple[str, ...], rindex: dict[int, int]
    ) -> _JointLegs:
        """``read`` from the columns kept while the slot was open (``inp.encoded``): the same
        columns, the same errors, no leg object or key string read."""
        enc = inp.encoded
        assert enc is not None
        n = order.shape[0]
        count_in = enc.counts
        counts = count_in[order]
        if n and int(counts.min()) == 0:
            raise BundleWithoutLegs("a bundle has no legs", id=ids[int(np.argmin(counts))])
        start_in = np.zeros(n, dtype=np.int64)
        np.cumsum(count_in[:-1], out=start_in[1:])
        leg_order = _gather_runs(start_in[order], counts)  # canonical leg -> input leg
        item = np.repeat(np.arange(n, dtype=np.int64), counts)
        raw, gas, n_keys, key_ids = enc.gather(leg_order)
        chains, at_chain = np.unique(raw, return_inverse=True)
        index = np.array([rindex.get(c, -1) for c in chains.tolist()], dtype=np.int64)
        rollup = index[at_chain.reshape(-1)] if raw.shape[0] else raw
        if raw.shape[0] and int(rollup.min()) < 0:
            at = int(np.argmin(rollup))
            raise LegForUnknownRollup("a leg is on a rollup outside the slot",
                                      id=ids[int(item[at])], rollup=int(raw[at]))  # fmt: skip
        repeated = int(_first_repeated_leg(counts, rollup, np.int64(len(rindex))))
        if repeated >= 0:
            raise DuplicateLegRollup("two legs of a bundle on one rollup", id=ids[repeated])
        if raw.shape[0] and int(gas.min()) < 0:
            at = int(np.argmin(gas))
            raise NegativeGas("a leg has negative gas", id=ids[int(item[at])],
                              rollup=int(raw[at]))  # fmt: skip
        key_first = _first_on_rollup(key_ids, np.repeat(rollup, n_keys),
                                     np.int64(enc.columns.n_strings))  # fmt: skip
        return cls(item, rollup, gas, n_keys, key_first)


def _joint_rows(
    inp: JointInput, n: int, searchers: list[str] | None, legs: _JointLegs
) -> tuple[I64, I64, I64, I64, I64]:
    """Capacity rows: one per rollup, then one per (capped rollup, searcher) that occurs.
    ``searchers`` are the items' searchers in canonical order (None when no rollup caps).
    Returns (row_ptr, row_idx, row_gas, row_cap, row_rollup)."""
    n_rollups = len(inp.rollups)
    cap_of = [r.max_gas_per_searcher for r in inp.rollups]
    capped = np.array([c is not None for c in cap_of], dtype=bool)
    leg_capped = capped[legs.rollup] if legs.rollup.shape[0] else np.zeros(0, dtype=bool)
    pair_rollup = np.zeros(0, dtype=np.int64)
    pair_row = np.zeros(0, dtype=np.int64)
    if searchers is not None:
        searcher_id = {name: j for j, name in enumerate(dict.fromkeys(searchers))}
        n_s = max(len(searcher_id), 1)
        searcher = np.fromiter(map(searcher_id.__getitem__, searchers), dtype=np.int64, count=n)
        pairs, pair_row = np.unique(
            legs.rollup[leg_capped] * n_s + searcher[legs.item[leg_capped]], return_inverse=True
        )
        pair_rollup = pairs // n_s
    caps = [int(r.gas_limit) for r in inp.rollups] + [int(cap_of[r] or 0) for r in pair_rollup]
    entries = 1 + leg_capped.astype(np.int64)
    leg_at = np.zeros(legs.rollup.shape[0] + 1, dtype=np.int64)
    np.cumsum(entries, out=leg_at[1:])
    row_idx = np.empty(int(leg_at[-1]), dtype=np.int64)
    row_idx[leg_at[:-1]] = legs.rollup
    row_idx[leg_at[:-1][leg_capped] + 1] = n_rollups + pair_row
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(legs.item, weights=entries, minlength=n).astype(np.int64),
              out=row_ptr[1:])  # fmt: skip
    return (row_ptr, row_idx, np.repeat(legs.gas, entries), np.array(caps, dtype=np.int64),
            np.concatenate([np.arange(n_rollups, dtype=np.int64), pair_rollup]))  # fmt: skip
