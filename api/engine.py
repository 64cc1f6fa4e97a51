"""The engine: the slot clock, and closing each slot in named steps.

``Engine.close_slot`` is the close pipeline, in this order:

1. ``prepare``: the signer settles earlier slots and sets the head the block builds on;
2. ``close log``: the store stops intake for the slot and returns its log (or another engine
   process holding the slot's close lease does, and this one follows its stored result);
3. ``compute result``: ``auction.results.compute_slot_result`` on the log and the chain state;
4. ``record history``: the result and its history, in one atomic store write;
5. ``publish``: the slot's watchers and every bidder are told;
6. ``sign``: the signer gets the block signed (the log passed along, not re-read) and
   advances the head; a follower process adopts the outcome instead;
7. observers (history retention, the demo's printout) see the result.

Signing is a small protocol (``SlotSigner``): ``UnsignedChain`` without a committee (the head
follows each result), the committee's coordinator with one (the head follows signed blocks
only). Intake lives in ``api/intake.py``, a rollup's chain state in ``api/chain.py``. Shell only:
every decision is a call into ``auction`` / ``ordering``; this module adds time, I/O and
concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from api.chain import ChainState
from api.intake import OFFLOAD_BYTES, Intake
from auction.encoding import ZERO_HASH
from auction.errors import StoreUnavailable
from auction.history import compute_slot_history
from auction.presets import Preset, Rollup
from auction.results import compute_slot_result
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from auction.types import Bid, LoggedEvent, PendingTx, PublicTx, SlotResult
from committee.records import FAILED_CLOSE, FailedSlot, failed_slot_to_json
from node.metrics import Metrics
from node.notify import Notifier
from node.stores.base import Store
from ordering import packer

log = logging.getLogger("blockspace.engine")


class SlotCloseFailed(Exception):
    """Another engine process recorded the slot as failed while this one waited for it."""

ResultHook = Callable[[SlotResult], Awaitable[None]]


class SlotSigner(Protocol):
    """What the close pipeline asks of whoever signs blocks (docs/architecture.md)."""

    async def load_head(self, rollup: int) -> tuple[str, tuple[PendingTx, ...]]:
        """The block the next one builds on, and the pool it left pending (at start)."""

    async def prepare(self, rollup: int, slot: int) -> None:
        """Before this process builds ``slot``: settle earlier slots, set the head."""

    async def sign(self, result: SlotResult, entries: Sequence[LoggedEvent]) -> None:
        """Get the block of a result this process built signed, publish it, advance the head."""

    async def follow(self, result: SlotResult) -> None:
        """Adopt the outcome of a result another process built."""


class UnsignedChain:
    """No committee: every block is final as built, and the head follows each result."""

    def __init__(self, store: Store, chains: Mapping[int, ChainState]) -> None:
        self.store = store
        self.chains = chains

    async def load_head(self, rollup: int) -> tuple[str, tuple[PendingTx, ...]]:
        latest = await self.store.latest_result(rollup)
        return (latest.block.block_hash, latest.pending) if latest else (ZERO_HASH, ())

    async def prepare(self, rollup: int, slot: int) -> None:
        return None

    async def sign(self, result: SlotResult, entries: Sequence[LoggedEvent]) -> None:
        self._advance(result)

    async def follow(self, result: SlotResult) -> None:
        self._advance(result)

    def _advance(self, result: SlotResult) -> None:
        chain = self.chains[result.rollup]
        if chain.closed_through == result.slot:  # the newest closed: the next builds on it
            chain.set_head(result.block.block_hash, result.pending)


# How long one process may take to close a slot before another takes over, and how often the
# others look for its result.
CLOSE_LEASE_MS = 15_000
FOLLOW_POLL_S = 0.005


class Engine:
    def __init__(
        self,
        *,
        store: Store,
        rollups: Mapping[int, Rollup],
        preset: Preset,
        slot_ms: int,
        genesis_ms: int = 0,
        max_slots_ahead: int | None = None,
        clock_ms: Callable[[], int] | None = None,
        metrics: Metrics | None = None,
        decode_offload_bytes: int = OFFLOAD_BYTES,
    ) -> None:
        if not rollups:
            raise ValueError("an engine serves at least one rollup")
        self.store = store
        self.rollups = dict(rollups)
        self.default_rollup = next(iter(self.rollups))
        self.preset = preset
        self.clock = SlotClock(genesis_ms=genesis_ms, slot_ms=slot_ms)
        self.max_slots_ahead = (
            preset.max_slots_ahead if max_slots_ahead is None else max_slots_ahead
        )
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.metrics = metrics or Metrics()
        self.notifier = Notifier()
        self.chains = {cid: ChainState(r) for cid, r in self.rollups.items()}
        self.intake = Intake(
            store=store,
            rollups=self.rollups,
            chains=self.chains,
            preset=preset,
            clock=self.clock,
            max_slots_ahead=self.max_slots_ahead,
            clock_ms=self._clock_ms,
            notifier=self.notifier,
            metrics=self.metrics,
            decode_offload_bytes=decode_offload_bytes,
        )
        self.signer: SlotSigner = UnsignedChain(store, self.chains)
        # Observers of each closed slot, after it was signed (or followed): history retention,
        # the demo's printout. They observe; nothing they do changes a slot's outcome.
        self.result_hooks: list[ResultHook] = []  # results this process built
        self.follow_hooks: list[ResultHook] = []  # results another process built
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.closing = asyncio.Lock()
        # Named in failure records; the signing committee's id once one is attached.
        self.committee_id = bytes(32)
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def use_signer(self, signer: SlotSigner, committee_id: bytes) -> None:
        """Sign every slot with ``signer`` (the committee's coordinator)."""
        self.signer = signer
        self.committee_id = committee_id

    # --- time ------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self._clock_ms()

    def open_slot(self) -> int:
        return compute_slot_at(self.clock, self.now_ms())

    def head_slot(self) -> int:
        """The newest slot whose auction has closed (what eth_blockNumber answers)."""
        return self.open_slot() - 1

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, *, run_clock: bool = True) -> None:
        # Compile (or load from cache) the solver now: never inside a slot's deadline.
        rules = {r.policy.payment_rule for r in self.rollups.values()}
        await asyncio.to_thread(packer.warm_up, rules)
        for cid, chain in self.chains.items():
            latest = await self.store.latest_result(cid)
            head, pending = await self.signer.load_head(cid)
            chain.start(head, pending, latest.slot if latest else self.open_slot() - 1)
        if run_clock:
            self.start_clock()

    def start_clock(self) -> None:
        """Run the slot clock (closing each slot at its deadline) in the background."""
        self._stopping = False
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run_slots(), name="slot-clock")

    async def stop(self) -> None:
        """Stop the slot clock. Bounded: a cancellation swallowed inside a library (Python 3.11's
        ``asyncio.wait_for`` can lose one) is repeated, and the loop also checks a stop flag, so
        a shutdown never waits forever on the clock."""
        self._stopping = True
        task, self._loop_task = self._loop_task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("slot clock ended with %r", task.exception())

    async def _run_slots(self) -> None:
        # Catch up slots whose deadline passed while no engine ran (their bids are acknowledged).
        while not self._stopping:
            try:
                now = self.now_ms()
                due = compute_slot_at(self.clock, now) - 1
                behind = False
                for cid in self.rollups:
                    start = max(self.chains[cid].closed_through + 1, due - 1000)
                    for slot in range(start, due + 1):
                        if not await self.close_or_fail(cid, slot):
                            behind = True  # the store is down: retry soon; other rollups go on
                            break
                wait_ms = compute_deadline_ms(self.clock, due + 1) - self.now_ms()
                if behind:
                    wait_ms = min(wait_ms, self.clock.slot_ms // 4, 1000)
                await asyncio.sleep(max(0.0, wait_ms / 1000.0))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slot clock fault")
                self.metrics.system_faults.labels("slot_clock").inc()
                await asyncio.sleep(min(1.0, self.clock.slot_ms / 4000.0))

    async def close_or_fail(self, rollup_id: int, slot: int) -> bool:
        """Close a slot; if closing fails for any reason but an unreachable store, record the
        slot as failed so the clock moves on. False only while the store is unreachable (the
        slot is retried; a failing close never blocks later slots or other rollups)."""
        try:
            await self.close_slot(rollup_id, slot)
            return True
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            log.error("closing slot %d of rollup %d: %s", slot, rollup_id, exc.message)
            self.metrics.system_faults.labels("slot_close").inc()
            return False
        except SlotCloseFailed:
            self.chains[rollup_id].skip(slot)
            return True  # another engine process recorded it
        except Exception as exc:
            log.exception("closing slot %d of rollup %d failed; it is recorded as failed", slot,
                          rollup_id)
            self.metrics.system_faults.labels("slot_close").inc()
            try:
                await self._record_failed_close(rollup_id, slot, repr(exc))
            except StoreUnavailable:
                return False
            return True

    async def _record_failed_close(self, rollup_id: int, slot: int, detail: str) -> None:
        """Publish a slot whose result could not be built as failed, and move past it: intake
        stops, its public arrivals wait in the open slot, its searchers are told. Only the process
        holding the slot's close lease does, and only if no result is stored: another process may
        be closing (and proposing) it right now."""
        holder = await self.store.claim_close(rollup_id, slot, self.instance_id, CLOSE_LEASE_MS)
        if not holder or await self.store.get_result(rollup_id, slot) is not None:
            async with self.closing:
                self.chains[rollup_id].skip(slot)
            return
        entries = await self.store.close_slot(rollup_id, slot)
        failed = FailedSlot(
            rollup=rollup_id,
            slot=slot,
            committee_id=self.committee_id,
            block_hash=ZERO_HASH,
            reason=FAILED_CLOSE,
            valid=(),
            refused=(),
            invalid=(),
            missing=(),
            deadline_ms=compute_deadline_ms(self.clock, slot),
            published_ms=self.now_ms(),
        )
        first = await self.store.save_failed_slot(failed)
        async with self.closing:
            self.chains[rollup_id].skip(slot)
            self.chains[rollup_id].pool.clear_arrivals()  # logged again below, in the open slot
        if not first:
            return  # another engine process recorded it (and re-logged its public txs)
        log.error("slot %d of rollup %d failed to close: %s", slot, rollup_id, detail)
        await self.intake.requeue_public_txs(
            [e.event for e in entries if isinstance(e.event, PublicTx)]
        )
        self.notifier.to_slot_watchers(
            {"rollup": rollup_id, "slot": slot, "closed": True, "failed": True,
             "reason": FAILED_CLOSE, "open_slot": self.open_slot()}
        )
        self.notifier.to_block_watchers(failed_slot_to_json(failed))
        for searcher in {e.event.searcher for e in entries if isinstance(e.event, Bid)}:
            self.notifier.to_searcher(
                searcher, "slot_failed", {"rollup": rollup_id, "slot": slot, "reason": FAILED_CLOSE}
            )

    # --- closing a slot --------------------------------------------------------------------

    async def close_slot(self, rollup_id: int, slot: int) -> SlotResult:
        """Close (rollup, slot) in the pipeline's steps (module docstring) and return its result.

        Several engine processes may share the store: the one holding the slot's close lease
        builds and signs the result; the others follow, announcing the stored result to their
        own connections and adopting its outcome (docs/committee.md).
        """
        chain = self.chains[rollup_id]
        entries: list[LoggedEvent] | None = None
        async with self.closing:
            result = await self.store.get_result(rollup_id, slot)
            if result is None:
                await self.signer.prepare(rollup_id, slot)  # 1. settle earlier slots, the head
                result = await self._follow(rollup_id, slot)
                if result is None:
                    entries, result = await self._build(rollup_id, slot)  # 2, 3, 4
            # Each process announces a slot's outcome to its own connections once.
            first_time = chain.closed(result)
        if first_time:
            self._announce(result)  # 5. publish
        if entries is not None:
            await self._observe(self.signer.sign(result, entries), "sign")  # 6. sign, advance
        else:
            await self._observe(self.signer.follow(result), "follow")
        for hook in self.result_hooks if entries is not None else self.follow_hooks:
            await self._observe(hook(result), "result_hook")  # 7. observers
        return result

    async def _observe(self, step: Awaitable[None], where: str) -> None:
        """Run a step after the result is stored: its failure is logged and counted, never
        lost in the clock (the slot's result stands)."""
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", where)
            self.metrics.system_faults.labels(where).inc()

    async def _build(self, rollup_id: int, slot: int) -> tuple[list[LoggedEvent], SlotResult]:
        """Close the slot's log, compute its result and store it with its history (or take the
        one another process stored first)."""
        rollup, chain = self.rollups[rollup_id], self.chains[rollup_id]
        t0 = time.perf_counter()
        entries = await self.store.close_slot(rollup_id, slot)
        t1 = time.perf_counter()
        result = await asyncio.to_thread(
            compute_slot_result,
            rollup,
            slot,
            compute_deadline_ms(self.clock, slot),
            chain.head,
            entries,
            chain.pending,
        )
        refusals = await self.store.list_refusals(rollup_id, slot)
        history = await asyncio.to_thread(
            compute_slot_history,
            result,
            refusals,
            recorded_ms=self.now_ms(),
            gas_limit=rollup.policy.gas_limit,
        )
        t2 = time.perf_counter()
        stored = await self.store.save_result(result, history=history)
        self.intake.refusals.forget_through(rollup_id, slot)
        if not stored:  # another engine process stored it first: theirs is the truth
            other = await self.store.get_result(rollup_id, slot)
            if other is not None:
                result = other
        t3 = time.perf_counter()
        m = self.metrics.slot_close_seconds
        m.labels("close_log").observe(t1 - t0)
        m.labels("build").observe(t2 - t1)
        m.labels("store").observe(t3 - t2)
        self.metrics.slot_bids.labels(str(rollup_id)).set(len(result.outcomes))
        return entries, result

    async def _follow(self, rollup_id: int, slot: int) -> SlotResult | None:
        """None once this process holds the slot's close lease, else the result another stored."""
        lease_ms = CLOSE_LEASE_MS
        while not await self.store.claim_close(rollup_id, slot, self.instance_id, lease_ms):
            # Another process closes this slot; if its lease runs out, we take over.
            waited = 0.0
            while waited < lease_ms / 1000:
                result = await self.store.get_result(rollup_id, slot)
                if result is not None:
                    return result
                if await self.store.get_failed_slot(rollup_id, slot) is not None:
                    raise SlotCloseFailed(f"slot {slot} failed to close in another process")
                await asyncio.sleep(FOLLOW_POLL_S)
                waited += FOLLOW_POLL_S
        return None

    def set_head(self, rollup_id: int, block_hash: str, pending: tuple[PendingTx, ...]) -> None:
        """Make a signed block the parent of the next one, with the pool it left pending."""
        self.chains[rollup_id].set_head(block_hash, pending)

    def _announce(self, result: SlotResult) -> None:
        self.metrics.slot_closed(result.rollup, result.slot)  # intake counts go public now
        self.notifier.to_slot_watchers(
            {
                "rollup": result.rollup,
                "slot": result.slot,
                "closed": True,
                "open_slot": self.open_slot(),
                "bids": len(result.outcomes),
                "winners": len(result.block.bundles),
                "revenue_wei": str(result.block.revenue_wei),
                "gas_used": result.block.gas_used,
                "block_hash": result.block.block_hash,
            }
        )
        clearing = min((w.bid_wei for w in result.block.bundles), default=0)
        for o in result.outcomes:
            self.notifier.to_searcher(
                o.bid.searcher,
                o.outcome,
                {
                    "rollup": result.rollup,
                    "slot": result.slot,
                    "bundleHash": o.bid.bundle_hash,
                    "bidWei": str(o.bid.bid_wei),
                    "paymentWei": str(o.payment_wei),
                    "clearingBidWei": str(clearing),
                },
            )
