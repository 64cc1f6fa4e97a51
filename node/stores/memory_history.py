"""Auction history in the embedded store (mixed into ``MemoryStore``).

Same contract and same orderings as the Redis layout (``node/stores/redis_history.py``): bid
records get ``<ms>-<n>`` history ids in write order, indexes by outcome and by (searcher,
outcome) hold those ids in sorted lists, and per-searcher counters are kept as they are written
and taken back when a slot is trimmed.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedDict, SortedList

from auction.history import (
    MAX_REFUSALS_PER_SLOT,
    OUTCOMES,
    BidRecord,
    SlotDetail,
    SlotHistory,
    StatsPart,
    StatsRow,
    clearing_price_of,
    compute_tallies,
    is_record_match,
)

HistoryId = tuple[int, int]


def format_id(hid: HistoryId) -> str:
    return f"{hid[0]}-{hid[1]}"


def parse_id(text: str) -> HistoryId:
    ms, n = text.split("-")
    return int(ms), int(n)


@dataclass
class _RollupHistory:
    summaries: SortedDict = field(default_factory=SortedDict)  # slot -> summary dict
    blocks: dict[int, list[int]] = field(default_factory=dict)
    stats: dict[int, StatsRow] = field(default_factory=dict)
    spans: dict[int, list[HistoryId]] = field(default_factory=dict)  # slot -> its bids' ids
    committee: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: SortedList = field(default_factory=SortedList)
    bids: SortedDict = field(default_factory=SortedDict)  # HistoryId -> BidRecord
    by_outcome: dict[str, SortedList] = field(default_factory=lambda: defaultdict(SortedList))
    by_searcher: dict[tuple[str, str], SortedList] = field(
        default_factory=lambda: defaultdict(SortedList)
    )
    tallies: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    cross: SortedList = field(default_factory=SortedList)  # ids of cross-rollup bundles' bids


class MemoryHistory:
    """The history methods of ``MemoryStore``; see ``node.stores.base.Store`` for the contract."""

    # Declared by MemoryStore; trimming removes whole slots, intake keys included.
    _logs: dict[tuple[int, int], Any]
    _results: dict[int, SortedDict]
    # Created on first use so MemoryStore.__init__ needs no change.
    _history_state: dict[int, _RollupHistory] | None = None
    _refusals_state: dict[tuple[int, int], list[BidRecord]] | None = None
    _history_last_id: HistoryId = (0, 0)

    def _history(self, rollup: int) -> _RollupHistory:
        if self._history_state is None:
            self._history_state = {}
        h = self._history_state.get(rollup)
        if h is None:
            h = self._history_state[rollup] = _RollupHistory()
        return h

    def _refusals(self) -> dict[tuple[int, int], list[BidRecord]]:
        if self._refusals_state is None:
            self._refusals_state = {}
        return self._refusals_state

    def _next_history_id(self) -> HistoryId:
        # Same shape and order as a Redis stream id: <ms>-<n>, strictly increasing.
        now = int(time.time() * 1000)
        last_ms, last_n = self._history_last_id
        hid = (now, 0) if now > last_ms else (last_ms, last_n + 1)
        self._history_last_id = hid
        return hid

    # --- writes --------------------------------------------------------------------------------

    def _write_history(self, history: SlotHistory) -> None:
        """Record a slot's history (called by save_result, only when the result is new)."""
        h = self._history(history.rollup)
        slot = history.slot
        h.summaries[slot] = dict(history.summary)
        h.blocks[slot] = list(history.block)
        h.stats[slot] = history.stats
        ids = []
        for record in history.bids:
            hid = self._next_history_id()
            ids.append(hid)
            h.bids[hid] = record
            h.by_outcome[record.outcome].add(hid)
            h.by_searcher[(record.searcher, record.outcome)].add(hid)
            if record.is_cross:
                h.cross.add(hid)
        h.spans[slot] = ids
        for searcher, increments in history.tallies.items():
            h.tallies[searcher].update(increments)
        self._refusals().pop((history.rollup, slot), None)

    def record_refusal(self, record: BidRecord) -> None:
        pending = self._refusals().setdefault((record.rollup, record.slot), [])
        pending.append(record)
        if len(pending) > MAX_REFUSALS_PER_SLOT:  # keep the newest, as Redis' MAXLEN does
            del pending[0]

    async def list_refusals(self, rollup: int, slot: int) -> list[BidRecord]:
        return list(self._refusals().get((rollup, slot), ()))

    async def record_committee(self, rollup: int, slot: int, record: Mapping[str, Any]) -> bool:
        h = self._history(rollup)
        if slot not in h.summaries:
            return False
        h.committee[slot] = dict(record)
        if record.get("status") == "failed":
            if slot not in h.failed:
                h.failed.add(slot)
        else:
            h.failed.discard(slot)
        return True

    async def trim_history(self, rollup: int, before_slot: int, max_slots: int) -> list[int]:
        h = self._history(rollup)
        results = self._results.get(rollup, SortedDict())
        oldest = heapq.merge(
            h.summaries.irange(maximum=before_slot, inclusive=(True, False)),
            results.irange(maximum=before_slot, inclusive=(True, False)),
        )
        slots = list(itertools.islice(_unique(oldest), max(max_slots, 0)))
        for slot in slots:
            results.pop(slot, None)
            self._logs.pop((rollup, slot), None)
            self._refusals().pop((rollup, slot), None)
            summary = h.summaries.pop(slot, None)
            if summary is None:
                continue
            h.blocks.pop(slot, None)
            h.stats.pop(slot, None)
            h.committee.pop(slot, None)
            h.failed.discard(slot)
            records = []
            for hid in h.spans.pop(slot, []):
                record = h.bids.pop(hid)
                records.append(record)
                h.by_outcome[record.outcome].discard(hid)
                h.cross.discard(hid)
                index = h.by_searcher[(record.searcher, record.outcome)]
                index.discard(hid)
                if not index:
                    del h.by_searcher[(record.searcher, record.outcome)]
            for searcher, increments in compute_tallies(
                records, clearing_price_of(summary)
            ).items():
                tally = h.tallies[searcher]
                tally.subtract(increments)
                if tally["bids"] <= 0:
                    del h.tallies[searcher]
        return slots

    # --- reads ---------------------------------------------------------------------------------

    async def list_history_slots(
        self,
        rollup: int,
        *,
        from_slot: int | None,
        to_slot: int | None,
        limit: int,
        descending: bool = True,
    ) -> list[int]:
        keys = self._history(rollup).summaries.irange(from_slot, to_slot, reverse=descending)
        return list(itertools.islice(keys, max(limit, 0)))

    async def get_slot_summaries(
        self, rollup: int, slots: Sequence[int]
    ) -> list[dict[str, Any] | None]:
        h = self._history(rollup)
        out: list[dict[str, Any] | None] = []
        for slot in slots:
            summary = h.summaries.get(slot)
            out.append(None if summary is None else {**summary, "committee": h.committee.get(slot)})
        return out

    async def get_slot_details(self, rollup: int, slots: Sequence[int]) -> list[SlotDetail | None]:
        h = self._history(rollup)
        summaries = await self.get_slot_summaries(rollup, slots)
        out: list[SlotDetail | None] = []
        for slot, summary in zip(slots, summaries, strict=True):
            if summary is None:
                out.append(None)
                continue
            bids = tuple(h.bids[hid] for hid in h.spans.get(slot, ()))
            out.append(SlotDetail(summary, list(h.blocks.get(slot, [])), bids))
        return out

    async def list_history_bids(
        self,
        rollup: int,
        *,
        searcher: str | None,
        outcome: str | None,
        slot: int | None,
        before: str | None,
        inclusive: bool,
        limit: int,
        cross: bool | None = None,
        spans: int | None = None,
    ) -> list[tuple[str, BidRecord]]:
        h = self._history(rollup)
        if spans is not None:
            if spans == rollup:
                spans = None  # every bid of this rollup spans it
            elif cross is False:
                return []  # only a cross-rollup bundle's copy spans another rollup
            else:
                cross = True
        top = parse_id(before) if before is not None else None
        bounds = (True, inclusive)

        def below(ids: SortedList | SortedDict) -> Iterator[HistoryId]:
            return iter(ids.irange(maximum=top, inclusive=bounds, reverse=True))

        if slot is not None:
            # A slot's bids are contiguous; filter them (bounded by the slot's size).
            span = h.spans.get(slot, [])
            ids: Iterator[HistoryId] = (
                hid
                for hid in reversed(span)
                if top is None or hid < top or (inclusive and hid == top)
            )
        elif cross is True:
            ids = below(h.cross)
        elif searcher is not None:
            outcomes = [outcome] if outcome is not None else OUTCOMES
            keys = [(searcher, o) for o in outcomes if (searcher, o) in h.by_searcher]
            indexes = [h.by_searcher[k] for k in keys]
            ids = heapq.merge(*(below(index) for index in indexes), reverse=True)
        elif outcome is not None:
            ids = below(h.by_outcome[outcome])
        else:
            ids = below(h.bids)
        out = []
        for hid in ids:
            record = h.bids[hid]
            if searcher is not None and record.searcher != searcher:
                continue
            if outcome is not None and record.outcome != outcome:
                continue
            if not is_record_match(record, cross=cross, spans=spans):
                continue
            out.append((format_id(hid), record))
            if len(out) >= limit:
                break
        return out

    async def get_searcher_tally(self, rollup: int, searcher: str) -> dict[str, int]:
        tallies = self._history(rollup).tallies
        return {k: v for k, v in tallies[searcher].items() if v} if searcher in tallies else {}

    async def list_stats_parts(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None
    ) -> list[StatsPart]:
        # One part per slot: the embedded store serves single nodes, where ranges are small.
        h = self._history(rollup)
        return [StatsPart.of_row(h.stats[s]) for s in h.summaries.irange(from_slot, to_slot)]

    async def count_failed_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None
    ) -> int:
        return sum(1 for _ in self._history(rollup).failed.irange(from_slot, to_slot))


def _unique(values: Iterator[int]) -> Iterator[int]:
    last = None
    for v in values:
        if v != last:
            yield v
            last = v
