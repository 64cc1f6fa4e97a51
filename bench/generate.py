"""Seeded generator of realistic packing instances (what a busy rollup slot looks like).

Shape of a slot, from what builders see on mainnet:
- many searchers with Zipf activity: a few send most bundles;
- gas per bundle from 21k (one back-run tx) to several million (liquidations, multi-hop arbs);
- heavy-tailed bids: a lognormal priority price per gas times a Pareto "MEV" multiplier, so a few
  bundles carry most of the value (sums routinely exceed int64 wei);
- competing versions of one bundle: the same searcher re-sends a bundle with other bids, all
  sharing its (sender, nonce) key;
- back-runs: many bundles back-run one popular victim tx and share its hash;
- hot storage keys (a pool's reserves slot) written by many bundles, with Zipf popularity;
- every bundle also has its own tx hashes and some cold storage keys.
"""

from __future__ import annotations

import argparse

import numpy as np

from ordering.problem import Item, PackingInput, compute_searcher_gas_cap

GAS_LIMIT = 30_000_000


def _zipf_weights(m: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, m + 1, dtype=np.float64) ** a
    return w / w.sum()


def generate_instance(
    n: int,
    seed: int = 0,
    gas_limit: int = GAS_LIMIT,
    searcher_share: float = 1.0,
    n_forced: int = 0,
) -> PackingInput:
    """A slot of ``n`` bundles. Deterministic in (n, seed, gas_limit, searcher_share, n_forced)."""
    rng = np.random.default_rng(seed)
    n_searchers = max(3, n // 25)
    n_victims = max(2, n // 12)
    n_hot = max(3, int(8 + 2 * np.sqrt(n)))
    searcher_w = _zipf_weights(n_searchers, 1.1)
    victim_w = _zipf_weights(n_victims, 1.0)
    hot_w = _zipf_weights(n_hot, 1.2)

    items: list[Item] = []
    nonce = np.zeros(n_searchers, dtype=np.int64)
    i = 0
    while i < n:
        s = int(rng.choice(n_searchers, p=searcher_w))
        # One bundle "family": 1 + geometric versions competing for the same (sender, nonce).
        versions = min(n - i, 1 + int(rng.geometric(0.6)) - 1 + (1 if rng.random() < 0.3 else 0))
        versions = max(1, versions)
        sender_nonce = f"sn:{s}:{int(nonce[s])}"
        nonce[s] += 1
        kind = rng.random()
        if kind < 0.45:
            gas0 = int(rng.lognormal(np.log(120_000), 0.5))  # back-run
        elif kind < 0.85:
            gas0 = int(rng.lognormal(np.log(450_000), 0.6))  # arbitrage
        else:
            gas0 = int(rng.lognormal(np.log(1_500_000), 0.7))  # liquidation, multi-hop
        gas0 = int(min(max(gas0, 21_000), 6_000_000))
        base_keys: list[str] = [sender_nonce]
        if kind < 0.45 or rng.random() < 0.15:
            base_keys.append(f"victim:{int(rng.choice(n_victims, p=victim_w))}")
        n_hot_keys = int(rng.choice(4, p=[0.35, 0.4, 0.18, 0.07]))
        for _ in range(n_hot_keys):
            base_keys.append(f"hot:{int(rng.choice(n_hot, p=hot_w))}")
        for _ in range(int(rng.integers(0, 3))):
            base_keys.append(f"slot:{int(rng.integers(0, 50 * n + 1000))}")
        price = rng.lognormal(np.log(3e9), 1.0)  # wei per gas
        mev = (rng.pareto(1.6) + 1.0) if rng.random() < 0.5 else 1.0
        for v in range(versions):
            gas = int(min(max(gas0 + int(rng.integers(-2_000, 20_000)), 21_000), 6_000_000))
            bid = int(gas * price * mev * rng.uniform(0.8, 1.25))
            keys = [*base_keys, f"tx:{i}"]
            items.append(
                Item(
                    id=f"0x{seed:04x}{i:06x}",
                    searcher=f"searcher{s}",
                    bid_wei=bid,
                    gas=gas,
                    keys=tuple(keys),
                )
            )
            i += 1
            if v + 1 >= versions:
                break
    order = rng.permutation(len(items))
    shuffled = tuple(items[int(j)] for j in order)
    forced: frozenset[str] = frozenset()
    if n_forced:
        # Forced bundles: the cheapest-gas items with disjoint keys (an inclusion list).
        taken: set[str] = set()
        picked: list[str] = []
        gas_sum = 0
        for it in sorted(items, key=lambda x: (x.gas, x.id)):
            if len(picked) >= n_forced:
                break
            if taken & set(it.keys) or gas_sum + it.gas > gas_limit // 4:
                continue
            taken |= set(it.keys)
            picked.append(it.id)
            gas_sum += it.gas
        forced = frozenset(picked)
    return PackingInput(
        gas_limit=gas_limit,
        items=shuffled,
        max_gas_per_searcher=compute_searcher_gas_cap(gas_limit, searcher_share),
        forced=forced,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="print a summary of a generated instance")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--share", type=float, default=1.0)
    a = ap.parse_args()
    inp = generate_instance(a.n, a.seed, searcher_share=a.share)
    keys: dict[str, int] = {}
    for it in inp.items:
        for k in it.keys:
            keys[k] = keys.get(k, 0) + 1
    sizes = sorted(keys.values(), reverse=True)
    print(
        f"n={len(inp.items)} keys={len(keys)} largest cliques={sizes[:8]} "
        f"total gas={sum(it.gas for it in inp.items):,} limit={inp.gas_limit:,} "
        f"total bids={sum(it.bid_wei for it in inp.items) / 1e18:.3f} ETH "
        f"max bid={max(it.bid_wei for it in inp.items) / 1e18:.3f} ETH"
    )


if __name__ == "__main__":
    main()
