"""Shared instance strategies and a brute-force oracle for the packing tests."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from hypothesis import strategies as st

from ordering.exact import pack_exact
from ordering.problem import Item, Packing, PackingInput
from ordering.reference import is_feasible_set


@st.composite
def small_instances(draw: st.DrawFn, max_items: int = 10) -> PackingInput:
    """Tiny instances with dense conflicts, searcher caps, forced items and odd bids/gas."""
    n = draw(st.integers(0, max_items))
    n_keys = draw(st.integers(1, 8))
    keys = [f"k{j}" for j in range(n_keys)]
    items = []
    for i in range(n):
        ks = draw(st.lists(st.sampled_from(keys), max_size=3))
        items.append(
            Item(
                id=f"b{draw(st.integers(0, 10**6))}-{i}",
                searcher=f"s{draw(st.integers(0, 3))}",
                bid_wei=draw(st.integers(-5, 1000)),
                gas=draw(st.integers(0, 60)),
                keys=tuple(ks),
            )
        )
    cap = draw(st.one_of(st.none(), st.integers(0, 150)))
    forced = draw(st.sets(st.sampled_from([it.id for it in items]), max_size=2)) if items else set()
    return PackingInput(
        gas_limit=draw(st.integers(0, 200)),
        items=tuple(items),
        max_gas_per_searcher=cap,
        forced=frozenset(forced),
    )


def brute_force_optimum(inp: PackingInput) -> int | None:
    """Best revenue over all feasible subsets containing the forced items (None: infeasible)."""
    best: int | None = None
    for r in range(len(inp.items) + 1):
        for combo in itertools.combinations(inp.items, r):
            ids = {it.id for it in combo}
            if not inp.forced <= ids or not is_feasible_set(inp, list(combo)):
                continue
            value = sum(it.bid_wei for it in combo)
            if best is None or value > best:
                best = value
    return best


def without(inp: PackingInput, item_id: str) -> PackingInput:
    """The instance with one item removed (and no longer forced)."""
    return replace(
        inp,
        items=tuple(it for it in inp.items if it.id != item_id),
        forced=inp.forced - {item_id},
    )


def medium_instance(rng: random.Random, min_items: int = 17, max_items: int = 40) -> PackingInput:
    """A slot past the exact enumeration (17-40 bundles): conflicts on up to 30 keys, six
    searchers, a searcher cap in half the cases, forced bundles in some, gas that binds."""
    n = rng.randint(min_items, max_items)
    n_keys = rng.randint(1, 30)
    items = []
    for i in range(n):
        keys = rng.sample(range(n_keys), rng.randint(0, min(3, n_keys)))
        items.append(
            Item(
                id=f"b{i:02d}",
                searcher=f"s{rng.randint(0, 5)}",
                bid_wei=rng.randint(-5, 10**6),
                gas=rng.randint(0, 100),
                keys=tuple(f"k{k}" for k in keys),
            )
        )
    cap = rng.choice([None, rng.randint(50, 500)])
    forced: frozenset[str] = frozenset()
    if rng.random() < 0.3:
        forced = frozenset(rng.sample([it.id for it in items], rng.randint(0, 2)))
    return PackingInput(
        gas_limit=rng.randint(0, 1200), items=tuple(items), max_gas_per_searcher=cap, forced=forced
    )


def exact_vcg_payments(inp: PackingInput, packing: Packing) -> dict[str, int]:
    """The exact VCG payment of each winner of ``packing`` (not necessarily an optimal block):
    clamp(OPT(-w) - (V(S) - b_w), 0, b_w), OPT(-w) proven by HiGHS with presolve off (its
    presolve returned a suboptimal "optimal" on one of these slots; see ordering/exact.py)."""
    bids = {it.id: it.bid_wei for it in inp.items}
    out = {}
    for w in packing.included:
        opt, proven = pack_exact(without(inp, w), presolve=False)
        assert proven
        others = packing.revenue_wei - bids[w]
        out[w] = min(max(opt.revenue_wei - others, 0), bids[w])
    return out
