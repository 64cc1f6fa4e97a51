"""The joint close (auction/results.py ``compute_slot_results``) over random shared slots.

Three rollups, real signed bundles of which 10-30% span two or three rollups, hot storage keys,
searcher caps, a public lane reserve and due public txs. Every block keeps its rollup's fairness
rules (the per-rollup checker), every cross-rollup bundle is in all of its rollups' blocks or in
none (the atomicity checker and a direct count), with one outcome everywhere, and its payment is
split over its rollups by leg gas. The checker itself is shown to fail on tampered slots.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction import constants as C
from auction.encoding import ZERO_HASH, encode_block_header
from auction.errors import FairnessViolation
from auction.fairness import check_block_fairness, check_cross_entries, check_slot_atomicity
from auction.hashing import keccak256, to_hex
from auction.presets import Policy, Rollup
from auction.results import (
    SlotPart,
    compute_attribution,
    compute_slot_result,
    compute_slot_results,
)
from auction.transactions import decode_transaction
from auction.types import Bid, Block, LoggedEvent, PendingTx, PublicTx
from ordering.problem import PAYMENT_FIRST_PRICE, PAYMENT_VCG
from tests.factories import key, make_bid, make_cross_bid, tx

SLOT = 700
IDS = (10, 8453, 167_001)
POOL = ("0x" + "cd" * 20, "0x" + "00" * 32)


def rollups_of(share: float, reserved: int, due_after: int, rule: str) -> dict[int, Rollup]:
    return {
        r: Rollup(r, policy=Policy(gas_limit=150_000 + 30_000 * i, max_gas_share_per_searcher=share,
                                   reserved_public_gas=reserved, inclusion_after_slots=due_after,
                                   payment_rule=rule if i != 1 else PAYMENT_FIRST_PRICE))
        for i, r in enumerate(IDS)
    }  # fmt: skip


@functools.cache
def signed(chain: int, sender: int, nonce: int, gas: int, hot: bool) -> bytes:
    return tx(key(500 + sender), nonce=nonce, gas=gas, chain_id=chain,
              access=[POOL] if hot else None)  # fmt: skip


@functools.cache
def bundle(searcher: int, legs: tuple[tuple[int, tuple[tuple[int, int, int, bool], ...]], ...],
           bid: int, rollups_key: tuple) -> tuple[Bid, ...]:  # fmt: skip
    rollups = dict(rollups_key)
    txs = [signed(chain, *spec) for chain, specs in legs for spec in specs]
    if len(legs) == 1:
        return (make_bid(key(600 + searcher), txs, SLOT, bid_wei=bid * 10**15, rollups=rollups),)
    return make_cross_bid(key(600 + searcher), txs, SLOT, bid_wei=bid * 10**15, rollups=rollups)


tx_spec = st.tuples(st.integers(0, 5), st.integers(0, 2), st.sampled_from([21_000, 50_000]),
                    st.booleans())  # fmt: skip
leg_specs = st.lists(tx_spec, min_size=1, max_size=2, unique_by=lambda t: t[:2]).map(tuple)
single = st.tuples(st.sampled_from(IDS), leg_specs).map(lambda leg: (leg,))
cross = st.lists(st.tuples(st.sampled_from(IDS), leg_specs), min_size=2, max_size=3,
                 unique_by=lambda leg: leg[0]).map(lambda ls: tuple(sorted(ls)))  # fmt: skip
bundle_spec = st.tuples(st.integers(0, 3), st.one_of(single, single, single, cross),
                        st.integers(1, 9))  # fmt: skip


def slot_of(specs, publics, rollups: dict[int, Rollup]):
    """The logs of a random shared slot (every copy of a cross bundle in its rollup's log)."""
    rollups_key = tuple(sorted(rollups.items()))
    logs: dict[int, list[LoggedEvent]] = {r: [] for r in IDS}
    for i, (searcher, legs, bid) in enumerate(specs):
        for copy in bundle(searcher, legs, bid, rollups_key):
            logs[copy.rollup].append(LoggedEvent(f"{i + 10}-0", copy))
    carried = {r: [] for r in IDS}
    for j, (chain, sender, nonce, protected) in enumerate(publics):
        ptx = PublicTx(chain, decode_transaction(signed(chain, 6 + sender, nonce, 21_000, False)),
                       0, protected)  # fmt: skip
        logs[chain].insert(0, LoggedEvent(f"1-{j}", ptx))
    return [SlotPart(rollups[r], ZERO_HASH, logs[r], carried[r]) for r in IDS]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(bundle_spec, min_size=1, max_size=10),
    publics=st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 1), st.integers(0, 2),
                               st.booleans()), max_size=3),  # fmt: skip
    share=st.sampled_from([1.0, 0.5]),
    reserved=st.sampled_from([0, 21_000]),
    rule=st.sampled_from([PAYMENT_FIRST_PRICE, PAYMENT_VCG]),
)
def test_every_cross_bundle_is_in_all_its_blocks_or_none(specs, publics, share, reserved, rule):
    rollups = rollups_of(share, reserved, 0, rule)
    parts = slot_of(specs, publics, rollups)
    results = compute_slot_results(SLOT, 1, parts)
    blocks = {r.rollup: r.block for r in results}
    assert [r.rollup for r in results] == list(IDS)
    # Every rollup's fairness rules, and atomicity over the slot.
    for part, result in zip(parts, results, strict=True):
        check_block_fairness(part.rollup, SLOT, part.carried, part.log, result.block)
    check_slot_atomicity(blocks)
    # Directly: a cross bundle wins in every rollup it spans or in none, with one outcome.
    outcomes: dict[str, set[tuple[int, str, str]]] = {}
    for result in results:
        for o in result.outcomes:
            if o.bid.legs:
                outcomes.setdefault(o.bid.bid_id, set()).add((o.bid.rollup, o.outcome, o.code))
    for bid_id, seen in outcomes.items():
        assert len({(what, code) for _, what, code in seen}) == 1, bid_id
        in_blocks = {r for r, b in blocks.items() for w in b.bundles if w.bid_id == bid_id}
        assert in_blocks in (set(), {r for r, _, _ in seen})
    # Revenue is the entries' attributed payments; a cross bundle's add up to at most its bid.
    for b in blocks.values():
        assert b.revenue_wei == sum(w.payment_wei for w in b.bundles)
    paid: dict[str, int] = {}
    for b in blocks.values():
        for w in b.bundles:
            paid[w.bid_id] = paid.get(w.bid_id, 0) + w.payment_wei
    bids = {w.bid_id: w.bid_wei for b in blocks.values() for w in b.bundles}
    assert all(0 <= paid[i] <= bids[i] for i in paid)
    # Deterministic, bit for bit.
    assert compute_slot_results(SLOT, 1, parts) == results


