"""Liveness when answers come late, on real sockets and a running slot clock (found by the
600 s chaos soak, where the chain stalled for good after about 220 slots):

- a slot whose answers arrive after its signing deadline is pending, and the next close
  completes it; that close must not first wait out the pending slot's deadline as if another
  process were signing it, or the next slot misses its own deadline, and so on for ever;
- member requests still running when the coordinator stops waiting are left to end by their
  own timeout, never cancelled: a cancelled httpx request can keep its pooled connection, and a
  pool starved that way reaches no member again.

The members are the real signer apps (``create_signer_app``) behind one loopback HTTP server
that can hold every answer back; the engine runs its own clock on wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from api.engine import Engine
from auction.presets import MAINNET
from auction.slots import compute_deadline_ms
from committee.coordinator import Coordinator, HttpMember, MemberAnswer
from committee.feeder import StreamAnswer
from committee.local import build_local_members, free_port
from committee.records import STATUS_PENDING, SignedBlock
from committee.signer import create_signer_app
from node.metrics import Metrics
from node.settings import Settings
from node.stores.memory import MemoryStore
from ordering import packer
from tests.committee.conftest import Dealt
from tests.committee.slots import ROLLUP

pytestmark = pytest.mark.anyio

SLOT_MS = 1_000
WINDOW_MS = 1_000  # the deployed default: the signing window is one slot
SETTINGS = Settings(slot_ms=SLOT_MS, rollups=[ROLLUP], signing_window_ms=WINDOW_MS)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Network:
    """Holds members' answers back by ``delay_s`` (a slow link, or busy members); the
    ``trickler`` member answers one byte at a time, for longer than any signing window."""

    def __init__(self, app: Any, trickler: int) -> None:
        self.app = app
        self.trickler = f"/m{trickler}/"
        self.delay_s = 0.0
        self.slow_until = 0.0  # requests arriving before this (monotonic) instant are held

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"].startswith(self.trickler):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            with contextlib.suppress(Exception):  # the client may hang up, as it should
                for _ in range(15):
                    await send({"type": "http.response.body", "body": b" ", "more_body": True})
                    await asyncio.sleep(0.2)
                await send({"type": "http.response.body", "body": b"{}"})
            return None
        if time.monotonic() < self.slow_until:
            await asyncio.sleep(self.delay_s)
        return await self.app(scope, receive, send)


class Recorded:
    """A member whose every request is kept, to check how each one ended."""

    def __init__(self, inner: HttpMember, requests: list[asyncio.Task[Any]]) -> None:
        self.inner = inner
        self.index = inner.index
        self.requests = requests

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        task = asyncio.current_task()
        assert task is not None
        self.requests.append(task)
        return await self.inner.sign(body, timeout_s)

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
        """Streams go through the same slow network (streaming is on by default)."""
        return await self.inner.stream(body, timeout_s)

    async def aclose(self) -> None:
        pass


@contextlib.asynccontextmanager
async def members_on_loopback(dealt: Dealt, tmp: Path) -> AsyncIterator[tuple[Network, str]]:
    members = build_local_members(SETTINGS, dealt.committee, dealt.shares, tmp)
    routes = [Mount(f"/m{m.index}", app=create_signer_app(m.member)) for m in members]
    network = Network(Starlette(routes=routes), trickler=dealt.committee.n)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(network, port=port, log_level="critical"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield network, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def wait_for_slot(engine: Engine, slot: int) -> None:
    while engine.open_slot() <= slot:
        await asyncio.sleep(0.02)


async def test_late_answers_leave_one_slot_pending_and_no_request_cancelled(
    dealt: Dealt, tmp_path: Path
) -> None:
    packer.warm_up()
    n = dealt.committee.n
    async with members_on_loopback(dealt, tmp_path) as (network, url):
        # A pool as small as the committee: one leaked connection per member would starve it.
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=n))
        engine = Engine(
            store=MemoryStore(),
            rollups=SETTINGS.rollup_configs(),
            preset=MAINNET,
            slot_ms=SLOT_MS,
            metrics=Metrics(),
        )
        requests: list[asyncio.Task[Any]] = []
        members = [
            Recorded(HttpMember(i, f"{url}/m{i}", client), requests) for i in range(1, n + 1)
        ]
        coordinator = Coordinator(
            engine, dealt.committee, members, signing_window_ms=WINDOW_MS, owned_client=client
        )
        coordinator.attach()
        abandoned: list[asyncio.Task[MemberAnswer]] = []
        abandon = coordinator._abandon

        def watch(still: set[asyncio.Task[MemberAnswer]]) -> None:
            abandoned.extend(still)
            abandon(still)

        coordinator._abandon = watch  # type: ignore[method-assign]
        await engine.start()
        try:
            start = engine.open_slot()
            await wait_for_slot(engine, start + 1)  # a signed slot or two first
            # One slot's answers all arrive after its deadline (and the grace for late ones):
            # the requests of its round, sent once the slot before it is signed.
            late = engine.open_slot()
            while await engine.store.get_signed_block(ROLLUP, late - 1) is None:
                await asyncio.sleep(0.02)
            to_deadline_s = (compute_deadline_ms(engine.clock, late) - engine.now_ms()) / 1000
            network.slow_until = time.monotonic() + to_deadline_s + 0.5
            network.delay_s = (WINDOW_MS + 600) / 1000
            last = late + 6
            await wait_for_slot(engine, last + 1)
            pending_now = coordinator.metrics.slots.labels(STATUS_PENDING)._value.get()
            outcomes = {
                s: await engine.store.get_signed_block(ROLLUP, s) for s in range(late, last)
            }
        finally:
            await engine.stop()
            ended = await asyncio.gather(*requests, return_exceptions=True)
            await coordinator.aclose()
    # The slow slot was pending, once; the next close completed it, and every later slot was
    # signed in its own round, in its own window.
    assert pending_now <= 2, f"{pending_now:.0f} slots went pending: the lag carried over"
    assert all(isinstance(b, SignedBlock) for b in outcomes.values()), {
        s: type(b).__name__ for s, b in outcomes.items()
    }
    # The trickling member's requests outlived every wait; they, and every other request,
    # ended by themselves, none cancelled.
    assert abandoned, "no request was still running when the coordinator stopped waiting"
    assert all(isinstance(a, MemberAnswer) for a in ended), [
        type(a).__name__ for a in ended if not isinstance(a, MemberAnswer)
    ][:3]
