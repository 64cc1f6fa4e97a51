"""``blockspace solve`` and the engine's close agree on a shared slot.

A generated slot of three rollups (real signed bundles, a quarter spanning two or three
rollups, hot storage keys, searcher caps and a public-lane reserve) is closed by the engine's
core (``compute_slot_results``) and, written as a ``solve`` document (each leg's tx hashes,
(sender, nonce) pairs and written keys: the engine's conflict keys), solved by the real CLI
process. Both give the same blocks, in the same order, and the same payments."""

from __future__ import annotations

import random

import pytest

from auction.encoding import ZERO_HASH
from auction.legs import compute_bid_copies
from auction.presets import Policy, Rollup
from auction.results import SlotPart, compute_slot_results
from auction.types import Bid, LoggedEvent
from tests.factories import key, make_bid, make_cross_bid, tx
from tests.test_solve_joint_cli import run

SLOT = 900
IDS = (10, 8453, 167_001)
HOT = [("0x" + "ee" * 20, "0x" + f"{i:064x}") for i in range(3)]


def rollups() -> dict[int, Rollup]:
    return {
        r: Rollup(r, policy=Policy(gas_limit=400_000 + 100_000 * i, max_gas_share_per_searcher=0.5,
                                   reserved_public_gas=50_000))
        for i, r in enumerate(IDS)
    }  # fmt: skip


def generate(seed: int) -> list[Bid]:
    """A slot's bids (one per bundle; a cross bundle's copy for its lowest rollup)."""
    rng = random.Random(seed)
    served = rollups()
    bids = []
    for _ in range(18):
        k = key(900 + rng.randrange(6))
        span = sorted(rng.sample(IDS, rng.choice([2, 2, 3]))) if rng.random() < 0.25 else \
            [rng.choice(IDS)]  # fmt: skip
        txs = [tx(k, chain_id=r, gas=rng.choice([21_000, 60_000, 90_000]),
                  access=[rng.choice(HOT)] if rng.random() < 0.5 else None)
               for r in span]  # fmt: skip
        bid = rng.randrange(1, 50) * 10**14
        make = make_cross_bid if len(span) > 1 else make_bid
        out = make(k, txs, SLOT, bid_wei=bid, rollups=served)
        bids.append(out[0] if isinstance(out, tuple) else out)
    return bids


def solve_document(bids: list[Bid]) -> dict:
    """The slot as ``blockspace solve``'s multi-rollup form (bundles in the engine's order)."""
    served = rollups()
    order = sorted(bids, key=lambda b: b.rollups[0])  # rollup, then log order: the engine's
    bundles = []
    for b in order:
        legs = []
        for c in compute_bid_copies(b):
            legs.append({"rollup": c.rollup, "gas": c.gas, "txs": [t.hash for t in c.txs],
                         "nonces": [[t.sender, t.nonce] for t in c.txs],
                         "writes": [w for t in c.txs for w in t.access_keys]})  # fmt: skip
        bundles.append({"id": b.bid_id, "searcher": b.searcher, "bid": str(b.bid_wei),
                        "legs": legs})  # fmt: skip
    return {
        "rollups": [{"id": r, "gas_limit": p.policy.gas_limit,
                     "policy": {"max_gas_share_per_searcher": p.policy.max_gas_share_per_searcher,
                                "reserved_public_gas": p.policy.reserved_public_gas}}
                    for r, p in served.items()],
        "policy": {"payment_rule": "first_price", "time_budget_ms": 50},
        "bundles": bundles,
    }  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_solve_and_the_engine_give_the_same_blocks(tmp_path, seed) -> None:
    bids = generate(seed)
    served = rollups()
    logs: dict[int, list[LoggedEvent]] = {r: [] for r in IDS}
    for i, b in enumerate(bids):
        for c in compute_bid_copies(b):
            logs[c.rollup].append(LoggedEvent(f"{i + 1}-0", c))
    parts = [SlotPart(served[r], ZERO_HASH, logs[r]) for r in IDS]
    results = compute_slot_results(SLOT, 1, parts)
    code, out = run(tmp_path, solve_document(bids))
    assert code == 0, out
    solved = {b["rollup"]: b["included"] for b in out["blocks"]}
    engine = {r.rollup: [w.bid_id for w in r.block.bundles] for r in results}
    assert solved == engine
    assert any(w.legs for r in results for w in r.block.bundles)  # a cross bundle won
    paid: dict[str, int] = {}
    for r in results:
        for w in r.block.bundles:
            paid[w.bid_id] = paid.get(w.bid_id, 0) + w.payment_wei
    assert {k: int(v) for k, v in out["payments"].items()} == paid
    assert int(out["revenue"]) == sum(r.winning_bids_wei for r in results)
    assert int(out["upper_bound"]) == sum(r.upper_bound_wei for r in results)
