"""The engine: the slot clock, and closing each slot in named steps.

A slot is closed for every rollup the engine serves together (shared sequencing, issue 13):
``Engine.close_slot`` is the close pipeline, in this order:

1. ``prepare``: the signer settles earlier slots and sets the heads the blocks build on;
2. ``close log``: for each rollup the store stops intake for the slot and returns its log,
   both parts (only the tail past the entries the follower read, when the store vouches for
   them in the same step, decision 164), or another engine process holding the slot's close
   lease does, and this one follows its stored
   results; if that process's lease runs out first, this one takes the close over. Every write
   of the close carries the lease's fencing token, and a stale one is refused (``_lead``,
   docs/redis.md "Close leases and fencing"); then ``open``: a slot with sealed bids has the
   committee commit to them and release its key, and their openings join the logs
   (``api.opening``; no key, the slot fails);
3. ``compute result``: ``auction.results.compute_slot_results`` on every rollup's log and chain
   state together (the joint close: cross-rollup bundles win on all their rollups or none),
   packing from the columns the engine's follower kept while the slot was open
   (``node/follower.py``) when they cover a prefix of every closed log, else from scratch;
4. ``record history``: each result and its history, in one atomic store write per rollup;
5. ``publish``: the slot's watchers and every bidder are told;
6. ``sign``: the signer gets every rollup's block of the slot signed at once (the logs passed
   along, not re-read) and advances the heads; a follower process adopts the outcome instead;
7. observers (history retention, the demo's printout) see each result;
8. ``settle`` (deposits enforced only): every slot whose blocks are signed by now (this one, or
   an earlier one whose signing completed late) debits its winners' payments and credits the
   operator's revenue, once per block hash; a settled or failed slot's bid holds are released
   (docs/accountability.md).

A slot whose close fails for any rollup fails for every rollup, and the clock moves on.
Signing is a small protocol (``SlotSigner``): ``UnsignedChain`` without a committee (the heads
follow each result), the committee's coordinator with one (the heads follow signed blocks
only). Intake lives in ``api/intake.py``, a rollup's chain state in ``api/chain.py``. Shell only:
every decision is a call into ``auction`` / ``ordering``; this module adds time, I/O and
concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from api.chain import ChainState
from api.intake import OFFLOAD_BYTES, Intake
from api.opening import SlotKeyNotReleased, open_sealed_logs
from api.receipts import Receipter
from auction import constants as C
from auction.columnar import SlotEncoder, compute_encoded_parts
from auction.encoding import ZERO_HASH
from auction.errors import CloseFenced, LedgerRefused, StoreUnavailable
from auction.history import BidRecord, compute_slot_history
from auction.presets import Preset, Rollup
from auction.receipts import OperatorKey
from auction.results import SlotPart, compute_slot_results
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from auction.types import (
    Bid,
    Block,
    LoggedEvent,
    LoggedSealedBid,
    PendingTx,
    PublicTx,
    SlotResult,
)
from committee.records import FAILED_CLOSE, FAILED_KEY_NOT_RELEASED, FailedSlot, failed_slot_to_json
from node.collector import paused_gc
from node.escrow import Escrow
from node.follower import OpenSlotFollower
from node.metrics import Metrics
from node.notify import Notifier
from node.operator import generate_operator_key
from node.stores.base import Store
from node.stores.fencing import CloseLease
from ordering import packer

log = logging.getLogger("blockspace.engine")


def compute_cross_payments(results: Sequence[SlotResult]) -> dict[str, int]:
    """Every cross-rollup winner's whole payment: its shares in the slot's results summed."""
    paid: dict[str, int] = {}
    for result in results:
        for o in result.outcomes:
            if o.bid.legs and o.outcome == C.OUTCOME_WON:
                paid[o.bid.bid_id] = paid.get(o.bid.bid_id, 0) + o.payment_wei
    return paid


class SlotCloseFailed(Exception):
    """Another engine process recorded the slot as failed while this one waited for it."""

ResultHook = Callable[[SlotResult], Awaitable[None]]


class SlotSigner(Protocol):
    """What the close pipeline asks of whoever signs slots (docs/architecture.md)."""

    async def load_head(self, rollup: int) -> tuple[str, tuple[PendingTx, ...]]:
        """The block a rollup's next one builds on, and the pool it left pending (at start)."""

    async def prepare(self, slot: int) -> None:
        """Before this process builds ``slot``: settle earlier slots, set the heads."""

    async def sign(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]],
        lease: CloseLease | None = None,
    ) -> None:
        """Get the slot's blocks (one result per rollup, built by this process; the logs it
        held by rollup) signed, publish them, advance the heads; every record written under
        the slot's close ``lease`` (``CloseFenced`` if another process took it over)."""

    async def follow(self, results: Sequence[SlotResult]) -> None:
        """Adopt the outcome of a slot another process built."""


