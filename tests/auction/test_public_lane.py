"""The public lane, the inclusion list and protected transactions: hard rules of the block."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction import codec
from auction import constants as C
from auction import errors as E
from auction.bundles import compute_public_tx
from auction.encoding import ZERO_HASH, compute_pending_root
from auction.fairness import check_block_fairness
from auction.pool import PoolView, compute_max_arrivals_per_slot, is_public_tx_admissible
from auction.presets import MAINNET, MINIMAL, Policy, Rollup
from auction.results import compute_due, compute_pool, compute_slot_result
from auction.transactions import compute_priority_fee_wei, decode_transaction
from auction.types import Bid, LoggedEvent, PendingTx, PublicTx, SlotResult, Tx
from tests.factories import CHAIN, GWEI, key, make_bid, tx

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


# --- the pool's bounds: fee floor, gas cap, age, per-sender and size caps -----------------------


def intake(raw: bytes, policy: Policy = MAINNET.policy) -> PublicTx:
    return compute_public_tx(["0x" + raw.hex()], rollups={CHAIN: Rollup(CHAIN, policy=policy)},
                             now_ms=0)


def pending(raw: bytes, arrival_slot: int, seq: str) -> PendingTx:
    return PendingTx(decode_transaction(raw), arrival_slot, seq)


def test_zero_fee_public_tx_refused_at_intake():
    with pytest.raises(E.FeeTooLow) as excinfo:
        intake(tx(key(60), tip_gwei=0))
    assert excinfo.value.code == "fee_too_low"
    floor = MAINNET.policy.min_public_fee_per_gas_wei
    assert excinfo.value.data == {"fee_per_gas_wei": "0", "min_fee_per_gas_wei": str(floor)}
    # Legacy and access-list txs pay their gas price; the floor is per gas, whatever the type.
    with pytest.raises(E.FeeTooLow):
        intake(tx(key(60), tip_gwei=0, kind=0))
    assert intake(tx(key(60), tip_gwei=1, kind=1)).tx.priority_fee_wei == GWEI


def test_fee_floor_is_the_policys():
    floor = MINIMAL.policy.min_public_fee_per_gas_wei
    raw = tx(key(61), tip_gwei=floor // GWEI)
    assert intake(raw, MINIMAL.policy).tx.priority_fee_wei == floor
    with pytest.raises(E.FeeTooLow):
        intake(raw, MINIMAL.policy.with_(min_public_fee_per_gas_wei=floor + 1))


def test_public_tx_gas_over_the_cap_refused_at_intake():
    # The finding's flood used 30M-gas txs: a whole block each, over L1's per-tx cap (2**24).
    with pytest.raises(E.TxGasTooHigh) as excinfo:
        intake(tx(key(62), gas=30_000_000))
    assert excinfo.value.code == "tx_gas_too_high"
    assert intake(tx(key(62), gas=2**24)).tx.gas_limit == 2**24
    cap = MINIMAL.policy.max_public_tx_gas
    assert intake(tx(key(62), gas=cap), MINIMAL.policy).tx.gas_limit == cap
    with pytest.raises(E.TxGasTooHigh):
        intake(tx(key(62), gas=cap + 1), MINIMAL.policy)
    # The cap never exceeds the block.
    small_block = MAINNET.policy.with_(gas_limit=100_000)
    with pytest.raises(E.TxGasTooHigh):
        intake(tx(key(62), gas=100_001), small_block)


def test_logged_tx_the_pool_refuses_never_waits():
    # However a zero-fee or oversized tx reached the log, the close holds it to the same rules.
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=100_000, max_public_tx_gas=50_000))
    free, huge, fair = tx(key(63), tip_gwei=0), tx(key(64), gas=60_000), tx(key(65))
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH,
                            [public(free, seq="1-0"), public(huge, seq="1-1"),
                             public(fair, seq="1-2")])
    assert hashes(r) == [decode_transaction(fair).hash] and r.pending == ()


def test_tx_that_never_fits_is_evicted_at_its_max_age():
    # Bundles win every slot and leave less room than the tx needs: before, it waited for ever.
    policy = Policy(gas_limit=100_000, max_public_tx_age_slots=3)
    rollup = Rollup(CHAIN, policy=policy)
    stuck = tx(key(66), gas=60_000)
    carried: tuple[PendingTx, ...] = ()
    log = [public(stuck, seq="1-0")]
    for s in range(SLOT, SLOT + 5):
        bundle = make_bid(key(1), [tx(key(1), gas=50_000)], s)
        r = compute_slot_result(rollup, s, 1, ZERO_HASH, [*log, LoggedEvent("2-0", bundle)],
                                carried)
        assert [w.bid_id for w in r.block.bundles] == [bundle.bid_id]
        assert decode_transaction(stuck).hash not in hashes(r)
        # It is in the pool of slots SLOT..SLOT+3 (ages 0..3), then gone.
        assert [p.tx.hash for p in r.pending] == (
            [decode_transaction(stuck).hash] if s < SLOT + 3 else [])
        carried, log = r.pending, []


def test_full_pool_keeps_the_best_paying_then_the_oldest():
    policy = Policy(gas_limit=21_000, max_pending_public_txs=3)
    rollup = Rollup(CHAIN, policy=policy)
    block_filler = tx(key(70), tip_gwei=9)  # pays most and arrived first: it is the block
    carried = (pending(block_filler, SLOT - 1, "0-0"),
               pending(tx(key(71), tip_gwei=2), SLOT - 1, "0-1"),
               pending(tx(key(72), tip_gwei=5), SLOT - 1, "0-2"))
    cheap_new, rich_new = tx(key(73), tip_gwei=1), tx(key(74), tip_gwei=7)
    tie_new = tx(key(75), tip_gwei=2)
    log = [public(cheap_new, seq="1-0"), public(rich_new, seq="1-1"), public(tie_new, seq="1-2")]
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log, carried)
    assert hashes(r) == [carried[0].tx.hash]
    # Waiting: 2 (old), 5, 1, 7, 2 (new). Kept: 7, 5, and the older of the two at 2 gwei; the
    # pool's first-come first-served order is unchanged.
    assert [p.tx.hash for p in r.pending] == [
        carried[1].tx.hash, carried[2].tx.hash, decode_transaction(rich_new).hash]
    assert r.block.pending_root == compute_pending_root(r.pending)


def test_each_sender_keeps_at_most_its_cap():
    policy = Policy(gas_limit=21_000, max_public_txs_per_sender=2)
    rollup = Rollup(CHAIN, policy=policy)
    k = key(80)
    own = [tx(k, nonce=n, tip_gwei=tip) for n, tip in ((1, 3), (2, 5), (3, 4), (4, 4))]
    other = tx(key(81), tip_gwei=1)
    filler = tx(key(82), tip_gwei=9)
    log = [public(filler, seq="0-0"), *(public(raw, seq=f"1-{i}") for i, raw in enumerate(own)),
           public(other, seq="2-0")]
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log)
    assert hashes(r) == [decode_transaction(filler).hash]
    # The sender's best two (5, then the older 4) stay; the cheap other sender is not crowded out.
    assert [p.tx.hash for p in r.pending] == [
        decode_transaction(own[1]).hash, decode_transaction(own[2]).hash,
        decode_transaction(other).hash]


def test_due_tx_is_still_included_at_the_max_age():
    policy = Policy(gas_limit=100_000, inclusion_after_slots=2, max_public_tx_age_slots=2)
    rollup = Rollup(CHAIN, policy=policy)
    waiting = tx(key(83), gas=60_000)
    rich = make_bid(key(1), [tx(key(1), gas=90_000)], SLOT, bid_wei=10**18)
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, [LoggedEvent("2-0", rich)],
                            (pending(waiting, SLOT - 2, "1-0"),))
    assert hashes(r) == [decode_transaction(waiting).hash]  # due: the lane grew, the bundle lost
    assert r.pending == ()


def test_policy_whose_pool_forgets_txs_before_they_are_due_is_refused():
    with pytest.raises(ValueError, match="inclusion_after_slots"):
        Policy(inclusion_after_slots=5, max_public_tx_age_slots=4)
    with pytest.raises(ValueError):
        MAINNET.policy.with_(max_public_txs_per_sender=0)


# --- property: the pool's invariants hold after every slot, whatever arrives ---------------------

PROP = Rollup(CHAIN, policy=Policy(
    gas_limit=200_000, reserved_public_gas=30_000, inclusion_after_slots=2, time_budget_ms=5,
    max_pending_public_txs=6, max_public_txs_per_sender=2, min_public_fee_per_gas_wei=GWEI,
    max_public_tx_gas=100_000, max_public_tx_age_slots=3,
))


@functools.cache
def signed(sender: int, nonce: int, tip_gwei: int, gas: int) -> bytes:
    return tx(key(100 + sender), nonce=nonce, tip_gwei=tip_gwei, gas=gas)


@functools.cache
def decoded(raw: bytes) -> Tx:
    return decode_transaction(raw)


@functools.cache
def bundle(searcher: int, sender: int, nonce: int, gas: int, bid_wei: int, slot: int) -> Bid:
    return make_bid(key(200 + searcher), [signed(sender, nonce, 2, gas)], slot, bid_wei=bid_wei,
                    rollups={CHAIN: PROP})


def check_pool(rollup: Rollup, slot: int, carried: Sequence[PendingTx],
               log: Sequence[LoggedEvent], r: SlotResult, parent: SlotResult | None) -> None:
    """Every rule of the pool, checked on one closed slot (and every fairness rule of the block,
    by the core's own checker)."""
    check_block_fairness(rollup, slot, carried, log, r.block)
    policy, pending = rollup.policy, r.pending
    # The roots chain: this slot started from its parent's pending pool and commits to its own.
    assert r.block.carried_root == compute_pending_root(carried)
    if parent is not None:
        assert r.block.carried_root == parent.block.pending_root
    assert r.block.pending_root == compute_pending_root(pending)
    # Bounded: size, per sender, age; and nothing the pool refuses ever waits.
    assert len(pending) <= policy.max_pending_public_txs
    assert max(Counter(p.tx.sender for p in pending).values(), default=0) <= (
        policy.max_public_txs_per_sender)
    for p in pending:
        assert slot + 1 - p.arrival_slot <= policy.max_public_tx_age_slots
        assert is_public_tx_admissible(policy, p.tx)
    # The inclusion list: every due tx is in the block.
    pool = compute_pool(rollup, slot, carried, log)
    block_txs = [decoded(t) for t in r.block.txs]
    in_block = {t.hash for t in block_txs}
    assert all(p.tx.hash in in_block for p in compute_due(rollup, slot, pool))
    # The lane only takes pool txs.
    index = {p.tx.hash: i for i, p in enumerate(pool)}
    lane = block_txs[len(block_txs) - r.block.public_tx_count:]
    assert all(t.hash in index for t in lane)
    # Pending is the pool's txs that still wait, in first-come first-served order...
    order = [index[p.tx.hash] for p in pending]
    assert order == sorted(order)
    nonces = {(t.sender, t.nonce) for t in block_txs}
    eligible = [p for p in pool if p.tx.hash not in in_block
                and (p.tx.sender, p.tx.nonce) not in nonces
                and slot + 1 - p.arrival_slot <= policy.max_public_tx_age_slots]
    kept = {p.tx.hash for p in pending}
    assert kept <= {p.tx.hash for p in eligible}

    # ... and a tx that could wait was evicted only by better ones (fee per gas, then age).
    def rank(p: PendingTx) -> tuple[int, int]:
        return -compute_priority_fee_wei(p.tx), index[p.tx.hash]

    for p in eligible:
        if p.tx.hash in kept:
            continue
        own = [q for q in pending if q.tx.sender == p.tx.sender]
        by_sender = len(own) == policy.max_public_txs_per_sender and all(
            rank(q) < rank(p) for q in own)
        by_size = len(pending) == policy.max_pending_public_txs and all(
            rank(q) < rank(p) for q in pending)
        assert by_sender or by_size, p


def check_view(view: PoolView, senders: set[str]) -> None:
    policy = view.policy
    assert len(view) <= policy.max_pending_public_txs
    assert all(view.count_sender(s) <= policy.max_public_txs_per_sender for s in senders)
    assert view.logged <= compute_max_arrivals_per_slot(policy)


arrival = st.tuples(
    st.integers(0, 4),  # sender
    st.integers(0, 3),  # nonce
    st.sampled_from([0, 1, 2, 3, 5]),  # priority fee, gwei (0 is below the floor)
    st.sampled_from([21_000, 60_000, 100_000, 150_000]),  # gas (150k is over the cap)
    st.booleans(),  # through the intake view (else straight into the log: a racing engine)
    st.booleans(),  # protected
)
bundle_spec = st.tuples(
    st.integers(0, 2),  # searcher
    st.integers(0, 4),  # the sender of its tx (a public sender's nonce may be taken)
    st.integers(0, 3),
    st.sampled_from([21_000, 50_000, 100_000]),
    st.integers(1, 5),
)
slot_step = st.tuples(st.integers(1, 3), st.lists(arrival, max_size=10),
                      st.lists(bundle_spec, max_size=2))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(slot_step, min_size=1, max_size=8))
