from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.engine import Engine
from auction.presets import MAINNET, Rollup
from auction.types import SlotResult
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.factories import CHAIN


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


SLOT_MS = 2000
START_SLOT = 1_000


def close_slot_of(client: TestClient, engine: Engine, rollup: int, slot: int) -> SlotResult:
    """Close ``slot`` (every rollup's: the engine closes a slot for its whole deployment) and
    return ``rollup``'s result."""
    results = client.portal.call(engine.close_slot, slot)
    return next(r for r in results if r.rollup == rollup)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START_SLOT * SLOT_MS + 5)


@pytest.fixture
def engine(clock: FakeClock) -> Engine:
    return Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN), 10: Rollup(10)},
                  preset=MAINNET, slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(engine=engine)
    with TestClient(app) as c:
        c.portal.call(lambda: engine.start(run_clock=False))  # type: ignore[union-attr]
        yield c