class UnsignedChain:
    """No committee: every block is final as built, and the heads follow each result."""

    def __init__(self, store: Store, chains: Mapping[int, ChainState]) -> None:
        self.store = store
        self.chains = chains

    async def load_head(self, rollup: int) -> tuple[str, tuple[PendingTx, ...]]:
        latest = await self.store.latest_result(rollup)
        return (latest.block.block_hash, latest.pending) if latest else (ZERO_HASH, ())

    async def prepare(self, slot: int) -> None:
        return None

    async def sign(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]],
        lease: CloseLease | None = None,
    ) -> None:
        self._advance(results)

    async def follow(self, results: Sequence[SlotResult]) -> None:
        self._advance(results)

    def _advance(self, results: Sequence[SlotResult]) -> None:
        for result in results:
            chain = self.chains[result.rollup]
            if chain.closed_through == result.slot:  # the newest closed: the next builds on it
                chain.set_head(result.block.block_hash, result.pending)


# How long a slot's close lease lasts unrenewed (its holder renews it every third of it while it
# closes): a quarter of a slot, within these bounds (decision 111). A closer that dies or stalls
# is taken over this long after its last renewal, so the slot is closed again within the next
# slot; a live closer is never taken over (it renews), and a false takeover (a closer stalled,
# not dead) costs a repeated close only: its writes are fenced.
CLOSE_LEASE_MIN_MS = 250
CLOSE_LEASE_MAX_MS = 15_000
# TEST ONLY (like BLOCKSPACE_SIGNER_FAULT): the first holder of each slot's close lease pauses
# this long between closing the logs and opening the sealed bids (before storing the results),
# so a test can kill or stop it mid-close. Not a setting: nothing in the configuration can turn
# it on.
CLOSE_PAUSE_ENV = "BLOCKSPACE_TEST_CLOSE_PAUSE_MS"
# TEST ONLY, with CLOSE_PAUSE_ENV: where the close pauses, one or more of CLOSE_PAUSE_POINTS,
# comma-separated. Unset: "logs" only, as before. "opened": after the opening (the key released,
# the opening record kept, the sealed bids opened), before the results are computed and stored.
# "stored": after the results are stored, before the slot is proposed. Each pause logs its point.
CLOSE_PAUSE_AT_ENV = "BLOCKSPACE_TEST_CLOSE_PAUSE_AT"
CLOSE_PAUSE_POINTS = ("logs", "opened", "stored")
# How many slots a closed slot may stay pending signature before its bid holds are released
# unpaid (a slot is signed within its signing window, or completed while the next is built).
SETTLE_WINDOW_SLOTS = 32
# The settlement sweep (``Engine.sweep_settlement``): slots read per store call, and how often
# (in closed slots) the recent slots are swept again while running.
SWEEP_PAGE_SLOTS = 256
SWEEP_EVERY_SLOTS = 32
FOLLOW_POLL_S = 0.005



