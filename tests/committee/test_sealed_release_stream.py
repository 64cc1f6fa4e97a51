"""A key-release request that names the streamed prefix and carries only the tail (release
version 2, decision 159), against a lying coordinator: a prefix the member does not hold, a
digest of another prefix, a truncated or overlapping tail, a tail out of order, a rollup named
twice, a replayed request. The member commits to the same set, by the same digest, as from the
whole request (version 1), and a repeated release in either form gets the same answer."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from auction.slots import compute_deadline_ms
from auction.types import LoggedSealedBid
from committee.errors import (
    AlreadyCommittedOtherRoot,
    CommitmentMismatch,
    MalformedReleaseRequest,
    StreamGap,
    StreamMismatch,
)
from committee.feeder import Feeder
from committee.sealedset import compute_sealed_entry_bytes, compute_slot_ciphertext_root
from committee.sealing import (
    RELEASE_STREAMED_VERSION,
    ReleaseRequest,
    compute_streamed_tail,
    decode_release_request,
    encode_release_request,
)
from committee.stream import compute_digests
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT
from tests.committee.test_sealed_stream import (  # noqa: F401 (fixtures)
    entries,
    member_of,
    rederived,
    request_of,
    streamed,
)
from tests.committee.test_stream import Clock, open_time


def streamed_request(dealt: Dealt, entries: Any, count: int, *, digest: bytes | None = None,  # noqa: F811
                     tail: Any = None, slot: int = SLOT) -> bytes:  # fmt: skip
    """The version-2 request for ``entries`` naming their first ``count`` as streamed."""
    cid = dealt.committee.committee_id
    root = compute_slot_ciphertext_root(cid, slot, entries)
    raws = [compute_sealed_entry_bytes(e) for e in entries]
    name = digest if digest is not None else compute_digests(raws)[count]
    rest = tuple(entries[count:]) if tail is None else tuple(tail)
    return encode_release_request(ReleaseRequest(cid, slot, root, rest,
                                                 ((ROLLUP, count, name),)))  # fmt: skip


def test_a_streamed_request_commits_to_the_whole_set(dealt, entries, tmp_path, rederived):  # noqa: ANN001, F811
    member = streamed(dealt, tmp_path, entries[:4])
    rederived.clear()
    body = streamed_request(dealt, entries, 4)
    assert decode_release_request(body).streamed is not None
    assert len(body) < len(request_of(dealt, entries)) / 3
    release = member.release_key_share(body)
    assert not release.repeated and rederived == [entries[4].event.bid_id]  # the tail only
    # The same set as a whole request: the same commitment, answered as a repeat
    again = member.release_key_share(request_of(dealt, entries))
    assert again.repeated and again.commitment_partial == release.commitment_partial
    # And the streamed request replayed: the same answer again
    assert member.release_key_share(body).repeated


def test_a_prefix_the_member_does_not_hold_is_a_gap(dealt, entries, tmp_path):  # noqa: ANN001, F811
    member = streamed(dealt, tmp_path, entries[:2])
    with pytest.raises(StreamGap):
        member.release_key_share(streamed_request(dealt, entries, 3))
    # A member with no stream of the slot at all
    fresh = member_of(dealt, tmp_path / "fresh", Clock(open_time()))
    fresh._clock_ms = member._clock_ms
    with pytest.raises(StreamGap):
        fresh.release_key_share(streamed_request(dealt, entries, 1))
    # Nothing was committed: the whole request still goes through
    assert not member.release_key_share(request_of(dealt, entries)).repeated


def test_a_digest_of_another_prefix_is_a_mismatch(dealt, entries, tmp_path):  # noqa: ANN001, F811
    member = streamed(dealt, tmp_path, entries[:4])
    other = compute_digests([compute_sealed_entry_bytes(e) for e in entries])[3]
    with pytest.raises(StreamMismatch):
        member.release_key_share(streamed_request(dealt, entries, 4, digest=other))


def test_a_truncated_or_overlapping_tail_is_refused(dealt, entries, tmp_path):  # noqa: ANN001, F811
    member = streamed(dealt, tmp_path, entries[:3])
    # The tail's last entry left out under the whole set's root: not that set
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(streamed_request(dealt, entries, 3, tail=entries[3:4]))
    # The prefix's last entry sent again in the tail: a call twice
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(streamed_request(dealt, entries, 3, tail=entries[2:]))
    # The tail out of log order
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(streamed_request(dealt, entries, 3,
                                                  tail=(entries[4], entries[3])))  # fmt: skip
    # The honest request still commits (nothing was recorded by the refusals)
    assert not member.release_key_share(streamed_request(dealt, entries, 3)).repeated


def test_a_replayed_request_of_another_set_or_slot_is_refused(dealt, entries, tmp_path):  # noqa: ANN001, F811
    member = streamed(dealt, tmp_path, entries[:3])
    member.release_key_share(streamed_request(dealt, entries[:4], 3))
    # Replayed later with the slot's last call added: another root for the slot
    with pytest.raises(AlreadyCommittedOtherRoot):
        member.release_key_share(streamed_request(dealt, entries, 3))
    # Replayed for the next slot, after its deadline: this member holds no stream of it
    member._clock_ms.ms = compute_deadline_ms(CLOCK, SLOT + 1)
    with pytest.raises(StreamGap):
        member.release_key_share(streamed_request(dealt, entries[:4], 3, slot=SLOT + 1))


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(streamed=[{"rollup": ROLLUP, "count": 1, "digest": "0x" + "00" * 32}] * 2),
    lambda d: d.update(version=1),  # a version-1 request naming a prefix
    lambda d: d.pop("streamed"),  # a version-2 request naming none
    lambda d: d["streamed"][0].update(count=-1),
    lambda d: d["streamed"][0].update(extra=1),
], ids=["rollup_twice", "v1_with_prefix", "v2_without", "negative", "extra_key"])
def test_malformed_streamed_requests_are_refused(dealt, entries, tmp_path, mutate):  # noqa: ANN001, F811
    member = streamed(dealt, tmp_path, entries[:3])
    doc = orjson.loads(streamed_request(dealt, entries, 3))
    assert doc["version"] == RELEASE_STREAMED_VERSION
    mutate(doc)
    with pytest.raises(MalformedReleaseRequest):
        member.release_key_share(orjson.dumps(doc))


def test_the_feeder_names_only_what_a_member_acknowledged_and_the_set_agrees_with(
    dealt: Dealt, entries: tuple[LoggedSealedBid, ...]  # noqa: F811
) -> None:
    """Per member: version 2 naming min(acknowledged, agreeing) calls, version 1 when none; a
    call the set lost (a failover, decision 144) cuts the agreeing prefix there."""
    cid = dealt.committee.committee_id
    feeder = Feeder(cid, [ROLLUP], [])
    feeder.observe(SLOT, {ROLLUP: []}, {ROLLUP: list(entries)})
    feeder.sealed_acked[(1, SLOT, ROLLUP)] = 4
    feeder.sealed_acked[(2, SLOT, ROLLUP)] = 2
    lost = (*entries[:1], *entries[2:])  # the set lost the second call
    for got, acked in ((entries, {1: 4, 2: 2, 3: 0}), (lost, {1: 1, 2: 1, 3: 0})):
        root = compute_slot_ciphertext_root(cid, SLOT, got)
        request = ReleaseRequest(cid, SLOT, root, tuple(got))
        bodies = feeder.release_bodies(request, [1, 2, 3])
        for index, count in acked.items():
            decoded = decode_release_request(bodies[index])
            if count == 0:
                assert decoded.streamed is None and decoded.entries == tuple(got)
                continue
            assert decoded.streamed is not None and decoded.streamed[0][:2] == (ROLLUP, count)
            assert decoded.entries == compute_streamed_tail(got, {ROLLUP: count})


def test_the_streamed_tail_keeps_every_other_rollups_calls(entries):  # noqa: ANN001, F811
    other = tuple(dataclasses.replace(e, event=dataclasses.replace(e.event, rollup=ROLLUP + 1))
                  for e in entries[:2])  # fmt: skip
    whole = (*entries, *other)
    assert compute_streamed_tail(whole, {ROLLUP: 3}) == (*entries[3:], *other)
    assert compute_streamed_tail(whole, {ROLLUP + 1: 1}) == (*entries, other[1])
