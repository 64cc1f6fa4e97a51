"""What a member keeps for accountability and serves on its signer: the event list of every
block it signed (so censorship is checkable without the engine), and the operator-equivocation
evidence it built; bounded to its newest slots."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from auction.encoding import compute_bid_set_root
from auction.receipts import compute_operator_key
from committee import threshold
from committee.endorsement import sign_endorsement, wrap_proposal
from committee.errors import DoubleSign
from committee.keeping import MemberKeeping, SignedLog
from committee.member import Member
from committee.proposal import Proposal
from committee.protection import ProtectionStore
from committee.signer import create_signer_app
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    ROLLUP,
    SLOT,
    after_close,
    config_of,
    encode_part,
    key,
    log_of,
    proposal_of,
    raw_tx,
    signed_bid,
    signed_cancel,
    slot_of,
)

OPERATOR = compute_operator_key(bytes([41]) * 32)


@pytest.fixture(scope="module")
def dealt() -> Dealt:
    committee, shares = threshold.deal(4, 3, bytes([42]) * 32)
    return Dealt(committee, shares, 0)


@pytest.fixture(scope="module")
def proposal(dealt: Dealt) -> Proposal:
    events = [signed_bid(key(70), txs=[raw_tx(key(70), nonce=8_200)]),
              signed_bid(key(71), txs=[raw_tx(key(71), nonce=8_201)]),
              signed_cancel(key(70), "22222222-2222-4222-8222-222222222222")]
    return proposal_of(dealt.committee, log_of(events))


def endorsed(p: Proposal) -> bytes:
    e = sign_endorsement(p.committee_id, p.slot, slot_of(p).compute_slot_root(), OPERATOR)
    return wrap_proposal(encode_part(p), e)


def member_of(dealt: Dealt, tmp: Path) -> Member:
    return Member(dealt.shares[0], config_of(dealt.committee, 1),
                  ProtectionStore(tmp / "m.sqlite3"), clock_ms=lambda: after_close(SLOT),
                  operator=OPERATOR.address)


def test_a_member_serves_the_event_list_of_what_it_signed(dealt, proposal, tmp_path) -> None:
    member = member_of(dealt, tmp_path)
    with TestClient(create_signer_app(member)) as http:
        missing = http.get(f"/v1/blocks/{ROLLUP}/{SLOT}/events")
        assert missing.status_code == 404 and missing.json()["code"] == "block_not_found"
        member.sign_proposal(endorsed(proposal))
        doc = http.get(f"/v1/blocks/{ROLLUP}/{SLOT}/events").json()
        # The ids in log order: their root is the signed block's bid-set root
        assert len(doc["event_ids"]) == 3 and doc["member"] == 1
        assert compute_bid_set_root(doc["event_ids"]) == proposal.block.bid_set_root
        assert doc["block_hash"] == proposal.block.block_hash
        assert http.get(f"/v1/blocks/{ROLLUP}/{SLOT + 1}/events").status_code == 404
        assert http.get(f"/v1/blocks/{ROLLUP}/-1/events").status_code in (400, 422)
        assert http.get("/v1/evidence").json()["evidence"] == []


def test_a_refused_proposal_leaves_no_event_list(dealt, proposal, tmp_path) -> None:
    member = member_of(dealt, tmp_path)
    member.sign_proposal(endorsed(proposal))
    extra = signed_bid(key(72), txs=[raw_tx(key(72), nonce=8_202)])
    other = proposal_of(dealt.committee, log_of([extra]))
    with pytest.raises(DoubleSign):
        member.sign_proposal(endorsed(other))
    kept = member.keeping.get_log(ROLLUP, SLOT)
    assert kept is not None and kept.block_hash == proposal.block.block_hash
    # ...but the second endorsement made evidence, served on the signer
    with TestClient(create_signer_app(member)) as http:
        [doc] = http.get("/v1/evidence").json()["evidence"]
    assert doc["kind"] == "operator_equivocation"


def test_keeping_is_bounded_to_the_newest_slots() -> None:
    keeping = MemberKeeping(kept_slots=3)
    for slot in range(10):
        keeping.keep_log(SignedLog(ROLLUP, slot, "0x", "0x", ()))
    assert [s for s in range(10) if keeping.get_log(ROLLUP, s)] == [7, 8, 9]
    with pytest.raises(ValueError):
        MemberKeeping(kept_slots=0)
