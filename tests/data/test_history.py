"""The pure parts of api/history.py: records of a slot, refusals, tallies, concentration."""

from __future__ import annotations

import random

import pytest

from api.history import RefusalRecorder
from api.searcher import bundle_params
from auction import constants as C
from auction.hashing import keccak256, to_hex
from auction.history import (
    BidRecord,
    StatsPart,
    compute_clearing_price,
    compute_concentration,
    compute_rejection,
    compute_slot_history,
    compute_stats,
    compute_tallies,
    peek_chain_id,
)
from auction.results import compute_slot_result
from auction.transactions import compute_bundle_hash
from auction.types import LoggedEvent
from node.stores.memory import MemoryStore
from tests.data.slots import FAIR_POLICY, ROLLUPS, SEARCHERS, random_bids, refusal
from tests.factories import CHAIN, key, tx
from tests.stores.bids import PARENT_HASH, ROLLUP, deadline_ms


def result_of(events: list[object], slot: int = 7):  # type: ignore[no-untyped-def]
    log = [LoggedEvent(f"{n + 1}-0", ev) for n, ev in enumerate(events)]  # type: ignore[arg-type]
    return compute_slot_result(ROLLUPS[ROLLUP], slot, deadline_ms(slot), PARENT_HASH, log)


# --- one slot ---------------------------------------------------------------------------------


def test_history_counts_every_outcome_and_keeps_only_its_slots_refusals() -> None:
    events = random_bids(random.Random(1), 7, 40)
    result = result_of(events)
    mine, other = refusal(7, 1), refusal(8, 2)
    h = compute_slot_history(result, [mine, other], recorded_ms=5, gas_limit=FAIR_POLICY.gas_limit)
    assert len(h.bids) == len(result.outcomes) + 1 and mine in h.bids and other not in h.bids
    outcomes = h.summary["outcomes"]
    assert sum(outcomes.values()) == h.summary["bids"] == len(h.bids)
    assert outcomes[C.OUTCOME_REJECTED] == 1
    assert outcomes[C.OUTCOME_WON] == h.summary["winners"] == len(h.block)
    assert outcomes[C.OUTCOME_REPLACED] > 0  # the generator reuses replacement uuids
    assert h.summary["price_of_fairness_wei"] == str(
        result.unconstrained_bids_wei - result.winning_bids_wei
    )
    # Block order is the result's, each entry the index of its bid among the slot's bids
    seqs = {o.bid.bid_id: o.seq for o in result.outcomes}
    winners = [h.bids[i] for i in h.block]
    assert [b.seq for b in winners] == [seqs[w.bid_id] for w in result.block.bundles]
    assert [(b.bundle_hash, b.payment_wei) for b in winners] == [
        (w.bundle_hash, w.payment_wei) for w in result.block.bundles
    ]
    assert all(b.outcome == C.OUTCOME_WON for b in winners)
    # Stats row agrees with the summary
    assert h.stats.bids == len(h.bids) and h.stats.winners == len(h.block)
    assert sum(w for _, w, _ in h.stats.winners_by_searcher) == len(h.block)


def test_history_of_an_empty_slot() -> None:
    h = compute_slot_history(result_of([]), [], recorded_ms=5, gas_limit=1)
    assert h.bids == () and h.block == [] and h.tallies == {}
    assert h.summary["clearing_price_wei_per_gas"] is None
    assert h.summary["wins_top1_share"] is None and h.summary["winners"] == 0


def test_clearing_price_is_the_lowest_winning_bid_per_gas() -> None:
    assert compute_clearing_price([(100, 10), (55, 5), (7, 0)]) == 10
    assert compute_clearing_price([]) is None


def test_tallies_count_outcomes_payments_and_overpayment() -> None:
    a, b = SEARCHERS[0], SEARCHERS[1]

    def rec(searcher: str, outcome: str, bid: int, gas: int, paid: int = 0) -> BidRecord:
        return BidRecord(ROLLUP, 7, searcher, None, bid, gas, 1, outcome, paid)

    records = [
        rec(a, C.OUTCOME_WON, 300, 10, 300),
        rec(a, C.OUTCOME_WON, 100, 10, 80),  # VCG-style: paid below the clearing rate
        rec(a, C.OUTCOME_LOST, 50, 10),
        rec(b, C.OUTCOME_REJECTED, 1, 0),
    ]
    tallies = compute_tallies(records, clearing_price_wei_per_gas=10)
    assert tallies[a] == {
        "bids": 3,
        "won": 2,
        "lost": 1,
        "paid_wei": 380,
        "overpaid_wei": (300 - 100) + (80 - 100),
        "gas_won": 20,
    }
    assert tallies[b] == {"bids": 1, "rejected": 1}


# --- concentration and stats ------------------------------------------------------------------


def test_concentration_shares_and_herfindahl() -> None:
    c = compute_concentration({"a": 6, "b": 3, "c": 1})
    assert c["top1_share"] == 0.6 and c["top2_share"] == 0.9
    assert c["hhi"] == pytest.approx(0.36 + 0.09 + 0.01)
    assert [t["searcher"] for t in c["top"]] == ["a", "b", "c"]
    assert compute_concentration({"only": 5})["hhi"] == 1.0
    assert compute_concentration({})["hhi"] is None


