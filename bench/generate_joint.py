"""Seeded generator of shared slots: several rollups, some bundles atomic across two or three.

Each rollup's own traffic is a ``bench.generate`` slot (Zipf searchers, heavy-tailed bids,
competing versions sharing a (sender, nonce) key, back-runs sharing a victim tx, hot pool keys),
with its own gas limit. Searchers are the same names on every rollup (a searcher's cap is per
rollup). A share of the bundle *families* (all versions of one bundle) become cross-rollup
arbitrage: every version gets a leg on one or two other rollups (two thirds one, one third two),
the same legs for the whole family (so the versions still compete, on every rollup), touching a
hot pool key of that rollup and the searcher's (sender, nonce) there; the bid grows with the extra
gas at the bundle's own bid per gas times a cross premium (the price of being atomic).
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.generate import _zipf_weights, generate_instance
from ordering.problem import (
    JointInput,
    JointItem,
    Leg,
    RollupCapacity,
    compute_searcher_gas_cap,
)

# Gas for bundles per rollup, cycled: rollups differ (a big L2, smaller app chains).
GAS_LIMITS = (30_000_000, 15_000_000, 30_000_000, 20_000_000, 10_000_000, 30_000_000,
              15_000_000, 25_000_000)  # fmt: skip


def _family(keys: tuple[str, ...]) -> str:
    """A bundle family is its (sender, nonce) key: all its versions share it."""
    return next(k for k in keys if k.startswith("sn:"))


def generate_joint_instance(
    n: int,
    n_rollups: int,
    seed: int = 0,
    cross_share: float = 0.2,
    searcher_share: float = 1.0,
) -> JointInput:
    """A shared slot of about ``n`` bundles over ``n_rollups`` rollups, ``cross_share`` of them
    cross-rollup. Deterministic in its arguments."""
    rng = np.random.default_rng(10_000 + seed)
    rollup_ids = [1000 + r for r in range(n_rollups)]
    caps = [GAS_LIMITS[r % len(GAS_LIMITS)] for r in range(n_rollups)]
    n_hot = [max(3, int(8 + 2 * np.sqrt(n / n_rollups))) for _ in range(n_rollups)]
    items: list[JointItem] = []
    for r in range(n_rollups):
        single = generate_instance(n // n_rollups, seed * 64 + r, gas_limit=caps[r],
                                   searcher_share=searcher_share)  # fmt: skip
        families: dict[str, list[int]] = {}
        for j, it in enumerate(single.items):
            families.setdefault(_family(it.keys), []).append(j)
        cross: dict[str, list[int]] = {}
        for fam in sorted(families):
            if n_rollups > 1 and rng.random() < cross_share:
                k = 1 if n_rollups == 2 or rng.random() < 2 / 3 else 2
                others = [o for o in range(n_rollups) if o != r]
                cross[fam] = sorted(int(o) for o in rng.choice(others, size=k, replace=False))
        extra: dict[str, list[Leg]] = {}
        premium: dict[str, float] = {}
        for fam, on in cross.items():
            legs = []
            for o in on:
                gas = int(min(max(rng.lognormal(np.log(200_000), 0.5), 21_000), 3_000_000))
                hot = int(rng.choice(n_hot[o], p=_zipf_weights(n_hot[o], 1.2)))
                keys = (f"hot:{hot}", f"sn:x{r}:{fam}", f"tx:x{r}:{fam}")
                legs.append(Leg(rollup_ids[o], gas, keys))
            extra[fam] = legs
            premium[fam] = float(rng.uniform(1.0, 1.6))
        for it in single.items:
            fam = _family(it.keys)
            all_legs = (Leg(rollup_ids[r], it.gas, it.keys), *extra.get(fam, ()))
            bid = it.bid_wei
            if fam in extra:
                more = sum(leg.gas for leg in extra[fam])
                bid = int(bid * (1 + more / max(it.gas, 1)) * premium[fam])
            items.append(JointItem(it.id, it.searcher, bid, all_legs))
    order = rng.permutation(len(items))
    rollups = tuple(
        RollupCapacity(rollup_ids[r], caps[r], compute_searcher_gas_cap(caps[r], searcher_share))
        for r in range(n_rollups)
    )
    return JointInput(rollups, tuple(items[int(j)] for j in order))


def main() -> None:
    ap = argparse.ArgumentParser(description="print a summary of a generated shared slot")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rollups", type=int, default=3)
    ap.add_argument("--cross", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    inp = generate_joint_instance(a.n, a.rollups, a.seed, a.cross)
    cross = sum(1 for it in inp.items if len(it.legs) > 1)
    print(f"n={len(inp.items)} rollups={len(inp.rollups)} cross={cross / len(inp.items):.1%} "
          f"legs={sum(len(it.legs) for it in inp.items)}")  # fmt: skip


if __name__ == "__main__":
    main()