def test_attribution_splits_by_gas_remainder_to_lowest_rollup():
    assert compute_attribution(10, [(8453, 1), (10, 2)]) == {10: 7, 8453: 3}
    assert compute_attribution(7, [(3, 0), (2, 0)]) == {2: 7, 3: 0}
    shares = compute_attribution(10**18 + 1, [(1, 21_000), (2, 50_000), (3, 71_000)])
    assert sum(shares.values()) == 10**18 + 1


def three_rollup_slot(rule: str = PAYMENT_FIRST_PRICE):
    """A fixed slot: a cross bundle over 10 and 167001 that must win, beside single bundles."""
    rollups = rollups_of(1.0, 0, 0, rule)
    specs = [
        (0, ((10, ((0, 0, 21_000, False),)), (167_001, ((1, 0, 50_000, True),))), 9),
        (1, ((10, ((2, 0, 21_000, False),)),), 2),
        (2, ((8453, ((3, 0, 21_000, False),)),), 3),
        (3, ((167_001, ((4, 0, 21_000, True),)),), 1),  # loses the hot key to the cross bundle
    ]
    return slot_of(specs, [], rollups)


def test_a_cross_bundle_wins_on_both_rollups_and_pays_once():
    results = compute_slot_results(SLOT, 1, three_rollup_slot())
    blocks = {r.rollup: r.block for r in results}
    (w10,) = [w for w in blocks[10].bundles if w.legs]
    (w167,) = [w for w in blocks[167_001].bundles if w.legs]
    assert w10.rollups == w167.rollups == (10, 167_001)
    assert (w10.bid_id, w10.bundle_hash, w10.legs) == (w167.bid_id, w167.bundle_hash, w167.legs)
    assert w10.payment_wei + w167.payment_wei == w10.bid_wei  # first price, attributed by gas
    assert (w10.payment_wei, w167.payment_wei) == (
        9 * 10**15 * 21_000 // 71_000 + 1, 9 * 10**15 * 50_000 // 71_000)
    assert [w.bid_id for w in blocks[8453].bundles] != []
    assert len(blocks[167_001].bundles) == 1  # the hot-key rival lost on 167001
    # A block with a cross entry is encoded as version 2; one without keeps version 1.
    assert encode_block_header(**_header(blocks[10]))[16] == C.ENCODING_VERSION_CROSS
    assert encode_block_header(**_header(blocks[8453]))[16] == C.ENCODING_VERSION
    check_slot_atomicity(blocks)


def documented_header(b: Block) -> bytes:
    """The block header spelled out from docs/protocol.md ("Cross-rollup entries") and
    docs/committee.md ("What is signed"), field by field, without auction/encoding.py."""

    def h(text: str) -> bytes:
        return bytes.fromhex(text[2:])

    cross = any(w.legs for w in b.bundles)
    out = b"blockspace/block" + bytes([2 if cross else 1]) + b.rollup.to_bytes(8, "big")
    out += b.slot.to_bytes(8, "big") + h(b.parent_hash) + h(b.bid_set_root)
    out += b.gas_used.to_bytes(8, "big") + b.revenue_wei.to_bytes(32, "big")
    out += len(b.bundles).to_bytes(4, "big")
    for w in b.bundles:
        out += h(w.bundle_hash) + h(w.bid_id) + h(w.searcher) + w.bid_wei.to_bytes(32, "big")
        out += w.payment_wei.to_bytes(32, "big") + w.gas.to_bytes(8, "big")
        if cross:
            out += len(w.legs).to_bytes(1, "big")
            for leg in w.legs:
                out += leg.rollup.to_bytes(8, "big") + len(leg.tx_hashes).to_bytes(2, "big")
                out += b"".join(h(t) for t in leg.tx_hashes)
    out += len(b.txs).to_bytes(4, "big") + b"".join(keccak256(raw) for raw in b.txs)
    out += b.public_tx_count.to_bytes(4, "big") + h(b.carried_root) + h(b.pending_root)
    return out


def test_the_block_header_is_the_documented_bytes():
    """Version 1 and version 2 (a cross entry beside single-rollup entries: a legs count of 0)."""
    blocks = {r.rollup: r.block for r in compute_slot_results(SLOT, 1, three_rollup_slot())}
    mixed = blocks[10]
    assert {bool(w.legs) for w in mixed.bundles} == {True, False}
    for b in blocks.values():
        assert encode_block_header(**_header(b)) == documented_header(b)
        assert b.block_hash == to_hex(keccak256(documented_header(b)))


def _header(b: Block) -> dict:
    fields = {f.name: getattr(b, f.name) for f in dataclasses.fields(b)}
    del fields["txs"], fields["block_hash"]
    fields["tx_hashes"] = [to_hex(keccak256(raw)) for raw in b.txs]
    return fields


def test_a_single_rollup_slot_is_the_one_rollup_auction():
    """compute_slot_result is the joint close with one part; a cross copy alone is rejected."""
    parts = three_rollup_slot()
    part = parts[0]
    one = compute_slot_result(part.rollup, SLOT, 1, ZERO_HASH, part.log)
    assert one == compute_slot_results(SLOT, 1, [part])[0]
    cross = [o for o in one.outcomes if o.bid.legs]
    assert [o.outcome for o in cross] == [C.OUTCOME_REJECTED]


def tampered(blocks: dict[int, Block], rollup: int, **changes) -> dict[int, Block]:
    return {**blocks, rollup: dataclasses.replace(blocks[rollup], **changes)}


def test_the_atomicity_checker_refuses_broken_slots():
    blocks = {r.rollup: r.block for r in compute_slot_results(SLOT, 1, three_rollup_slot())}
    check_slot_atomicity(blocks)
    (w,) = [w for w in blocks[167_001].bundles if w.legs]
    others = tuple(b for b in blocks[167_001].bundles if b is not w)
    cases = {
        "only in one block": tampered(blocks, 167_001, bundles=others),
        "legs reordered": tampered(blocks, 167_001, bundles=(
            dataclasses.replace(w, legs=w.legs[::-1]), *others)),
        "attribution changed": tampered(blocks, 167_001, bundles=(
            dataclasses.replace(w, payment_wei=w.payment_wei + 1), *others)),
        "other bundle hash": tampered(blocks, 167_001, bundles=(
            dataclasses.replace(w, bundle_hash="0x" + "ee" * 32), *others)),
        "leg txs missing": tampered(blocks, 167_001, txs=blocks[167_001].txs[1:]),
    }
    for name, broken in cases.items():
        with pytest.raises(FairnessViolation) as err:
            check_slot_atomicity(broken)
        assert err.value.data["rule"] == "atomicity", name
    # A partner block missing: the entry cannot be checked (named), and the slot check fails.
    assert check_cross_entries(blocks[10], {10: blocks[10]}) == [167_001]
    with pytest.raises(FairnessViolation):
        check_slot_atomicity({10: blocks[10], 8453: blocks[8453]})


def test_a_cross_bundle_conflicting_with_a_due_tx_loses_everywhere():
    rollups = rollups_of(1.0, 0, 1, PAYMENT_FIRST_PRICE)
    specs = [(0, ((10, ((0, 0, 21_000, False),)), (8453, ((1, 0, 21_000, False),))), 9)]
    parts = slot_of(specs, [], rollups)
    # The same (sender, nonce) as the bundle's 8453 leg waits in 8453's pool, due now.
    due = decode_transaction(signed(8453, 1, 0, 21_000, True))
    parts[1] = dataclasses.replace(parts[1], carried=[PendingTx(due, SLOT - 1, "0-0")])
    results = compute_slot_results(SLOT, 1, parts)
    outs = {r.rollup: [o.outcome for o in r.outcomes] for r in results}
    assert outs == {10: [C.OUTCOME_LOST], 8453: [C.OUTCOME_LOST], 167_001: []}
    assert all(not r.block.bundles for r in results)
