"""The fairness checker (auction/fairness.py) as the core's invariant checker: every block the
slot function builds keeps every rule, over random slots; and the checker names each broken rule
when a block is tampered with (so it can fail)."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction.encoding import ZERO_HASH
from auction.errors import FairnessViolation, ForcedTxMissing
from auction.fairness import check_block_fairness
from auction.presets import Policy, Rollup
from auction.results import compute_slot_result
from auction.transactions import decode_transaction
from auction.types import Bid, LoggedEvent, PublicTx, WinningBundle
from tests.factories import CHAIN, key, make_bid, tx

SLOT = 900
POOL = ("0x" + "ab" * 20, "0x" + "00" * 32)


@functools.cache
def signed(sender: int, nonce: int, gas: int, hot: bool) -> bytes:
    return tx(key(300 + sender), nonce=nonce, gas=gas, access=[POOL] if hot else None)


@functools.cache
def public_event(sender: int, nonce: int, protected: bool, seq: int) -> LoggedEvent:
    return LoggedEvent(f"{SLOT}-{seq}",
                       PublicTx(CHAIN, decode_transaction(signed(sender, nonce, 21_000, False)),
                                0, protected))


def bundle_of(rollup: Rollup, searcher: int, txs: list[bytes], bid: int) -> Bid:
    return make_bid(key(400 + searcher), txs, SLOT, bid_wei=bid * 10**15,
                    rollups={CHAIN: rollup})


tx_spec = st.tuples(st.integers(0, 5), st.integers(0, 2), st.sampled_from([21_000, 60_000]),
                    st.booleans())
bundle_spec = st.tuples(st.integers(0, 2), st.lists(tx_spec, min_size=1, max_size=2),
                        st.integers(1, 9), st.sampled_from([None, 0, 1]))
public_spec = st.tuples(st.integers(6, 8), st.integers(0, 1), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bundles=st.lists(bundle_spec, max_size=8),
    publics=st.lists(public_spec, max_size=4),
    share=st.sampled_from([1.0, 0.5, 0.3]),
    reserved=st.sampled_from([0, 21_000, 60_000]),
    due_after=st.sampled_from([0, 1]),
)
def test_every_block_keeps_every_fairness_rule(bundles, publics, share, reserved, due_after):
    rollup = Rollup(CHAIN, policy=Policy(
        gas_limit=300_000, max_gas_share_per_searcher=share, reserved_public_gas=reserved,
        inclusion_after_slots=due_after, time_budget_ms=5))
    log = [public_event(s, n, p, i) for i, (s, n, p) in enumerate(publics)]
    # Carried txs of an earlier slot (due at once when the inclusion list is on)
    carried = tuple(
        dataclasses.replace(p, arrival_slot=SLOT - 1)
        for p in compute_slot_result(rollup, SLOT - 1, 1, ZERO_HASH, log[:1]).pending
    ) if log else ()
    for j, (searcher, specs, bid, protected_at) in enumerate(bundles):
        raws = [signed(*spec) for spec in specs]
        if protected_at is not None and publics:  # a bundle around someone's private tx
            victim = signed(publics[0][0], publics[0][1], 21_000, False)
            raws.insert(min(protected_at, len(raws)), victim)
        try:
            b = bundle_of(rollup, searcher, raws, bid)
        except Exception:  # noqa: BLE001 - e.g. a duplicate tx: intake refuses it, skip
            continue
        log.append(LoggedEvent(f"{SLOT}-{100 + j}", b))
    r = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log, carried, price_of_fairness=False)
    check_block_fairness(rollup, SLOT, carried, log, r.block)


def _slot_with_two_conflicting_bids() -> tuple[Rollup, list[LoggedEvent], Bid, Bid]:
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=300_000, time_budget_ms=5))
    a = bundle_of(rollup, 0, [signed(0, 0, 60_000, True)], 5)
    b = bundle_of(rollup, 1, [signed(1, 0, 60_000, True)], 3)  # same hot storage key as a
    return rollup, [LoggedEvent("1-0", a), LoggedEvent("2-0", b)], a, b


def test_the_checker_names_a_conflict_it_is_shown() -> None:
    rollup, log, a, b = _slot_with_two_conflicting_bids()
    block = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log).block
    check_block_fairness(rollup, SLOT, (), log, block)
    both = dataclasses.replace(block, bundles=(*block.bundles, WinningBundle(
        b.bid_id, b.bundle_hash, b.searcher, b.bid_wei, b.bid_wei, b.gas)))
    with pytest.raises(FairnessViolation) as refused:
        check_block_fairness(rollup, SLOT, (), log, both)
    assert refused.value.data["rule"] == "conflict"


def test_the_checker_names_a_searcher_over_its_cap_and_a_missing_due_tx() -> None:
    rollup = Rollup(CHAIN, policy=Policy(gas_limit=300_000, max_gas_share_per_searcher=0.25,
                                         inclusion_after_slots=1, time_budget_ms=5))
    big = bundle_of(rollup, 0, [signed(3, 1, 60_000, False), signed(4, 1, 60_000, False)], 9)
    log = [LoggedEvent("1-0", big)]
    block = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, log).block
    assert block.bundles == ()  # 120k > the 75k cap
    lie = dataclasses.replace(block, bundles=(WinningBundle(
        big.bid_id, big.bundle_hash, big.searcher, big.bid_wei, big.bid_wei, big.gas),))
    with pytest.raises(FairnessViolation) as refused:
        check_block_fairness(rollup, SLOT, (), log, lie)
    assert refused.value.data["rule"] == "searcher_cap"
    due = dataclasses.replace(public_event(7, 1, False, 0).event.tx)  # type: ignore[union-attr]
    from auction.types import PendingTx

    carried = (PendingTx(due, SLOT - 1, "0-0"),)
    empty = compute_slot_result(rollup, SLOT, 1, ZERO_HASH, [], carried).block
    check_block_fairness(rollup, SLOT, carried, [], empty)
    with pytest.raises(ForcedTxMissing):
        check_block_fairness(rollup, SLOT, carried, [],
                             dataclasses.replace(empty, txs=(), public_tx_count=0))
