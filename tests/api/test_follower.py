"""The engine follows each open slot's logs (node/follower.py) and closes from the columns it
kept, with no committee (``UnsignedChain``) as with one: the same blocks and payments, byte for
byte, as the close from scratch, on both stores, whatever happens between the reads.

Hostile cases: another engine process appending to the same store between reads; a log that
is not an extension of what was read (closed from scratch, the same block); a read that goes
back (the slot is no longer followed); the slot closed while a read is in flight (the encoder
handed to the close is never appended to afterwards).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from api import engine as engine_mod
from auction import codec
from auction.presets import MAINNET
from auction.results import compute_slot_results
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_start_ms
from auction.transactions import decode_transaction
from auction.types import Bid, Cancel, LoggedEvent, LoggedSealedBid, PublicTx, SlotResult
from node.metrics import Metrics
from node.stores.base import ClosedLog, IntakeLimits, Store
from node.stores.memory import MemoryStore
from node.stores.redis import RedisStore
from ordering.problem import PAYMENT_FIRST_PRICE, PAYMENT_VCG
from tests.auction.test_joint_close import IDS, SLOT, rollups_of, signed
from tests.factories import key, make_bid, make_cross_bid
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

FOLLOW_DB = 9
CLOCK = SlotClock(genesis_ms=0, slot_ms=2000)
WIDE = IntakeLimits(max_bundles=10_000, max_bytes=10**9)
UUIDS = (None, "a" * 32, "b" * 32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    """The engine's store and another engine process's client on the same data (memory: the
    same object, which no other process can share)."""
    if request.param == "memory":
        store = MemoryStore()
        yield store, store
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    url = f"redis://127.0.0.1:{server.port}/{FOLLOW_DB}"
    store, other = RedisStore(url), RedisStore(url)
    await store.connect()
    await other.connect()
    await store.redis.flushdb()
    yield store, other
    await store.redis.flushdb()
    await store.aclose()
    await other.aclose()


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


async def make_engine(store: Store, rule: str = PAYMENT_VCG, share: float = 0.5,
                      reserved: int = 21_000) -> engine_mod.Engine:  # fmt: skip
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    engine = engine_mod.Engine(store=store, rollups=rollups_of(share, reserved, 0, rule),
                               preset=MAINNET, slot_ms=CLOCK.slot_ms, clock_ms=clock,
                               metrics=Metrics())  # fmt: skip
    await engine.start(run_clock=False)
    return engine


class Closes:
    """Spies on the engine's close: for every close, the encoder the pure step packed from (None:
    from scratch), its results and the results from scratch on the same logs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.encoders: list[object] = []
        self.pairs: list[tuple[tuple[SlotResult, ...], tuple[SlotResult, ...]]] = []
        real_outer = engine_mod._compute_slot_results
        real_inner = engine_mod.compute_slot_results

        def inner(slot, deadline_ms, parts, *, encoder=None, **kw):  # noqa: ANN001, ANN202
            self.encoders.append(encoder)
            return real_inner(slot, deadline_ms, parts, encoder=encoder, **kw)

        def outer(slot, deadline_ms, parts, encoder=None):  # noqa: ANN001, ANN202
            out = real_outer(slot, deadline_ms, parts, encoder)
            self.pairs.append((out, compute_slot_results(slot, deadline_ms, parts)))
            return out

        monkeypatch.setattr(engine_mod, "compute_slot_results", inner)
        monkeypatch.setattr(engine_mod, "_compute_slot_results", outer)

    def check_same(self) -> None:
        """Every close's results equal the from-scratch ones, and so do their bytes (blocks,
        payments, outcomes)."""
        assert self.pairs
        for mine, scratch in self.pairs:
            assert mine == scratch
            assert [wire(r) for r in mine] == [wire(r) for r in scratch]


def wire(result: SlotResult) -> bytes:
    return orjson.dumps(codec.result_to_json(result))


