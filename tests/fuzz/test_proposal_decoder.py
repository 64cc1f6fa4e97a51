"""Fuzzing the committee's proposal decoder and a member's whole signing path.

Inputs: random bytes; honest proposals (``tests/fuzz/committee_world.py``) with their JSON
edited (values replaced by any JSON value or retyped, keys dropped or added, integers far
beyond 64 bits, hex of the wrong length, duplicated keys); and well-formed lies: a log event,
carried tx or the log's shape changed as a lying coordinator would, with the block recomputed
by the real slot function so that it is consistent with the lie.

Property: ``decode_proposal`` / ``parse_proposal`` return a proposal whose every field has its
type, or raise ``MalformedProposal``; ``Member.sign_proposal`` returns a partial or raises a
``Refusal`` (stable code), never anything else; and a member (checking every event's evidence)
signs a changed proposal only if each of its events and carried txs is one of the honest
proposal's, up to what no evidence proves (receive time, log position, protection).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
import pytest
from hypothesis import event, example, given, note
from hypothesis import strategies as st

from auction.results import compute_slot_result
from auction.slots import compute_deadline_ms
from auction.types import Bid, Cancel, LoggedEvent, PendingTx, PublicTx, Tx
from committee.errors import MalformedProposal, Refusal
from committee.proposal import Proposal, SlotProposal, decode_proposal, parse_proposal
from tests.committee.slots import CLOCK, ROLLUP, after_close
from tests.committee.slots import encode_part as encode_proposal
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.committee_world import (
    ROLLUPS,
    World,
    build_world,
    fresh_member,
    unauthenticated,
)
from tests.fuzz.json_values import differences, json_values, mutated, to_json_bytes

pytestmark = pytest.mark.timeout(timeout_s(180))

_HASH = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


CODES = {cls.code for cls in _subclasses(Refusal)}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


# --- the properties ---------------------------------------------------------------------------


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**256


def check_tx_types(t: Tx) -> None:
    assert isinstance(t.raw, bytes)
    assert isinstance(t.hash, str) and isinstance(t.sender, str)
    assert t.to is None or isinstance(t.to, str)
    assert all(_is_uint(v) for v in (t.tx_type, t.nonce, t.gas_limit, t.priority_fee_wei,
                                     t.max_fee_wei))
    assert t.chain_id is None or _is_uint(t.chain_id)
    assert isinstance(t.access_keys, tuple) and all(isinstance(k, str) for k in t.access_keys)


def check_types(p: Proposal) -> None:
    """Every field of a decoded proposal has the type the rules compute with."""
    assert isinstance(p.committee_id, bytes) and _is_uint(p.rollup) and _is_uint(p.slot)
    assert isinstance(p.completion, bool)
    for c in p.carried:
        check_tx_types(c.tx)
        assert _is_uint(c.arrival_slot) and isinstance(c.seq, str)
        assert isinstance(c.protected, bool)
    for entry in p.log:
        assert isinstance(entry.seq, str)
        ev = entry.event
        assert isinstance(ev.evidence.body if not isinstance(ev, PublicTx) else b"", bytes)
        if isinstance(ev, Bid):
            assert all(_is_uint(v) for v in (ev.rollup, ev.slot, ev.bid_wei, ev.gas,
                                             ev.received_ms))
            assert all(isinstance(v, str) for v in (ev.bid_id, ev.searcher, ev.bundle_hash,
                                                    ev.evidence.signature))
            assert ev.replacement_uuid is None or isinstance(ev.replacement_uuid, str)
            assert isinstance(ev.reverting_tx_hashes, tuple)
            assert all(isinstance(h, str) for h in ev.reverting_tx_hashes)
            assert ev.min_timestamp is None or _is_uint(ev.min_timestamp)
            assert ev.max_timestamp is None or _is_uint(ev.max_timestamp)
            assert isinstance(ev.explicit_bid, bool)
            for t in ev.txs:
                check_tx_types(t)
        elif isinstance(ev, PublicTx):
            assert _is_uint(ev.rollup) and _is_uint(ev.received_ms)
            assert isinstance(ev.protected, bool)
            check_tx_types(ev.tx)
        else:
            assert isinstance(ev, Cancel)
            assert _is_uint(ev.rollup) and _is_uint(ev.received_ms)
            assert isinstance(ev.searcher, str) and isinstance(ev.replacement_uuid, str)
            assert ev.slot is None or _is_uint(ev.slot)


def decode_or_refuse(data: bytes) -> SlotProposal | None:
    try:
        parsed = parse_proposal(data)
    except MalformedProposal as exc:
        assert exc.code == "malformed_proposal"
        return None
    try:
        p = decode_proposal(data)
    except MalformedProposal as exc:
        assert exc.code == "malformed_proposal"
        return None
    heads = tuple(dataclasses.replace(part, carried=(), log=()) for part in p.parts)
    assert dataclasses.replace(p, parts=heads) == parsed.head
    assert isinstance(p.committee_id, bytes) and _is_uint(p.slot)
    assert isinstance(p.completion, bool) and p.parts
    for part in p.parts:
        assert (part.committee_id, part.slot, part.completion) == (
            p.committee_id, p.slot, p.completion)
        check_types(part)
    return p


def check_member(world: World, honest: Proposal, data: bytes, *, sampled: bool = True) -> None:
    """The member signs ``data`` only if it holds nothing but the honest proposal's events.

    ``sampled``: the member re-derives every bid. Otherwise it re-derives none but the winners,
    replacements and cancels (a losing bid's unsampled fields are a documented trade-off,
    docs/committee.md), and the property is that it never fails otherwise than by a refusal and
    never signs a forged public tx, carried tx, cancel or winning bid."""
    member = fresh_member(world, honest.slot)
    if not sampled:
        member.evidence_sample = 0
    try:
        reply = member.sign_proposal(data)
    except Refusal as exc:
        assert exc.code in CODES, exc.code
        event(f"refused {exc.code}")
        return
    event("signed")
    slot = decode_proposal(data)
    assert reply.slot_root == slot.compute_slot_root()
    (signed,) = slot.parts  # the member serves one rollup: a one-part slot
    honest_events = {unauthenticated(e.event) for e in honest.log}
    winners = {w.bid_id for w in signed.block.bundles}
    for e in signed.log:
        if sampled or not isinstance(e.event, Bid) or e.event.bid_id in winners:
            assert unauthenticated(e.event) in honest_events, f"signed a forged event {e.event}"
    honest_carried = {unauthenticated(c) for c in honest.carried}
    for c in signed.carried:
        assert unauthenticated(c) in honest_carried, f"signed a forged carried tx {c.tx}"


# --- bytes and JSON edits ---------------------------------------------------------------------


@fuzz(100)
@given(data=st.binary(max_size=300))
@example(data=b"")
@example(data=b"{}")
@example(data=b"[" * 5000)
def test_random_bytes_are_malformed(data: bytes) -> None:
    assert decode_or_refuse(data) is None


PART: tuple[Any, ...] = ("parts", 0)
EDIT_PLACES: list[tuple[Any, ...]] = [
    (), ("parts",), PART, (*PART, "block"), (*PART, "parent"), (*PART, "carried"),
    (*PART, "log"), (*PART, "log", 0, "event"), (*PART, "log", 0, "event", "txs", 0),
    (*PART, "log", 0, "event", "evidence"), (*PART, "log", 3, "event"),
    (*PART, "log", 4, "event", "tx"), (*PART, "carried", 0, "tx"),
    (*PART, "block", "bundles", 0),
]


@st.composite
def edited_proposals(draw: st.DrawFn, world: World) -> tuple[Proposal, bytes]:
    honest = draw(st.sampled_from(world.proposals), label="honest")
    doc = orjson.loads(encode_proposal(honest))
    under = draw(st.sampled_from(EDIT_PLACES), label="under")
    edited = draw(mutated(doc, under=under, max_edits=3), label="edited")
    for line in differences(doc, edited):
        note(line)
    text = to_json_bytes(edited)
    if draw(st.booleans()) and isinstance(edited, dict) and edited:
        # The same key twice: orjson keeps the last, another parser might keep the first.
        k = draw(st.sampled_from(sorted(edited)))
        again = draw(json_values())
        note(f"then {k!r} again: {repr(again)[:80]}")
        text = text[:-1] + b"," + to_json_bytes({k: again})[1:]
    return honest, text


@fuzz(150)
@given(data=st.data())
def test_edited_proposals_are_refused_or_decode_to_typed_values(
    world: World, data: st.DataObject
) -> None:
    honest, text = data.draw(edited_proposals(world))
    if decode_or_refuse(text) is not None:
        check_member(world, honest, text, sampled=data.draw(st.booleans(), label="sampled"))


def _edit(p: Proposal, change: Any) -> bytes:
    """``p``'s wire bytes with ``change`` applied to its (only) part."""
    doc = orjson.loads(encode_proposal(p))
    change(doc["parts"][0])
    return to_json_bytes(doc)


