"""Batched receipts at intake: the bids acknowledged together share one signature, each with
its own verifiable path; with batches off every receipt is signed on its own (version 1)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.engine import Engine
from api.rpc import dispatch
from api.searcher import bundle_params
from auction.presets import MAINNET, Rollup
from auction.receipts import (
    BATCH_RECEIPT_VERSION,
    RECEIPT_VERSION,
    receipt_from_json,
    verify_receipt,
)
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT
from tests.factories import CHAIN, key, signed_request, tx

pytestmark = pytest.mark.timeout(60)


def _answers(batched: bool, n: int) -> tuple[Engine, list[dict[str, Any]]]:
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=lambda: START_SLOT * SLOT_MS + 5, metrics=Metrics(),
                    receipt_batches=batched)  # fmt: skip
    requests = []
    for i in range(n):
        k = key(40 + i)
        requests.append(signed_request(
            k, "eth_sendBundle", [bundle_params([tx(k, nonce=0)], START_SLOT, bid_wei=10**15)]))

    async def run() -> list[dict[str, Any]]:
        await engine.start(run_clock=False)
        try:
            out = await asyncio.gather(*(
                dispatch(engine, body, sig, endpoint_rollup=None, transport="ws")
                for body, sig in requests))  # fmt: skip
            return [answer for answer, _ in out]
        finally:
            await engine.stop()
            await engine.store.aclose()

    return engine, asyncio.run(run())


def test_bids_acknowledged_together_share_one_signature() -> None:
    engine, answers = _answers(batched=True, n=12)
    assert engine.intake.receipter is not None
    signed = [receipt_from_json(a["receipt"]) for a in answers]
    for s in signed:
        verify_receipt(s, engine.intake.receipter.operator)
        assert s.receipt.version == BATCH_RECEIPT_VERSION and s.batch is not None
    # Verify the signatures were amortised: fewer signatures than receipts
    assert engine.intake.receipter.batches < len(answers)
    assert len({s.signature for s in signed}) == engine.intake.receipter.batches
    assert len({s.receipt.event_id for s in signed}) == len(answers)


def test_with_batches_off_every_receipt_is_version_1() -> None:
    engine, answers = _answers(batched=False, n=3)
    assert engine.intake.receipter is not None
    for a in answers:
        s = receipt_from_json(a["receipt"])
        verify_receipt(s, engine.intake.receipter.operator)
        assert s.receipt.version == RECEIPT_VERSION and s.batch is None
    assert engine.intake.receipter.batches == 0
