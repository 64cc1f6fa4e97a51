"""The packing problem as plain values: what every packer (greedy, numba, exact) takes and returns.

A packer sees bundles as *items*: a bid, a gas amount, a searcher and a set of conflict keys. Two
items that share a key cannot both be in the block (a shared tx hash, a shared (sender, nonce)
pair, or a shared written storage location). Fairness is expressed as capacities: the gas given
to bundles (block gas limit minus the public lane's reserve) and a per-searcher gas cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from ordering.columns import EncodedLegs

# What the ratio order sorts: packer items, one-rollup or joint.
_Ordered = TypeVar("_Ordered", bound="Item | JointItem")

# Payment rules a rollup may choose (ordering/payments.py computes each).
PAYMENT_FIRST_PRICE: Final = "first_price"
PAYMENT_VCG: Final = "vcg"
PAYMENT_RULES: Final = (PAYMENT_FIRST_PRICE, PAYMENT_VCG)


@dataclass(frozen=True, slots=True)
class Item:
    """One bundle as the packer sees it."""

    id: str  # unique within the problem; also the deterministic tie-break (ascending)
    searcher: str
    bid_wei: int
    gas: int
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PackingInput:
    """One slot's packing instance."""

    gas_limit: int  # gas available to bundles
    items: tuple[Item, ...]
    max_gas_per_searcher: int | None = None  # None: no per-searcher cap
    forced: frozenset[str] = frozenset()  # item ids that must be included
    # the items' keys and gas as rows of columns kept while the slot was open (one leg per
    # item, in ``items``' order); None: the encoding reads the items. Never part of equality.
    encoded: EncodedLegs | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Packing:
    """A packer's answer: the chosen items in block order, with a certified bound."""

    included: tuple[str, ...]
    revenue_wei: int
    gas_used: int
    upper_bound_wei: int  # no feasible packing earns more than this
    solver: str = ""
    proven_optimal: bool = False


def compute_searcher_gas_cap(gas_limit: int, max_gas_share_per_searcher: float) -> int | None:
    """Gas one searcher's winning bundles may use, or None when the share does not bind."""
    if max_gas_share_per_searcher >= 1.0:
        return None
    # Fraction of the float is exact, so every member computes the same cap bit for bit.
    return int(Fraction(max_gas_share_per_searcher) * gas_limit)


def compute_block_order(items: list[Item]) -> list[Item]:
    """Winning bundles in block order: bid per gas descending, then id ascending (deterministic)."""
    return compute_ratio_order(items)


def _exact_ratio_key(it: Item | JointItem) -> tuple[Fraction, str]:
    return (-Fraction(it.bid_wei, max(it.gas, 1)), it.id)


def compute_ratio_order(items: Sequence[_Ordered]) -> list[_Ordered]:
    """``items`` sorted by bid per gas (``bid_wei / max(gas, 1)``, exactly) descending, then id
    ascending: the order ``sorted(items, key=_exact_ratio_key)`` gives, without a ``Fraction``
    per item on the common path.

    Python's int / int is correctly rounded, so the float ratio is a monotone function of the
    exact one: a larger float means a larger ratio, and only items whose floats are equal may be
    misordered by it. Those runs (equal ratios, or distinct ratios closer than a float tells
    apart, e.g. wei beyond 2**53) are re-sorted by the exact key. Decision 149."""
    try:
        keyed = sorted(((-(it.bid_wei / max(it.gas, 1)), it) for it in items),
                       key=_first)  # fmt: skip
    except OverflowError:  # a ratio beyond the float range (bids of 2**1024 wei and more)
        return sorted(items, key=_exact_ratio_key)
    out: list[_Ordered] = []
    i, n = 0, len(keyed)
    while i < n:
        j = i + 1
        ratio = keyed[i][0]
        while j < n and keyed[j][0] == ratio:
            j += 1
        if j == i + 1:
            out.append(keyed[i][1])
        else:
            out.extend(sorted((it for _, it in keyed[i:j]), key=_exact_ratio_key))
        i = j
    return out


def _first(pair: tuple[float, object]) -> float:
    return pair[0]


def compute_greedy_order(items: tuple[Item, ...] | list[Item]) -> list[Item]:
    """Order in which the greedy packer considers items (same rule as the block order)."""
    return compute_block_order(list(items))


# --- the joint (multi-rollup) problem -------------------------------------------------------
# One auction per slot over several rollups (issue 13). A bundle has one *leg* per rollup it
# touches; its one bid counts only when every leg is in its rollup's block (atomicity). Conflict
# keys, gas and the per-searcher cap are per rollup: the same key string on two rollups is not a
# conflict. docs/solver.md, "Joint packing".


@dataclass(frozen=True, slots=True)
class Leg:
    """The part of a bundle that lands on one rollup."""

    rollup: int
    gas: int
    keys: tuple[str, ...]  # conflict keys within this rollup


@dataclass(frozen=True, slots=True)
class JointItem:
    """One bundle of a shared slot: one bid for all its legs (one leg per rollup, >= 1)."""

    id: str  # unique within the problem; also the deterministic tie-break (ascending)
    searcher: str
    bid_wei: int
    legs: tuple[Leg, ...]

    @property
    def gas(self) -> int:
        """Total gas over the legs (the block order's denominator)."""
        return sum(leg.gas for leg in self.legs)


@dataclass(frozen=True, slots=True)
class RollupCapacity:
    """One rollup's capacities in the slot."""

    rollup: int
    gas_limit: int  # gas available to bundles: block gas limit minus reserved public gas
    max_gas_per_searcher: int | None = None  # None: no per-searcher cap on this rollup


@dataclass(frozen=True, slots=True)
class JointInput:
    """One shared slot's packing instance (rollups in the deployment's order)."""

    rollups: tuple[RollupCapacity, ...]
    items: tuple[JointItem, ...]
    forced: frozenset[str] = frozenset()  # item ids that must be included (on all their legs)
    # the legs as rows of columns kept while the slot was open (``ordering.columns``: items in
    # ``items``' order, each item's legs in order); None: the encoding reads the legs.
    encoded: EncodedLegs | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class JointPacking:
    """A joint packer's answer: one block per rollup, one certified bound for the slot."""

    included_by_rollup: tuple[tuple[int, tuple[str, ...]], ...]  # (rollup, ids in block order)
    included: tuple[str, ...]  # every included item once, in slot order (see compute_joint_order)
    revenue_wei: int  # bids of the included items, each counted once
    gas_used_by_rollup: tuple[tuple[int, int], ...]  # (rollup, gas used by the included legs)
    upper_bound_wei: int  # no feasible joint packing earns more than this
    solver: str = ""
    proven_optimal: bool = False

    def block(self, rollup: int) -> tuple[str, ...]:
        """Ids included in ``rollup``'s block, in block order."""
        return dict(self.included_by_rollup)[rollup]


def compute_joint_order(items: list[JointItem]) -> list[JointItem]:
    """Slot order: bid per *total* gas (all legs) descending, then id ascending.

    Each rollup's block is this order restricted to the items with a leg on it, so two bundles
    that share rollups are in the same relative order on every one of them; for a one-leg item
    this is ``compute_block_order``'s rule."""
    return compute_ratio_order(items)


@dataclass(frozen=True, slots=True)
class ComponentPacking:
    """One connected component of a shared slot (rollups linked by cross-rollup bundles), as
    ``ordering.packer.pack_slot`` packed it: its own instance, packing and time budget."""

    inp: JointInput
    packing: JointPacking
    time_budget_ms: int
