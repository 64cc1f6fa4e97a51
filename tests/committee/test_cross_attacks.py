"""Cross-rollup bundles before the committee: an honest slot is signed; a lying coordinator that
drops one leg's copy, reorders legs, puts a cross bundle in one block only, or changes how its
payment is split over the rollups gets the whole slot refused; a copy missing from a log makes
the bundle lose everywhere (never a crash); a losing copy's binding is checked leg by leg."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.searcher import bundle_params
from auction import codec
from auction.bundles import compute_bid
from auction.columnar import SlotEncoder
from auction.encoding import ZERO_HASH
from auction.hashing import keccak256, to_hex
from auction.legs import compute_bid_copies
from auction.presets import MAINNET, Rollup
from auction.results import SlotPart, compute_slot_results
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, Evidence, LoggedEvent
from committee.checks import (
    check_bid_binding,
    check_block,
    check_slot_evidence,
    compute_expected_results,
)
from committee.errors import InvalidEvidence, Refusal
from committee.member import DecodedTxs, Member
from committee.proposal import Proposal, SlotProposal, decode_proposal, encode_proposal
from committee.protection import ProtectionStore
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    after_close,
    config_of,
    key,
    log_of,
    rehash,
    signed_bid,
    slot_of,
)

A, B = 10, 8453
RIGHT = (A, B, ROLLUP)
ROLLUPS = {r: Rollup(r, "test", MAINNET.policy) for r in RIGHT}


def member3(dealt: Dealt, path: Path, index: int = 1) -> Member:
    config = dataclasses.replace(config_of(dealt.committee, index), rollups=ROLLUPS)
    return Member(dealt.shares[index - 1], config,
                  ProtectionStore(path / f"member-{index}.sqlite3"),
                  clock_ms=lambda: after_close(SLOT))  # fmt: skip


def raw_on(chain: int, seed: int, nonce: int, gas: int = 60_000) -> bytes:
    return key(seed).sign_tx(
        type=2, chainId=chain, nonce=nonce, maxPriorityFeePerGas=2 * 10**9,
        maxFeePerGas=100 * 10**9, gas=gas, to="0x" + "42" * 20, value=0, data=b"",
    )  # fmt: skip


def cross_bid(seed: int, chains: tuple[int, ...], bid_wei: int, tx_seed: int = 0) -> Bid:
    """A signed cross-rollup bundle, a transaction per chain (of ``tx_seed``'s key, else the
    searcher's), its copy for the lowest chain."""
    k = key(seed)
    txs = [raw_on(c, tx_seed or seed, 7 + i) for i, c in enumerate(chains)]
    params = bundle_params(txs, SLOT, bid_wei=bid_wei)
    body = k.request("eth_sendBundle", [params])
    return compute_bid(
        params, searcher=k.address, evidence=Evidence(body, k.sign_body(body)), rollups=ROLLUPS,
        clock=CLOCK, now_ms=compute_slot_start_ms(CLOCK, SLOT) + 3,
        max_slots_ahead=MAINNET.max_slots_ahead,
    )  # fmt: skip


def proposal(dealt: Dealt, logs: dict[int, tuple[LoggedEvent, ...]]) -> SlotProposal:
    """The honest slot of these logs: every block from the joint close."""
    parts = [SlotPart(ROLLUPS[r], ZERO_HASH, logs[r]) for r in RIGHT]
    results = compute_slot_results(SLOT, compute_deadline_ms(CLOCK, SLOT), parts)
    return slot_of(*(Proposal(dealt.committee.committee_id, r.rollup, SLOT, r.block, None, (),
                              logs[r.rollup]) for r in results))  # fmt: skip


@pytest.fixture(scope="module")
def logs() -> dict[int, tuple[LoggedEvent, ...]]:
    """A cross bundle over A and ROLLUP that wins, a losing one over all three, singles."""
    win = compute_bid_copies(cross_bid(40, (A, ROLLUP), 9 * 10**15))
    # (its tx on A is the winner's: they conflict, and the lower bid loses on every rollup)
    lose = compute_bid_copies(cross_bid(41, (A, B, ROLLUP), 10**14, tx_seed=40))
    single = signed_bid(key(42), bid_wei=2 * 10**15)
    by = {r: [c for c in (*win, *lose) if c.rollup == r] for r in RIGHT}
    return {A: log_of(by[A]), B: log_of(by[B]), ROLLUP: log_of([single, *by[ROLLUP]])}


def cross_entry(p: Proposal):
    (w,) = [w for w in p.block.bundles if w.legs]
    return w


def replace_part(slot: SlotProposal, rollup: int, part: Proposal) -> SlotProposal:
    return dataclasses.replace(
        slot, parts=tuple(part if p.rollup == rollup else p for p in slot.parts)
    )


def test_an_honest_slot_with_cross_bundles_is_signed(dealt, logs, tmp_path) -> None:
    honest = proposal(dealt, logs)
    parts = {p.rollup: p for p in honest.parts}
    assert cross_entry(parts[A]).rollups == cross_entry(parts[ROLLUP]).rollups == (A, ROLLUP)
    assert not parts[B].block.bundles  # the losing three-rollup bundle lost everywhere
    reply = member3(dealt, tmp_path).sign_proposal(encode_proposal(honest))
    assert reply.slot_root == honest.compute_slot_root()


def test_a_members_re_run_is_the_engines_blocks_without_the_outcomes(dealt, logs) -> None:
    """compute_expected_results (from scratch, or from an encoder fed the logs as a member's
    stream feeds it) gives every rollup's block of the engine's close, and skips what no block
    depends on: each bid's outcome."""
    honest = proposal(dealt, logs)
    parts = [SlotPart(ROLLUPS[r], ZERO_HASH, logs[r]) for r in RIGHT]
    engine = {r.rollup: r for r in
              compute_slot_results(SLOT, compute_deadline_ms(CLOCK, SLOT), parts)}  # fmt: skip
    config = dataclasses.replace(config_of(dealt.committee, 1), rollups=ROLLUPS)
    encoder = SlotEncoder()
    for r in RIGHT:
        encoder.extend(r, logs[r])
    for enc in (None, encoder):
        expected = compute_expected_results(config, honest, enc)
        assert sorted(expected) == list(RIGHT)
        for part in honest.parts:
            assert expected[part.rollup].block == engine[part.rollup].block == part.block
            assert expected[part.rollup].outcomes == () != engine[part.rollup].outcomes
            check_block(config, part, expected[part.rollup])


def test_a_dropped_leg_copy_gets_the_slot_refused_or_the_bundle_lost(dealt, logs, tmp_path):
    honest = proposal(dealt, logs)
    parts = {p.rollup: p for p in honest.parts}
    dropped = tuple(e for e in logs[A] if not (isinstance(e.event, Bid) and e.event.legs
                                               and e.event.bid_wei > 10**15))  # fmt: skip
    # The blocks kept, the copy dropped from A's log: refused.
    lying = replace_part(honest, A, dataclasses.replace(parts[A], log=dropped))
    with pytest.raises(Exception) as refused:
        member3(dealt, tmp_path).sign_proposal(encode_proposal(lying))
    assert refused.value.code in ("bid_set_mismatch", "invalid_evidence", "block_mismatch")
    # Blocks rebuilt from the short logs: the bundle is not live anywhere (no crash), and the
    # slot is a consistent one: every copy of the bundle lost its place in both blocks.
    rebuilt = proposal(dealt, {**logs, A: dropped})
    gone = cross_entry(parts[A]).bid_id
    assert all(w.bid_id != gone for p in rebuilt.parts for w in p.block.bundles)
    other = tmp_path / "other"
    other.mkdir()
    reply = member3(dealt, other).sign_proposal(encode_proposal(rebuilt))
    assert reply.slot_root == rebuilt.compute_slot_root()


@pytest.mark.parametrize("lie", ["legs_reordered", "one_block_only", "attribution"])
def test_a_lying_coordinator_gets_the_slot_refused(dealt, logs, tmp_path, lie) -> None:
    honest = proposal(dealt, logs)
    part = {p.rollup: p for p in honest.parts}[ROLLUP]
    w = cross_entry(part)
    others = [b for b in part.block.bundles if b is not w]
    block = part.block
    if lie == "legs_reordered":
        bundles = [dataclasses.replace(w, legs=w.legs[::-1]) if b is w else b
                   for b in block.bundles]  # fmt: skip
        block = dataclasses.replace(block, bundles=tuple(bundles))
    elif lie == "one_block_only":  # the entry and its leg's tx left out of ROLLUP's block
        leg = next(g for g in w.legs if g.rollup == ROLLUP)
        txs = tuple(t for t in block.txs if to_hex(keccak256(t)) not in leg.tx_hashes)
        block = dataclasses.replace(block, bundles=tuple(others), txs=txs,
                                    revenue_wei=block.revenue_wei - w.payment_wei)  # fmt: skip
    else:  # one wei of the payment moved from A's share to ROLLUP's
        bundles = [dataclasses.replace(w, payment_wei=w.payment_wei + 1) if b is w else b
                   for b in block.bundles]  # fmt: skip
        block = dataclasses.replace(block, bundles=tuple(bundles),
                                    revenue_wei=block.revenue_wei + 1)  # fmt: skip
    lying = replace_part(honest, ROLLUP, dataclasses.replace(part, block=rehash(block)))
    member = member3(dealt, tmp_path)
    with pytest.raises(Exception) as refused:
        member.sign_proposal(encode_proposal(lying))
    assert refused.value.code in ("block_mismatch", "fairness_violation", "malformed_proposal")
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None


def test_a_losing_copys_binding_is_checked_leg_by_leg(dealt, logs) -> None:
    honest = proposal(dealt, logs)
    part = {p.rollup: p for p in honest.parts}[B]
    (copy,) = [e.event for e in part.log if isinstance(e.event, Bid)]
    check_bid_binding(copy, part)  # the honest copy binds
    a_leg, b_leg, r_leg = copy.legs
    lies = {
        "legs reordered": dataclasses.replace(copy, legs=(b_leg, a_leg, r_leg)),
        "a leg dropped": dataclasses.replace(copy, legs=(b_leg, r_leg)),
        "own txs another leg's": dataclasses.replace(copy, txs=a_leg.txs),
        "a tx moved between legs": dataclasses.replace(copy, legs=(
            dataclasses.replace(a_leg, txs=()),
            dataclasses.replace(b_leg, txs=a_leg.txs + b_leg.txs), r_leg)),
    }  # fmt: skip
    for name, lie in lies.items():
        with pytest.raises(InvalidEvidence):
            check_bid_binding(lie, part)
        assert name


# --- the wire: each cross-rollup bundle once per slot (proposal version 3) ----------------------


def wire_of(slot: SlotProposal) -> dict:
    return orjson.loads(encode_proposal(slot))


def refusal_code(dealt: Dealt, path: Path, doc: dict) -> str:
    """What a fresh member answers to the proposal ``doc`` (it must refuse it)."""
    member = member3(dealt, path)
    with pytest.raises(Refusal) as refused:
        member.sign_proposal(orjson.dumps(doc))
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None
    return refused.value.code


def test_a_cross_bundles_evidence_travels_once_per_slot(dealt, logs) -> None:
    honest = proposal(dealt, logs)
    doc = wire_of(honest)
    text = orjson.dumps(doc)
    crosses = {e.event.bid_id: e.event for p in honest.parts for e in p.log
               if isinstance(e.event, Bid) and e.event.legs}  # fmt: skip
    assert [b["bid_id"] for b in doc["bundles"]] == list(crosses)
    for bid in crosses.values():  # its signature (and body) once, however many logs hold it
        assert text.count(bid.evidence.signature.encode()) == 1
    refs = [e["cross"] for p in doc["parts"] for e in p["log"] if "cross" in e]
    assert sorted(refs) == [0, 0, 1, 1, 1]  # one reference per copy
    # Every copy decodes to exactly the copy the coordinator logged.
    assert decode_proposal(text).parts == honest.parts


def test_copies_that_differ_cannot_be_encoded(dealt, logs) -> None:
    honest = proposal(dealt, logs)
    part = {p.rollup: p for p in honest.parts}[B]
    (copy,) = [e.event for e in part.log if isinstance(e.event, Bid)]
    lies = [dataclasses.replace(copy, bid_wei=copy.bid_wei + 1),
            dataclasses.replace(copy, legs=copy.legs[1:]),
            dataclasses.replace(copy, received_ms=copy.received_ms + 1),
            dataclasses.replace(copy, rollup=A)]  # fmt: skip
    for lie in lies:
        log = tuple(dataclasses.replace(e, event=lie) if e.event is copy else e for e in part.log)
        with pytest.raises(ValueError):
            encode_proposal(replace_part(honest, B, dataclasses.replace(part, log=log)))


def test_copies_that_differ_are_refused_by_the_evidence_check(dealt, logs) -> None:
    """Defence in depth (a slot built in memory, never sent): each bundle's evidence is
    checked once, so every other copy must be exactly its copy for its rollup."""
    honest = proposal(dealt, logs)
    config = dataclasses.replace(config_of(dealt.committee), rollups=ROLLUPS)
    check_slot_evidence(config, honest, frozenset())
    part = {p.rollup: p for p in honest.parts}[B]
    (copy,) = [e.event for e in part.log if isinstance(e.event, Bid)]
    a_leg, b_leg, r_leg = copy.legs
    lies = {
        "another amount": dataclasses.replace(copy, bid_wei=copy.bid_wei - 1),
        "another receive time": dataclasses.replace(copy, received_ms=copy.received_ms + 1),
        "its legs changed": dataclasses.replace(copy, legs=(a_leg, dataclasses.replace(
            b_leg, gas=b_leg.gas + 1), r_leg)),
        "another leg as its own": dataclasses.replace(copy, txs=a_leg.txs, gas=a_leg.gas),
        "another rollup's copy": dataclasses.replace(copy, rollup=A, txs=a_leg.txs,
                                                     gas=a_leg.gas),
    }  # fmt: skip
    for name, lie in lies.items():
        log = tuple(dataclasses.replace(e, event=lie) if e.event is copy else e for e in part.log)
        with pytest.raises(InvalidEvidence):
            check_slot_evidence(config, replace_part(honest, B, dataclasses.replace(part, log=log)),
                                frozenset())  # fmt: skip
        assert name


def _lie_inline(doc: dict) -> None:  # a copy written inline, as version 2 did
    bundle = decode_proposal(orjson.dumps(doc)).parts[0].log[0].event
    doc["parts"][0]["log"][0] = {"seq": doc["parts"][0]["log"][0]["seq"],
                                 "event": codec.event_to_json(bundle)}  # fmt: skip


def _lie_other_rollup(doc: dict) -> None:  # B's log names the bundle that does not span B
    winner = next(i for i, b in enumerate(doc["bundles"]) if len(b["legs"]) == 2)
    doc["parts"][1]["log"].append({"seq": "9-9", "cross": winner})


def _lie_unused(doc: dict) -> None:  # a bundle no log refers to
    doc["bundles"].append({**doc["bundles"][0], "bid_id": "0x" + "ab" * 32})


def _lie_one_leg(doc: dict) -> None:
    doc["bundles"][0]["legs"] = doc["bundles"][0]["legs"][:1]


WIRE_LIES = {
    "an inline cross copy": _lie_inline,
    "a reference out of range": lambda d: d["parts"][0]["log"][0].update(cross=7),
    "a reference to a rollup the bundle does not span": _lie_other_rollup,
    "a bundle there twice": lambda d: d["bundles"].append(dict(d["bundles"][0])),
    "a bundle in no log": _lie_unused,
    "a bundle of one leg": _lie_one_leg,
    "a bundle naming its rollup": lambda d: d["bundles"][0].update(rollup=A),
    "a reference with another field": lambda d: d["parts"][0]["log"][0].update(event={}),
    "version 2": lambda d: d.update(version=2),
    "no bundles": lambda d: d.pop("bundles"),
}


@pytest.mark.parametrize("lie", sorted(WIRE_LIES))
def test_a_malformed_bundle_table_is_refused(dealt, logs, tmp_path, lie) -> None:
    doc = wire_of(proposal(dealt, logs))
    assert "cross" in doc["parts"][0]["log"][0]  # A's log starts with the winner's copy
    WIRE_LIES[lie](doc)
    assert refusal_code(dealt, tmp_path, doc) == "malformed_proposal"


def _omit_winner(doc: dict) -> None:  # its evidence and every copy gone, the blocks kept
    winner = next(i for i, b in enumerate(doc["bundles"]) if len(b["legs"]) == 2)
    del doc["bundles"][winner]
    for part in doc["parts"]:
        part["log"] = [
            {**e, "cross": e["cross"] - (e["cross"] > winner)} if "cross" in e else e
            for e in part["log"] if e.get("cross") != winner
        ]


def _raise_loser_bid(doc: dict) -> None:  # the signed request says another amount
    loser = next(b for b in doc["bundles"] if len(b["legs"]) == 3)
    loser["bid_wei"] = str(int(loser["bid_wei"]) - 1)


def _move_loser_tx(doc: dict) -> None:  # a tx moved between the losing bundle's legs
    legs = next(b for b in doc["bundles"] if len(b["legs"]) == 3)["legs"]
    legs[1]["txs"] = legs[0]["txs"] + legs[1]["txs"]
    legs[0]["txs"] = []


def _forge_winner_sender(doc: dict) -> None:  # only decoding its bytes shows it (full check)
    winner = next(b for b in doc["bundles"] if len(b["legs"]) == 2)
    winner["legs"][1]["txs"][0]["sender"] = "0x" + "77" * 20


EVIDENCE_LIES = {
    "the winner's second leg's sender": (_forge_winner_sender, {"invalid_evidence"}),
    "the winner's evidence omitted": (_omit_winner, {"bid_set_mismatch", "invalid_evidence"}),
    "a losing bundle's amount": (_raise_loser_bid, {"invalid_evidence"}),
    "a losing bundle's tx in another leg": (_move_loser_tx, {"invalid_evidence"}),
}


@pytest.mark.parametrize("lie", sorted(EVIDENCE_LIES))
def test_a_lie_in_a_bundles_one_entry_is_refused(dealt, logs, tmp_path, lie) -> None:
    """The losing three-rollup bundle is checked once (binding, legs against the signed
    request) for its three copies; a change there changes every copy and is refused."""
    doc = wire_of(proposal(dealt, logs))
    change, codes = EVIDENCE_LIES[lie]
    change(doc)
    assert refusal_code(dealt, tmp_path, doc) in codes


def test_the_slots_parts_share_one_decoding_of_each_tx(dealt, logs) -> None:
    """Every fully checked bundle's transactions are decoded once per slot: a cross-rollup
    bundle once for all its copies, and a transaction two bundles share (the losing bundle's tx
    on A is the winner's) once for both."""
    honest = proposal(dealt, logs)
    config = dataclasses.replace(config_of(dealt.committee), rollups=ROLLUPS)
    bids = {e.event.bid_id: e.event for p in honest.parts for e in p.log
            if isinstance(e.event, Bid)}  # fmt: skip
    loser = next(b for b in bids.values() if len(b.legs) == 3)
    full = {w.bid_id for p in honest.parts for w in p.block.bundles} | {loser.bid_id}
    raws = [t.raw for i in full for leg in (bids[i].legs or [bids[i]]) for t in leg.txs]
    assert len(set(raws)) < len(raws)  # the shared tx
    memo = DecodedTxs(1_000)
    check_slot_evidence(config, honest, frozenset({loser.bid_id}), bundle_decode=memo.decode)
    assert memo.misses == len(set(raws))


def _leaf_paths(value: object, path: tuple) -> list[tuple]:
    """Every path to a scalar (or empty container) inside ``value``."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _set(doc: dict, path: tuple, value: object) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


_VALUES = st.one_of(
    st.integers(-2, 3), st.integers(0, 2**63), st.none(), st.booleans(), st.text(max_size=4),
    st.sampled_from(["0x" + "ab" * 32, "0x" + "00" * 20, "0x", "1", "-1", "0x07"]),
    st.just([]), st.just({}),
)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_a_member_signs_a_changed_bundle_table_only_if_it_is_the_honest_slot(
    dealt, logs, tmp_path_factory, data
) -> None:
    """A lying coordinator changes any one field of the slot's cross-rollup bundles or of a
    copy's reference: the member refuses with a stable code (never crashes), or the slot it
    signs decodes to exactly the honest one (every bid here is re-derived: the sample covers
    the whole log)."""
    honest = proposal(dealt, logs)
    doc = wire_of(honest)
    refs = [("parts", i, "log", j, "cross") for i, part in enumerate(doc["parts"])
            for j, entry in enumerate(part["log"]) if "cross" in entry]  # fmt: skip
    path = data.draw(st.sampled_from(_leaf_paths(doc["bundles"], ("bundles",)) + refs))
    _set(doc, path, data.draw(_VALUES))
    member = member3(dealt, tmp_path_factory.mktemp("member"))
    try:
        member.sign_proposal(orjson.dumps(doc))
    except Refusal as exc:
        assert exc.code in ("malformed_proposal", "invalid_evidence", "bid_set_mismatch",
                            "block_mismatch", "fairness_violation")  # fmt: skip
        return
    assert decode_proposal(orjson.dumps(doc)).parts == honest.parts
