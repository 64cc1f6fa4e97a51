"""Auction history, the shell's side: filing refused bundles under their still-open slot as
they come (``RefusalRecorder``), and trimming old slots (``HistoryRetention``). The records and
every rule about them are the core's (``auction/history.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from auction.errors import BlockspaceError
from auction.history import MAX_REFUSALS_PER_SLOT, BidRecord
from auction.slots import SlotClock, compute_slot_at
from auction.types import SlotResult

if TYPE_CHECKING:
    from node.stores.base import Store


class RetentionHost(Protocol):
    """What a retention hooks into (``api.engine.Engine`` is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> SlotClock: ...

    @property
    def result_hooks(self) -> list[Callable[[SlotResult], Awaitable[None]]]: ...

    def now_ms(self) -> int: ...

log = logging.getLogger("blockspace.history")


class RefusalRecorder:
    """Files refused bundles under their slot's history, bounded and without waiting.

    A refusal is kept only if its target slot has not closed yet in this process and is not
    further ahead than a bid may target (so junk slot numbers create nothing), and at most
    ``max_per_slot`` per (rollup, slot). The store call never waits for I/O.
    """

    def __init__(self, max_per_slot: int = MAX_REFUSALS_PER_SLOT) -> None:
        self.max_per_slot = max_per_slot
        self._counts: dict[tuple[int, int], int] = {}

    def record(
        self,
        store: Store,
        record: BidRecord | None,
        *,
        closed_through: int,
        open_slot: int,
        max_slots_ahead: int,
    ) -> bool:
        """Hand one refusal to the store; False if it was not kept."""
        if record is None:
            return False
        # Verify the slot will still close here (its history is written at close)
        if record.slot <= closed_through or record.slot > open_slot + max_slots_ahead:
            return False
        key = (record.rollup, record.slot)
        n = self._counts.get(key, 0)
        if n >= self.max_per_slot:
            return False
        self._counts[key] = n + 1
        store.record_refusal(record)
        return True

    def forget_through(self, rollup: int, slot: int) -> None:
        """Drop counters of closed slots (they can no longer take refusals)."""
        for key in [k for k in self._counts if k[0] == rollup and k[1] <= slot]:
            del self._counts[key]


# --- retention ---------------------------------------------------------------------------------


class HistoryRetention:
    """Trims whole slots older than the retention (slots, days or both), a few at a time.

    ``after_close`` is an engine result hook; it only starts a background task, so closing
    slots never waits for trimming, and each store call trims a small batch so intake
    interleaves with it.
    """

    def __init__(
        self,
        store: Store,
        *,
        keep_slots: int | None,
        keep_days: float | None,
        slot_at: Callable[[int], int],
        now_ms: Callable[[], int],
        batch: int = 8,
    ) -> None:
        if keep_slots is None and keep_days is None:
            raise ValueError("a retention keeps some number of slots or days")
        self.store = store
        self.keep_slots = keep_slots
        self.keep_days = keep_days
        self._slot_at = slot_at
        self._now_ms = now_ms
        self.batch = batch
        self._tasks: dict[int, asyncio.Task[int]] = {}
        self.trimmed = 0

    def cutoff_slot(self, head_slot: int) -> int:
        """Slots below this are trimmed (the stricter of the two limits wins)."""
        cutoffs = []
        if self.keep_slots is not None:
            cutoffs.append(head_slot - self.keep_slots + 1)
        if self.keep_days is not None:
            cutoffs.append(self._slot_at(self._now_ms() - int(self.keep_days * 86_400_000)))
        return max(cutoffs)

    async def after_close(self, result: SlotResult) -> None:
        """Result hook: start trimming this rollup in the background unless it already is."""
        task = self._tasks.get(result.rollup)
        if task is not None and not task.done():
            return
        cutoff = self.cutoff_slot(result.slot)
        self._tasks[result.rollup] = asyncio.create_task(
            self.trim(result.rollup, cutoff), name=f"history-retention-{result.rollup}"
        )

    async def trim(self, rollup: int, before_slot: int) -> int:
        """Trim every slot of ``rollup`` below ``before_slot``, one small batch per store call."""
        total = 0
        try:
            while True:
                done = await self.store.trim_history(rollup, before_slot, self.batch)
                total += len(done)
                if len(done) < self.batch:
                    break
                await asyncio.sleep(0)  # let intake run between batches
        except BlockspaceError as exc:  # the store is down: the next close tries again
            log.warning("history retention paused: %s", exc.message)
        except Exception:
            log.exception("history retention failed")
        self.trimmed += total
        return total

    async def wait(self) -> None:
        """Wait for running trims."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop running trims (a trim resumes after the next close)."""
        for task in self._tasks.values():
            task.cancel()
        await self.wait()

    @classmethod
    def install(
        cls, engine: RetentionHost, *, keep_slots: int | None, keep_days: float | None
    ) -> HistoryRetention | None:
        """Hook a retention into ``engine`` (None, and nothing hooked, when neither is set)."""
        if keep_slots is None and keep_days is None:
            return None
        retention = cls(
            engine.store,
            keep_slots=keep_slots,
            keep_days=keep_days,
            slot_at=lambda ms: compute_slot_at(engine.clock, ms),
            now_ms=engine.now_ms,
        )
        engine.result_hooks.append(retention.after_close)
        return retention

    def uninstall(self, engine: RetentionHost) -> None:
        if self.after_close in engine.result_hooks:
            engine.result_hooks.remove(self.after_close)