REGRESSIONS: dict[str, Any] = {
    # int() refuses more than 4,300 digits with a plain ValueError (was: a crash)
    "wei of 5,000 digits": lambda d: d["block"].__setitem__("revenue_wei", "1" * 5000),
    # Fields the decoder let through with any type or value (found by the fuzz tests):
    # crashes in the pending root (bytes([300]), bytes.fromhex("zz"))
    "carried protected 300": lambda d: d["carried"][0].__setitem__("protected", 300),
    "carried tx hash not hex": lambda d: d["carried"][0]["tx"].__setitem__(
        "hash", "0x" + "zz" * 32),
    # and values no rule computes with
    "reverting hash a list": lambda d: d["log"][0]["event"].__setitem__(
        "reverting_tx_hashes", [[]]),
    "tx to a list": lambda d: d["log"][0]["event"]["txs"][0].__setitem__("to", [1]),
    "min_timestamp a string": lambda d: d["log"][0]["event"].__setitem__("min_timestamp", "x"),
    "fee above 2**256": lambda d: d["log"][0]["event"]["txs"][0].__setitem__(
        "priority_fee_wei", str(2**300)),
    "bid id not hex": lambda d: d["log"][0]["event"].__setitem__("bid_id", "0x" + "zz" * 32),
}


def _loser(p: Proposal) -> int:
    """The index in the log of a bid that loses (never fully checked unless sampled)."""
    winners = {w.bid_id for w in p.block.bundles}
    return next(i for i, e in enumerate(p.log)
                if isinstance(e.event, Bid) and e.event.bid_id not in winners
                and e.event.replacement_uuid is None)