def test_stats_add_up_slots() -> None:
    rng = random.Random(2)
    histories = [
        compute_slot_history(
            result_of(random_bids(rng, s, 30), s), [refusal(s, 1)], recorded_ms=1, gas_limit=1
        )
        for s in range(7, 12)
    ]
    parts = [StatsPart.of_row(h.stats) for h in histories]
    stats = compute_stats(parts, failed_slots=2, first_slot=7, last_slot=11)
    assert stats["slots"] == 5 and stats["first_slot"] == 7 and stats["last_slot"] == 11
    assert stats["bids"] == sum(len(h.bids) for h in histories)
    assert stats["rejected"] == sum(h.summary["outcomes"]["rejected"] for h in histories)
    assert int(stats["revenue_wei"]) == sum(int(h.summary["revenue_wei"]) for h in histories)
    assert stats["wins_concentration"]["total"] == stats["winners"]
    assert stats["failed_slots"] == 2
    pof = sum(int(h.summary["price_of_fairness_wei"]) for h in histories)
    assert stats["price_of_fairness_wei"] == str(pof)
    assert stats["price_of_fairness_ratio"] == pytest.approx(
        pof / int(stats["unconstrained_bids_wei"]), abs=1e-6
    )
    empty = compute_stats([], failed_slots=0, first_slot=None, last_slot=None)
    assert empty["price_of_fairness_ratio"] is None and empty["slots"] == 0


# --- refusals ---------------------------------------------------------------------------------


def test_rejection_reads_what_it_can_of_the_request() -> None:
    k = key(1)
    raws = [tx(k, chain_id=10), tx(k, chain_id=10)]
    params = [
        bundle_params(
            raws, 1234, bid_wei=5, replacement_uuid="0b9f5d84-5e4c-4d21-9c57-2b3a1e0f7a11"
        )
    ]
    r = compute_rejection(
        params,
        searcher=k.address,
        code="bid_too_low",
        received_ms=9,
        default_rollup=CHAIN,
        endpoint_rollup=None,
    )
    assert r is not None
    assert (r.rollup, r.slot, r.bid_wei, r.tx_count, r.code) == (10, 1234, 5, 2, "bid_too_low")
    assert r.bundle_hash == compute_bundle_hash([to_hex(keccak256(x)) for x in raws])
    assert r.replacement_uuid == "0b9f5d845e4c4d219c572b3a1e0f7a11"
    assert r.outcome == C.OUTCOME_REJECTED and r.seq is None
    # The endpoint's rollup wins over the transactions' chain id
    pinned = compute_rejection(
        params,
        searcher=k.address,
        code="x",
        received_ms=9,
        default_rollup=CHAIN,
        endpoint_rollup=CHAIN,
    )
    assert pinned is not None and pinned.rollup == CHAIN


@pytest.mark.parametrize(
    "params",
    [None, [], [1, 2], "x", [{"txs": []}], [{"blockNumber": "zz"}], {"blockNumber": -1}],
)
def test_rejection_without_a_readable_slot_is_not_recorded(params: object) -> None:
    assert (
        compute_rejection(
            params,
            searcher="0x" + "11" * 20,
            code="x",
            received_ms=1,
            default_rollup=CHAIN,
            endpoint_rollup=None,
        )
        is None
    )


def test_rejection_with_junk_transactions_has_no_bundle_hash() -> None:
    for txs in (["0xzz"], ["nothex"], [7], "0x00", ["0x0"] * 101):
        r = compute_rejection(
            {"blockNumber": "0x10", "txs": txs, "bid": "junk"},
            searcher="0x" + "11" * 20,
            code="x",
            received_ms=1,
            default_rollup=CHAIN,
            endpoint_rollup=None,
        )
        assert r is not None and r.slot == 16 and r.bundle_hash is None and r.bid_wei is None
        assert r.rollup == CHAIN


def test_peek_chain_id_of_every_transaction_type() -> None:
    k = key(2)
    for kind in (0, 1, 2):
        assert peek_chain_id(tx(k, chain_id=777, kind=kind)) == 777
    for junk in (b"", b"\x02", b"\xc0", b"\x05abc", b"\xff" * 10):
        assert peek_chain_id(junk) is None


def test_refusal_recorder_keeps_only_slots_that_will_close_here_and_caps_them() -> None:
    store = MemoryStore()
    recorder = RefusalRecorder(max_per_slot=3)

    def record(slot: int) -> bool:
        return recorder.record(
            store, refusal(slot, 1), closed_through=9, open_slot=10, max_slots_ahead=2
        )

    assert not record(9)  # already closed: its history is written
    assert not record(13)  # further ahead than any bid may target
    assert record(12)
    assert [record(10) for _ in range(5)] == [True, True, True, False, False]
    assert not recorder.record(store, None, closed_through=9, open_slot=10, max_slots_ahead=2)
    recorder.forget_through(ROLLUP, 10)
    assert record(10)  # counters of closed slots are dropped
