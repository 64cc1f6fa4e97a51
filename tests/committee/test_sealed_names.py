"""A proposal's opened bids name their sealed entries instead of repeating their evidence
(proposal version 5, decision 157): the member takes each opened bid's evidence from the entry
it names by its ciphertext hash (the keccak of the ciphertext, re-derived with the entry).

Thinking as the coordinator, who writes the names: it names an entry that is not there, one of
another bid, slot or seq, one entry twice, writes an opened bid inline (the old form), or names
the right entry under an altered bid. Each is refused before the member signs."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from auction import codec
from auction.slots import compute_slot_start_ms
from auction.types import Bid
from committee.errors import MalformedProposal, Refusal
from committee.proposal import (
    FORMAT_VERSION,
    SlotProposal,
    compute_sealed_names,
    decode_proposal,
    encode_proposal,
)
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, SLOT
from tests.committee.test_coordinator import Clock, Harness
from tests.committee.test_sealed_close import honest_proposal

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def harness(dealt: Dealt, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1), {})
    await h.engine.start(run_clock=False)
    yield h
    await h.coordinator.aclose()


def refusal_of_bytes(h: Harness, data: bytes, index: int = 1) -> str | None:
    try:
        h.member(index).member.sign_proposal(data)
    except Refusal as exc:
        return exc.code
    return None


def opened_entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in doc["parts"][0]["log"] if "sealed" in e]


def lie(proposal: SlotProposal, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The honest proposal's wire form with ``change`` applied to its JSON."""
    doc = orjson.loads(encode_proposal(proposal))
    change(doc)
    return orjson.dumps(doc)


async def test_each_ciphertext_travels_once_and_the_member_signs(harness: Harness) -> None:
    proposal, ids = await honest_proposal(harness)
    assert proposal.sealed is not None
    data = encode_proposal(proposal)
    doc = orjson.loads(data)
    assert doc["version"] == FORMAT_VERSION == 5
    # Every opened bid names its entry and carries no evidence of its own
    opened = opened_entries(doc)
    assert {e["opened"]["bid_id"] for e in opened} == set(ids.values())
    assert all("evidence" not in e["opened"] for e in opened)
    # So each signed encrypted call is in the proposal once: in its sealed entry
    for entry in proposal.sealed.entries:
        body = codec.evidence_to_json(entry.event.evidence)["body"]
        assert data.count(orjson.dumps(body)[1:-1]) == 1
    # The member rebuilds the very proposal, evidence included
    assert decode_proposal(data) == proposal
    assert refusal_of_bytes(harness, data) is None


async def test_a_name_of_no_entry_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)

    def absent(doc: dict[str, Any]) -> None:
        opened_entries(doc)[0]["sealed"] = "0x" + hashlib.sha256(b"nothing").hexdigest()

    def not_a_string(doc: dict[str, Any]) -> None:
        opened_entries(doc)[0]["sealed"] = 7

    for change in (absent, not_a_string):
        assert refusal_of_bytes(harness, lie(proposal, change)) == "malformed_proposal"


async def test_a_name_of_another_bids_entry_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)

    def swapped(doc: dict[str, Any]) -> None:
        a, b = opened_entries(doc)[:2]
        a["sealed"], b["sealed"] = b["sealed"], a["sealed"]

    assert refusal_of_bytes(harness, lie(proposal, swapped)) == "malformed_proposal"


async def test_one_entry_named_twice_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)

    def twice(doc: dict[str, Any]) -> None:
        log = doc["parts"][0]["log"]
        first = opened_entries(doc)[0]
        log.insert(log.index(first) + 1, dict(first))

    def same_name(doc: dict[str, Any]) -> None:
        a, b = opened_entries(doc)[:2]
        b["sealed"] = a["sealed"]

    for change in (twice, same_name):
        assert refusal_of_bytes(harness, lie(proposal, change)) == "malformed_proposal"


async def test_a_named_entry_at_another_seq_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)

    def moved(doc: dict[str, Any]) -> None:
        entry = opened_entries(doc)[0]
        ms, _, n = entry["seq"].partition("-")
        entry["seq"] = f"{ms}-{int(n) + 1000}"

    assert refusal_of_bytes(harness, lie(proposal, moved)) == "malformed_proposal"


async def test_an_entry_of_another_slot_is_refused(harness: Harness) -> None:
    """The coordinator adds an entry of another slot to the set and names it: the name now
    resolves, but the set is no longer what the member committed to."""
    proposal, _ = await honest_proposal(harness)
    sealed = proposal.sealed
    assert sealed is not None
    first = sealed.entries[0]
    other = dataclasses.replace(first, event=dataclasses.replace(
        first.event, slot=SLOT + 1, bid_id="0x" + "ab" * 32, ciphertext_hash="0x" + "ef" * 32))
    name = other.event.ciphertext_hash
    grown = dataclasses.replace(proposal, sealed=dataclasses.replace(
        sealed, entries=(*sealed.entries, other)))  # fmt: skip

    def names_it(doc: dict[str, Any]) -> None:
        entry = opened_entries(doc)[0]
        entry["sealed"] = name
        entry["opened"]["bid_id"] = other.event.bid_id
        entry["seq"] = other.seq

    # Named but not opened by the logs' bid (its own entry unnamed: refused before signing)
    assert refusal_of_bytes(harness, lie(grown, names_it)) in (
        "commitment_mismatch", "malformed_proposal", "opening_mismatch")
    # Without a name from the logs, the extra entry alone changes the committed set
    assert refusal_of_bytes(harness, encode_proposal(grown)) == "commitment_mismatch"