def _set_loser(field: str, value: Any, tx_field: str | None = None) -> Any:
    def change(d: dict[str, Any]) -> None:
        wire = {"kind": "blockspace-proposal", "version": 5, "bundles": [],
                "committee_id": "0x" + "00" * 32, "slot": 0, "parts": [d], "completion": False}
        ev = d["log"][_loser(decode_proposal(to_json_bytes(wire)).parts[0])]["event"]
        ev[field] = value
        if tx_field:
            ev["txs"][0][tx_field] = value

    return change


# A losing bid's claimed amounts reached the solver unchecked unless sampled (was: a crash)
LOSER_REGRESSIONS: dict[str, Any] = {
    "gas 2**64 - 1": _set_loser("gas", 2**64 - 1),
    "gas 2**63 with its tx's": _set_loser("gas", 2**63, "gas_limit"),
    "gas above the block": _set_loser("gas", 10**9, "gas_limit"),
}


@pytest.mark.parametrize("name", list(LOSER_REGRESSIONS))
def test_unsampled_losing_bids_out_of_range_are_refused(world: World, name: str) -> None:
    honest = world.proposals[0]
    data = _edit(honest, LOSER_REGRESSIONS[name])
    member = fresh_member(world, honest.slot)
    member.evidence_sample = 0
    with pytest.raises(Refusal) as refused:
        member.sign_proposal(data)
    assert refused.value.code == "invalid_evidence"


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_regressions_are_malformed(world: World, name: str) -> None:
    data = _edit(world.proposals[1], REGRESSIONS[name])
    assert decode_or_refuse(data) is None
    with pytest.raises(MalformedProposal):
        fresh_member(world, world.proposals[1].slot).sign_proposal(data)


def test_honest_proposals_are_signed(world: World) -> None:
    for p in world.proposals:
        reply = fresh_member(world, p.slot).sign_proposal(encode_proposal(p))
        assert reply.slot_root == decode_proposal(encode_proposal(p)).compute_slot_root()


# --- well-formed lies -------------------------------------------------------------------------

OTHER_ADDRESS = "0x" + "77" * 20
OTHER_HASH = "0x" + "99" * 32


