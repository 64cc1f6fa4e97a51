"""Closed slots for history tests, built exactly as Engine.close_slot builds them."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Sequence

from fastapi import FastAPI

from api.app import create_app
from api.engine import Engine
from auction import constants as C
from auction.history import BidRecord, SlotHistory, compute_slot_history
from auction.ledger import BOND, OPERATOR_BOND
from auction.presets import MAINNET, MINIMAL, Rollup
from auction.results import SlotPart, compute_slot_result, compute_slot_results
from auction.types import Bid, SlotResult
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.settings import Settings
from node.stores.base import IntakeLimits, Store
from node.stores.memory import MemoryStore
from tests.stores.bids import (
    PARENT_HASH,
    ROLLUP,
    deadline_ms,
    log_cancel,
    make_bid,
    make_cancel,
    make_cross_copies,
)

WIDE = IntakeLimits(max_bundles=10_000, max_bytes=10**9)
OTHER_ROLLUP = 10
# A tight fairness cap, so that the price of fairness is positive when one searcher bids high.
# A small solver budget keeps these tests fast; the history records whatever block it returns.
FAIR_POLICY = MINIMAL.policy.with_(max_gas_share_per_searcher=0.25, time_budget_ms=2)
ROLLUPS = {
    ROLLUP: Rollup(ROLLUP, "a", FAIR_POLICY),
    OTHER_ROLLUP: Rollup(OTHER_ROLLUP, "b", FAIR_POLICY),
}
SEARCHERS = ["0x" + f"{i:02x}" * 20 for i in (0xA1, 0xB2, 0xC3, 0xD4)]


def random_bids(rng: random.Random, slot: int, n: int, rollup: int = ROLLUP) -> list[Bid | object]:
    """``n`` bids for a slot from the four searchers, some replacing each other."""
    events: list[Bid | object] = []
    for k in range(n):
        # One searcher sends half the bids, so the fairness cap binds
        searcher = rng.choices(SEARCHERS, weights=(5, 2, 2, 1))[0]
        uuid = f"{rng.randrange(3):032x}" if rng.random() < 0.3 else None
        events.append(
            make_bid(
                k,
                rollup=rollup,
                slot=slot,
                searcher=searcher,
                bid_wei=rng.randrange(10**14, 10**16),
                replacement_uuid=uuid,
            )
        )
        if uuid is not None and rng.random() < 0.2:
            events.append(make_cancel(searcher, uuid, rollup=rollup, n=k))
    return events


def refusal(slot: int, n: int, rollup: int = ROLLUP, code: str = "bid_too_low") -> BidRecord:
    return BidRecord(
        rollup=rollup,
        slot=slot,
        searcher=SEARCHERS[n % len(SEARCHERS)],
        bundle_hash="0x" + f"{n:064x}",
        bid_wei=n,
        gas=None,
        received_ms=deadline_ms(slot) - 1000 + n,
        outcome=C.OUTCOME_REJECTED,
        code=code,
        tx_count=1,
    )


async def close_with_history(
    store: Store,
    slot: int,
    events: Sequence[Bid | object],
    *,
    rollup: int = ROLLUP,
    refusals: Sequence[BidRecord] = (),
) -> SlotHistory:
    """Log the events, file the refusals, then close the slot as Engine.close_slot does."""
    for ev in events:
        if isinstance(ev, Bid):
            await store.append_bid(ev, WIDE)
        else:
            await log_cancel(store, ev, [slot])  # type: ignore[arg-type]
    for r in refusals:
        store.record_refusal(r)
    entries = await store.close_slot(rollup, slot)
    result = compute_slot_result(ROLLUPS[rollup], slot, deadline_ms(slot), PARENT_HASH, entries)
    refused = await store.list_refusals(rollup, slot)
    history = compute_slot_history(
        result, refused, recorded_ms=deadline_ms(slot), gas_limit=FAIR_POLICY.gas_limit
    )
    assert await store.save_result(result, history=history)
    return history


def app_with_history(
    slots: range = range(7, 12),
    bids_per_slot: tuple[int, int] = (10, 10),
    seed: int = 11,
    cross_per_slot: tuple[int, int] | None = None,
) -> FastAPI:
    """An app over an embedded store holding closed slots on both rollups, some refusals, and
    committee records (one in twenty failed). With ``cross_per_slot``, each slot also has that
    many cross-rollup bundles over both rollups and is closed jointly, as the engine does."""
    store = MemoryStore()

    async def fill() -> None:
        rng = random.Random(seed)
        for slot in slots:
            if cross_per_slot is not None:
                await close_joint(rng, slot, cross_per_slot)
            for rollup in (ROLLUP, OTHER_ROLLUP):
                if cross_per_slot is None:
                    await close_with_history(
                        store,
                        slot,
                        random_bids(rng, slot, rng.randint(*bids_per_slot), rollup=rollup),
                        rollup=rollup,
                        refusals=[
                            refusal(slot, n, rollup=rollup) for n in range(rng.randrange(3))
                        ],
                    )
                failed = rng.random() < 0.05
                record = (
                    {"status": "failed", "reason": "timeout"} if failed else {"status": "signed"}
                )
                await store.record_committee(rollup, slot, record)

    async def close_joint(rng: random.Random, slot: int, crosses: tuple[int, int]) -> None:
        both = (ROLLUP, OTHER_ROLLUP)
        singles = [e for r in both for e in random_bids(rng, slot, rng.randint(*bids_per_slot), r)]
        refused = [refusal(slot, n, rollup=r) for r in both for n in range(rng.randrange(3))]
        cross = random_cross_bundles(rng, slot, rng.randint(*crosses))
        await close_joint_with_history(store, slot, singles, cross, refusals=refused)

    async def fill_ledger() -> None:
        # A few ledger entries for the dashboard's ledger panel: deposits, a bond, a slash
        escrow = StoreEscrow(store)
        for i, searcher in enumerate(SEARCHERS):
            await escrow.credit_deposit(searcher, (i + 1) * 10**18, f"deposit-{i}", 1)
        await escrow.credit_deposit(OPERATOR_BOND, 32 * 10**18, "bond", 1, kind=BOND)
        await escrow.slash(OPERATOR_BOND, "0x" + "5e" * 32, SEARCHERS[0], 2,
                           fraction_bps=1000, reporter_share_bps=5000)

    asyncio.run(fill())
    asyncio.run(fill_ledger())
    engine = Engine(
        store=store,
        rollups=ROLLUPS,
        preset=MAINNET,
        slot_ms=2000,
        clock_ms=lambda: (slots.stop + 1) * 2000 + 5,
        metrics=Metrics(),
    )
    return create_app(Settings(), engine=engine)


def random_cross_bundles(
    rng: random.Random, slot: int, n: int, rollups: tuple[int, ...] = (OTHER_ROLLUP, ROLLUP)
) -> list[tuple[Bid, ...]]:
    """``n`` cross-rollup bundles over ``rollups`` (their copies, one per rollup), from the four
    searchers, with bids in the range of ``random_bids``' (so some win and some lose)."""
    out = []
    for k in range(n):
        copies = make_cross_copies(
            1000 + k, rollups=rollups, slot=slot, searcher=rng.choice(SEARCHERS)
        )
        bid_wei = rng.randrange(10**14, 3 * 10**16)
        out.append(tuple(dataclasses.replace(c, bid_wei=bid_wei) for c in copies))
    return out


