"""Payments: first price is the bid; VCG is individually rational and exact on small cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from packing_cases import brute_force_optimum, small_instances, without

from auction import constants as C
from auction.errors import InfeasibleInstance
from bench.generate import generate_instance
from ordering.payments import compute_payments
from ordering.problem import PackingInput
from ordering.solver import pack


@settings(max_examples=60, deadline=None)
@given(small_instances(max_items=9))
def test_vcg_equals_brute_force_vcg(inp: PackingInput) -> None:
    try:
        packing = pack(inp)
    except InfeasibleInstance:
        return
    pay = compute_payments(inp, packing, C.PAYMENT_VCG)
    assert set(pay) == set(packing.included)
    bids = {it.id: it.bid_wei for it in inp.items}
    for w in packing.included:
        others = packing.revenue_wei - bids[w]
        opt_without = brute_force_optimum(without(inp, w))
        assert opt_without is not None  # dropping a winner keeps the rest feasible
        assert pay[w] == min(max(opt_without - others, 0), bids[w])


@settings(max_examples=40, deadline=None)
@given(small_instances(max_items=9))
def test_first_price_pays_the_bid(inp: PackingInput) -> None:
    try:
        packing = pack(inp)
    except InfeasibleInstance:
        return
    bids = {it.id: it.bid_wei for it in inp.items}
    assert compute_payments(inp, packing, C.PAYMENT_FIRST_PRICE) == {
        i: bids[i] for i in packing.included
    }


@pytest.mark.parametrize(("n", "share"), [(300, 1.0), (1200, 0.25)])
def test_vcg_individually_rational_and_deterministic(n: int, share: float) -> None:
    inp = generate_instance(n, seed=4, searcher_share=share, n_forced=2)
    packing = pack(inp)
    pay = compute_payments(inp, packing, C.PAYMENT_VCG, time_budget_ms=50)
    bids = {it.id: it.bid_wei for it in inp.items}
    assert set(pay) == set(packing.included)
    # Verify that nobody pays more than its bid or less than nothing
    assert all(0 <= pay[i] <= bids[i] for i in pay)
    assert sum(pay.values()) <= packing.revenue_wei
    assert compute_payments(inp, packing, C.PAYMENT_VCG, time_budget_ms=50) == pay


def test_unknown_rule_rejected() -> None:
    inp = generate_instance(20, seed=1)
    with pytest.raises(ValueError):
        compute_payments(inp, pack(inp), "second_price")