def _tx_lies(t: Tx) -> list[Tx]:
    r = dataclasses.replace
    return [
        r(t, gas_limit=t.gas_limit + 1), r(t, gas_limit=max(t.gas_limit - 1, 0)),
        r(t, gas_limit=2**24 + 1), r(t, priority_fee_wei=t.priority_fee_wei * 2),
        r(t, priority_fee_wei=0, max_fee_wei=0), r(t, max_fee_wei=t.max_fee_wei + 1),
        r(t, nonce=t.nonce + 1), r(t, sender=OTHER_ADDRESS),
        r(t, access_keys=(*t.access_keys, "aa" * 20 + ":" + "01" * 32)),
        r(t, access_keys=()), r(t, to=None), r(t, chain_id=t.chain_id + 1 if t.chain_id else 1),
        r(t, hash=OTHER_HASH), r(t, raw=t.raw + b"\x00"), r(t, tx_type=(t.tx_type + 1) % 3),
    ]


def _event_lies(ev: Bid | Cancel | PublicTx) -> list[Bid | Cancel | PublicTx]:
    r = dataclasses.replace
    if isinstance(ev, Bid):
        lies: list[Any] = [
            r(ev, bid_wei=ev.bid_wei + 1), r(ev, bid_wei=ev.bid_wei * 100), r(ev, bid_wei=1),
            r(ev, gas=ev.gas + 1), r(ev, gas=2**63), r(ev, slot=ev.slot + 1),
            r(ev, replacement_uuid=None), r(ev, replacement_uuid="ab" * 16),
            r(ev, reverting_tx_hashes=(ev.txs[0].hash,)), r(ev, min_timestamp=2**40),
            r(ev, max_timestamp=1), r(ev, searcher=OTHER_ADDRESS),
            r(ev, explicit_bid=not ev.explicit_bid), r(ev, bundle_hash=OTHER_HASH),
            r(ev, bid_id=OTHER_HASH), r(ev, received_ms=ev.received_ms + 10**7),
            r(ev, txs=ev.txs + ev.txs), r(ev, txs=()),
        ]
        lies += [r(ev, txs=(t, *ev.txs[1:])) for t in _tx_lies(ev.txs[0])]
        return lies
    if isinstance(ev, PublicTx):
        return [r(ev, rollup=ev.rollup + 1), r(ev, protected=not ev.protected),
                *(r(ev, tx=t) for t in _tx_lies(ev.tx))]
    return [r(ev, replacement_uuid="ab" * 16), r(ev, searcher=OTHER_ADDRESS),
            r(ev, slot=None), r(ev, slot=(ev.slot or 0) + 5), r(ev, rollup=ev.rollup + 1),
            r(ev, received_ms=ev.received_ms + 10**7)]


def _carried_lies(p: PendingTx) -> list[PendingTx]:
    r = dataclasses.replace
    return [r(p, arrival_slot=p.arrival_slot - 1), r(p, protected=not p.protected),
            r(p, seq=p.seq + "0"), *(r(p, tx=t) for t in _tx_lies(p.tx))]


@st.composite
def lies(draw: st.DrawFn, world: World) -> tuple[Proposal, Proposal]:
    """An honest proposal and a lie about it, with a block consistent with the lie (when the
    slot function can build one) or the honest block."""
    honest = draw(st.sampled_from(world.proposals), label="honest")
    log, carried = list(honest.log), list(honest.carried)
    kind = draw(st.sampled_from(["event", "event", "carried", "shape"]), label="kind")
    if kind == "event":
        i = draw(st.integers(0, len(log) - 1))
        lie = draw(st.sampled_from(_event_lies(log[i].event)), label="lie")
        log[i] = LoggedEvent(log[i].seq, lie)
    elif kind == "carried" and carried:
        i = draw(st.integers(0, len(carried) - 1))
        op = draw(st.sampled_from(["field", "drop", "duplicate", "swap"]))
        if op == "field":
            carried[i] = draw(st.sampled_from(_carried_lies(carried[i])), label="lie")
        elif op == "drop":
            del carried[i]
        elif op == "duplicate":
            carried.insert(i, carried[i])
        else:
            carried.reverse()
    else:
        i = draw(st.integers(0, len(log) - 1))
        op = draw(st.sampled_from(["drop", "duplicate", "swap"]))
        if op == "drop":
            del log[i]
        elif op == "duplicate":
            log.insert(i, log[i])
        else:
            j = draw(st.integers(0, len(log) - 1))
            log[i], log[j] = log[j], log[i]
    lied = dataclasses.replace(honest, log=tuple(log), carried=tuple(carried))
    if draw(st.booleans(), label="recompute block"):
        try:
            result = compute_slot_result(
                ROLLUPS[ROLLUP], honest.slot, compute_deadline_ms(CLOCK, honest.slot),
                honest.block.parent_hash, lied.log, lied.carried,
            )
            lied = dataclasses.replace(lied, block=result.block)
        except Exception:
            event("the slot function refuses the lie")
    return honest, lied


