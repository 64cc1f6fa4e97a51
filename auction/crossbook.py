"""Which cross-rollup bundles are live in a slot, over the books of all its rollups.

Each rollup's log is replayed into its own book (``auction.book.compute_book``): replacements
and cancels act per rollup, as they always have. A cross-rollup bundle is logged in every rollup
it spans, and it may win only on all of them or on none, so one more rule joins the books:

    A cross-rollup bundle is LIVE only when it is the current version (live) in the book of
    every rollup it spans.

So cancelling it on any one of its rollups cancels it everywhere, and a replacement under its
uuid that no longer spans a rollup (or any later bundle under that uuid on one of its rollups)
ends the old version there, and so everywhere. The rule only removes: a bundle's liveness
depends on its own copies alone, so one pass is exact. Single-rollup bundles are untouched.
Pure (docs/shared-sequencing.md; the slot close applies it from stage 2b of issue 13).
"""

from __future__ import annotations

from collections.abc import Mapping

from auction import constants as C
from auction.book import Book
from auction.types import Bid


def compute_cross_reason(bid: Bid, books: Mapping[int, Book]) -> str | None:
    """Why a cross-rollup bundle is not live (None if it is, or is single-rollup): the reason
    of the lowest spanned rollup where its copy is not live: ``replaced`` or ``cancelled``, or
    ``rejected`` when that rollup's book (or log) lacks the copy, which atomic logging never
    leaves."""
    if not bid.legs:
        return None
    for rollup in bid.rollups:
        book = books.get(rollup)
        reason = book.superseded.get(bid.bid_id) if book is not None else None
        if reason is not None:
            return reason
        if book is None or not any(_bid_id(e.event) == bid.bid_id for e in book.live):
            return C.OUTCOME_REJECTED
    return None


def _bid_id(event: object) -> str | None:
    return event.bid_id if isinstance(event, Bid) else None


def compute_cross_books(books: Mapping[int, Book]) -> dict[int, Book]:
    """Every rollup's book after the cross-rollup rule: a cross-rollup bundle not live in all
    its rollups is superseded in each book that holds it (moved out of ``live``), with one
    reason in all of them, the one ``compute_cross_reason`` gives. ``books`` must hold every
    rollup of the slot. O(bids x rollups per bundle); O(bids) attribute reads, and every book
    returned as it is, when no book holds a cross-rollup bundle or every one is live."""
    cross = [e.event for book in books.values() for e in book.bids
             if isinstance(e.event, Bid) and e.event.legs]  # fmt: skip
    if not cross:  # the rule only removes cross-rollup bundles
        return dict(books)
    live_ids = {r: {e.event.bid_id if isinstance(e.event, Bid) else None for e in book.live}
                for r, book in books.items()}  # fmt: skip
    dead: dict[str, str] = {}
    for bid in cross:  # in rollup, then log order (the books' order), as before
        if bid.bid_id in dead:
            continue
        if all(bid.bid_id in live_ids.get(r, ()) for r in bid.rollups):
            continue
        dead[bid.bid_id] = compute_cross_reason(bid, books) or C.OUTCOME_REJECTED
    if not dead:
        return dict(books)
    out: dict[int, Book] = {}
    for rollup, book in books.items():
        held = {_bid_id(e.event) for e in book.bids}
        killed = {i: why for i, why in dead.items() if i in held}
        if all(book.superseded.get(i) == why for i, why in killed.items()):
            out[rollup] = book
            continue
        out[rollup] = Book(
            live=tuple(e for e in book.live if _bid_id(e.event) not in killed),
            superseded={**book.superseded, **killed},
            bids=book.bids,
        )
    return out
