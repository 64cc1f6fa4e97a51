"""The slot clock stops when asked, even if a cancellation is lost on the way."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.engine import Engine
from auction.presets import MAINNET, Rollup
from auction.types import SlotResult
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.factories import CHAIN

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_stop_ends_the_clock_even_if_a_hook_swallows_the_cancellation() -> None:
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET,
                    slot_ms=100, clock_ms=lambda: int(time.time() * 1000), metrics=Metrics())
    entered, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn(result: SlotResult) -> None:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # like a library that loses a cancellation
            swallowed.set()
            await asyncio.sleep(0.05)

    engine.result_hooks.append(stubborn)
    await engine.start()
    await asyncio.wait_for(entered.wait(), timeout=30)
    t0 = time.monotonic()
    await asyncio.wait_for(engine.stop(), timeout=10)
    assert swallowed.is_set()
    assert time.monotonic() - t0 < 5