async def test_a_right_name_under_an_altered_bid_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)

    def richer(doc: dict[str, Any]) -> None:
        opened = opened_entries(doc)[0]["opened"]
        opened["bid_wei"] = str(int(opened["bid_wei"]) + 1)

    def other_id(doc: dict[str, Any]) -> None:
        opened_entries(doc)[0]["opened"]["bid_id"] = "0x" + "cd" * 32

    assert refusal_of_bytes(harness, lie(proposal, richer)) == "opening_mismatch"
    assert refusal_of_bytes(harness, lie(proposal, other_id)) == "malformed_proposal"


async def test_the_old_inline_form_is_refused(harness: Harness) -> None:
    """An opened bid written with its evidence (version 3's form), under either version."""
    proposal, _ = await honest_proposal(harness)
    names = compute_sealed_names(proposal.sealed)
    inline = {e.event.bid_id: e for e in proposal.parts[0].log if isinstance(e.event, Bid)}

    def old_form(doc: dict[str, Any]) -> None:
        log = doc["parts"][0]["log"]
        for i, entry in enumerate(log):
            if "sealed" in entry:
                ev = inline[entry["opened"]["bid_id"]].event
                log[i] = {"seq": entry["seq"], "event": codec.event_to_json(ev)}

    def evidence_beside_name(doc: dict[str, Any]) -> None:
        entry = opened_entries(doc)[0]
        ev = inline[entry["opened"]["bid_id"]].event
        entry["opened"]["evidence"] = codec.evidence_to_json(ev.evidence)

    assert set(names) == {e.event.bid_id for e in proposal.sealed.entries}  # type: ignore[union-attr]
    for change in (old_form, evidence_beside_name):
        assert refusal_of_bytes(harness, lie(proposal, change)) == "malformed_proposal"
    for version in (3, 4):
        assert refusal_of_bytes(harness, lie(proposal, lambda d, v=version: d.update(
            version=v))) == "malformed_proposal"  # fmt: skip


async def test_a_set_with_one_ciphertext_twice_is_refused(harness: Harness) -> None:
    """Two entries with one name: the decoder cannot tell which is named (and no member
    commits to such a set)."""
    proposal, _ = await honest_proposal(harness)
    sealed = proposal.sealed
    assert sealed is not None
    a, b = sealed.entries[:2]
    twin = dataclasses.replace(b, event=dataclasses.replace(
        b.event, ciphertext_hash=a.event.ciphertext_hash))  # fmt: skip
    doubled = dataclasses.replace(proposal, sealed=dataclasses.replace(
        sealed, entries=(a, twin, *sealed.entries[2:])))  # fmt: skip
    assert refusal_of_bytes(harness, encode_proposal(doubled)) == "malformed_proposal"


async def test_a_truncated_proposal_is_refused(harness: Harness) -> None:
    proposal, _ = await honest_proposal(harness)
    data = encode_proposal(proposal)
    assert refusal_of_bytes(harness, data[: len(data) - 200]) == "malformed_proposal"

    def no_sealed(doc: dict[str, Any]) -> None:
        del doc["sealed"]  # the names resolve to nothing

    assert refusal_of_bytes(harness, lie(proposal, no_sealed)) == "malformed_proposal"


def test_a_cross_rollup_opened_bundle_names_its_entry_in_bundles() -> None:
    """A sealed bid opened to a bundle spanning two rollups: its one entry in ``bundles`` names
    the sealed entry, each log holds a reference, and the member rebuilds every copy with the
    entry's evidence; naming another entry there is refused."""
    from tests.committee.test_sealed_sampling import cross_rollup_proposal

    _, proposal, cross = cross_rollup_proposal()
    data = encode_proposal(proposal)
    doc = orjson.loads(data)
    [bundle] = doc["bundles"]
    assert bundle["bid_id"] == cross and "evidence" not in bundle and "sealed" in bundle
    assert decode_proposal(data) == proposal
    sealed = proposal.sealed
    assert sealed is not None
    other = next(e for e in sealed.entries if e.event.bid_id != cross)
    bundle["sealed"] = other.event.ciphertext_hash
    with pytest.raises(MalformedProposal):
        decode_proposal(orjson.dumps(doc))
    del bundle["sealed"]
    with pytest.raises(MalformedProposal):  # neither a name nor evidence
        decode_proposal(orjson.dumps(doc))
