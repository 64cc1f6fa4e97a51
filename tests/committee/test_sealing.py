"""A member's commitment to a slot's ciphertext set and the release of its key share
(committee/sealing.py): the operator must not get a key share early, for another set, for
another slot or committee, or without the member's durable commitment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from auction.slots import compute_deadline_ms
from committee import bls, encryption, threshold
from committee.checks import compute_signing_deadline_ms
from committee.errors import (
    AlreadyCommittedOtherRoot,
    CommitmentMismatch,
    DeadlineNotPassed,
    KeyReleaseClosed,
    MalformedReleaseRequest,
    NotMember,
)
from committee.member import Member
from committee.protection import ProtectionStore
from committee.sealedset import compute_commitment_signing_root, compute_slot_ciphertext_root
from committee.sealing import ReleaseRequest, encode_release_request
from committee.signing import compute_slot_signing_root
from node import errors as wire_errors
from tests.committee.conftest import Dealt
from tests.committee.sealed_slots import bundle_body, sealed_set
from tests.committee.slots import CLOCK, SLOT, WINDOW_MS, config_of, key
from tests.committee.slots import ManualClock as Clock

DEADLINE = compute_deadline_ms(CLOCK, SLOT)


def member_of(dealt: Dealt, path: Path, index: int = 1, *, at_ms: int = DEADLINE,
              fault: str | None = None) -> Member:
    return Member(
        dealt.shares[index - 1],
        config_of(dealt.committee, index),
        ProtectionStore(path / f"member-{index}.sqlite3"),
        clock_ms=Clock(at_ms),
        fault=fault,
    )


@pytest.fixture(scope="module")
def entries(dealt: Dealt) -> tuple:
    alice, bob = key(1), key(2)
    return sealed_set(dealt.committee, (alice, bundle_body(alice, bid_wei=10**15)),
                      (alice, bundle_body(alice, bid_wei=2 * 10**15)),
                      (bob, bundle_body(bob, bid_wei=3 * 10**15)))


def request_of(dealt: Dealt, entries: tuple, *, slot: int = SLOT, root: bytes | None = None,
               committee_id: bytes | None = None) -> bytes:
    cid = committee_id or dealt.committee.committee_id
    root = root or compute_slot_ciphertext_root(cid, slot, entries)
    return encode_release_request(ReleaseRequest(cid, slot, root, tuple(entries)))


def test_the_share_released_after_commitment_opens_the_slot(dealt: Dealt, tmp_path: Path,
                                                             entries: tuple) -> None:
    releases = [member_of(dealt, tmp_path, i).release_key_share(request_of(dealt, entries))
                for i in range(1, 8)]
    committee = dealt.committee
    root = compute_slot_ciphertext_root(committee.committee_id, SLOT, entries)
    for r in releases:
        assert not r.repeated and r.ciphertext_root == root
        assert encryption.verify_key_share(committee, r.index, SLOT, r.key_share)
    key_ = encryption.combine_key_shares(committee, SLOT, {r.index: r.key_share for r in releases})
    assert encryption.verify_slot_key(committee, SLOT, key_)
    # t commitment partials make the committee's certificate of the set
    message = compute_commitment_signing_root(committee.committee_id, SLOT, root)
    signature = threshold.combine({r.index: r.commitment_partial for r in releases}, 7, 10)
    assert bls.verify(committee.group_public_key, message, signature)


def test_no_share_before_the_deadline_by_the_members_own_clock(dealt: Dealt, tmp_path: Path,
                                                               entries: tuple) -> None:
    store = tmp_path / "member-1.sqlite3"
    early = member_of(dealt, tmp_path, at_ms=DEADLINE - 1)
    with pytest.raises(DeadlineNotPassed) as refused:
        early.release_key_share(request_of(dealt, entries))
    assert wire_errors.http_status(refused.value) == 425
    # Nothing was committed: the member is free to commit after the deadline
    assert ProtectionStore(store).get_commitment(dealt.committee.committee_id, SLOT) is None
    on_time = member_of(dealt, tmp_path, at_ms=DEADLINE)
    assert on_time.release_key_share(request_of(dealt, entries)).key_share


def test_no_share_after_the_signing_window(dealt: Dealt, tmp_path: Path, entries: tuple) -> None:
    late = compute_signing_deadline_ms(CLOCK, SLOT, WINDOW_MS) + 1
    with pytest.raises(KeyReleaseClosed):
        member_of(dealt, tmp_path, at_ms=late).release_key_share(request_of(dealt, entries))


def test_one_commitment_per_slot_never_two_roots(dealt: Dealt, tmp_path: Path,
                                                entries: tuple) -> None:
    member = member_of(dealt, tmp_path)
    first = member.release_key_share(request_of(dealt, entries))
    # The same set again: the same answer, marked repeated
    again = member.release_key_share(request_of(dealt, entries))
    assert again.repeated and again.key_share == first.key_share
    # A smaller set (a bid dropped after the commitment): refused, even after a restart
    restarted = member_of(dealt, tmp_path, at_ms=DEADLINE + 500)
    with pytest.raises(AlreadyCommittedOtherRoot):
        restarted.release_key_share(request_of(dealt, entries[:-1]))
    # A set with one bid swapped for another searcher's: refused
    carol = key(3)
    swapped = (*entries[:-1], *sealed_set(dealt.committee, (carol, bundle_body(carol))))
    with pytest.raises(AlreadyCommittedOtherRoot):
        restarted.release_key_share(request_of(dealt, swapped))


def test_the_same_root_with_other_arrival_times_is_refused(dealt: Dealt, tmp_path: Path,
                                                           entries: tuple) -> None:
    member = member_of(dealt, tmp_path)
    member.release_key_share(request_of(dealt, entries))
    later = dataclasses.replace(entries[0], seq="999999999-0")
    moved = (later, *entries[1:])
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, moved))


def test_a_root_that_is_not_the_sets_root_is_refused(dealt: Dealt, tmp_path: Path,
                                                     entries: tuple) -> None:
    member = member_of(dealt, tmp_path)
    other = compute_slot_ciphertext_root(dealt.committee.committee_id, SLOT, entries[:1])
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, entries, root=other))
    # Nothing committed: the true set still gets its share
    assert member.release_key_share(request_of(dealt, entries)).key_share


def test_a_forged_sealed_bid_is_refused(dealt: Dealt, tmp_path: Path, entries: tuple) -> None:
    member = member_of(dealt, tmp_path)
    # The operator re-signs a searcher's bid under its own name (another searcher)
    forged_event = dataclasses.replace(entries[0].event, searcher="0x" + "11" * 20)
    forged = (dataclasses.replace(entries[0], event=forged_event), *entries[1:])
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, forged))
    # A bid logged as arriving after the deadline
    late_event = dataclasses.replace(entries[0].event, received_ms=DEADLINE + 1)
    late = (dataclasses.replace(entries[0], event=late_event), *entries[1:])
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, late))


def test_one_encapsulation_per_searcher_and_no_replays(dealt: Dealt, tmp_path: Path,
                                                       entries: tuple) -> None:
    member = member_of(dealt, tmp_path)
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, (*entries, entries[0])))
    alice = key(1)
    second = sealed_set(dealt.committee, (alice, bundle_body(alice)))  # a new encapsulation
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, (*entries, *second)))


def test_a_request_for_another_slot_or_committee_gets_nothing(dealt: Dealt, tmp_path: Path,
                                                              entries: tuple) -> None:
    member = member_of(dealt, tmp_path, at_ms=compute_deadline_ms(CLOCK, SLOT + 1))
    # The request replayed for the next slot: its sealed bids are not that slot's
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, entries, slot=SLOT + 1))
    with pytest.raises(NotMember):
        member.release_key_share(request_of(dealt, entries, committee_id=b"\x07" * 32))
    # The answer for this slot opens this slot only, and is no block partial
    release = member.release_key_share(request_of(dealt, entries))
    committee = dealt.committee
    assert not encryption.verify_key_share(committee, 1, SLOT + 1, release.key_share)
    root = release.ciphertext_root
    block_root = compute_slot_signing_root(committee.committee_id, SLOT, root)
    public = committee.member_public_key(1)
    assert not threshold.verify_partial(public, block_root, release.commitment_partial)
    assert threshold.verify_partial(
        public, compute_commitment_signing_root(committee.committee_id, SLOT, root),
        release.commitment_partial)


def test_a_slot_without_sealed_bids_commits_to_the_empty_set(dealt: Dealt,
                                                             tmp_path: Path) -> None:
    release = member_of(dealt, tmp_path).release_key_share(request_of(dealt, ()))
    assert release.ciphertext_root == compute_slot_ciphertext_root(
        dealt.committee.committee_id, SLOT, ())


@pytest.mark.parametrize("mutate", [
    lambda d: d | {"kind": "blockspace-proposal"},
    lambda d: d | {"version": 2},
    lambda d: d | {"slot": True},
    lambda d: d | {"extra": 1},
    lambda d: d | {"sealed": [{"seq": "1-1", "event": {"kind": "sealed_bid"}}]},
    lambda d: d | {"ciphertext_root": "0x12"},
])
def test_malformed_requests_are_refused(dealt: Dealt, tmp_path: Path, entries: tuple,
                                        mutate) -> None:  # noqa: ANN001
    doc = orjson.loads(request_of(dealt, entries))
    with pytest.raises(MalformedReleaseRequest):
        member_of(dealt, tmp_path).release_key_share(orjson.dumps(mutate(doc)))
    with pytest.raises(MalformedReleaseRequest):
        member_of(dealt, tmp_path).release_key_share(b"\xff not json")
