"""The array encoding: canonical, consistent CSR, safe value scaling."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings
from joint_cases import joint_instances
from packing_cases import small_instances

from ordering.arrays import (
    VALUE_SUM_BITS,
    compute_joint_arrays,
    compute_packing_arrays,
    compute_single_arrays,
    compute_value_shift,
)
from ordering.columns import EncodedLegs, LegColumns
from ordering.joint import compute_single_input
from ordering.problem import Item, JointInput, PackingInput


def _shuffled(inp: PackingInput, seed: int) -> PackingInput:
    items = list(inp.items)
    random.Random(seed).shuffle(items)
    return PackingInput(inp.gas_limit, tuple(items), inp.max_gas_per_searcher, inp.forced)


@settings(max_examples=60, deadline=None)
@given(small_instances())
def test_arrays_do_not_depend_on_item_order(inp: PackingInput) -> None:
    a = compute_packing_arrays(inp)
    b = compute_packing_arrays(_shuffled(inp, 7))
    assert a.ids == b.ids and a.keys == b.keys and a.searchers == b.searchers
    for name in ("gas", "value", "positive", "forced", "searcher", "key_ptr", "key_idx",
                 "key_item_ptr", "key_items"):  # fmt: skip
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@settings(max_examples=60, deadline=None)
@given(small_instances())
def test_csr_matches_items(inp: PackingInput) -> None:
    a = compute_packing_arrays(inp)
    by_id = {it.id: it for it in inp.items}
    for r, i in enumerate(a.ids):
        keys = [a.keys[k] for k in a.key_idx[a.key_ptr[r] : a.key_ptr[r + 1]]]
        # Verify that each item's keys are its distinct keys
        assert sorted(keys) == sorted(set(by_id[i].keys))
        assert a.gas[r] == by_id[i].gas
        assert a.searchers[a.searcher[r]] == by_id[i].searcher
    for k in range(a.n_keys):
        members = a.key_items[a.key_item_ptr[k] : a.key_item_ptr[k + 1]].tolist()
        assert members == sorted(members)
        assert all(a.keys[k] in by_id[a.ids[r]].keys for r in members)


def test_huge_bids_are_scaled_below_2_53() -> None:
    items = tuple(
        Item(f"i{j:02d}", "s", bid_wei=(10**21) * (j + 1) + j, gas=21_000, keys=())
        for j in range(50)
    )
    a = compute_packing_arrays(PackingInput(30_000_000, items))
    assert a.value_shift > 0
    assert int(a.value.sum()) < 2**VALUE_SUM_BITS
    # Verify that the scaled values keep the order of the bids
    assert np.all(np.diff(a.value) > 0)


def test_value_shift_is_zero_for_small_totals() -> None:
    assert compute_value_shift([1, 2, 3, -10**30]) == 0
    assert compute_value_shift([2**53]) == 1


def test_duplicate_ids_rejected() -> None:
    it = Item("x", "s", 1, 1, ())
    with pytest.raises(ValueError):
        compute_packing_arrays(PackingInput(10, (it, it)))


def test_items_with_many_keys_in_any_order() -> None:
    # A bundle's access list is the sender's to order (and may repeat): long key lists take the
    # sorting path, short ones the insertion path; both give distinct ascending key ids.
    rng = random.Random(3)
    pool = [f"w{j}" for j in range(200)]
    items = []
    for j in range(30):
        keys = rng.sample(pool, rng.choice([3, 17, 60, 150]))
        keys = keys + keys[: len(keys) // 3]  # repeats
        if j % 2:
            keys.sort(reverse=True)
        items.append(Item(f"i{j:02d}", "s", 10 + j, 21_000, tuple(keys)))
    a = compute_packing_arrays(PackingInput(30_000_000, tuple(items)))
    by_id = {it.id: it for it in items}
    for r, i in enumerate(a.ids):
        row = a.key_idx[a.key_ptr[r] : a.key_ptr[r + 1]].tolist()
        assert row == sorted(set(row))
        assert sorted(a.keys[k] for k in row) == sorted(set(by_id[i].keys))
    for k in range(a.n_keys):
        members = a.key_items[a.key_item_ptr[k] : a.key_item_ptr[k + 1]].tolist()
        assert members == sorted(set(members))


def _encoded(inp: JointInput) -> JointInput:
    """``inp`` with its legs as rows of columns (appended in a shuffled order, as a slot's
    copies are logged in any order), the way ``auction.columnar`` hands it to the packing."""
    columns = LegColumns()
    legs = [leg for it in inp.items for leg in it.legs]
    at = list(range(len(legs)))
    random.Random(3).shuffle(at)
    rows = [0] * len(legs)
    for j in at:
        rows[j] = columns.add_leg(legs[j].rollup, legs[j].gas, legs[j].keys)
    enc = EncodedLegs(columns.snapshot(), np.array(rows, dtype=np.int64),
                      np.array([len(it.legs) for it in inp.items], dtype=np.int64))  # fmt: skip
    return dataclasses.replace(inp, encoded=enc)


@settings(max_examples=120, deadline=None)
@given(joint_instances(max_items=12, max_rollups=1))
def test_single_arrays_from_the_joint_encoding_are_the_packing_arrays(inp: JointInput) -> None:
    want = compute_packing_arrays(compute_single_input(inp))
    for given_inp in (inp, _encoded(inp)):
        got = compute_single_arrays(given_inp, compute_joint_arrays(given_inp))
        assert got.keys == want.keys and got.n_keys == want.n_keys
        for f in dataclasses.fields(want):
            x, y = getattr(want, f.name), getattr(got, f.name)
            if f.name in ("key_strings", "key_string_ids"):  # how ``keys`` is kept
                continue
            if f.name == "items":  # the joint items themselves: same ids, bids and gas
                assert [(it.id, it.bid_wei, it.gas) for it in x] == [
                    (it.id, it.bid_wei, it.gas) for it in y
                ]
            elif isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and np.array_equal(x, y), f.name
            else:
                assert x == y, f.name