class RandomSlot:
    """A random shared slot appended event by event: bundles on one rollup or several,
    replacements, cancels, resent bids and public txs."""

    def __init__(self, seed: int, rollups: dict[int, Any]) -> None:
        self.rng = random.Random(seed)
        self.rollups = rollups
        self.sent: list[tuple[Bid, ...]] = []
        self.n = 0

    async def append(self, store: Store) -> None:
        rng, self.n = self.rng, self.n + 1
        kind = rng.choice(["bid", "bid", "bid", "cross", "cancel", "resend", "public"])
        searcher = key(700 + rng.randrange(4))
        if kind in ("bid", "cross"):
            chains = rng.sample(IDS, 1 if kind == "bid" else rng.choice([2, 3]))
            txs = [signed(c, 10 + rng.randrange(6), rng.randrange(3), 21_000 + rng.randrange(3)
                          * 10_000, rng.random() < 0.3) for c in sorted(chains)]  # fmt: skip
            uuid = rng.choice(UUIDS)
            bid_wei = rng.randrange(1, 10) * 10**15
            if kind == "bid":
                copies: tuple[Bid, ...] = (make_bid(searcher, txs, SLOT, bid_wei=bid_wei,
                                                    uuid=uuid, rollups=self.rollups),)  # fmt: skip
            else:
                copies = make_cross_bid(searcher, txs, SLOT, bid_wei=bid_wei, uuid=uuid,
                                        rollups=self.rollups)  # fmt: skip
            await self.log(store, copies)
        elif kind == "resend" and self.sent:
            await self.log(store, rng.choice(self.sent))  # idempotent: the first seq stands
        elif kind == "cancel":
            uuid = rng.choice(UUIDS[1:])
            cancel = Cancel(rng.choice(IDS), searcher.address, uuid, self.n,
                            codec_evidence(self.n))  # fmt: skip
            await store.append_cancel(cancel, [SLOT], WIDE, 60_000)
        elif kind == "public":
            chain = rng.choice(IDS)
            ptx = decode_transaction(signed(chain, 20 + rng.randrange(2), rng.randrange(3),
                                            21_000, False))  # fmt: skip
            await store.append_public_tx(PublicTx(chain, ptx, self.n, rng.random() < 0.3), SLOT)

    async def log(self, store: Store, copies: tuple[Bid, ...]) -> None:
        if len(copies) == 1:
            await store.append_bid(copies[0], WIDE)
        else:
            await store.append_bid_copies(copies, [WIDE] * len(copies))
        self.sent.append(copies)


def codec_evidence(n: int):  # noqa: ANN201
    from auction.types import Evidence

    return Evidence(orjson.dumps({"cancel": n}), "0x" + "00" * 65)


async def close(engine: engine_mod.Engine, slot: int = SLOT) -> list[SlotResult]:
    engine._clock_ms.ms = compute_deadline_ms(CLOCK, slot) + 5  # type: ignore[attr-defined]
    return await engine.close_slot(slot)