@fuzz(200)
@given(data=st.data())
def test_well_formed_lies_are_never_signed(world: World, data: st.DataObject) -> None:
    honest, lied = data.draw(lies(world))
    check_member(world, honest, encode_proposal(lied),
                 sampled=data.draw(st.booleans(), label="sampled"))


# --- regressions: forged public txs censor; members decode every one ------------------------


def _relog(honest: Proposal, log: Any, carried: Any) -> Proposal:
    """``honest`` with another log and carried pool, and the block the slot function builds
    from them: a lie consistent in every field a member recomputes."""
    lied = dataclasses.replace(honest, log=tuple(log), carried=tuple(carried))
    result = compute_slot_result(
        ROLLUPS[ROLLUP], honest.slot, compute_deadline_ms(CLOCK, honest.slot),
        honest.block.parent_hash, lied.log, lied.carried,
    )
    return dataclasses.replace(lied, block=result.block)


def _over_the_gas_cap(t: Tx) -> Tx:
    # The pool drops a tx over the cap "however it reached the log": the due tx is censored
    return dataclasses.replace(t, gas_limit=ROLLUPS[ROLLUP].policy.max_public_tx_gas + 1)


def test_a_forged_carried_tx_is_refused(world: World) -> None:
    """A carried tx whose claimed gas is over the pool's cap leaves the pool, so it is never
    included although it is due; the pending root pins only its hash. Members signed this."""
    honest = world.proposals[1]
    first, *rest = honest.carried
    forged = dataclasses.replace(first, tx=_over_the_gas_cap(first.tx))
    lie = _relog(honest, honest.log, [forged, *rest])
    assert first.tx.raw not in lie.block.txs  # the lie leaves it out
    member = fresh_member(world, honest.slot)
    with pytest.raises(Refusal) as refused:
        member.sign_proposal(encode_proposal(lie))
    assert refused.value.code == "invalid_evidence"


def test_a_forged_logged_public_tx_is_refused_without_sampling(world: World) -> None:
    """A public tx in the log with a forged gas limit was checked only if it was in the block
    or in the member's random sample; now every public tx is decoded."""
    honest = world.proposals[0]
    log = list(honest.log)
    i = next(i for i, e in enumerate(log) if isinstance(e.event, PublicTx)
             and e.event.tx.raw in honest.block.txs)
    ptx = log[i].event
    assert isinstance(ptx, PublicTx)
    log[i] = LoggedEvent(log[i].seq, dataclasses.replace(ptx, tx=_over_the_gas_cap(ptx.tx)))
    lie = _relog(honest, log, honest.carried)
    assert ptx.tx.raw not in lie.block.txs
    member = fresh_member(world, honest.slot)
    member.evidence_sample = 0
    with pytest.raises(Refusal) as refused:
        member.sign_proposal(encode_proposal(lie))
    assert refused.value.code == "invalid_evidence"


def test_a_carried_tx_is_decoded_once_per_member(world: World) -> None:
    first, second = world.proposals
    now = [after_close(first.slot)]
    member = fresh_member(world, first.slot, clock_ms=lambda: now[0])
    member.sign_proposal(encode_proposal(first))
    assert member.decoded_txs.misses == sum(isinstance(e.event, PublicTx) for e in first.log)
    before = member.decoded_txs.misses
    now[0] = after_close(second.slot)
    member.sign_proposal(encode_proposal(second))
    # the carried txs arrived in the first slot: only the second slot's arrivals are new
    assert {c.tx.raw for c in second.carried} <= {
        e.event.tx.raw for e in first.log if isinstance(e.event, PublicTx)
    }
    assert member.decoded_txs.misses - before == sum(
        isinstance(e.event, PublicTx) for e in second.log
    )
