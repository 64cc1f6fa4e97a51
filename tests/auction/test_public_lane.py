"""The public lane, the inclusion list and protected transactions: hard rules of the block."""

from __future__ import annotations

import orjson

from auction import codec
from auction import constants as C
from auction.encoding import ZERO_HASH, compute_pending_root
from auction.presets import Policy, Rollup
from auction.results import compute_slot_result
from auction.transactions import decode_transaction
from auction.types import LoggedEvent, PendingTx, PublicTx
from tests.factories import CHAIN, key, make_bid, tx

SLOT = 700


def public(raw: bytes, *, seq: str, protected: bool = False) -> LoggedEvent:
    return LoggedEvent(seq, PublicTx(CHAIN, decode_transaction(raw), 0, protected))


def hashes(result) -> list[str]:
    return [decode_transaction(t).hash for t in result.block.txs]


def test_public_lane_fills_first_come_first_served_after_bundles():
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=200_000, reserved_public_gas=50_000))
    a, b, c = tx(key(20), gas=21_000), tx(key(21), gas=21_000), tx(key(22), gas=21_000)
    bundle = make_bid(key(1), [tx(key(1), gas=150_000)], SLOT)
    log = [public(a, seq="1-0"), LoggedEvent("2-0", bundle), public(b, seq="3-0"),
           public(c, seq="4-0")]
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log)
    assert r.block.bundles[0].bid_id == bundle.bid_id
    # 200k - 150k = 50k of room: the two earliest public txs fit, the third waits.
    assert hashes(r)[1:] == [decode_transaction(a).hash, decode_transaction(b).hash]
    assert r.block.public_tx_count == 2
    assert [p.tx.hash for p in r.pending] == [decode_transaction(c).hash]
    assert r.block.pending_root == compute_pending_root(r.pending)


def test_reserved_gas_is_kept_from_bundles():
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=200_000, reserved_public_gas=100_000))
    big = make_bid(key(1), [tx(key(1), gas=150_000)], SLOT, bid_wei=10**18)
    small = make_bid(key(2), [tx(key(2), gas=90_000)], SLOT, bid_wei=10**15)
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH,
                            [LoggedEvent("1-0", big), LoggedEvent("2-0", small)])
    assert [w.bid_id for w in r.block.bundles] == [small.bid_id]
    assert r.unconstrained_bids_wei == 10**18  # the price of fairness is visible
    # A committee member skips that second packing: same block, no analyst figure.
    lean = compute_slot_result(rollup, SLOT, 1, ZERO_HASH,
                               [LoggedEvent("1-0", big), LoggedEvent("2-0", small)],
                               price_of_fairness=False)
    assert lean.block == r.block and lean.outcomes == r.outcomes
    assert lean.unconstrained_bids_wei == lean.winning_bids_wei == 10**15


def test_due_public_tx_is_included_and_blocks_conflicting_bundles():
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=100_000, inclusion_after_slots=2))
    k = key(30)
    waiting = decode_transaction(tx(k, nonce=7, gas=60_000))
    carried = (PendingTx(waiting, SLOT - 2, "1-0"),)
    # A rich bundle reuses the waiting tx's (sender, nonce): it would invalidate it.
    rival = make_bid(k, [tx(k, nonce=7, gas=60_000, tip_gwei=9)], SLOT, bid_wei=10**18)
    other = make_bid(key(31), [tx(key(31), gas=30_000)], SLOT, bid_wei=10**15)
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH,
                            [LoggedEvent("2-0", rival), LoggedEvent("3-0", other)], carried)
    assert waiting.hash in hashes(r)
    assert {o.bid.bid_id: o.outcome for o in r.outcomes} == {
        rival.bid_id: C.OUTCOME_LOST, other.bid_id: C.OUTCOME_WON}
    assert r.pending == ()


def test_not_yet_due_tx_can_lose_its_nonce_to_a_bundle():
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=100_000, inclusion_after_slots=5))
    k = key(30)
    waiting = decode_transaction(tx(k, nonce=8, gas=60_000))
    rival = make_bid(k, [tx(k, nonce=8, gas=60_000, tip_gwei=9)], SLOT, bid_wei=10**18)
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, [LoggedEvent("2-0", rival)],
                            (PendingTx(waiting, SLOT - 1, "1-0"),))
    assert waiting.hash not in hashes(r)
    assert r.pending == ()  # invalid now: its nonce is used in the block


def test_protected_tx_may_only_open_a_bundle():
    rollup = Rollup(CHAIN)
    victim_raw = tx(key(40))
    victim = public(victim_raw, seq="1-0", protected=True)
    backrun = make_bid(key(1), [victim_raw, tx(key(1))], SLOT, bid_wei=10**15)
    sandwich = make_bid(key(2), [tx(key(2)), victim_raw, tx(key(2))], SLOT, bid_wei=10**17)
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH,
                            [victim, LoggedEvent("2-0", backrun), LoggedEvent("3-0", sandwich)])
    outcome = {o.bid.bid_id: (o.outcome, o.code) for o in r.outcomes}
    assert outcome[backrun.bid_id] == (C.OUTCOME_WON, "")
    assert outcome[sandwich.bid_id] == (C.OUTCOME_REJECTED, "protected_tx_not_first")
    # The victim is included once, inside the back-run, not again in the lane.
    assert hashes(r).count(decode_transaction(victim_raw).hash) == 1
    # The refusal code survives the JSON a store keeps, with bids inline or by log seq.
    log = {"1-0": victim.event, "2-0": backrun, "3-0": sandwich}
    assert codec.result_from_json(orjson.loads(orjson.dumps(codec.result_to_json(r)))) == r
    by_seq = orjson.loads(orjson.dumps(codec.result_to_json(r, with_bids=False)))
    assert "bid" not in by_seq["outcomes"][0]
    assert codec.result_from_json(by_seq, log) == r


def test_pending_carries_over_and_chains_roots():
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=30_000))
    a, b = tx(key(50), gas=21_000), tx(key(51), gas=21_000)
    r1 = compute_slot_result(rollup, SLOT, 1, ZERO_HASH,
                             [public(a, seq="1-0"), public(b, seq="1-1")])
    assert len(r1.pending) == 1
    r2 = compute_slot_result(rollup, SLOT + 1, 2, r1.block.block_hash, [], r1.pending)
    assert r2.block.carried_root == r1.block.pending_root
    assert hashes(r2) == [r1.pending[0].tx.hash] and r2.pending == ()
