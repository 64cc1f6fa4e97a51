"""The HiGHS joint reference: equal to brute force on small slots, atomic and valid."""

from __future__ import annotations

from hypothesis import given, settings
from joint_cases import joint_instances, optimum_or_none

from ordering.exact import pack_joint_exact
from ordering.problem import JointInput
from ordering.reference import check_joint_packing


@settings(max_examples=80, deadline=None)
@given(joint_instances(max_items=10))
def test_highs_joint_optimum_equals_brute_force(inp: JointInput) -> None:
    opt = optimum_or_none(inp)
    if opt is None:
        return
    p, proven = pack_joint_exact(inp, time_limit_s=30, presolve=False)
    assert proven
    check_joint_packing(inp, p)
    assert p.revenue_wei == opt
