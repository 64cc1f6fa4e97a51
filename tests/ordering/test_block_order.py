"""The block order without a Fraction per item equals the exact (Fraction) order, on the ties
floats cannot tell apart: equal ratios from different integers, wei beyond 2**53, zero gas."""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from auction import constants as C
from ordering.problem import (
    Item,
    JointItem,
    Leg,
    compute_block_order,
    compute_joint_order,
    compute_ratio_order,
)


def _exact(items: list[Item]) -> list[str]:
    """The rule as written before decision 149: one Fraction per item."""
    return [it.id for it in sorted(items, key=lambda it: (-Fraction(it.bid_wei, max(it.gas, 1)),
                                                          it.id))]  # fmt: skip


def _item(i: int, bid_wei: int, gas: int) -> Item:
    return Item(id=f"b{i:04d}", searcher="s", bid_wei=bid_wei, gas=gas, keys=())


@st.composite
def tied_items(draw: st.DrawFn) -> list[Item]:
    """Items whose ratios collide: multiples of a few base ratios (equal exactly, different
    integers), neighbours one wei apart at magnitudes where a float holds 53 bits, zero gas,
    ids drawn so the tie-break is not the input order."""
    bases = draw(st.lists(st.tuples(st.integers(1, C.MAX_BID_WEI), st.integers(1, 30_000_000)),
                          min_size=1, max_size=4))  # fmt: skip
    items: list[Item] = []
    n = draw(st.integers(1, 40))
    ids = draw(st.permutations(range(n)))
    for k in range(n):
        bid, gas = draw(st.sampled_from(bases))
        kind = draw(st.sampled_from(("same", "scaled", "nudged", "zero_gas", "free")))
        if kind == "scaled":  # the same ratio from other integers
            m = draw(st.integers(2, 1000))
            bid, gas = bid * m, gas * m
        elif kind == "nudged":  # a ratio one wei away: equal as floats when bid > 2**53
            bid = max(0, bid + draw(st.sampled_from((-1, 1))))
        elif kind == "zero_gas":  # counted as one gas
            gas = draw(st.sampled_from((0, 1)))
        elif kind == "free":
            bid = draw(st.integers(0, C.MAX_BID_WEI))
        items.append(_item(ids[k], bid, gas))
    return items


@settings(max_examples=400, deadline=None)
@given(tied_items())
def test_block_order_equals_the_exact_order_on_ties(items: list[Item]) -> None:
    assert [it.id for it in compute_block_order(items)] == _exact(items)


def test_floats_that_collide_are_ordered_exactly() -> None:
    # Ratios 2**60+1 and 2**60 per gas are the same float; the exact order puts the larger
    # first whatever the ids say, and equal ratios (3/1, 6/2, 9/3) fall back to the ids.
    big = 1 << 60
    items = [_item(1, big, 1), _item(2, big + 1, 1), _item(5, 9, 3), _item(3, 6, 2),
             _item(4, 3, 1), _item(6, 3 * big + 3, 3)]  # fmt: skip
    assert float(big) == float(big + 1)
    assert [it.id for it in compute_block_order(items)] == ["b0002", "b0006", "b0001", "b0003",
                                                           "b0004", "b0005"]  # fmt: skip
    assert [it.id for it in compute_block_order(items)] == _exact(items)


def test_ratios_beyond_the_float_range_use_the_exact_order() -> None:
    huge = 1 << 1100  # int / int overflows a float: the exact order is used for all
    items = [_item(1, huge, 1), _item(2, huge + 1, 1), _item(3, 5, 1)]
    assert [it.id for it in compute_block_order(items)] == ["b0002", "b0001", "b0003"]


@settings(max_examples=150, deadline=None)
@given(tied_items(), st.randoms(use_true_random=False))
def test_joint_order_equals_the_exact_order(items: list[Item], rng: random.Random) -> None:
    joint = []
    for it in items:  # split each item's gas over one or two legs: the order reads the total
        cut = rng.randint(0, it.gas)
        legs = (Leg(1, cut, ()), Leg(2, it.gas - cut, ())) if cut else (Leg(1, it.gas, ()),)
        joint.append(JointItem(it.id, it.searcher, it.bid_wei, legs))
    assert [it.id for it in compute_joint_order(joint)] == _exact(items)
    assert [it.id for it in compute_ratio_order(joint)] == _exact(items)