@pytest.mark.parametrize("seed", range(6))
async def test_random_slots_close_from_the_followed_columns_as_from_scratch(
    stores: tuple[Store, Store], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another engine process's client appends between the reads as often as this one's; the
    close packs from what was followed (plus the tail) and gives the from-scratch results."""
    store, other = stores
    rule = [PAYMENT_VCG, PAYMENT_FIRST_PRICE][seed % 2]
    engine = await make_engine(store, rule=rule, share=[1.0, 0.5][seed % 3 == 0])
    closes = Closes(monkeypatch)
    slot = RandomSlot(seed, engine.rollups)
    rng = random.Random(seed + 100)
    for _ in range(40):
        await slot.append(store if rng.random() < 0.5 else other)
        if rng.random() < 0.3:
            await engine.follower.follow(SLOT)
    followed = engine.follower.slots[SLOT].encoder
    assert followed is not None
    for _ in range(rng.randrange(0, 5)):  # a tail nobody read before the deadline
        await slot.append(other)
    results = await close(engine)
    assert closes.encoders == [followed]  # packed from the followed columns
    closes.check_same()
    assert sum(len(r.outcomes) for r in results) > 0
    assert SLOT not in engine.follower.slots


async def test_another_engine_process_appending_between_reads(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the other process appends; this one's follower reads each of its appends once."""
    store, other = stores
    engine = await make_engine(store)
    closes = Closes(monkeypatch)
    slot = RandomSlot(11, engine.rollups)
    for i in range(30):
        await slot.append(other)
        await engine.follower.follow(SLOT)
        followed = engine.follower.slots[SLOT]
        for r in IDS:
            assert followed.logs[r] == await store.read_log(r, SLOT), i
    encoder = followed.encoder
    assert encoder is not None
    assert [encoder.count(r) for r in IDS] == [len(followed.logs[r]) for r in IDS]
    await close(engine)
    assert closes.encoders == [encoder]
    closes.check_same()


async def test_a_log_that_does_not_extend_what_was_read_is_closed_from_scratch(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot's log of one rollup is written anew after the follower read it (the same
    length or longer, later seqs: the follower cannot tell): the close finds the encoder's
    entries are not a prefix of the closed log, packs from scratch, and gets its block."""
    store, _ = stores
    engine = await make_engine(store)
    closes = Closes(monkeypatch)
    slot = RandomSlot(5, engine.rollups)
    for _ in range(25):
        await slot.append(store)
    await engine.follower.follow(SLOT)
    rollup = max(IDS, key=lambda r: len(engine.follower.slots[SLOT].logs[r]))
    held = engine.follower.slots[SLOT].logs[rollup]
    assert len(held) >= 2
    await rewrite_log(store, rollup, held)
    # reads the new log from its offset (or, if the new seqs happen to start below the last
    # one held, stops following the slot): either way the close is from scratch
    await engine.follower.follow(SLOT)
    await close(engine)
    assert closes.encoders == [None]  # from scratch
    closes.check_same()
    assert [e.event for e in await store.read_log(rollup, SLOT)] != [e.event for e in held]


async def rewrite_log(store: Store, rollup: int, held: list[LoggedEvent]) -> None:
    """Replace ``rollup``'s log of SLOT by the same entries in another order (a log that is
    not an extension of ``held``), with new seqs after the old ones."""
    again = [held[-1], *held[:-1]]
    if isinstance(store, MemoryStore):
        log = store._logs[rollup, SLOT]
        log.events = []
        log.index.clear()
        log.bundles.clear()
        log.bytes.clear()
        log.uuids.clear()
    else:
        from node.stores import keys

        r = store.redis
        for k in (keys.slot_log(rollup, SLOT), keys.slot_index(rollup, SLOT),
                  keys.slot_limits(rollup, SLOT)):  # fmt: skip
            await r.delete(k)
    for e in again:
        ev = e.event
        if isinstance(ev, Bid):
            if ev.legs:
                await store.append_bid_copies([ev], [WIDE])
            else:
                await store.append_bid(ev, WIDE)
        elif isinstance(ev, PublicTx):
            await store.append_public_tx(ev, SLOT)
        else:
            await store.append_cancel(ev, [SLOT], WIDE, 1)


class GatedStore(MemoryStore):
    """A memory store whose offset reads can be held mid-flight (``gate``), or can hand out an
    entry that goes back in the log (``back``): the store misbehaving under the follower."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.back: LoggedEvent | None = None

    async def read_log_parts_from(
        self, rollup: int, slot: int, start: int, sealed_start: int
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        got = await super().read_log_parts_from(rollup, slot, start, sealed_start)
        if self.back is not None and rollup == self.back.event.rollup:  # type: ignore[union-attr]
            got = ([*got[0], self.back], got[1])
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        return got


async def test_a_slot_closed_while_a_read_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower's read of the slot returns after the close took the encoder: nothing it
    read is appended to the encoder the close packed from, and the slot is not followed again."""
    store = GatedStore()
    engine = await make_engine(store)
    closes = Closes(monkeypatch)
    slot = RandomSlot(3, engine.rollups)
    for _ in range(10):
        await slot.append(store)
    await engine.follower.follow(SLOT)
    encoder = engine.follower.slots[SLOT].encoder
    assert encoder is not None
    store.gate = asyncio.Event()
    reading = asyncio.create_task(engine.follower.follow(SLOT))
    await asyncio.wait_for(store.entered.wait(), 5)
    for _ in range(10):  # arrive while the read is held: the close reads them as its tail
        await slot.append(store)
    await close(engine)
    counts = [encoder.count(r) for r in IDS]
    assert counts == [len(await store.read_log(r, SLOT)) for r in IDS]
    store.gate.set()
    await asyncio.wait_for(reading, 5)
    assert [encoder.count(r) for r in IDS] == counts  # the late read appended nothing
    assert SLOT not in engine.follower.slots
    await engine.follower.follow(SLOT)  # a closed slot is not followed again
    assert SLOT not in engine.follower.slots
    assert closes.encoders == [encoder]
    closes.check_same()


async def test_a_read_that_goes_back_stops_following_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = GatedStore()
    engine = await make_engine(store)
    closes = Closes(monkeypatch)
    slot = RandomSlot(4, engine.rollups)
    for _ in range(12):
        await slot.append(store)
    await engine.follower.follow(SLOT)
    followed = engine.follower.slots[SLOT]
    rollup = next(r for r in IDS if followed.logs[r])
    first = followed.logs[rollup][0]
    store.back = LoggedEvent(first.seq, first.event)  # an entry at or before one held
    await engine.follower.follow(SLOT)
    assert engine.follower.given_up == 1 and SLOT not in engine.follower.slots
    store.back = None
    await close(engine)
    assert closes.encoders == [None]
    closes.check_same()


async def test_the_next_slot_is_followed_after_a_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slot after slot on the clock: each close packs from its own followed encoder."""
    store = MemoryStore()
    engine = await make_engine(store)
    closes = Closes(monkeypatch)
    encoders = []
    for s in (SLOT, SLOT + 1):
        engine._clock_ms.ms = compute_slot_start_ms(CLOCK, s) + 1  # type: ignore[attr-defined]
        k = key(900 + s)
        for n in range(3):
            txs = [signed(IDS[0], 30 + n, s - SLOT, 21_000, False)]
            await store.append_bid(make_bid(k, txs, s, bid_wei=(n + 1) * 10**15,
                                            rollups=engine.rollups), WIDE)  # fmt: skip
        await engine.follower.follow(engine.open_slot())
        encoders.append(engine.follower.slots[s].encoder)
        await close(engine, s)
    assert closes.encoders == encoders and None not in encoders
    closes.check_same()


class ClosedLogs:
    """Spies on the engine's close log: every ``close_slot_parts_from`` answer, and the parts
    the pure step was given."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: list[tuple[int, int, ClosedLog]] = []  # (rollup, offset asked, answer)
        self.parts: list[Any] = []
        real = store.close_slot_parts_from
        real_outer = engine_mod._compute_slot_results

        async def spy(rollup, slot, start, sealed_start, lease=None):  # noqa: ANN001, ANN202
            got = await real(rollup, slot, start, sealed_start, lease)
            self.answers.append((rollup, start, got))
            return got

        def outer(slot, deadline_ms, parts, encoder=None):  # noqa: ANN001, ANN202
            self.parts.append(parts)
            return real_outer(slot, deadline_ms, parts, encoder)

        monkeypatch.setattr(store, "close_slot_parts_from", spy)
        monkeypatch.setattr(engine_mod, "_compute_slot_results", outer)

    async def check_logs_are_the_stores(self, store: Store) -> None:
        """The close packed exactly the store's closed logs (same entries, same order)."""
        (parts,) = self.parts
        for part in parts:
            assert list(part.log) == await store.read_log(part.rollup.chain_id, SLOT)


async def test_the_close_reads_only_the_tail_past_what_was_followed(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each rollup's close asks from the count followed and gets that many entries fewer than
    its log: only the tail is read; the logs packed are the store's, the results from-scratch's."""
    store, other = stores
    engine = await make_engine(store)
    closes = Closes(monkeypatch)
    logs = ClosedLogs(store, monkeypatch)
    slot = RandomSlot(21, engine.rollups)
    for _ in range(30):
        await slot.append(store if slot.rng.random() < 0.5 else other)
        if slot.rng.random() < 0.4:
            await engine.follower.follow(SLOT)
    await engine.follower.follow(SLOT)
    held = {r: len(engine.follower.slots[SLOT].logs[r]) for r in IDS}
    for _ in range(6):  # the tail
        await slot.append(other)
    await close(engine)
    assert sorted(r for r, _, _ in logs.answers) == sorted(IDS)
    for rollup, start, got in logs.answers:
        assert start == held[rollup] and got.start == start  # vouched for: the tail alone
        assert start + len(got.events) == len(await store.read_log(rollup, SLOT))
    assert sum(held.values()) > 0
    await logs.check_logs_are_the_stores(store)
    closes.check_same()


@pytest.mark.redis
async def test_a_followed_log_rewritten_under_the_same_ids_is_read_whole(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the follower read it, a rollup's log is written anew with other bytes under the
    same entry ids (a failover to a replica that missed entries and whose clock lags, or anyone
    with write access to the store): the close cannot be vouched for, reads that log whole,
    packs what the store holds (from scratch: the encoder's event ids differ) and gets the
    from-scratch results."""
    from node.stores import keys

    store = RedisStore(f"redis://127.0.0.1:{redis_server.port}/{FOLLOW_DB}")
    await store.connect()
    await store.redis.flushdb()
    try:
        engine = await make_engine(store)
        closes = Closes(monkeypatch)
        logs = ClosedLogs(store, monkeypatch)
        slot = RandomSlot(8, engine.rollups)
        for _ in range(25):
            await slot.append(store)
        await engine.follower.follow(SLOT)
        rollup = max(IDS, key=lambda r: len(engine.follower.slots[SLOT].logs[r]))
        key_ = keys.slot_log(rollup, SLOT)
        raw = await store.redis.xrange(key_)
        assert len(raw) >= 2
        values = [fields for _, fields in raw]
        values[0], values[-1] = values[-1], values[0]
        await store.redis.delete(key_)
        for (seq, _), fields in zip(raw, values, strict=True):
            await store.redis.xadd(key_, fields, id=seq)
        await close(engine)
        answers = {r: got for r, _, got in logs.answers}
        assert answers[rollup].start == 0 and answers[rollup].events == await store.read_log(
            rollup, SLOT)  # fmt: skip
        assert all(answers[r].start > 0 for r in IDS if r != rollup and answers[r].events)
        assert closes.encoders == [None]  # the followed columns are not the closed log's
        await logs.check_logs_are_the_stores(store)
        closes.check_same()
    finally:
        await store.redis.flushdb()
        await store.aclose()


async def test_an_engine_restarted_mid_slot_follows_anew_and_closes_from_the_tail(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that followed half the slot is gone; its successor (its own store client:
    no cursors) follows from the start, and its close reads only its own tail."""
    store, other = stores
    first = await make_engine(store)
    slot = RandomSlot(13, first.rollups)
    for _ in range(15):
        await slot.append(store)
    await first.follower.follow(SLOT)
    for _ in range(10):
        await slot.append(store)
    engine = await make_engine(other)  # the successor
    closes = Closes(monkeypatch)
    logs = ClosedLogs(other, monkeypatch)
    await engine.follower.follow(SLOT)
    for _ in range(5):
        await slot.append(store)
    await close(engine)
    assert any(got.start > 0 for _, _, got in logs.answers)
    assert all(got.start == start for _, start, got in logs.answers)
    await logs.check_logs_are_the_stores(other)
    closes.check_same()