def compute_close_lease_ms(slot_ms: int) -> int:
    """A slot's close lease: a quarter of a slot, within the bounds above."""
    return max(CLOSE_LEASE_MIN_MS, min(CLOSE_LEASE_MAX_MS, slot_ms // 4))


def _test_pause_points(value: str | None) -> frozenset[str]:
    """TEST ONLY: the points CLOSE_PAUSE_AT_ENV names ("logs" when unset); an unknown one is
    refused at start, so a test cannot silently pause nowhere."""
    points = frozenset(p.strip() for p in (value or "logs").split(",") if p.strip())
    unknown = points - set(CLOSE_PAUSE_POINTS)
    if unknown:
        raise ValueError(f"{CLOSE_PAUSE_AT_ENV}: unknown pause points {sorted(unknown)}")
    return points


def _compute_slot_results(
    slot: int, deadline_ms: int, parts: Sequence[SlotPart], encoder: SlotEncoder | None = None
) -> tuple[SlotResult, ...]:
    """The close's pure step with the cyclic collector paused (its churn is acyclic), from
    the encoding kept while the slot was open when it covers the closed logs."""
    with paused_gc():
        covered, encoder = compute_encoded_parts(encoder, parts)
        return compute_slot_results(slot, deadline_ms, covered, encoder=encoder)

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
        operator_key: OperatorKey | None = None,
        receipts: bool = True,
        receipt_batches: bool = True,
        escrow: Escrow | None = None,
    ) -> None:
        if not rollups:
            raise ValueError("an engine serves at least one rollup")
        self.store = store
        self.rollups = dict(rollups)
        self.default_rollup = next(iter(self.rollups))
        # A slot's close lease is held under its lowest rollup's key: one process closes (and
        # signs) every rollup of a slot.
        self.lease_rollup = min(self.rollups)
        self.preset = preset
        self.clock = SlotClock(genesis_ms=genesis_ms, slot_ms=slot_ms)
        self.close_lease_ms = compute_close_lease_ms(slot_ms)
        self._test_close_pause_ms = int(os.environ.get(CLOSE_PAUSE_ENV) or 0)
        self._test_close_pause_at = _test_pause_points(os.environ.get(CLOSE_PAUSE_AT_ENV))
        self.max_slots_ahead = (
            preset.max_slots_ahead if max_slots_ahead is None else max_slots_ahead
        )
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.metrics = metrics or Metrics()
        self.metrics.watch_store(store)
        self.notifier = Notifier()
        self.chains = {cid: ChainState(r) for cid, r in self.rollups.items()}
        # The deposit ledger (None: deposits not enforced, intake and close as before).
        self.escrow = escrow
        self._unsettled: set[int] = set()  # closed slots whose holds are not released yet
        # Sealed bids refused at opening, by (rollup, slot), until their history is written
        self._opening_refusals: dict[tuple[int, int], list[BidRecord]] = {}
        # The operator key: signs receipts and (with a committee) endorses proposals.
        self.operator_key = operator_key or generate_operator_key()
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
            escrow=escrow,
            receipter=(
                Receipter(self.operator_key, lambda: self.committee_id, batched=receipt_batches)
                if receipts else None
            ),
            committee_id=lambda: self.encryption_committee_id,
        )
        self.signer: SlotSigner = UnsignedChain(store, self.chains)
        # Reads what is new in each open slot's logs and keeps the slot's packing input, which
        # the close takes (node/follower.py); the committee's feeder streams from it.
        self.follower = OpenSlotFollower(store, sorted(self.rollups))
        self._follow_task: asyncio.Task[None] | None = None
        # Observers of each closed slot, after it was signed (or followed): history retention,
        # the demo's printout. They observe; nothing they do changes a slot's outcome.
        self.result_hooks: list[ResultHook] = []  # results this process built
        self.follow_hooks: list[ResultHook] = []  # results another process built
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.closing = asyncio.Lock()
        self._renewals: set[asyncio.Task[None]] = set()  # close leases being renewed
        # Named in failure records; the signing committee's id once one is attached.
        self.committee_id = bytes(32)
        # The committee whose slot keys encrypted bids are for (GET /v1/committee); None: the
        # engine refuses bs_sendEncryptedBundle (encryption_not_served).
        self.encryption_committee_id: bytes | None = None
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    def use_signer(self, signer: SlotSigner, committee_id: bytes) -> None:
        """Sign every slot with ``signer`` (the committee's coordinator)."""
        self.signer = signer
        self.committee_id = committee_id
        self.encryption_committee_id = committee_id

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
        # Slots a crashed predecessor signed but never settled: settled before the clock runs.
        # Older slots than two windows before its newest were settled or released by its own
        # window rule (and slots from before deposits were enforced must never be debited).
        newest = await self.store.latest_result(self.lease_rollup)
        if newest is not None:
            await self._observe(
                self.sweep_settlement(newest.slot - 2 * SETTLE_WINDOW_SLOTS), "sweep")
        if run_clock:
            self.start_clock()

    def start_clock(self) -> None:
        """Run the slot clock (closing each slot at its deadline) in the background, and
        follow each open slot's logs."""
        self._stopping = False
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run_slots(), name="slot-clock")
        self.start_following()

    def start_following(self) -> None:
        """Follow each open slot's logs in the background (once; ``node/follower.py``)."""
        if self._follow_task is None:
            self._follow_task = asyncio.create_task(
                self.follower.run(self.open_slot, self._count_follow_fault), name="follower"
            )

    async def stop_following(self) -> None:
        task, self._follow_task = self._follow_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=5.0)

    def _count_follow_fault(self) -> None:
        self.metrics.system_faults.labels("follow_open_slot").inc()

    async def stop(self) -> None:
        """Stop the slot clock. Bounded: a cancellation swallowed inside a library (Python 3.11's
        ``asyncio.wait_for`` can lose one) is repeated, and the loop also checks a stop flag, so
        a shutdown never waits forever on the clock."""
        self._stopping = True
        await self.stop_following()
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
                closed = min(chain.closed_through for chain in self.chains.values())
                for slot in range(max(closed + 1, due - 1000), due + 1):
                    if not await self.close_or_fail(slot):
                        behind = True  # the store is down: retry soon
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

    async def close_or_fail(self, slot: int) -> bool:
        """Close a slot (every rollup's); if closing fails for any reason but an unreachable
        store, record the slot as failed for every rollup so the clock moves on. False only
        while the store is unreachable (the slot is retried; a failing close never blocks later
        slots)."""
        try:
            await self.close_slot(slot)
            return True
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:
            log.error("closing slot %d: %s", slot, exc.message)
            self.metrics.system_faults.labels("slot_close").inc()
            return False
        except SlotKeyNotReleased as exc:
            log.warning("%s", exc)
            try:
                await self._record_failed_close(slot, exc.detail, reason=FAILED_KEY_NOT_RELEASED,
                                                sealed_searchers=exc.searchers)  # fmt: skip
            except StoreUnavailable:
                return False
            self._unsettled.add(slot)
            return True
        except SlotCloseFailed:
            for chain in self.chains.values():
                chain.skip(slot)
            self._unsettled.add(slot)  # its holds are released by the next settlement
            return True  # another engine process recorded it
        except Exception as exc:
            log.exception("closing slot %d failed; it is recorded as failed", slot)
            self.metrics.system_faults.labels("slot_close").inc()
            try:
                await self._record_failed_close(slot, repr(exc))
            except StoreUnavailable:
                return False
            self._unsettled.add(slot)  # its holds are released by the next settlement
            return True

    async def _record_failed_close(
        self,
        slot: int,
        detail: str,
        *,
        reason: str = FAILED_CLOSE,
        sealed_searchers: Sequence[str] = (),
    ) -> None:
        """Publish a slot whose results could not all be built as failed, for every rollup, and
        move past it: intake stops, its public arrivals wait in the open slot, its searchers are
        told. Only the process holding the slot's close lease does, and only if not every result
        is stored: another process may be closing (and proposing) it right now. A slot proposed
        is never failed here (the store refuses: members may be locked to its blocks)."""
        token = await self.store.claim_close(self.lease_rollup, slot, self.instance_id,
                                             self.close_lease_ms)
        lease = CloseLease(self.lease_rollup, slot, token) if token else None
        try:
            if lease is not None:
                await self.store.raise_fences(lease, sorted(self.rollups))
            stored = [await self.store.get_result(r, slot) for r in self.rollups]
            if lease is None or all(r is not None for r in stored):
                async with self.closing:
                    for chain in self.chains.values():
                        chain.skip(slot)
                return
            entries = {r: await self.store.close_slot(r, slot, lease) for r in self.rollups}
        except CloseFenced as exc:
            self._count_fenced(exc)  # another process took the slot over: it records it
            async with self.closing:
                for chain in self.chains.values():
                    chain.skip(slot)
            return
        failed = [
            FailedSlot(
                rollup=r,
                slot=slot,
                committee_id=self.committee_id,
                block_hash=ZERO_HASH,
                reason=reason,
                valid=(),
                refused=(),
                invalid=(),
                missing=(),
                deadline_ms=compute_deadline_ms(self.clock, slot),
                published_ms=self.now_ms(),
            )
            for r in sorted(self.rollups)
        ]
        try:
            first = await self.store.save_failed_slots(failed, lease=lease)
        except CloseFenced as exc:
            self._count_fenced(exc)
            first = False
        async with self.closing:
            for chain in self.chains.values():
                chain.skip(slot)
                chain.pool.clear_arrivals()  # logged again below, in the open slot
        if not first:
            return  # another engine process recorded it (and re-logged its public txs)
        log.error("slot %d failed to close: %s", slot, detail)
        for record in failed:
            await self._announce_failed_close(record, entries[record.rollup])
        for searcher in sealed_searchers:  # their sealed bids stay sealed for ever
            self.notifier.to_searcher(searcher, "slot_failed", {"slot": slot, "reason": reason})

    async def _announce_failed_close(self, failed: FailedSlot, entries: list[LoggedEvent]) -> None:
        """Re-log a rollup's public arrivals of a slot that failed to close, and tell everyone."""
        rollup_id, slot = failed.rollup, failed.slot
        await self.intake.requeue_public_txs(
            [e.event for e in entries if isinstance(e.event, PublicTx)]
        )
        self.notifier.to_slot_watchers(
            {"rollup": rollup_id, "slot": slot, "closed": True, "failed": True,
             "reason": failed.reason, "open_slot": self.open_slot()}
        )
        self.notifier.to_block_watchers(failed_slot_to_json(failed))
        for searcher in {e.event.searcher for e in entries if isinstance(e.event, Bid)}:
            self.notifier.to_searcher(
                searcher, "slot_failed",
                {"rollup": rollup_id, "slot": slot, "reason": failed.reason},
            )

    # --- closing a slot --------------------------------------------------------------------

    async def close_slot(self, slot: int) -> list[SlotResult]:
        """Close ``slot`` for every rollup in the pipeline's steps (module docstring) and return
        its results (ascending rollup).

        Several engine processes may share the store: the one holding the slot's close lease
        builds every rollup's result and signs the slot; the others follow, announcing the
        stored results to their own connections and adopting the slot's outcome
        (docs/committee.md). A result already stored (a restart mid-close) is taken as it is.
        """
        rollups = sorted(self.rollups)
        entries: dict[int, list[LoggedEvent]] = {}
        lease: CloseLease | None = None
        async with self.closing:
            stored = {r: await self.store.get_result(r, slot) for r in rollups}
            if any(result is None for result in stored.values()):
                await self.signer.prepare(slot)  # 1. settle earlier slots, the heads
                lease, entries, stored = await self._lead(slot)  # 2, 3, 4 (or follow)
            results = [result for result in stored.values() if result is not None]
            # Each process announces a slot's outcome to its own connections once.
            first_time = [self.chains[result.rollup].closed(result) for result in results]
        paid = compute_cross_payments(results)
        for result, first in zip(results, first_time, strict=True):
            if first:
                self._announce(result, paid)  # 5. publish
        if lease is not None:
            await self._test_pause(lease, "stored")
            await self._observe(self._sign(results, entries, lease), "sign")  # 6. sign, advance
        else:
            await self._observe(self.signer.follow(results), "follow")
        for hook in self.result_hooks if lease is not None else self.follow_hooks:
            for result in results:
                await self._observe(hook(result), "result_hook")  # 7. observers
        await self._observe(self.settle(slot), "settle")  # 8. settle payments, release holds
        if self.escrow is not None and slot % SWEEP_EVERY_SLOTS == 0:
            # 8b. what another process's crash left unsettled among the recent slots
            await self._observe(self.sweep_settlement(slot - 2 * SWEEP_EVERY_SLOTS), "sweep")
        return results

    async def settle(self, slot: int) -> None:
        """Settle ``slot`` and every earlier closed slot not settled yet: a slot whose blocks
        are final (signed; without a committee, as built) has its winners debited, once per
        block hash; a final or failed slot has its holds released. A slot still pending
        signature waits for a later call, for SETTLE_WINDOW_SLOTS at most (it can no longer be
        signed by then: its holds are released unpaid)."""
        if self.escrow is None:
            return
        self._unsettled.add(slot)
        for s in sorted(self._unsettled):
            blocks = await self._final_blocks(s)
            if blocks is None and s > slot - SETTLE_WINDOW_SLOTS:
                continue  # pending: signing may still complete
            for block in blocks or ():
                try:
                    await self.escrow.settle_block(block, self.now_ms())
                except LedgerRefused as exc:
                    # Only if a winner bid without a hold (deposits turned on mid-slot): the
                    # block stays unpaid, loudly, rather than retried at every close.
                    log.error("settling block %s of slot %d: %s", block.block_hash, s, exc.code)
                    self.metrics.system_faults.labels("settle").inc()
            await self.escrow.release_slot(s)
            self._unsettled.discard(s)
        # A bid held just as its slot closed (the append then refused it) left a hold after the
        # slot's release: sweep the slot that just left the window, whatever happened to it.
        await self.escrow.release_slot(slot - SETTLE_WINDOW_SLOTS)

    async def sweep_settlement(self, from_slot: int | None = None) -> int:
        """Settle every closed slot the store holds (from ``from_slot`` on, if given) whose
        blocks are final and not settled yet, and release the holds of every final or failed
        one: what an engine that crashed between a slot's signature and its settlement (step
        8) left behind, found in the store rather than in this process's memory. Once per
        block hash, as ``settle``, so any number of processes and sweeps may run it; a slot
        still pending signature is left to ``settle``. Returns how many slots it looked at.
        Run at start (the two settlement windows before the newest closed slot) and every
        ``SWEEP_EVERY_SLOTS`` closes (the two windows before it)."""
        if self.escrow is None:
            return 0
        newest = self.open_slot()
        seen = 0
        to_slot: int | None = None
        while True:
            page = await self.store.list_result_slots(
                self.lease_rollup, from_slot=from_slot, to_slot=to_slot, limit=SWEEP_PAGE_SLOTS
            )
            for s in page:
                await self._settle_slot(s, newest)
            seen += len(page)
            if len(page) < SWEEP_PAGE_SLOTS:
                return seen
            to_slot = page[-1] - 1

    async def _settle_slot(self, slot: int, newest: int) -> None:
        """One slot of the sweep: settle its final blocks, release its holds (a slot pending
        past the window is released unpaid, as ``settle`` does)."""
        assert self.escrow is not None
        blocks = await self._final_blocks(slot)
        if blocks is None and slot > newest - SETTLE_WINDOW_SLOTS:
            self._unsettled.add(slot)  # pending: the next settlement takes it
            return
        for block in blocks or ():
            try:
                await self.escrow.settle_block(block, self.now_ms())
            except LedgerRefused as exc:
                log.error("sweeping block %s of slot %d: %s", block.block_hash, slot, exc.code)
                self.metrics.system_faults.labels("settle").inc()
        await self.escrow.release_slot(slot)

    async def _final_blocks(self, slot: int) -> list[Block] | None:
        """The slot's final blocks (every rollup's), [] if it failed, None while pending."""
        blocks = []
        for rollup in sorted(self.rollups):
            signed = await self.store.get_signed_block(rollup, slot)
            if signed is not None:
                blocks.append(signed.block)
                continue
            if await self.store.get_failed_slot(rollup, slot) is not None:
                return []
            result = await self.store.get_result(rollup, slot)
            if result is None or self.committee_id != bytes(32):
                return None  # not closed here yet, or closed and not signed yet
            blocks.append(result.block)  # no committee: final as built
        return blocks

    async def _observe(self, step: Awaitable[object], where: str) -> None:
        """Run a step after the result is stored: its failure is logged and counted, never
        lost in the clock (the slot's result stands)."""
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", where)
            self.metrics.system_faults.labels(where).inc()

    async def _build(
        self, lease: CloseLease
    ) -> tuple[dict[int, list[LoggedEvent]], dict[int, SlotResult | None]]:
        """Close every rollup's log of the slot, compute every result together (one joint
        close: cross-rollup bundles couple the rollups) and store each missing result with its
        history (or take the one another process stored first), every write under ``lease``.
        A result already stored (a restart mid-close, or a closer taken over) is kept; the
        computation is deterministic, so it agrees."""
        rollups = sorted(self.rollups)
        slot = lease.slot
        # Fence first, then read: whatever a stale closer wrote before this is seen below,
        # whatever it writes after is refused (node/stores/fencing.py).
        await self.store.raise_fences(lease, rollups)
        stored = {r: await self.store.get_result(r, slot) for r in rollups}
        # The slot as followed while open (node/follower.py), handed over: the store returns
        # only what comes after the entries it holds, if it can vouch they are the closed log's
        # first entries, else the whole log (decision 164).
        followed = self.follower.take_slot(slot)
        t0 = time.perf_counter()
        entries: dict[int, list[LoggedEvent]] = {}
        sealed: dict[int, list[LoggedSealedBid]] = {}
        for r in rollups:
            held = followed.logs.get(r, []) if followed is not None else []
            held_sealed = followed.sealed.get(r, []) if followed is not None else []
            closed = await self.store.close_slot_parts_from(r, slot, len(held), len(held_sealed),
                                                            lease)  # fmt: skip
            entries[r] = held[: closed.start] + closed.events
            sealed[r] = held_sealed[: closed.sealed_start] + closed.sealed
        await self._test_pause(lease, "logs")
        opened = await open_sealed_logs(self.store, self.signer, rollups, slot, entries,
                                        self.escrow, sealed)  # fmt: skip
        entries = opened.entries
        for searcher, notice in opened.notices:  # refused at opening: told, and in the history
            self.notifier.to_searcher(searcher, "opening_refused", notice)
        await self._test_pause(lease, "opened")
        t1 = time.perf_counter()
        parts = [
            SlotPart(self.rollups[r], self.chains[r].head, entries[r], self.chains[r].pending)
            for r in rollups
        ]
        encoder = followed.encoder if followed is not None else None
        results = await asyncio.to_thread(
            _compute_slot_results, slot, compute_deadline_ms(self.clock, slot), parts, encoder
        )
        t2 = time.perf_counter()
        out = dict(stored)
        for result in results:
            if stored[result.rollup] is None:
                self._opening_refusals[result.rollup, slot] = opened.refused.get(result.rollup, [])
                out[result.rollup] = await self._record(result, lease)
        t3 = time.perf_counter()
        m = self.metrics.slot_close_seconds
        m.labels("close_log").observe(t1 - t0)
        m.labels("build").observe(t2 - t1)
        m.labels("store").observe(t3 - t2)
        return entries, out

    async def _record(self, result: SlotResult, lease: CloseLease) -> SlotResult:
        """Store one rollup's result with its history (the refusals filed at intake and those
        at opening); the stored one if another process won."""
        rollup_id, slot = result.rollup, result.slot
        opening_refusals = self._opening_refusals.pop((rollup_id, slot), [])
        refusals = [*await self.store.list_refusals(rollup_id, slot), *opening_refusals]
        history = await asyncio.to_thread(
            compute_slot_history,
            result,
            refusals,
            recorded_ms=self.now_ms(),
            gas_limit=self.rollups[rollup_id].policy.gas_limit,
        )
        stored = await self.store.save_result(result, history=history, lease=lease)
        self.intake.refusals.forget_through(rollup_id, slot)
        if not stored:  # another engine process stored it first: theirs is the truth
            other = await self.store.get_result(rollup_id, slot)
            if other is not None:
                result = other
        self.metrics.slot_bids.labels(str(rollup_id)).set(len(result.outcomes))
        return result

    async def _follow(self, slot: int) -> CloseLease | dict[int, SlotResult | None]:
        """The slot's close lease once this process holds it, else every rollup's result
        another process stored."""
        lease_ms = self.close_lease_ms
        give_up = time.monotonic()  # first one look at the store, then claim
        while True:
            while True:
                results = {r: await self.store.get_result(r, slot) for r in sorted(self.rollups)}
                if all(result is not None for result in results.values()):
                    return results
                if await self.store.get_failed_slot(self.lease_rollup, slot) is not None:
                    raise SlotCloseFailed(f"slot {slot} failed to close in another process")
                if time.monotonic() >= give_up:
                    break
                await asyncio.sleep(FOLLOW_POLL_S)
            token = await self.store.claim_close(self.lease_rollup, slot, self.instance_id,
                                                 lease_ms)
            if token:
                break
            # Another process closes this slot; if its lease runs out unfinished, we take over
            # (never a slot whose results are all stored: it is closed, whoever signs it).
            give_up = time.monotonic() + lease_ms / 1000
        if token > 1:  # an earlier holder's lease ran out before its results were all stored
            log.warning("slot %d: close taken over (fencing token %d): the previous closer's "
                        "lease expired before its results were stored", slot, token)
            self.metrics.close_takeovers.inc()
        return CloseLease(self.lease_rollup, slot, token)

    # --- close leases and fencing (node/stores/fencing.py) ---------------------------------

    async def _lead(
        self, slot: int
    ) -> tuple[CloseLease | None, dict[int, list[LoggedEvent]], dict[int, SlotResult | None]]:
        """Close the slot under its lease (the lease, the logs held, the results), or follow
        the process that holds it (no lease, no logs). A write refused as stale (this process
        stalled past its lease and another took over) is logged and counted, and this process
        then follows the newer closer (or takes over again, if that one's lease ran out)."""
        while True:
            taken = await self._follow(slot)
            if not isinstance(taken, CloseLease):
                return None, {}, taken
            try:
                async with self._lease_kept(taken):
                    entries, stored = await self._build(taken)
                return taken, entries, stored
            except CloseFenced as exc:
                self._count_fenced(exc)

    @contextlib.asynccontextmanager
    async def _lease_kept(self, lease: CloseLease) -> AsyncIterator[None]:
        """Renew the close lease every third of it while the body runs."""
        done = asyncio.Event()
        renewing = asyncio.create_task(self._renew_lease(lease, done), name="close-lease")
        self._renewals.add(renewing)
        renewing.add_done_callback(self._renewals.discard)
        try:
            yield
        finally:
            # Not awaited: a store call in flight ends by itself (the store client may turn a
            # cancellation into a connection error), and the loop ends on ``done``.
            done.set()
            renewing.cancel()

    async def _renew_lease(self, lease: CloseLease, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.close_lease_ms / 3000)
            if done.is_set():
                return
            try:
                token = await self.store.claim_close(
                    lease.rollup, lease.slot, self.instance_id, self.close_lease_ms
                )
            except StoreUnavailable:
                continue  # the writes will say whether the lease still holds
            if done.is_set():
                return
            if token != lease.token:
                log.warning("slot %d: the close lease (fencing token %d) lapsed mid-close; "
                            "writes after a takeover are refused", lease.slot, lease.token)
                self.metrics.close_leases_lost.inc()
                return

    async def _sign(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]],
        lease: CloseLease,
    ) -> None:
        """Sign the slot under its close lease; if another process took the close over (this
        one's records are refused), follow its outcome instead."""
        try:
            await self.signer.sign(results, entries, lease)
        except CloseFenced as exc:
            self._count_fenced(exc)
            await self.signer.follow(results)

    def _count_fenced(self, exc: CloseFenced) -> None:
        """A stale write of a close, refused: one clear log line and the metric."""
        log.warning("close fenced: %s; following the newer closer", exc.message)
        self.metrics.close_fenced.labels(str(exc.data.get("where", "?"))).inc()

    async def _test_pause(self, lease: CloseLease, point: str) -> None:
        """TEST ONLY (CLOSE_PAUSE_ENV, CLOSE_PAUSE_AT_ENV): the first closer of a slot pauses
        mid-close at ``point``. The pause after closing the logs logs as it always has; the
        others name their point."""
        if self._test_close_pause_ms <= 0 or lease.token != 1:
            return
        if point not in self._test_close_pause_at:
            return
        if point == "logs":
            log.warning("test fault: pausing the close of slot %d for %d ms (fencing token %d)",
                        lease.slot, self._test_close_pause_ms, lease.token)
        else:
            log.warning("test fault: pausing the close of slot %d at %s for %d ms (fencing "
                        "token %d)", lease.slot, point, self._test_close_pause_ms, lease.token)
        await asyncio.sleep(self._test_close_pause_ms / 1000)

    def set_head(self, rollup_id: int, block_hash: str, pending: tuple[PendingTx, ...]) -> None:
        """Make a signed block the parent of the next one, with the pool it left pending."""
        self.chains[rollup_id].set_head(block_hash, pending)

    def _announce(self, result: SlotResult, cross_paid: Mapping[str, int]) -> None:
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
            extra: dict[str, object] = {}
            if o.bid.legs:
                # A cross-rollup bundle: one notification (from its lowest rollup's result, the
                # outcome being the same in all), with its whole payment and its rollups.
                if o.bid.rollup != o.bid.rollups[0]:
                    continue
                extra = {"rollups": list(o.bid.rollups)}
            payment = cross_paid.get(o.bid.bid_id, o.payment_wei)
            self.notifier.to_searcher(
                o.bid.searcher,
                o.outcome,
                {
                    "rollup": result.rollup,
                    "slot": result.slot,
                    "bundleHash": o.bid.bundle_hash,
                    "bidWei": str(o.bid.bid_wei),
                    "paymentWei": str(payment),
                    "clearingBidWei": str(clearing),
                    **extra,
                },
            )
