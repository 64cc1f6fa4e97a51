"""The embedded store: in-process, sortedcontainers-backed; what ``demo`` and single-node use."""

from __future__ import annotations

import heapq
import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from auction.bundles import compute_bid_id
from auction.errors import (
    CiphertextReplayed,
    EncapsulationLimit,
    SearcherLimitExceeded,
    SlotClosed,
    SlotFull,
)
from auction.history import SlotHistory
from auction.types import Bid, Cancel, LoggedEvent, LoggedSealedBid, PublicTx, SealedBid, SlotResult
from node.stores.base import (
    LOG_CURSORS_KEPT,
    ClosedLog,
    IntakeLimits,
    Store,
    check_log_start,
)
from node.stores.fencing import CloseLease, MemoryFences
from node.stores.memory_committee import MemoryCommittee
from node.stores.memory_history import MemoryHistory
from node.stores.memory_ledger import MemoryLedger


@dataclass
class _SealedSlot:
    """Per slot, over every rollup: each searcher's one encapsulation and every ciphertext
    logged (its hash -> the bid id that logged it)."""

    encapsulations: dict[str, bytes] = field(default_factory=dict)
    ciphertexts: dict[str, str] = field(default_factory=dict)


@dataclass
class _SlotLog:
    events: list[LoggedEvent] = field(default_factory=list)
    sealed: list[LoggedSealedBid] = field(default_factory=list)  # same seqs, kept apart
    closed: bool = False
    index: dict[str, str] = field(default_factory=dict)
    bundles: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    uuids: set[tuple[str, str]] = field(default_factory=set)  # (searcher, uuid) of logged bids

    def take(self, searcher: str, size: int, limits: IntakeLimits) -> None:
        """Count one event of ``size`` bytes against the limits, or raise without counting."""
        self.check(searcher, size, limits)
        self.count(searcher, size)

    def check(self, searcher: str, size: int, limits: IntakeLimits) -> None:
        """Raise if one more event of ``size`` bytes would pass the limits; count nothing."""
        if (
            self.bundles[searcher] + 1 > limits.max_bundles
            or self.bytes[searcher] + size > limits.max_bytes
        ):
            raise SearcherLimitExceeded(
                "searcher limit for this slot reached",
                max_bundles=limits.max_bundles,
                max_bytes=limits.max_bytes,
            )
        if (
            self.bundles[_SLOT] + 1 > limits.max_slot_events
            or self.bytes[_SLOT] + size > limits.max_slot_bytes
        ):
            raise SlotFull(
                "this slot holds as many bids as a slot may",
                max_events=limits.max_slot_events,
                max_bytes=limits.max_slot_bytes,
            )

    def count(self, searcher: str, size: int) -> None:
        for who in (searcher, _SLOT):
            self.bundles[who] += 1
            self.bytes[who] += size


def check_sealed(slot: _SealedSlot, sealed: SealedBid) -> None:
    """Raise if the sealed bid is its searcher's second encapsulation in the slot, or carries a
    ciphertext another call already logged; record nothing."""
    # Verify the searcher's bids of the slot share one encapsulation (one pairing at close)
    first = slot.encapsulations.get(sealed.searcher)
    if first is not None and first != sealed.encapsulation:
        raise EncapsulationLimit(
            "a searcher's encrypted bids of a slot share one encapsulation", slot=sealed.slot
        )
    # Verify the ciphertext is not already logged under another call
    if slot.ciphertexts.get(sealed.ciphertext_hash, sealed.bid_id) != sealed.bid_id:
        raise CiphertextReplayed("this ciphertext is already logged", slot=sealed.slot)


# The slot-wide counters sit beside the searchers' under a name no address can have.
_SLOT = "*"