async def close_joint_with_history(
    store: Store,
    slot: int,
    singles: Sequence[Bid | object],
    crosses: Sequence[tuple[Bid, ...]],
    *,
    refusals: Sequence[BidRecord] = (),
) -> tuple[SlotResult, ...]:
    """Log single-rollup bids (and cancels) and cross-rollup bundles' copies, file the refusals,
    then close the slot over both rollups as Engine._build does (one joint close), storing each
    rollup's history."""
    for ev in singles:
        if isinstance(ev, Bid):
            await store.append_bid(ev, WIDE)
        else:
            await log_cancel(store, ev, [slot])  # type: ignore[arg-type]
    for copies in crosses:
        await store.append_bid_copies(copies, [WIDE] * len(copies))
    for r in refusals:
        store.record_refusal(r)
    parts = [
        SlotPart(ROLLUPS[r], PARENT_HASH, await store.close_slot(r, slot)) for r in sorted(ROLLUPS)
    ]
    results = compute_slot_results(slot, deadline_ms(slot), parts)
    for result in results:
        history = compute_slot_history(
            result,
            await store.list_refusals(result.rollup, slot),
            recorded_ms=deadline_ms(slot),
            gas_limit=FAIR_POLICY.gas_limit,
        )
        assert await store.save_result(result, history=history)
    return results
