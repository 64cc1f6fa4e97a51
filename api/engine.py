"""The engine: intake into the store, the slot clock, closing slots, announcing results.

Shell only: every decision is a call into ``auction`` / ``ordering``; this module adds time,
I/O and concurrency.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from api.history import RefusalRecorder
from api.metrics import Metrics
from api.notify import Notifier
from api.stores.base import IntakeLimits, Store
from auction import constants as C
from auction.auth import recover_evidence
from auction.bundles import compute_cancel_slots, parse_quantity
from auction.encoding import ZERO_HASH
from auction.errors import (
    BlockspaceError,
    BundleNotFound,
    InvalidParams,
    RateLimited,
    SlotClosed,
    StoreUnavailable,
    UnknownRollup,
)
from auction.hashing import from_hex, to_hex
from auction.history import compute_slot_history
from auction.intake import (
    CANCEL_BUNDLE,
    SEND_BUNDLE,
    SEND_PRIVATE_TX,
    SEND_RAW_TX,
    IntakeContext,
    Refused,
    compute_intake_event,
    compute_refused,
)
from auction.pool import PoolView
from auction.presets import Policy, Preset, Rollup
from auction.results import compute_slot_result
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_at
from auction.types import Bid, Cancel, Evidence, IntakeEvent, PendingTx, PublicTx, SlotResult
from committee.records import FAILED_CLOSE, FailedSlot, failed_slot_to_json
from ordering import packer

log = logging.getLogger("blockspace.engine")


class SlotCloseFailed(Exception):
    """Another engine process recorded the slot as failed while this one waited for it."""

ResultHook = Callable[[SlotResult], Awaitable[None]]

# Signed requests at least this large are decoded in a worker thread (decision 19; the
# setting decode_offload_bytes).
OFFLOAD_BYTES = 32 * 1024
# A signed cancel takes effect once, when first seen; it is remembered this long, so a replay
# (or a retry) within it changes nothing (docs/protocol.md: cancels).
CANCEL_WINDOW_MS = 7 * 24 * 3600 * 1000

# How long one process may take to close a slot before another takes over, and how often the
# others look for its result.
CLOSE_LEASE_MS = 15_000
FOLLOW_POLL_S = 0.005


def compute_intake_limits(policy: Policy) -> IntakeLimits:
    """The limits a slot's log enforces with every append, from the rollup's policy."""
    return IntakeLimits(
        max_bundles=policy.max_bundles_per_searcher_per_slot,
        max_bytes=policy.max_bytes_per_searcher_per_slot,
        max_slot_events=policy.max_bids_per_slot,
        max_slot_bytes=policy.max_bytes_per_slot,
    )


class TokenBucket:
    """Per-searcher flood control; time is passed in."""

    __slots__ = ("rate", "burst", "tokens", "last_ms")

    def __init__(self, rate_per_s: float, burst: float, now_ms: int) -> None:
        self.rate, self.burst, self.tokens, self.last_ms = rate_per_s, burst, burst, now_ms

    def take(self, now_ms: int) -> bool:
        elapsed = max(0, now_ms - self.last_ms)
        self.last_ms = now_ms
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate / 1000.0)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


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
        self.decode_offload_bytes = decode_offload_bytes
        self.notifier = Notifier()
        self.result_hooks: list[ResultHook] = []  # results this process built
        self.follow_hooks: list[ResultHook] = []  # results another process built
        # Awaited before this process builds a slot (rollup, slot): the committee's coordinator
        # settles earlier slots still being signed and refreshes the head from the store.
        self.build_guards: list[Callable[[int, int], Awaitable[None]]] = []
        self.refusals = RefusalRecorder()  # refused bundles, for their slot's history
        self._buckets: dict[str, TokenBucket] = {}
        self._heads: dict[int, str] = {}
        # The public pool: txs carried over from the last block, and this engine's view of the
        # protected hashes and of the pool's fees and senders (for the intake checks; the close
        # re-checks from the log and decides what stays pending).
        self._pending: dict[int, tuple[PendingTx, ...]] = {}
        self._protected: dict[int, set[str]] = {cid: set() for cid in self.rollups}
        self._pools = {cid: PoolView(r.policy) for cid, r in self.rollups.items()}
        self._closed_through: dict[int, int] = {}
        # With a signing committee (committee/coordinator.py) the chain advances only on signed
        # blocks: the coordinator sets the head (``set_head``), so a failed slot never becomes a
        # parent; its public arrivals are logged again in a later slot (docs/committee.md).
        self.signed_chain = False
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.closing = asyncio.Lock()
        # Named in failure records; the signing committee's id once one is attached.
        self.committee_id = bytes(32)
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

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
        for cid in self.rollups:
            latest = await self.store.latest_result(cid)
            self._heads[cid] = latest.block.block_hash if latest else ZERO_HASH
            self._set_pending(cid, latest.pending if latest else ())
            self._closed_through[cid] = latest.slot if latest else self.open_slot() - 1
            if self.signed_chain:
                signed = await self.store.latest_signed_block(cid)
                parent = await self.store.get_result(cid, signed.block.slot) if signed else None
                self._heads[cid] = signed.block.block_hash if signed else ZERO_HASH
                self._set_pending(cid, parent.pending if parent else ())
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
                    start = max(self._closed_through[cid] + 1, due - 1000)
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
            self._closed_through[rollup_id] = max(self._closed_through[rollup_id], slot)
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
                self._closed_through[rollup_id] = max(self._closed_through[rollup_id], slot)
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
            self._closed_through[rollup_id] = max(self._closed_through[rollup_id], slot)
            self._pools[rollup_id].clear_arrivals()  # logged again below, in the open slot
        if not first:
            return  # another engine process recorded it (and re-logged its public txs)
        log.error("slot %d of rollup %d failed to close: %s", slot, rollup_id, detail)
        await self.requeue_public_txs([e.event for e in entries if isinstance(e.event, PublicTx)])
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
        """Close intake for (rollup, slot), build and store its result, announce it.

        Several engine processes may share the store: the one holding the slot's close lease
        builds the result and runs the result hooks (signing); the others follow, announcing the
        stored result to their own connections, and run the follow hooks (adopting the signed
        head: docs/committee.md).
        """
        async with self.closing:
            # Each process announces a slot's outcome to its own connections once, whether it
            # built the result, waited for it, or found it already stored.
            first_time = slot > self._closed_through.get(rollup_id, -1)
            result = await self.store.get_result(rollup_id, slot)
            built = False
            if result is None:
                for guard in self.build_guards:
                    await guard(rollup_id, slot)
                result = await self._follow(rollup_id, slot)
                if result is None:
                    result = await self._build(rollup_id, slot)
                    built = True
            self._advance(rollup_id, result)
        if first_time:
            self._announce(result)
        for hook in self.result_hooks if built else self.follow_hooks:
            try:
                await hook(result)
            except Exception:
                log.exception("result hook failed")
                self.metrics.system_faults.labels("result_hook").inc()
        return result

    async def _build(self, rollup_id: int, slot: int) -> SlotResult:
        """Close the slot's log, compute its result and store it (or take a stored one)."""
        rollup = self.rollups[rollup_id]
        t0 = time.perf_counter()
        entries = await self.store.close_slot(rollup_id, slot)
        t1 = time.perf_counter()
        result = await asyncio.to_thread(
            compute_slot_result,
            rollup,
            slot,
            compute_deadline_ms(self.clock, slot),
            self._heads.get(rollup_id, ZERO_HASH),
            entries,
            self._pending.get(rollup_id, ()),
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
        self.refusals.forget_through(rollup_id, slot)
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
        return result

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

    def _advance(self, rollup_id: int, result: SlotResult) -> None:
        if result.slot > self._closed_through.get(rollup_id, -1):
            self._closed_through[rollup_id] = result.slot
            if self.signed_chain:
                self._pools[rollup_id].clear_arrivals()  # the head moves in set_head, once signed
            else:
                self._heads[rollup_id] = result.block.block_hash
                self._set_pending(rollup_id, result.pending)

    def set_head(self, rollup_id: int, block_hash: str, pending: tuple[PendingTx, ...]) -> None:
        """Make a signed block the parent of the next one, with the pool it left pending."""
        self._heads[rollup_id] = block_hash
        self._set_pending(rollup_id, pending, keep_arrivals=True)

    def _set_pending(
        self, rollup_id: int, pending: tuple[PendingTx, ...], *, keep_arrivals: bool = False
    ) -> None:
        self._pending[rollup_id] = pending
        self._protected[rollup_id] = {p.tx.hash for p in pending if p.protected}
        self._pools[rollup_id].set_pending(pending, keep_arrivals=keep_arrivals)

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

    # --- intake ----------------------------------------------------------------------------

    def _rate_check(self, searcher: str, now_ms: int) -> None:
        bucket = self._buckets.get(searcher)
        if bucket is None:
            bucket = self._buckets[searcher] = TokenBucket(
                self.preset.searcher_rate_per_s, self.preset.searcher_burst, now_ms
            )
        if not bucket.take(now_ms):
            raise RateLimited("too many requests from this searcher; slow down")

    def authenticate(self, body: bytes, signature: str | None) -> tuple[str, Evidence]:
        """The searcher who signed ``body``, and the evidence (its signature header canonical)."""
        return recover_evidence(body, signature)

    def _endpoint_rollup(self, endpoint_rollup: int | None) -> int:
        if endpoint_rollup is None:
            return self.default_rollup
        if endpoint_rollup not in self.rollups:
            raise UnknownRollup(f"rollup {endpoint_rollup} is not served here")
        return endpoint_rollup

    def intake_context(self, endpoint_rollup: int | None) -> IntakeContext:
        """What requests to ``endpoint_rollup`` (None: ``POST /``) are judged against."""
        # A bundle's rollup is only known once decoded; protected hashes of every rollup are
        # few, and a hash names one tx on one chain, so the union is exact.
        if endpoint_rollup is not None:
            protected = frozenset(self._protected.get(endpoint_rollup, ()))
        else:
            protected = frozenset().union(*self._protected.values())
        return IntakeContext(
            rollups=self.rollups,
            clock=self.clock,
            max_slots_ahead=self.max_slots_ahead,
            default_rollup=self.default_rollup,
            endpoint_rollup=endpoint_rollup,
            protected_hashes=protected,
        )

    async def _derive(
        self,
        method: str,
        params: Any,
        ctx: IntakeContext,
        received_ms: int,
        signer: tuple[str, Evidence] | None = None,
    ) -> IntakeEvent | Refused:
        """The request's event, or its refusal (``auction.intake``). A large request (long
        access lists) takes tens of ms to decode: off the event loop, so it never delays other
        searchers' acknowledgements."""
        body = signer[1].body if signer is not None else b""
        derive = functools.partial(
            compute_intake_event,
            body,
            signer[1].signature if signer is not None else None,
            received_ms,
            ctx,
            request={"method": method, "params": params},
            signer=signer,
        )
        large = len(body) >= self.decode_offload_bytes
        return await asyncio.to_thread(derive) if large else derive()

    async def _event(
        self,
        method: str,
        params: Any,
        ctx: IntakeContext,
        received_ms: int,
        signer: tuple[str, Evidence] | None = None,
    ) -> IntakeEvent:
        """The request's event; its refusal is raised."""
        event = await self._derive(method, params, ctx, received_ms, signer)
        if isinstance(event, Refused):
            raise event.error
        return event

    def _file_refusal(self, refused: Refused) -> None:
        """A refused bundle whose target slot is still open goes into that slot's history."""
        record = refused.record
        if record is not None and record.rollup in self.rollups:
            self.refusals.record(
                self.store,
                record,
                closed_through=self._closed_through.get(record.rollup, self.head_slot()),
                open_slot=self.open_slot(),
                max_slots_ahead=self.max_slots_ahead,
            )

    async def submit_bundle(
        self,
        params: Any,
        *,
        searcher: str,
        evidence: Evidence,
        endpoint_rollup: int | None,
        transport: str,
    ) -> dict[str, Any]:
        """eth_sendBundle; a refusal whose target slot is still open goes into its history."""
        received_ms = self.now_ms()
        ctx = self.intake_context(endpoint_rollup)
        refused: Refused | None = None
        try:
            self._rate_check(searcher, received_ms)
            event = await self._derive(SEND_BUNDLE, params, ctx, received_ms, (searcher, evidence))
            if isinstance(event, Refused):
                refused = event
            else:
                assert isinstance(event, Bid)
                bid = event
                t0 = time.perf_counter()
                await self.store.append_bid(
                    bid, compute_intake_limits(self.rollups[bid.rollup].policy)
                )
        except BlockspaceError as exc:  # rate limits and the store's limits
            refused = compute_refused(exc, SEND_BUNDLE, params, searcher, received_ms, ctx)
        if refused is not None:
            self._file_refusal(refused)
            raise refused.error
        self.metrics.count_bid(bid.rollup, bid.slot, transport, time.perf_counter() - t0)
        self.notifier.to_searcher(
            searcher,
            "received",
            {
                "rollup": bid.rollup,
                "slot": bid.slot,
                "bundleHash": bid.bundle_hash,
                "bidWei": str(bid.bid_wei),
            },
        )
        return {"bundleHash": bid.bundle_hash}

    async def submit_public_tx(
        self, params: Any, *, endpoint_rollup: int | None, protected: bool
    ) -> str:
        """A public tx for the rollup's lane (``eth_sendRawTransaction`` / private: protected)."""
        method = SEND_PRIVATE_TX if protected else SEND_RAW_TX
        ptx = await self._event(method, params, self.intake_context(endpoint_rollup), self.now_ms())
        assert isinstance(ptx, PublicTx)
        # Verify the pool takes it: the sender's cap, and room or a better fee than the cheapest
        # (False: it already waits, so logging it again would only grow the log)
        if self._pools[ptx.rollup].check(ptx.tx):
            await self._log_public_tx(ptx)
        return ptx.tx.hash

    async def requeue_public_txs(self, arrivals: Sequence[PublicTx]) -> None:
        """Log again, in the open slot, the public txs that arrived during a slot that failed to
        be signed: that block never happened, so they are still waiting (docs/committee.md).
        They keep their arrival time and protection; their inclusion-list age restarts."""
        for ptx in arrivals:
            try:
                await self._log_public_tx(ptx)
            except BlockspaceError as exc:  # one tx lost is logged, the others still go in
                log.warning("could not re-log public tx %s: %s", ptx.tx.hash, exc.message)

    async def _log_public_tx(self, ptx: PublicTx) -> None:
        slot = self.open_slot()
        try:
            await self.store.append_public_tx(ptx, slot)
        except SlotClosed:
            # The slot closed between the clock read and the write: the tx joins the next one.
            await self.store.append_public_tx(ptx, slot + 1)
        self._pools[ptx.rollup].add(ptx.tx)  # over the pool's size, the cheapest leaves the view
        if ptx.protected:
            self._protected[ptx.rollup].add(ptx.tx.hash)

    async def cancel_bundle(
        self, params: Any, *, searcher: str, evidence: Evidence, endpoint_rollup: int | None
    ) -> bool:
        now = self.now_ms()
        self._rate_check(searcher, now)
        self._endpoint_rollup(endpoint_rollup)  # a cancel's rollup is its endpoint's: served?
        ctx = self.intake_context(endpoint_rollup)
        cancel = await self._event(CANCEL_BUNDLE, params, ctx, now, (searcher, evidence))
        assert isinstance(cancel, Cancel)
        # The answer and the notifications depend only on this searcher's own bids.
        done = await self.store.append_cancel(
            cancel,
            compute_cancel_slots(cancel, self.clock, self.max_slots_ahead),
            compute_intake_limits(self.rollups[cancel.rollup].policy),
            CANCEL_WINDOW_MS,
        )
        for slot in done:
            self.notifier.to_searcher(
                searcher,
                "cancelled",
                {"rollup": cancel.rollup, "slot": slot, "replacementUuid": cancel.replacement_uuid},
            )
        return bool(done)

    async def bundle_stats(
        self, params: Any, *, searcher: str, endpoint_rollup: int | None
    ) -> dict[str, Any]:
        """flashbots_getBundleStatsV2 for the searcher's own bundle; nothing about others'."""
        if isinstance(params, list) and len(params) == 1:
            params = params[0]
        if not isinstance(params, dict):
            raise InvalidParams("flashbots_getBundleStatsV2 takes one object parameter")
        try:
            bundle_hash = to_hex(from_hex(params.get("bundleHash"), what="bundleHash", length=32))
        except ValueError as exc:
            raise InvalidParams(str(exc), field="bundleHash") from None
        slot = parse_quantity(params.get("blockNumber"), "blockNumber")
        if slot is None:
            raise InvalidParams("blockNumber is required", field="blockNumber")
        rollup = self._endpoint_rollup(endpoint_rollup)
        seq = await self.store.find_bid_seq(rollup, slot, f"{searcher}:{bundle_hash}")
        if seq is None:
            raise BundleNotFound("no bundle with that hash from this searcher for that slot")
        received_ms = int(seq.split("-")[0])
        out: dict[str, Any] = {
            "isSimulated": False,
            "isHighPriority": True,
            "receivedAt": _iso(received_ms),
            "status": "pending",
        }
        result = await self.store.get_result(rollup, slot)
        if result is not None:
            sealed_at = _iso(result.deadline_ms)
            out["consideredByBuildersAt"] = [{"pubkey": "blockspace", "timestamp": sealed_at}]
            status = C.OUTCOME_LOST
            for o in result.outcomes:
                if o.bid.searcher == searcher and o.bid.bundle_hash == bundle_hash:
                    status = o.outcome
                    if o.outcome == C.OUTCOME_WON:
                        out["sealedByBuildersAt"] = [
                            {"pubkey": "blockspace", "timestamp": sealed_at}
                        ]
                        out["paymentWei"] = str(o.payment_wei)
                    break
            out["status"] = status
        return out


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
