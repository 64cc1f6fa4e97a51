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

from auction.types import Bid, Cancel, PublicTx, Tx
from committee.errors import MalformedProposal, Refusal
from committee.proposal import Proposal, decode_proposal, encode_proposal, parse_proposal
from tests.fuzz.budget import fuzz, timeout_s
from tests.fuzz.committee_world import (
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


def decode_or_refuse(data: bytes) -> Proposal | None:
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
    assert dataclasses.replace(p, carried=(), log=()) == parsed.head
    check_types(p)
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
    signed = decode_proposal(data)
    assert reply.block_hash == signed.block.block_hash
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


EDIT_PLACES: list[tuple[Any, ...]] = [
    (), ("block",), ("parent",), ("carried",), ("log",), ("log", 0, "event"),
    ("log", 0, "event", "txs", 0), ("log", 0, "event", "evidence"), ("log", 3, "event"),
    ("log", 4, "event", "tx"), ("carried", 0, "tx"), ("block", "bundles", 0),
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
    doc = orjson.loads(encode_proposal(p))
    change(doc)
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


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_regressions_are_malformed(world: World, name: str) -> None:
    data = _edit(world.proposals[1], REGRESSIONS[name])
    assert decode_or_refuse(data) is None
    with pytest.raises(MalformedProposal):
        fresh_member(world, world.proposals[1].slot).sign_proposal(data)


def test_honest_proposals_are_signed(world: World) -> None:
    for p in world.proposals:
        assert fresh_member(world, p.slot).sign_proposal(encode_proposal(p)).block_hash == (
            p.block.block_hash
        )
