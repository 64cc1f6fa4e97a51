"""The HiGHS reference optimiser agrees with brute force."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from packing_cases import brute_force_optimum, small_instances

from auction.errors import InfeasibleInstance
from ordering.exact import pack_exact
from ordering.problem import PackingInput
from ordering.reference import check_packing


@settings(max_examples=60, deadline=None)
@given(small_instances(max_items=9))
def test_exact_equals_brute_force(inp: PackingInput) -> None:
    opt = brute_force_optimum(inp)
    if opt is None:
        with pytest.raises(InfeasibleInstance):
            pack_exact(inp, time_limit_s=5)
        return
    packing, proven = pack_exact(inp, time_limit_s=5)
    check_packing(inp, packing)
    assert proven
    assert packing.revenue_wei == opt
    assert packing.upper_bound_wei >= opt
