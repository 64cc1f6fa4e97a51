"""The trimmed re-run a committee member makes (``compute_slot_results`` with
``price_of_fairness=False, outcomes=False``, from the slot's encoder or from scratch) gives the
engine's full close's blocks bit for bit, and every other field but the two by-products it
skips, on random slots: one rollup or several, with and without cross-rollup bundles,
replacements, cancels, resent bids, public txs (due and protected) and fairness caps."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction.book import compute_book
from auction.columnar import SlotEncoder
from auction.encoding import ZERO_HASH
from auction.results import SlotPart, compute_slot_results
from auction.transactions import decode_transaction
from auction.types import LoggedEvent, PublicTx, SlotResult
from ordering.problem import PAYMENT_FIRST_PRICE, PAYMENT_VCG
from tests.auction.test_columnar import (
    UUIDS,
    carried_of,
    cross,
    event_spec,
    interleaved,
    logs_of,
    single,
)
from tests.auction.test_joint_close import IDS, SLOT, rollups_of, signed

SKIPPED = ("outcomes", "unconstrained_bids_wei")  # what no block depends on
bid_spec = st.tuples(st.just("bid"), st.integers(0, 3), st.one_of(single, single, cross),
                     st.integers(1, 9), st.sampled_from(UUIDS))  # fmt: skip


def without_cross(spec: tuple) -> bool:
    return spec[0] != "bid" or len(spec[2]) == 1


def with_heavy_publics(logs: dict[int, list[LoggedEvent]], heavy) -> None:
    """Public txs of large gas logged last: the lane cannot take them all, so some stay
    pending (the block's pending root is then not the empty pool's)."""
    for j, (chain, sender, gas) in enumerate(heavy):
        ptx = decode_transaction(signed(chain, 20 + sender, 0, gas, False))
        logs[chain].append(LoggedEvent(f"{900 + j}-0", PublicTx(chain, ptx, 900 + j, False)))


def assert_same_but_skipped(trimmed: SlotResult, full: SlotResult) -> None:
    assert trimmed.block == full.block
    assert trimmed.block.block_hash == full.block.block_hash
    assert trimmed.outcomes == ()
    for f in dataclasses.fields(full):
        if f.name not in SKIPPED:
            assert getattr(trimmed, f.name) == getattr(full, f.name), f.name


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bids=st.lists(bid_spec, min_size=2, max_size=12),
    events=st.lists(event_spec, max_size=16),
    heavy=st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 3),
                             st.sampled_from([60_000, 100_000])), max_size=4),  # fmt: skip
    with_cross=st.booleans(),
    publics=st.lists(
        st.tuples(st.sampled_from(IDS), st.integers(0, 1), st.integers(0, 2), st.booleans()),
        max_size=3,
    ),  # fmt: skip
    picks=st.lists(st.integers(0, 2), max_size=40),
    share=st.sampled_from([1.0, 0.5]),
    reserved=st.sampled_from([0, 21_000]),
    due_after=st.sampled_from([0, 3]),
    rule=st.sampled_from([PAYMENT_FIRST_PRICE, PAYMENT_VCG]),
    parts_of=st.sampled_from([IDS, IDS[:1], IDS[1:], IDS[2:]]),
    streamed=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_trimmed_rerun_gives_the_full_closes_blocks(
    bids, events, heavy, with_cross, publics, picks, share, reserved, due_after, rule, parts_of,
    streamed,
):
    events = [*bids, *events]  # bids first: the cancels and resends may then name them
    if not with_cross:  # a slot without a cross-rollup bundle (the joins' cheap case)
        events = [e for e in events if without_cross(e)]
    rollups = rollups_of(share, reserved, due_after, rule)
    logs = logs_of(events, rollups)
    with_heavy_publics(logs, heavy)
    carried = carried_of(publics)
    parts = [SlotPart(rollups[r], ZERO_HASH, logs[r], carried[r]) for r in parts_of]
    full = compute_slot_results(SLOT, 1, parts)  # the engine's close
    # The full close is not trimmed: one outcome per distinct bid of each log.
    for r in full:
        assert len(r.outcomes) == len(compute_book(logs[r.rollup]).bids)
    # A member's encoder holds all of the slot, part of it (the tail comes at the deadline),
    # or none of it.
    encoder = SlotEncoder()
    held = {r: logs[r][: int(len(logs[r]) * streamed)] for r in parts_of}
    for rollup, entry in interleaved(held, picks):
        encoder.append(rollup, entry)
    for enc in (encoder, None):
        trimmed = compute_slot_results(
            SLOT, 1, parts, price_of_fairness=False, outcomes=False, encoder=enc
        )
        assert [r.rollup for r in trimmed] == [r.rollup for r in full]
        for t, f in zip(trimmed, full, strict=True):
            assert_same_but_skipped(t, f)
    # Each flag alone skips only its by-product.
    no_outcomes = compute_slot_results(SLOT, 1, parts, outcomes=False, encoder=encoder)
    for r, f in zip(no_outcomes, full, strict=True):
        assert r.outcomes == () and dataclasses.replace(r, outcomes=f.outcomes) == f
