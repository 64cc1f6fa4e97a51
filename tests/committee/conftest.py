"""Shared fixtures: one dealt 7-of-10 committee (the default threshold for n = 10) per session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from committee import bls, threshold
from committee.threshold import CommitteeInfo, KeyShare


@dataclass(frozen=True)
class Dealt:
    """A dealt committee plus the group secret, which only tests may ever reconstruct."""

    committee: CommitteeInfo
    shares: list[KeyShare]
    group_secret: int


@pytest.fixture(scope="session")
def dealt() -> Dealt:
    committee, shares = threshold.deal(10, 7, bytes(range(32)))
    # Interpolate f(0) in the scalar field from the first t shares; production never does this.
    first = shares[:7]
    lambdas = threshold.lagrange_coefficients_at_zero([s.index for s in first])
    group_secret = sum(lam * s.secret for lam, s in zip(lambdas, first, strict=True))
    return Dealt(committee, shares, group_secret % bls.CURVE_ORDER)


@pytest.fixture(scope="session")
def message() -> bytes:
    return b"blockspace slot 1234567 block 0xabcdef"


@pytest.fixture(scope="session")
def partials(dealt: Dealt, message: bytes) -> dict[int, bytes]:
    """Every member's partial signature of ``message``, by index."""
    return {s.index: threshold.partial_sign(s, message) for s in dealt.shares}
