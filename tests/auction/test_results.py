"""Closing a slot: a valid, deterministic block and an outcome for every bid."""

from __future__ import annotations

import random

from auction import constants as C
from auction.encoding import ZERO_HASH, compute_block_hash
from auction.presets import Policy, Rollup
from auction.results import compute_packing_input, compute_slot_result
from auction.transactions import decode_transaction
from auction.types import LoggedEvent
from ordering.packer import pack
from ordering.reference import check_packing
from tests.factories import CHAIN, key, make_bid, tx

SLOT = 500
POOL = "0x" + "aa" * 20
SLOT0 = "0x" + "00" * 32


def _log(seed: int = 0) -> list[LoggedEvent]:
    rng = random.Random(seed)
    victim = tx(key(99), gas=100_000)
    log = []
    for i in range(12):
        k = key(i % 5)
        kind = rng.random()
        if kind < 0.3:
            txs = [victim, tx(k, gas=60_000)]
        elif kind < 0.6:
            txs = [tx(k, gas=rng.choice([21_000, 200_000]), access=[(POOL, SLOT0)])]
        else:
            txs = [tx(k, gas=rng.choice([21_000, 500_000]))]
        uuid = f"{i % 3:032x}" if rng.random() < 0.3 else None
        log.append(LoggedEvent(f"{i}-0", make_bid(k, txs, SLOT, bid_wei=rng.randint(1, 10**16),
                                                   uuid=uuid)))
    return log


def test_result_is_valid_and_complete():
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=1_000_000, max_gas_share_per_searcher=0.5))
    log = _log()
    r = compute_slot_result(rollup, SLOT, 1_002_000, ZERO_HASH, log)
    live = [o.bid for o in r.outcomes if o.outcome in (C.OUTCOME_WON, C.OUTCOME_LOST)]
    inp = compute_packing_input(rollup, live)
    check_packing(inp, pack(inp))
    assert len(r.outcomes) == len(log)
    won = [o for o in r.outcomes if o.outcome == C.OUTCOME_WON]
    assert [o.bid.bid_id for o in won] != [] and len(won) == len(r.block.bundles)
    assert sum(o.payment_wei for o in won) == r.block.revenue_wei
    assert all(o.payment_wei <= o.bid.bid_wei for o in won)
    assert r.block.gas_used <= rollup.policy.gas_limit
    assert r.upper_bound_wei >= r.winning_bids_wei
    assert r.unconstrained_bids_wei >= r.winning_bids_wei


def test_same_log_same_block_bit_for_bit():
    rollup = Rollup(CHAIN)
    log = _log(3)
    a = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log)
    b = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, list(log))
    assert a == b


def test_block_hash_commits_to_contents():
    r = compute_slot_result(Rollup(CHAIN), SLOT, 1, ZERO_HASH, _log(1))
    b = r.block
    fields = dict(rollup=b.rollup, slot=b.slot, parent_hash=b.parent_hash,
                  bid_set_root=b.bid_set_root, gas_used=b.gas_used, revenue_wei=b.revenue_wei,
                  bundles=b.bundles, tx_hashes=[decode_transaction(t).hash for t in b.txs])
    assert compute_block_hash(**fields) == b.block_hash
    fields["revenue_wei"] = b.revenue_wei + 1
    assert compute_block_hash(**fields) != b.block_hash


def test_empty_slot_gives_empty_block():
    r = compute_slot_result(Rollup(CHAIN), SLOT, 1, ZERO_HASH, [])
    assert r.block.bundles == () and r.block.gas_used == 0 and r.outcomes == ()


def test_parent_hash_chains():
    a = compute_slot_result(Rollup(CHAIN), SLOT, 1, ZERO_HASH, [])
    b = compute_slot_result(Rollup(CHAIN), SLOT + 1, 2, a.block.block_hash, [])
    assert b.block.parent_hash == a.block.block_hash and b.block.block_hash != a.block.block_hash
