"""The sealed bid book of one slot: which bids are live after replacements and cancellations.

The store keeps an append-only log per (rollup, slot); its order is the only order that matters.
Replaying the log gives the book, so any party holding the log computes the same book.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auction import constants as C
from auction.types import Bid, Cancel, LoggedEvent


@dataclass(frozen=True, slots=True)
class Book:
    live: tuple[LoggedEvent, ...]  # bids still in the auction, in log order
    superseded: dict[str, str]  # bid_id -> OUTCOME_REPLACED | OUTCOME_CANCELLED
    bids: tuple[LoggedEvent, ...]  # every distinct bid in log order (live or not)


def compute_book(log: Sequence[LoggedEvent]) -> Book:
    """Replay a slot's log. O(len(log)).

    Rules: the latest bid per (searcher, replacementUuid) replaces earlier ones; a cancel ends
    the searcher's live bid under that uuid (a later bid with the uuid is live again); a bid
    whose id was already logged (the same signed request resent) counts once.
    """
    seen: set[str] = set()
    by_uuid: dict[tuple[str, str], str] = {}
    superseded: dict[str, str] = {}
    bids: list[LoggedEvent] = []
    for entry in log:
        ev = entry.event
        if isinstance(ev, Bid):
            bid_id = ev.bid_id
            if bid_id in seen:
                continue
            seen.add(bid_id)
            bids.append(entry)
            if ev.replacement_uuid is not None:
                key = (ev.searcher, ev.replacement_uuid)
                previous = by_uuid.get(key)
                if previous is not None:
                    superseded[previous] = C.OUTCOME_REPLACED
                by_uuid[key] = bid_id
        elif isinstance(ev, Cancel):
            key = (ev.searcher, ev.replacement_uuid)
            previous = by_uuid.pop(key, None)
            if previous is not None:
                superseded[previous] = C.OUTCOME_CANCELLED
    if not superseded:  # nothing replaced or cancelled: every bid is live
        return Book(live=tuple(bids), superseded=superseded, bids=tuple(bids))
    live = tuple(e for e in bids if e.event.bid_id not in superseded)  # type: ignore[union-attr]
    return Book(live=live, superseded=superseded, bids=tuple(bids))