class MemoryStore(MemoryFences, MemoryCommittee, MemoryHistory, MemoryLedger, Store):
    name = "memory"

    def __init__(self) -> None:
        self._logs: dict[tuple[int, int], _SlotLog] = {}
        self._results: dict[int, SortedDict] = defaultdict(SortedDict)
        # cancel id -> (rollup, the slots it went into when first seen, expiry ms)
        self._cancels: dict[str, tuple[int, tuple[int, ...], int]] = {}
        self._cancel_expiries: list[tuple[int, str]] = []  # heap of (expiry ms, cancel id)
        self._sealed: dict[int, _SealedSlot] = {}
        self._last_ms = 0
        self._n = 0
        # Where the last offset read of each slot log ended, if the chain of such reads from
        # index 0 handed out its entries without a break (``close_slot_parts_from``): (rollup,
        # slot) -> (the log's events list, its sealed list, the counts handed out of each).
        self._log_cursors: dict[
            tuple[int, int], tuple[list[LoggedEvent], list[LoggedSealedBid], int, int]
        ] = {}

    def _next_seq(self) -> str:
        # Same shape as a Redis stream id (<ms>-<n>), strictly increasing.
        now = int(time.time() * 1000)
        if now > self._last_ms:
            self._last_ms, self._n = now, 0
        else:
            self._n += 1
        return f"{self._last_ms}-{self._n}"

    def _log(self, rollup: int, slot: int) -> _SlotLog:
        key = (rollup, slot)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _SlotLog()
        return log

    async def append_bid(self, bid: Bid, limits: IntakeLimits) -> str:
        log = self._log(bid.rollup, bid.slot)
        if log.closed:
            raise SlotClosed(f"slot {bid.slot} is closed", slot=bid.slot)
        prev = log.index.get(bid.bid_id)
        if prev is not None:
            return prev
        log.take(bid.searcher, bid.request_bytes, limits)
        seq = self._next_seq()
        log.events.append(LoggedEvent(seq, bid))
        log.index[bid.bid_id] = seq
        log.index.setdefault(f"{bid.searcher}:{bid.bundle_hash}", seq)
        if bid.replacement_uuid is not None:
            log.uuids.add((bid.searcher, bid.replacement_uuid))
        return seq

    async def append_bid_copies(
        self, copies: Sequence[Bid], limits: Sequence[IntakeLimits]
    ) -> list[str]:
        logs = [self._log(b.rollup, b.slot) for b in copies]
        # Verify every spanned slot is open and takes its copy, before anything is written
        for bid, log in zip(copies, logs, strict=True):
            if log.closed:
                raise SlotClosed(f"slot {bid.slot} is closed", slot=bid.slot, rollup=bid.rollup)
        todo = [i for i, b in enumerate(copies) if b.bid_id not in logs[i].index]
        for i in todo:
            try:
                logs[i].check(copies[i].searcher, copies[i].request_bytes, limits[i])
            except (SearcherLimitExceeded, SlotFull) as exc:
                exc.data["rollup"] = copies[i].rollup
                raise
        for i in todo:
            bid, log = copies[i], logs[i]
            log.count(bid.searcher, bid.request_bytes)
            seq = self._next_seq()
            log.events.append(LoggedEvent(seq, bid))
            log.index[bid.bid_id] = seq
            log.index.setdefault(f"{bid.searcher}:{bid.bundle_hash}", seq)
            if bid.replacement_uuid is not None:
                log.uuids.add((bid.searcher, bid.replacement_uuid))
        return [log.index[b.bid_id] for b, log in zip(copies, logs, strict=True)]

    async def append_sealed_bid(self, sealed: SealedBid, limits: IntakeLimits) -> str:
        log = self._log(sealed.rollup, sealed.slot)
        if log.closed:
            raise SlotClosed(f"slot {sealed.slot} is closed", slot=sealed.slot)
        prev = log.index.get(sealed.bid_id)
        if prev is not None:
            return prev
        slot = self._sealed.setdefault(sealed.slot, _SealedSlot())
        check_sealed(slot, sealed)
        log.take(sealed.searcher, sealed.request_bytes, limits)
        seq = self._next_seq()
        log.sealed.append(LoggedSealedBid(seq, sealed))
        log.index[sealed.bid_id] = seq
        if sealed.replacement_uuid is not None:
            log.uuids.add((sealed.searcher, sealed.replacement_uuid))
        slot.encapsulations[sealed.searcher] = sealed.encapsulation
        slot.ciphertexts[sealed.ciphertext_hash] = sealed.bid_id
        return seq

    async def read_sealed_log(self, rollup: int, slot: int) -> list[LoggedSealedBid]:
        log = self._logs.get((rollup, slot))
        return list(log.sealed) if log else []

    async def append_public_tx(self, ptx: PublicTx, slot: int) -> str:
        log = self._log(ptx.rollup, slot)
        if log.closed:
            raise SlotClosed(f"slot {slot} is closed", slot=slot)
        prev = log.index.get(ptx.tx.hash)
        if prev is not None:
            return prev
        seq = self._next_seq()
        log.events.append(LoggedEvent(seq, ptx))
        log.index[ptx.tx.hash] = seq
        return seq

    async def append_cancel(
        self, cancel: Cancel, slots: list[int], limits: IntakeLimits, window_ms: int
    ) -> list[int]:
        cancel_id = compute_bid_id(cancel.evidence)
        now = cancel.received_ms
        while self._cancel_expiries and self._cancel_expiries[0][0] < now:
            _, expired = heapq.heappop(self._cancel_expiries)
            self._cancels.pop(expired, None)
        seen = self._cancels.get(cancel_id)
        if seen is not None:  # sent again (a retry or a replay): same answer, no new effect
            rollup, done, _ = seen
            return list(done) if rollup == cancel.rollup else []
        applied, refused = [], None
        for slot in slots:
            log = self._logs.get((cancel.rollup, slot))
            # Only where this searcher has a bid under the uuid: nothing else is visible here
            if log is None or log.closed:
                continue
            if (cancel.searcher, cancel.replacement_uuid) not in log.uuids:
                continue
            try:
                log.take(cancel.searcher, cancel.request_bytes, limits)
            except (SearcherLimitExceeded, SlotFull) as exc:
                refused = exc
                continue
            seq = self._next_seq()
            log.events.append(LoggedEvent(seq, cancel))
            log.index[cancel_id] = seq
            applied.append(slot)
        if not applied and refused is not None:
            raise refused
        if not applied and slots:
            # Remembered for the window like every cancel, so it counts like one: against the
            # sender's quota in the first slot of its window, even though it went nowhere.
            self._log(cancel.rollup, slots[0]).take(cancel.searcher, cancel.request_bytes, limits)
        self._cancels[cancel_id] = (cancel.rollup, tuple(applied), now + window_ms)
        heapq.heappush(self._cancel_expiries, (now + window_ms, cancel_id))
        return applied

    async def close_slot(
        self, rollup: int, slot: int, lease: CloseLease | None = None
    ) -> list[LoggedEvent]:
        self._check_close_token(lease)
        log = self._log(rollup, slot)
        log.closed = True
        # Earlier slots are closed everywhere: their per-slot encryption bounds are done with.
        for done in [s for s in self._sealed if s < slot]:
            del self._sealed[done]
        return list(log.events)

    async def read_log(self, rollup: int, slot: int) -> list[LoggedEvent]:
        log = self._logs.get((rollup, slot))
        return list(log.events) if log else []

    async def read_log_from(self, rollup: int, slot: int, start: int) -> list[LoggedEvent]:
        check_log_start(start)
        log = self._logs.get((rollup, slot))
        return log.events[start:] if log else []

    async def read_log_parts_from(
        self, rollup: int, slot: int, start: int, sealed_start: int
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        check_log_start(start)
        check_log_start(sealed_start)
        log = self._logs.get((rollup, slot))
        if log is None:
            return [], []
        # The chain of offset reads continues where the last one ended (the same lists: a log
        # written anew is another list), or starts at 0; else it is broken.
        continues = self._chain_continues(rollup, slot, log, start, sealed_start)
        if (start, sealed_start) == (0, 0) or continues:
            self._log_cursors[rollup, slot] = (
                log.events, log.sealed, len(log.events), len(log.sealed)
            )
            while len(self._log_cursors) > LOG_CURSORS_KEPT:
                del self._log_cursors[next(iter(self._log_cursors))]  # the least recent
        return log.events[start:], log.sealed[sealed_start:]

    def _chain_continues(
        self, rollup: int, slot: int, log: _SlotLog, start: int, sealed_start: int
    ) -> bool:
        """Whether the last offset read of the log (its cursor, taken) ended at these offsets
        of the same lists: a log written anew is other lists."""
        cursor = self._log_cursors.pop((rollup, slot), None)
        return (
            cursor is not None and cursor[0] is log.events and cursor[1] is log.sealed
            and cursor[2:] == (start, sealed_start)
        )  # fmt: skip

    async def close_slot_parts_from(
        self,
        rollup: int,
        slot: int,
        start: int,
        sealed_start: int,
        lease: CloseLease | None = None,
    ) -> ClosedLog:
        check_log_start(start)
        check_log_start(sealed_start)
        events = await self.close_slot(rollup, slot, lease)
        log = self._log(rollup, slot)
        # Lists only grow here: the same lists as the reads' hold what they handed out first.
        if self._chain_continues(rollup, slot, log, start, sealed_start):
            return ClosedLog(start, sealed_start, events[start:], log.sealed[sealed_start:])
        return ClosedLog(0, 0, events, list(log.sealed))

    async def find_bid_seq(self, rollup: int, slot: int, key: str) -> str | None:
        log = self._logs.get((rollup, slot))
        return log.index.get(key) if log else None

    async def save_result(
        self,
        result: SlotResult,
        history: SlotHistory | None = None,
        lease: CloseLease | None = None,
    ) -> bool:
        self._pass_fence(f"r{result.rollup}", result.slot, lease, "save_result")
        results = self._results[result.rollup]
        if result.slot in results:
            return False
        results[result.slot] = result
        if history is not None:
            self._write_history(history)
        return True

    async def get_result(self, rollup: int, slot: int) -> SlotResult | None:
        return self._results[rollup].get(slot)

    async def latest_result(self, rollup: int) -> SlotResult | None:
        results = self._results[rollup]
        return results.peekitem(-1)[1] if results else None

    async def list_result_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None, limit: int
    ) -> list[int]:
        results = self._results[rollup]
        keys = results.irange(from_slot, to_slot, reverse=True)
        return list(itertools.islice(keys, max(limit, 0)))

    async def ping(self) -> bool:
        return True
