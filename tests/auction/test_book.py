"""Replacement and cancellation, against a straightforward model of the rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auction import constants as C
from auction.book import compute_book
from auction.types import Bid, Cancel, Evidence, LoggedEvent

EV = Evidence(b"", "")
SEARCHERS = ["0x" + "01" * 20, "0x" + "02" * 20]
UUIDS = [None, "a" * 32, "b" * 32]


def _bid(i: int, searcher: str, uuid: str | None) -> Bid:
    return Bid(bid_id=f"0x{i:064x}", rollup=1, slot=1, searcher=searcher, bundle_hash="0x",
               txs=(), bid_wei=1, gas=21000, received_ms=i, evidence=EV, replacement_uuid=uuid)


ops = st.lists(
    st.tuples(st.sampled_from(["bid", "cancel", "resend"]), st.sampled_from(SEARCHERS),
              st.sampled_from(UUIDS)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_book_matches_model(seq):
    log: list[LoggedEvent] = []
    bids: list[Bid] = []
    model_state: dict[str, str] = {}
    live_by_key: dict[tuple[str, str], str] = {}
    for i, (op, s, u) in enumerate(seq):
        if op == "bid" or (op == "resend" and not bids):
            b = _bid(i, s, u)
            bids.append(b)
            log.append(LoggedEvent(f"{i}-0", b))
            model_state[b.bid_id] = "live"
            if u is not None:
                prev = live_by_key.get((s, u))
                if prev:
                    model_state[prev] = C.OUTCOME_REPLACED
                live_by_key[(s, u)] = b.bid_id
        elif op == "resend":
            log.append(LoggedEvent(f"{i}-0", bids[-1]))  # same signed request again: no effect
        elif u is not None:
            log.append(LoggedEvent(f"{i}-0", Cancel(1, s, u, i, EV)))
            prev = live_by_key.pop((s, u), None)
            if prev:
                model_state[prev] = C.OUTCOME_CANCELLED
    book = compute_book(log)
    assert [e.event.bid_id for e in book.bids] == [b.bid_id for b in bids]
    assert {e.event.bid_id for e in book.live} == {k for k, v in model_state.items() if v == "live"}
    assert book.superseded == {k: v for k, v in model_state.items() if v != "live"}


def test_latest_per_uuid_wins():
    a, b = _bid(1, SEARCHERS[0], "a" * 32), _bid(2, SEARCHERS[0], "a" * 32)
    book = compute_book([LoggedEvent("1-0", a), LoggedEvent("2-0", b)])
    assert [e.event.bid_id for e in book.live] == [b.bid_id]
    assert book.superseded == {a.bid_id: C.OUTCOME_REPLACED}


def test_uuid_is_per_searcher():
    a, b = _bid(1, SEARCHERS[0], "a" * 32), _bid(2, SEARCHERS[1], "a" * 32)
    book = compute_book([LoggedEvent("1-0", a), LoggedEvent("2-0", b)])
    assert len(book.live) == 2


def test_cancel_then_new_bid_is_live():
    a, b = _bid(1, SEARCHERS[0], "a" * 32), _bid(3, SEARCHERS[0], "a" * 32)
    c = Cancel(1, SEARCHERS[0], "a" * 32, 2, EV)
    book = compute_book([LoggedEvent("1-0", a), LoggedEvent("2-0", c), LoggedEvent("3-0", b)])
    assert [e.event.bid_id for e in book.live] == [b.bid_id]
    assert book.superseded == {a.bid_id: C.OUTCOME_CANCELLED}
