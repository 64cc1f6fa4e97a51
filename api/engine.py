"""The engine: the slot clock, and closing each slot in named steps.

A slot is closed for every rollup the engine serves together (shared sequencing, issue 13):
``Engine.close_slot`` is the close pipeline, in this order:

1. ``prepare``: the signer settles earlier slots and sets the heads the blocks build on;
2. ``close log``: for each rollup the store stops intake for the slot and returns its log (or
   another engine process holding the slot's close lease does, and this one follows its stored
   results);
3. ``compute result``: ``auction.results.compute_slot_results`` on every rollup's log and chain
   state together (the joint close: cross-rollup bundles win on all their rollups or none);
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
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from api.chain import ChainState
from api.intake import OFFLOAD_BYTES, Intake
from api.receipts import Receipter
from auction import constants as C
from auction.columnar import SlotEncoder, compute_encoded_parts
from auction.encoding import ZERO_HASH
from auction.errors import LedgerRefused, StoreUnavailable
from auction.history import compute_slot_history
from auction.presets import Preset, Rollup
from auction.receipts import OperatorKey
from auction.results import SlotPart, compute_slot_results
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from auction.types import Bid, Block, LoggedEvent, PendingTx, PublicTx, SlotResult
from committee.records import FAILED_CLOSE, FailedSlot, failed_slot_to_json
from node.collector import paused_gc
from node.escrow import Escrow
from node.metrics import Metrics
from node.notify import Notifier
from node.operator import generate_operator_key
from node.stores.base import Store
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
        self, results: Sequence[SlotResult], entries: Mapping[int, Sequence[LoggedEvent]]
    ) -> None:
        """Get the slot's blocks (one result per rollup, built by this process; the logs it
        held by rollup) signed, publish them, advance the heads."""

    async def follow(self, results: Sequence[SlotResult]) -> None:
        """Adopt the outcome of a slot another process built."""

    def take_slot_encoder(self, slot: int) -> SlotEncoder | None:
        """The packing input kept while ``slot`` was open (``auction.columnar``), if any: the
        close packs from it when it holds a prefix of every closed log (else from scratch)."""


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

    def take_slot_encoder(self, slot: int) -> SlotEncoder | None:
        return None

    async def sign(
        self, results: Sequence[SlotResult], entries: Mapping[int, Sequence[LoggedEvent]]
    ) -> None:
        self._advance(results)

    async def follow(self, results: Sequence[SlotResult]) -> None:
        self._advance(results)

    def _advance(self, results: Sequence[SlotResult]) -> None:
        for result in results:
            chain = self.chains[result.rollup]
            if chain.closed_through == result.slot:  # the newest closed: the next builds on it
                chain.set_head(result.block.block_hash, result.pending)


# How long one process may take to close a slot before another takes over, and how often the
# others look for its result.
CLOSE_LEASE_MS = 15_000
# How many slots a closed slot may stay pending signature before its bid holds are released
# unpaid (a slot is signed within its signing window, or completed while the next is built).
SETTLE_WINDOW_SLOTS = 32
FOLLOW_POLL_S = 0.005



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
                Receipter(operator_key or generate_operator_key(), lambda: self.committee_id)
                if receipts else None
            ),
            committee_id=lambda: self.encryption_committee_id,
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

    async def _record_failed_close(self, slot: int, detail: str) -> None:
        """Publish a slot whose results could not all be built as failed, for every rollup, and
        move past it: intake stops, its public arrivals wait in the open slot, its searchers are
        told. Only the process holding the slot's close lease does, and only if not every result
        is stored: another process may be closing (and proposing) it right now. A slot proposed
        is never failed here (the store refuses: members may be locked to its blocks)."""
        holder = await self.store.claim_close(self.lease_rollup, slot, self.instance_id,
                                              CLOSE_LEASE_MS)
        stored = [await self.store.get_result(r, slot) for r in self.rollups]
        if not holder or all(r is not None for r in stored):
            async with self.closing:
                for chain in self.chains.values():
                    chain.skip(slot)
            return
        entries = {r: await self.store.close_slot(r, slot) for r in self.rollups}
        failed = [
            FailedSlot(
                rollup=r,
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
            for r in sorted(self.rollups)
        ]
        first = await self.store.save_failed_slots(failed)
        async with self.closing:
            for chain in self.chains.values():
                chain.skip(slot)
                chain.pool.clear_arrivals()  # logged again below, in the open slot
        if not first:
            return  # another engine process recorded it (and re-logged its public txs)
        log.error("slot %d failed to close: %s", slot, detail)
        for record in failed:
            await self._announce_failed_close(record, entries[record.rollup])

    async def _announce_failed_close(self, failed: FailedSlot, entries: list[LoggedEvent]) -> None:
        """Re-log a rollup's public arrivals of a slot that failed to close, and tell everyone."""
        rollup_id, slot = failed.rollup, failed.slot
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
        async with self.closing:
            stored = {r: await self.store.get_result(r, slot) for r in rollups}
            if any(result is None for result in stored.values()):
                await self.signer.prepare(slot)  # 1. settle earlier slots, the heads
                followed = await self._follow(slot)
                if followed is not None:
                    stored = followed
                else:
                    entries, stored = await self._build(slot, stored)  # 2, 3, 4
            results = [result for result in stored.values() if result is not None]
            # Each process announces a slot's outcome to its own connections once.
            first_time = [self.chains[result.rollup].closed(result) for result in results]
        paid = compute_cross_payments(results)
        for result, first in zip(results, first_time, strict=True):
            if first:
                self._announce(result, paid)  # 5. publish
        if entries:
            await self._observe(self.signer.sign(results, entries), "sign")  # 6. sign, advance
        else:
            await self._observe(self.signer.follow(results), "follow")
        for hook in self.result_hooks if entries else self.follow_hooks:
            for result in results:
                await self._observe(hook(result), "result_hook")  # 7. observers
        await self._observe(self.settle(slot), "settle")  # 8. settle payments, release holds
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

    async def _build(
        self, slot: int, stored: dict[int, SlotResult | None]
    ) -> tuple[dict[int, list[LoggedEvent]], dict[int, SlotResult | None]]:
        """Close every rollup's log of the slot, compute every result together (one joint
        close: cross-rollup bundles couple the rollups) and store each missing result with its
        history (or take the one another process stored first). A result already stored (a
        restart mid-close) is kept; the computation is deterministic, so it agrees."""
        rollups = sorted(self.rollups)
        t0 = time.perf_counter()
        entries = {r: await self.store.close_slot(r, slot) for r in rollups}
        t1 = time.perf_counter()
        parts = [
            SlotPart(self.rollups[r], self.chains[r].head, entries[r], self.chains[r].pending)
            for r in rollups
        ]
        encoder = self.signer.take_slot_encoder(slot)
        results = await asyncio.to_thread(
            _compute_slot_results, slot, compute_deadline_ms(self.clock, slot), parts, encoder
        )
        t2 = time.perf_counter()
        out = dict(stored)
        for result in results:
            if stored[result.rollup] is None:
                out[result.rollup] = await self._record(result)
        t3 = time.perf_counter()
        m = self.metrics.slot_close_seconds
        m.labels("close_log").observe(t1 - t0)
        m.labels("build").observe(t2 - t1)
        m.labels("store").observe(t3 - t2)
        return entries, out

    async def _record(self, result: SlotResult) -> SlotResult:
        """Store one rollup's result with its history; the stored one if another process won."""
        rollup_id, slot = result.rollup, result.slot
        refusals = await self.store.list_refusals(rollup_id, slot)
        history = await asyncio.to_thread(
            compute_slot_history,
            result,
            refusals,
            recorded_ms=self.now_ms(),
            gas_limit=self.rollups[rollup_id].policy.gas_limit,
        )
        stored = await self.store.save_result(result, history=history)
        self.intake.refusals.forget_through(rollup_id, slot)
        if not stored:  # another engine process stored it first: theirs is the truth
            other = await self.store.get_result(rollup_id, slot)
            if other is not None:
                result = other
        self.metrics.slot_bids.labels(str(rollup_id)).set(len(result.outcomes))
        return result

    async def _follow(self, slot: int) -> dict[int, SlotResult | None] | None:
        """None once this process holds the slot's close lease, else every rollup's result
        another process stored."""
        lease_ms = CLOSE_LEASE_MS
        while not await self.store.claim_close(self.lease_rollup, slot, self.instance_id,
                                               lease_ms):
            # Another process closes this slot; if its lease runs out, we take over.
            waited = 0.0
            while waited < lease_ms / 1000:
                results = {r: await self.store.get_result(r, slot) for r in sorted(self.rollups)}
                if all(result is not None for result in results.values()):
                    return results
                if await self.store.get_failed_slot(self.lease_rollup, slot) is not None:
                    raise SlotCloseFailed(f"slot {slot} failed to close in another process")
                await asyncio.sleep(FOLLOW_POLL_S)
                waited += FOLLOW_POLL_S
        return None

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