def test_pool_invariants_hold_after_every_slot(steps):
    view = PoolView(PROP.policy)
    carried: tuple[PendingTx, ...] = ()
    parent: SlotResult | None = None
    slot = SLOT
    senders: set[str] = set()
    for gap, arrivals, bundles in steps:
        slot += gap  # a gap: slots that failed, or had nothing to close
        view.set_pending(carried)
        log: list[LoggedEvent] = []
        for i, (sender, nonce, tip, gas, via_intake, protected) in enumerate(arrivals):
            raw = signed(sender, nonce, tip, gas)
            senders.add(decoded(raw).sender)
            if via_intake:
                try:
                    ptx = compute_public_tx(["0x" + raw.hex()], rollups={CHAIN: PROP}, now_ms=0,
                                            protected=protected)
                    if not view.check(ptx.tx):
                        continue
                except (E.FeeTooLow, E.TxGasTooHigh, E.SenderLimitExceeded, E.PublicPoolFull):
                    continue
                view.add(ptx.tx)
                check_view(view, senders)
            else:
                ptx = PublicTx(CHAIN, decoded(raw), 0, protected)
            log.append(LoggedEvent(f"{slot}-{i}", ptx))
        for j, (searcher, sender, nonce, gas, bid) in enumerate(bundles):
            log.append(LoggedEvent(f"{slot}-{100 + j}",
                                   bundle(searcher, sender, nonce, gas, bid * 10**15, slot)))
        r = compute_slot_result(PROP, slot, 1, parent.block.block_hash if parent else ZERO_HASH,
                                log, carried, price_of_fairness=False)
        check_pool(PROP, slot, carried, log, r, parent)
        carried, parent = r.pending, r
