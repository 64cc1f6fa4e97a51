"""The slot encoder (auction/columnar.py): the instance and the results it gives equal the
from-scratch close's, bit for bit, for any log appended in any interleaving of rollups, with
replacements, cancels, resent bids, public txs (due and protected), cross-rollup bundles and
fairness caps; and a copy is never read from an object it was not computed from."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction.book import compute_book
from auction.columnar import SlotEncoder, compute_encoded_parts
from auction.constants import OUTCOME_LOST
from auction.crossbook import compute_cross_books
from auction.encoding import ZERO_HASH, compute_bid_set_root
from auction.results import (
    SlotPart,
    _join_cross_eligibility,
    _prepare_close,
    compute_event_id,
    compute_slot_input,
    compute_slot_results,
)
from auction.transactions import decode_transaction
from auction.types import Bid, BidOutcome, Cancel, Evidence, LoggedEvent, PendingTx, PublicTx
from ordering.arrays import compute_joint_arrays, compute_packing_arrays
from ordering.joint import compute_single_input
from ordering.problem import PAYMENT_FIRST_PRICE, PAYMENT_VCG
from tests.auction.test_joint_close import IDS, SLOT, leg_specs, rollups_of, signed
from tests.factories import key, make_bid, make_cross_bid

UUIDS = (None, "a" * 32, "b" * 32)


@functools.cache
def bundle(searcher: int, legs, bid: int, uuid: str | None, rollups_key: tuple) -> tuple[Bid, ...]:
    rollups = dict(rollups_key)
    txs = [signed(chain, *spec) for chain, specs in legs for spec in specs]
    k = key(600 + searcher)
    if len(legs) == 1:
        return (make_bid(k, txs, SLOT, bid_wei=bid * 10**15, uuid=uuid, rollups=rollups),)
    return make_cross_bid(k, txs, SLOT, bid_wei=bid * 10**15, uuid=uuid, rollups=rollups)


single = st.tuples(st.sampled_from(IDS), leg_specs).map(lambda leg: (leg,))
cross = st.lists(st.tuples(st.sampled_from(IDS), leg_specs), min_size=2, max_size=3,
                 unique_by=lambda leg: leg[0]).map(lambda ls: tuple(sorted(ls)))  # fmt: skip
# ("bid", searcher, legs, bid, uuid) | ("cancel", searcher, rollup, uuid) | ("resend", index)
# | ("public", rollup, sender, nonce, protected)
event_spec = st.one_of(
    st.tuples(st.just("bid"), st.integers(0, 3), st.one_of(single, single, cross),
              st.integers(1, 9), st.sampled_from(UUIDS)),
    st.tuples(st.just("cancel"), st.integers(0, 3), st.sampled_from(IDS),
              st.sampled_from(UUIDS[1:])),
    st.tuples(st.just("resend"), st.integers(0, 30)),
    st.tuples(st.just("public"), st.sampled_from(IDS), st.integers(0, 1), st.integers(0, 2),
              st.booleans()),
)  # fmt: skip


def logs_of(events, rollups) -> dict[int, list[LoggedEvent]]:
    """Each rollup's log of a random slot (a cross bundle's copy in each spanned log)."""
    rollups_key = tuple(sorted(rollups.items()))
    logs: dict[int, list[LoggedEvent]] = {r: [] for r in IDS}
    sent: list[Bid] = []
    for i, ev in enumerate(events):
        seq = f"{i + 10}-0"
        if ev[0] == "bid":
            _, searcher, legs, bid, uuid = ev
            for copy in bundle(searcher, legs, bid, uuid, rollups_key):
                logs[copy.rollup].append(LoggedEvent(seq, copy))
                sent.append(copy)
        elif ev[0] == "cancel":
            _, searcher, rollup, uuid = ev
            cancel = Cancel(rollup, key(600 + searcher).address, uuid, i, Evidence(b"{}", "0x"))
            logs[rollup].append(LoggedEvent(seq, cancel))
        elif ev[0] == "resend" and sent:
            again = sent[ev[1] % len(sent)]  # the same signed request logged again
            logs[again.rollup].append(LoggedEvent(seq, dataclasses.replace(again)))
        elif ev[0] == "public":
            _, chain, sender, nonce, protected = ev
            ptx = decode_transaction(signed(chain, 6 + sender, nonce, 21_000, False))
            logs[chain].append(LoggedEvent(seq, PublicTx(chain, ptx, i, protected)))
    return logs


def carried_of(publics) -> dict[int, list[PendingTx]]:
    """Public txs carried from the parent (due when ``inclusion_after_slots`` is 0)."""
    carried: dict[int, list[PendingTx]] = {r: [] for r in IDS}
    for j, (chain, sender, nonce, protected) in enumerate(publics):
        ptx = decode_transaction(signed(chain, 8 + sender, nonce, 21_000, False))
        carried[chain].append(PendingTx(ptx, SLOT - 1, f"1-{j}", protected))
    return carried


def interleaved(logs: dict[int, list[LoggedEvent]], picks: list[int]):
    """Every log's entries once, each log in its order, the rollups interleaved by ``picks``."""
    at = dict.fromkeys(logs, 0)
    names = list(logs)
    out = []
    for p in [*picks, *range(sum(map(len, logs.values())) * len(names))]:
        r = names[p % len(names)]
        if at[r] < len(logs[r]):
            out.append((r, logs[r][at[r]]))
            at[r] += 1
    return out


