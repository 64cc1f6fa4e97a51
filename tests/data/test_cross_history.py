"""Cross-rollup bundles in the history, on both stores: each copy recorded under its rollup with
the rollups it spans, the ``cross``/``spans`` filters against a model over the slot's records
(paged, across trims), and the share of revenue from cross-rollup bundles counting each
bundle's payment once over the deployment."""

from __future__ import annotations

import random

import pytest

from api.engine import compute_cross_payments
from auction import constants as C
from auction.history import BidRecord, compute_cross_revenue, compute_stats, is_record_match
from node.stores.base import Store
from tests.data.slots import (
    OTHER_ROLLUP,
    close_joint_with_history,
    random_bids,
    random_cross_bundles,
)
from tests.stores.bids import ROLLUP

pytestmark = pytest.mark.anyio

BOTH = (OTHER_ROLLUP, ROLLUP)


async def walk(
    store: Store, rollup: int, *, page: int = 3, **filters: object
) -> list[tuple[str, BidRecord]]:
    """Every bid of ``rollup`` matching the filters, by walking small pages."""
    out: list[tuple[str, BidRecord]] = []
    before = None
    while True:
        got = await store.list_history_bids(
            rollup,
            searcher=filters.get("searcher"),  # type: ignore[arg-type]
            outcome=filters.get("outcome"),  # type: ignore[arg-type]
            slot=filters.get("slot"),  # type: ignore[arg-type]
            before=before,
            inclusive=False,
            limit=page,
            cross=filters.get("cross"),  # type: ignore[arg-type]
            spans=filters.get("spans"),  # type: ignore[arg-type]
        )
        out.extend(got)
        if len(got) < page:
            return out
        before = got[-1][0]


async def fill(store: Store, slots: range, seed: int = 5) -> dict[int, list]:
    """Closed slots with single-rollup bids on both rollups and cross-rollup bundles."""
    rng = random.Random(seed)
    results = {}
    for slot in slots:
        singles = [
            ev
            for r in BOTH
            for ev in random_bids(rng, slot, rng.randint(4, 9), rollup=r)
            if hasattr(ev, "bid_id")
        ]
        crosses = random_cross_bundles(rng, slot, rng.randint(1, 4))
        results[slot] = list(await close_joint_with_history(store, slot, singles, crosses))
    return results


async def test_a_cross_bundle_is_recorded_under_each_rollup_it_spans(store: Store) -> None:
    results = await fill(store, range(7, 10))
    for slot in range(7, 10):
        details = {r: (await store.get_slot_details(r, [slot]))[0] for r in BOTH}
        cross = {
            r: {b.bundle_hash: b for b in d.bids if b.is_cross}  # type: ignore[union-attr]
            for r, d in details.items()
        }
        # Verify every cross bundle has one record in each rollup, naming both rollups, with
        # the same outcome; the shares of a winner's payment add up to its whole payment
        assert cross[OTHER_ROLLUP].keys() == cross[ROLLUP].keys() and cross[ROLLUP]
        paid = compute_cross_payments(results[slot])
        whole = {
            o.bid.bundle_hash: paid[o.bid.bid_id]
            for o in results[slot][0].outcomes
            if o.bid.bid_id in paid
        }
        for h in cross[ROLLUP]:
            a, b = cross[OTHER_ROLLUP][h], cross[ROLLUP][h]
            assert a.rollups == b.rollups == BOTH and a.spanned == BOTH
            assert a.outcome == b.outcome and a.bid_wei == b.bid_wei
            if a.outcome == C.OUTCOME_WON:
                assert a.payment_wei + b.payment_wei == whole[h]
        # Verify single-rollup bids name only their own rollup
        for r, d in details.items():
            assert all(b.spanned == (r,) for b in d.bids if not b.is_cross)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "filters",
    [
        {"cross": True},
        {"cross": False},
        {"spans": OTHER_ROLLUP},
        {"spans": ROLLUP},
        {"spans": 8453},
        {"cross": False, "spans": OTHER_ROLLUP},
        {"cross": True, "outcome": C.OUTCOME_WON},
        {"cross": False, "outcome": C.OUTCOME_LOST},
        {"cross": True, "slot": 8},
        {"cross": True, "searcher": "0x" + "a1" * 20},
        {"spans": ROLLUP, "searcher": "0x" + "b2" * 20, "outcome": C.OUTCOME_WON},
    ],
)
async def test_the_cross_filters_page_exactly_the_matching_bids(
    store: Store, filters: dict[str, object]
) -> None:
    await fill(store, range(7, 12))
    await store.trim_history(ROLLUP, before_slot=8, max_slots=1)  # the cross index is trimmed too
    for rollup in BOTH:
        slots = await store.list_history_slots(rollup, from_slot=None, to_slot=None, limit=99)
        every = [b for d in await store.get_slot_details(rollup, slots) for b in d.bids]  # type: ignore[union-attr]
        expected = [
            b
            for b in every
            if is_record_match(b, cross=filters.get("cross"), spans=filters.get("spans"))  # type: ignore[arg-type]
            and all(getattr(b, k) == v for k, v in filters.items() if k not in ("cross", "spans"))
        ]
        got = [record for _, record in await walk(store, rollup, **filters)]
        # Newest first; a slot's bids are recorded in arrival order
        assert sorted(got, key=repr) == sorted(expected, key=repr)
        assert len(got) == len(expected)


async def test_stats_count_each_cross_bundles_payment_once_over_the_deployment(
    store: Store,
) -> None:
    results = await fill(store, range(7, 12))
    whole = sum(sum(compute_cross_payments(rs).values()) for rs in results.values())
    assert whole > 0
    parts = {r: await store.list_stats_parts(r, from_slot=None, to_slot=None) for r in BOTH}
    per_rollup = {
        r: compute_stats(ps, failed_slots=0, first_slot=None, last_slot=None)
        for r, ps in parts.items()
    }
    deployment = compute_stats(
        [p for ps in parts.values() for p in ps], failed_slots=0, first_slot=None, last_slot=None
    )
    assert int(deployment["cross_revenue_wei"]) == whole
    for r in BOTH:
        records = [
            b
            for d in await store.get_slot_details(r, list(range(7, 12)))
            for b in d.bids  # type: ignore[union-attr]
        ]
        revenue, winners = compute_cross_revenue(records)
        assert int(per_rollup[r]["cross_revenue_wei"]) == revenue
        assert per_rollup[r]["cross_winners"] == winners
    revenue = int(deployment["revenue_wei"])
    assert deployment["cross_revenue_share"] == pytest.approx(whole / revenue, abs=1e-6)
    assert 0 < deployment["cross_revenue_share"] <= 1
