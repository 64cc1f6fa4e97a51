"""A member with its durable slashing protection (SQLite in a temp dir), without a transport."""

from __future__ import annotations

from pathlib import Path

import pytest

from committee import threshold
from committee.errors import DoubleSign, SlotExpired
from committee.member import Member
from committee.proposal import Proposal
from committee.protection import ProtectionStore
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    SLOT,
    after_close,
    certify,
    config_of,
    encode_part,
    key,
    log_of,
    proposal_of,
    signed_bid,
    signing_root_of,
)
from tests.committee.slots import ManualClock as Clock


def member_of(dealt: Dealt, path: Path, index: int = 1, *, fault: str | None = None,
              clock: Clock | None = None) -> Member:
    return Member(
        dealt.shares[index - 1],
        config_of(dealt.committee, index),
        ProtectionStore(path / f"member-{index}.sqlite3"),
        fault=fault,
        clock_ms=clock or Clock(after_close(SLOT)),
    )


@pytest.fixture(scope="module")
def bids() -> list:
    return [signed_bid(key(i)) for i in range(3)]


@pytest.fixture(scope="module")
def proposal(dealt: Dealt, bids: list) -> Proposal:
    return proposal_of(dealt.committee, log_of(bids))


@pytest.fixture(scope="module")
def other_block(dealt: Dealt, bids: list) -> Proposal:
    """A second block for the same slot that is valid on its own (one more bid in its log)."""
    return proposal_of(dealt.committee, log_of([*bids, signed_bid(key(5))]))


def root_of(dealt: Dealt, p: Proposal) -> bytes:
    return signing_root_of(dealt.committee, p.block)


def test_partial_verifies_under_the_members_key(dealt, proposal, tmp_path) -> None:
    reply = member_of(dealt, tmp_path, 3).sign_proposal(encode_part(proposal))
    assert reply.index == 3 and not reply.repeated
    assert reply.signing_root == root_of(dealt, proposal)
    assert threshold.verify_partial(
        dealt.committee.member_public_key(3), reply.signing_root, reply.partial
    )
    assert set(reply.timings_ms) == {"decode", "checks", "evidence", "repack", "sign"}


def test_same_block_again_gets_the_same_partial(dealt, proposal, tmp_path) -> None:
    member = member_of(dealt, tmp_path)
    first = member.sign_proposal(encode_part(proposal))
    again = member.sign_proposal(encode_part(proposal))
    assert again.repeated and again.partial == first.partial


def test_second_block_for_a_signed_slot_is_refused(dealt, proposal, other_block, tmp_path):
    member = member_of(dealt, tmp_path)
    first = member.sign_proposal(encode_part(proposal))
    with pytest.raises(DoubleSign) as excinfo:
        member.sign_proposal(encode_part(other_block))
    assert excinfo.value.data["signed_slot_root"] == "0x" + first.slot_root.hex()


def test_restarted_member_remembers_what_it_signed(dealt, proposal, other_block, tmp_path):
    member = member_of(dealt, tmp_path)
    first = member.sign_proposal(encode_part(proposal))
    member.protection.close()
    # A new process on the same file: same answer for the same block, refusal for another.
    restarted = member_of(dealt, tmp_path)
    assert restarted.sign_proposal(encode_part(proposal)).partial == first.partial
    with pytest.raises(DoubleSign):
        restarted.sign_proposal(encode_part(other_block))


def test_record_is_committed_before_the_partial_is_returned(dealt, proposal, tmp_path):
    member = member_of(dealt, tmp_path)
    reply = member.sign_proposal(encode_part(proposal))
    # A second connection (another process would see the same) finds the committed record.
    reader = ProtectionStore(tmp_path / "member-1.sqlite3")
    record = reader.get_signed(dealt.committee.committee_id, SLOT)
    assert record is not None and record.partial == reply.partial
    assert reader.count_signed(dealt.committee.committee_id) == 1


def test_refused_proposal_leaves_no_record(dealt, proposal, tmp_path) -> None:
    late = Clock(after_close(SLOT) + 10_000)
    member = member_of(dealt, tmp_path, clock=late)
    with pytest.raises(SlotExpired):
        member.sign_proposal(encode_part(proposal))
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None


def test_newer_parent_is_adopted_and_the_signed_block_becomes_the_head(
    dealt, proposal, tmp_path
) -> None:
    cert = certify(dealt.committee, dealt.group_secret, proposal.block)
    nxt = proposal_of(dealt.committee, log_of([signed_bid(key(7), SLOT + 1)], SLOT + 1),
                      SLOT + 1, parent=cert)
    member = member_of(dealt, tmp_path, clock=Clock(after_close(SLOT + 1)))
    member.sign_proposal(encode_part(nxt))
    head = member.protection.get_head(dealt.committee.committee_id, proposal.rollup)
    assert head is not None and (head.slot, head.block_hash) == (SLOT + 1, nxt.block.block_hash)


@pytest.mark.parametrize("fault", ["wrong_share", "garbage", "other_block"])
def test_lying_member_answers_an_invalid_partial(dealt, proposal, tmp_path, fault) -> None:
    reply = member_of(dealt, tmp_path, 2, fault=fault).sign_proposal(encode_part(proposal))
    assert reply.signing_root == root_of(dealt, proposal)  # it claims the proposed slot
    assert not threshold.verify_partial(
        dealt.committee.member_public_key(2), root_of(dealt, proposal), reply.partial
    )


def test_equivocating_member_signs_two_blocks(dealt, proposal, other_block, tmp_path) -> None:
    member = member_of(dealt, tmp_path, 4, fault="equivocate")
    a = member.sign_proposal(encode_part(proposal))
    b = member.sign_proposal(encode_part(other_block))
    key4 = dealt.committee.member_public_key(4)
    assert threshold.verify_partial(key4, root_of(dealt, proposal), a.partial)
    assert threshold.verify_partial(key4, root_of(dealt, other_block), b.partial)


def test_share_of_another_member_is_rejected(dealt, tmp_path) -> None:
    with pytest.raises(ValueError):
        Member(dealt.shares[0], config_of(dealt.committee, 2),
               ProtectionStore(tmp_path / "x.sqlite3"))


def test_a_protection_file_from_before_the_lock_locks_the_member_to_what_it_signed(
    dealt, proposal, tmp_path
) -> None:
    path = tmp_path / "member-1.sqlite3"
    store = ProtectionStore(path)
    cid = dealt.committee.committee_id
    # What an older member wrote: a signed record, and no head (heads were only adopted blocks)
    store._db.execute(
        "INSERT INTO signed VALUES (?, ?, ?, ?, ?, ?, ?)",
        (cid, proposal.rollup, SLOT, proposal.block.block_hash, b"r", b"p", 1),
    )
    store.close()
    head = ProtectionStore(path).get_head(cid, proposal.rollup)
    assert head is not None and (head.slot, head.block_hash) == (SLOT, proposal.block.block_hash)
