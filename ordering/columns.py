"""A slot's legs as growing columns: what the packing encoding reads when they were kept as
the slot's log was appended, instead of walking Python objects at the deadline.

Pure: no I/O, no clock. ``LegColumns`` holds, per leg appended (a *row*), its rollup, its gas
and its conflict keys as integer ids (each key string interned once, numbered by its first
appearance in the columns). ``EncodedLegs`` names, for one packing instance, the row of each of
its legs in the instance's own order; ``ordering.arrays`` then reads gas, rollups and key ids
from the columns with numpy gathers. The arrays it builds are bit for bit those of the
from-scratch encoding: the encoding uses key strings only for equality, and two keys are equal
exactly when their ids are (docs/solver.md, "Columnar input").

The caller guarantees that row ``rows[j]`` was appended from the instance's j-th leg (the same
rollup, gas and keys); ``auction.columnar`` keeps that by construction (one leg object, one row)
and ``tests/ordering/test_columns.py`` checks it against the from-scratch encoding.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class LegColumns:
    """Legs as columns (rollup, gas, key ids), appended one at a time. Append is O(keys);
    nothing already appended ever changes, so a snapshot of the first rows stays valid."""

    __slots__ = ("_gas", "_key_ids", "_key_start", "_names", "_rollup", "_strings")

    def __init__(self) -> None:
        self._strings: dict[str, int] = {}
        self._names: list[str] = []
        self._rollup = array("q")
        self._gas = array("q")
        self._key_start = array("q", [0])
        self._key_ids = array("q")

    def __len__(self) -> int:
        return len(self._rollup)

    @property
    def n_strings(self) -> int:
        """Distinct key strings interned so far (every key id is below it)."""
        return len(self._names)

    def add_leg(self, rollup: int, gas: int, keys: Sequence[str]) -> int:
        """Append one leg; return its row. Raises OverflowError when ``rollup`` or ``gas`` does
        not fit in int64 (nothing appended then: the caller encodes that instance from scratch,
        which refuses it the same way)."""
        row = len(self._rollup)
        start = len(self._key_ids)
        try:
            self._rollup.append(rollup)
            self._gas.append(gas)
        except OverflowError:
            del self._rollup[row:]
            del self._gas[row:]
            raise
        strings = self._strings
        ids = self._key_ids
        for k in keys:
            i = strings.get(k)
            if i is None:
                i = strings[k] = len(self._names)
                self._names.append(k)
            ids.append(i)
        self._key_start.append(start + len(keys))
        return row

    def name(self, key_id: int) -> str:
        """The key string of ``key_id``."""
        return self._names[key_id]

    def snapshot(self) -> ColumnSnapshot:
        """The columns as they are now, as numpy arrays (copies: appends may go on)."""
        return ColumnSnapshot(
            rollup=np.array(self._rollup, dtype=np.int64),
            gas=np.array(self._gas, dtype=np.int64),
            key_start=np.array(self._key_start, dtype=np.int64),
            key_ids=np.array(self._key_ids, dtype=np.int64),
            n_strings=len(self._names),
            names=tuple(self._names),
        )


@dataclass(frozen=True, slots=True)
class ColumnSnapshot:
    """``LegColumns`` frozen at one moment."""

    rollup: I64  # [rows] rollup id of each leg
    gas: I64  # [rows]
    key_start: I64  # [rows + 1] a row's key ids are key_ids[key_start[r]:key_start[r + 1]]
    key_ids: I64  # [total keys]
    n_strings: int
    names: tuple[str, ...]  # key id -> key string


@dataclass(frozen=True, slots=True)
class EncodedLegs:
    """An instance's legs as rows of columns: ``rows[j]`` is the row of the instance's j-th leg
    (items in the instance's order, each item's legs in order)."""

    columns: ColumnSnapshot
    rows: I64
    counts: I64  # [items] legs per item, in the instance's order

    def gather(self, order: I64) -> tuple[I64, I64, I64, I64]:
        """For the legs taken in ``order`` (positions into ``rows``): (rollup ids, gas, key
        counts, key ids concatenated in that order)."""
        c = self.columns
        rows = self.rows[order]
        start = c.key_start[rows]
        lens = c.key_start[rows + 1] - start
        total = int(lens.sum())
        out_start = np.zeros(lens.shape[0], dtype=np.int64)
        np.cumsum(lens[:-1], out=out_start[1:])
        flat = np.repeat(start - out_start, lens) + np.arange(total, dtype=np.int64)
        return c.rollup[rows], c.gas[rows], lens, c.key_ids[flat]


def compute_encoded_subset(enc: EncodedLegs, items: Sequence[int]) -> EncodedLegs:
    """The rows of a sub-instance holding the instance's items at positions ``items``, in that
    order (``ordering.packer.compute_components``)."""
    pick = np.array(items, dtype=np.int64)
    start = np.zeros(enc.counts.shape[0], dtype=np.int64)
    np.cumsum(enc.counts[:-1], out=start[1:])
    counts = enc.counts[pick]
    out_start = np.zeros(counts.shape[0], dtype=np.int64)
    np.cumsum(counts[:-1], out=out_start[1:])
    flat = np.repeat(start[pick] - out_start, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return EncodedLegs(enc.columns, enc.rows[flat], counts)