def slot_inputs(parts, encoder):
    books = compute_cross_books({p.rollup.chain_id: compute_book(p.log) for p in parts})
    closes = [_prepare_close(p, SLOT, books[p.rollup.chain_id], encoder) for p in parts]
    _join_cross_eligibility(closes)
    return [compute_slot_input(closes, fair=f, encoder=encoder) for f in (True, False)]


def assert_same_arrays(a, b) -> None:
    if hasattr(a, "key_strings"):  # packing arrays: the key names as read, however kept
        assert a.keys == b.keys
    for f in dataclasses.fields(a):
        if f.name in ("key_strings", "key_string_ids"):
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(event_spec, min_size=1, max_size=14),
    publics=st.lists(
        st.tuples(st.sampled_from(IDS), st.integers(0, 1), st.integers(0, 2), st.booleans()),
        max_size=3,
    ),  # fmt: skip
    picks=st.lists(st.integers(0, 2), max_size=40),
    share=st.sampled_from([1.0, 0.5]),
    reserved=st.sampled_from([0, 21_000]),
    due_after=st.sampled_from([0, 3]),
    rule=st.sampled_from([PAYMENT_FIRST_PRICE, PAYMENT_VCG]),
    parts_of=st.sampled_from([IDS, IDS[:1], IDS[1:]]),
)
def test_incremental_encoding_is_the_encoding_from_scratch(
    events, publics, picks, share, reserved, due_after, rule, parts_of
):
    rollups = rollups_of(share, reserved, due_after, rule)
    logs = logs_of(events, rollups)
    carried = carried_of(publics)
    parts = [SlotPart(rollups[r], ZERO_HASH, logs[r], carried[r]) for r in parts_of]
    encoder = SlotEncoder()
    for rollup, entry in interleaved({r: logs[r] for r in parts_of}, picks):
        encoder.append(rollup, entry)
    assert all(encoder.count(r) == len(logs[r]) for r in parts_of)
    # The instance: equal as values, and its arrays bit for bit (joint, and single-rollup).
    for scratch, inc in zip(slot_inputs(parts, None), slot_inputs(parts, encoder), strict=True):
        assert scratch == inc and scratch.encoded is None
        assert inc.encoded is not None
        assert_same_arrays(compute_joint_arrays(scratch), compute_joint_arrays(inc))
        if len(inc.rollups) == 1:
            assert_same_arrays(compute_packing_arrays(compute_single_input(scratch)),
                               compute_packing_arrays(compute_single_input(inc)))  # fmt: skip
    # The results: blocks, outcomes, payments, the price of fairness.
    expected = compute_slot_results(SLOT, 1, parts)
    assert compute_slot_results(SLOT, 1, parts, encoder=encoder) == expected
    # An encoder that saw only part of the slot (the tail comes at the deadline) agrees too.
    partial = SlotEncoder()
    for rollup, entry in interleaved({r: logs[r][: len(logs[r]) // 2] for r in parts_of}, picks):
        partial.append(rollup, entry)
    assert compute_slot_results(SLOT, 1, parts, encoder=partial) == expected
    # The bid-set root from the kept trees: of the log, of a log read again (new objects), of
    # a log whose entry was swapped for another event (a lying log) and of a longer one.
    for r in parts_of:
        log = logs[r]
        swapped = [LoggedEvent(e.seq, f.event) for e, f in zip(log, log[::-1], strict=True)]
        for other in (log, [dataclasses.replace(e) for e in log], swapped, log + log[:2]):
            want = compute_bid_set_root([compute_event_id(e) for e in other])
            assert encoder.compute_bid_set_root(r, other) == want
            assert partial.compute_bid_set_root(r, other) == want


def test_a_copy_is_read_only_from_the_object_it_was_computed_from():
    """A different bid object under the same id (a lying log, a re-read store) is encoded anew,
    never given the kept copy's keys or gas."""
    rollups = rollups_of(1.0, 0, 3, PAYMENT_FIRST_PRICE)
    (bid,) = bundle(0, ((10, ((0, 0, 21_000, True),)),), 5, None, tuple(sorted(rollups.items())))
    encoder = SlotEncoder()
    encoder.append(10, LoggedEvent("10-0", bid))
    kept = encoder.copy(bid, 10)
    other = dataclasses.replace(bid, gas=bid.gas + 1, txs=bid.txs[:0])
    fresh = encoder.copy(other, 10)
    assert fresh is not kept and fresh.leg.gas == bid.gas + 1 and fresh.keys == ()
    assert fresh.row != kept.row
    # and the close with the encoder packs the object in the log, not the kept one
    part = SlotPart(rollups[10], ZERO_HASH, [LoggedEvent("10-0", other)])
    assert compute_slot_results(SLOT, 1, [part], encoder=encoder) == compute_slot_results(
        SLOT, 1, [part]
    )


def test_covered_log_needs_a_prefix_of_the_same_events():
    """The engine re-reads the closed log from its store (new objects): the encoder stands in
    for it only when what it followed is a prefix of that log (same seqs, same event ids); the
    tail is appended then."""
    rollups = rollups_of(1.0, 0, 3, PAYMENT_FIRST_PRICE)
    rk = tuple(sorted(rollups.items()))
    (a,) = bundle(0, ((10, ((0, 0, 21_000, False),)),), 5, None, rk)
    (b,) = bundle(1, ((10, ((1, 0, 21_000, False),)),), 3, None, rk)
    (c,) = bundle(2, ((10, ((2, 0, 21_000, False),)),), 4, None, rk)
    log = [LoggedEvent("10-0", a), LoggedEvent("11-0", b), LoggedEvent("12-0", c)]
    reread = [LoggedEvent(e.seq, dataclasses.replace(e.event)) for e in log]

    def follower(n: int) -> SlotEncoder:
        encoder = SlotEncoder()
        encoder.extend(10, log[:n])
        return encoder

    covered = follower(2).compute_covered_log(10, reread)
    assert covered is not None and [e.event for e in covered] == [a, b, c]
    assert covered[0].event is a and covered[2].event is reread[2].event  # prefix: own objects
    assert follower(2).compute_covered_log(10, reread[::-1]) is None  # another order
    assert follower(2).compute_covered_log(10, reread[:1]) is None  # it followed more
    moved = [LoggedEvent("10-1", a), *reread[1:]]
    assert follower(2).compute_covered_log(10, moved) is None  # another seq
    assert follower(0).compute_covered_log(10, reread) == reread
    # the close's parts: every log covered, or the parts as given and no encoder
    part = SlotPart(rollups[10], ZERO_HASH, reread)
    other = SlotPart(rollups[8453], ZERO_HASH, [])
    parts, encoder = compute_encoded_parts(follower(1), [part, other])
    assert encoder is not None and parts[0].log[0].event is a and parts[1].log == []
    parts, encoder = compute_encoded_parts(follower(3), [dataclasses.replace(part, log=moved)])
    assert encoder is None and parts[0].log == moved


def test_a_gas_beyond_int64_falls_back_to_the_encoding_from_scratch():
    rollups = rollups_of(1.0, 0, 3, PAYMENT_FIRST_PRICE)
    (bid,) = bundle(0, ((10, ((0, 0, 21_000, False),)),), 5, None, tuple(sorted(rollups.items())))
    huge = dataclasses.replace(bid, gas=2**70)
    encoder = SlotEncoder()
    encoder.append(10, LoggedEvent("10-0", huge))
    assert encoder.copy(huge, 10).row == -1
    assert encoder.compute_encoded([-1], [1]) is None


def test_a_lost_outcome_is_read_only_for_the_entry_it_was_made_for():
    rollups = rollups_of(1.0, 0, 3, PAYMENT_FIRST_PRICE)
    bid = make_bid(key(700), [signed(IDS[0], 1, 0, 21_000, False)], SLOT, rollups=rollups)
    entry = LoggedEvent("5-0", bid)
    encoder = SlotEncoder()
    encoder.append(IDS[0], entry)
    kept = encoder.lost_outcome(entry)
    assert kept is encoder.lost_outcome(entry)
    assert kept == BidOutcome(bid, OUTCOME_LOST, 0, "5-0")
    # Verify that another object (even an equal one) gets an outcome of its own values
    other = LoggedEvent("6-0", bid)
    assert encoder.lost_outcome(other) == BidOutcome(bid, OUTCOME_LOST, 0, "6-0")
