"""The cross-rollup liveness rule (auction/crossbook.py) against a straightforward model.

Random slots over three rollups: searchers send bundles spanning any non-empty set of rollups
(each logged in every rollup it spans, as the stores do), under a few replacement uuids, resend
them, and cancel on one rollup. The model tracks, per (searcher, uuid, rollup), the current
version; a bundle is live when it is current on every rollup it spans.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from auction import constants as C
from auction.book import Book, compute_book
from auction.crossbook import compute_cross_books, compute_cross_reason
from auction.types import Bid, Cancel, Evidence, Leg, LoggedEvent

EV = Evidence(b"", "")
ROLLUPS = (1, 2, 3)
SEARCHERS = ["0x" + "01" * 20, "0x" + "02" * 20]
UUIDS = [None, "a" * 32, "b" * 32]
SPANS = [s for n in (1, 2, 3) for s in itertools.combinations(ROLLUPS, n)]


def copies(i: int, searcher: str, uuid: str | None, span: tuple[int, ...]) -> list[Bid]:
    legs = tuple(Leg(r, (), 21_000) for r in span) if len(span) > 1 else ()
    return [
        Bid(bid_id=f"0x{i:064x}", rollup=r, slot=1, searcher=searcher, bundle_hash="0x",
            txs=(), bid_wei=1, gas=21_000, received_ms=i, evidence=EV, replacement_uuid=uuid,
            legs=legs)
        for r in span
    ]


ops = st.lists(
    st.tuples(
        st.sampled_from(["bid", "bid", "cancel", "resend"]),
        st.sampled_from(SEARCHERS),
        st.sampled_from(UUIDS),
        st.sampled_from(SPANS),
    ),
    max_size=40,
)


def run(seq) -> tuple[dict[int, list[LoggedEvent]], dict[str, str], dict[str, tuple[int, ...]]]:
    """The logs of a random slot, and the model's verdict: bid id -> live / a reason."""
    logs: dict[int, list[LoggedEvent]] = {r: [] for r in ROLLUPS}
    spans: dict[str, tuple[int, ...]] = {}
    current: dict[tuple[str, str, int], str] = {}  # (searcher, uuid, rollup) -> bid id
    reason: dict[tuple[str, int], str] = {}  # (bid id, rollup) -> why it is not current there
    last: list[Bid] = []
    for i, (op, s, u, span) in enumerate(seq):
        if op == "resend" and last:
            for c in last:  # the same signed request again: no effect
                logs[c.rollup].append(LoggedEvent(f"{i}-0", c))
        elif op in ("bid", "resend"):
            last = copies(i, s, u, span)
            spans[last[0].bid_id] = span
            for c in last:
                logs[c.rollup].append(LoggedEvent(f"{i}-0", c))
                if u is not None:
                    prev = current.get((s, u, c.rollup))
                    if prev is not None:
                        reason[(prev, c.rollup)] = C.OUTCOME_REPLACED
                    current[(s, u, c.rollup)] = c.bid_id
        elif u is not None:
            rollup = span[0]  # a cancel acts on the one rollup it is bound to
            logs[rollup].append(LoggedEvent(f"{i}-0", Cancel(rollup, s, u, i, EV)))
            prev = current.pop((s, u, rollup), None)
            if prev is not None:
                reason[(prev, rollup)] = C.OUTCOME_CANCELLED
    verdict = {}
    for bid_id, span in spans.items():
        why = [reason[(bid_id, r)] for r in span if (bid_id, r) in reason]
        verdict[bid_id] = why[0] if why else "live"
    return logs, verdict, spans


@settings(max_examples=600, deadline=None)
@given(ops)
def test_cross_books_match_model(seq) -> None:
    logs, verdict, spans = run(seq)
    books = {r: compute_book(log) for r, log in logs.items()}
    joined = compute_cross_books(books)
    for r in ROLLUPS:
        live = {e.event.bid_id for e in joined[r].live}  # type: ignore[union-attr]
        # Verify each rollup's book is the model's, for the bundles logged there
        here = {b for b, span in spans.items() if r in span}
        assert live == {b for b in here if verdict[b] == "live"}
        assert joined[r].superseded == {b: verdict[b] for b in here if verdict[b] != "live"}
        assert joined[r].bids == books[r].bids
        # Verify single-rollup bundles are exactly what their rollup's own book says
        singles = {b for b, span in spans.items() if span == (r,)}
        assert live & singles == {e.event.bid_id for e in books[r].live} & singles  # type: ignore[union-attr]
    # Verify atomicity: every cross-rollup bundle is live in all its rollups or in none
    for bid_id, span in spans.items():
        where = [bid_id in {e.event.bid_id for e in joined[r].live} for r in span]  # type: ignore[union-attr]
        assert all(where) or not any(where)


def test_cancel_on_one_rollup_cancels_everywhere() -> None:
    a = copies(1, SEARCHERS[0], UUIDS[1], (1, 2))
    cancel = Cancel(2, SEARCHERS[0], UUIDS[1], 2, EV)
    logs = {1: [LoggedEvent("1-0", a[0])],
            2: [LoggedEvent("1-0", a[1]), LoggedEvent("2-0", cancel)]}
    joined = compute_cross_books({r: compute_book(log) for r, log in logs.items()})
    assert joined[1].live == () and joined[2].live == ()
    assert joined[1].superseded == {a[0].bid_id: C.OUTCOME_CANCELLED}


def test_replacement_no_longer_spanning_a_rollup_kills_the_old_version_there() -> None:
    old = copies(1, SEARCHERS[0], UUIDS[1], (1, 2))
    new = copies(2, SEARCHERS[0], UUIDS[1], (1,))
    logs = {1: [LoggedEvent("1-0", old[0]), LoggedEvent("2-0", new[0])],
            2: [LoggedEvent("1-0", old[1])]}
    joined = compute_cross_books({r: compute_book(log) for r, log in logs.items()})
    assert [e.event.bid_id for e in joined[1].live] == [new[0].bid_id]  # type: ignore[union-attr]
    assert joined[2].live == ()
    assert joined[2].superseded == {old[1].bid_id: C.OUTCOME_REPLACED}


def test_a_copy_missing_from_a_spanned_log_is_not_live() -> None:
    a = copies(1, SEARCHERS[0], None, (1, 2))
    books = {1: compute_book([LoggedEvent("1-0", a[0])]), 2: Book((), {}, ())}
    assert compute_cross_reason(a[0], books) == C.OUTCOME_REJECTED
    joined = compute_cross_books(books)
    assert joined[1].live == () and joined[1].superseded == {a[0].bid_id: C.OUTCOME_REJECTED}


def test_a_bundle_dead_everywhere_has_one_reason_in_every_rollup() -> None:
    # Cancelled on rollup 1, replaced (by a bundle on rollup 2 only) on rollup 2: one outcome
    old = copies(1, SEARCHERS[0], UUIDS[1], (1, 2))
    new = copies(3, SEARCHERS[0], UUIDS[1], (2,))
    logs = {1: [LoggedEvent("1-0", old[0]),
                LoggedEvent("2-0", Cancel(1, SEARCHERS[0], UUIDS[1], 2, EV))],
            2: [LoggedEvent("1-0", old[1]), LoggedEvent("3-0", new[0])]}
    joined = compute_cross_books({r: compute_book(log) for r, log in logs.items()})
    assert joined[1].superseded[old[0].bid_id] == joined[2].superseded[old[0].bid_id] == (
        C.OUTCOME_CANCELLED)
