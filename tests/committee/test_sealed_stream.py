"""Streamed sealed calls against a lying coordinator (committee/stream.py, committee/sealing.py):
a member re-derives each sealed call once as it streams in, and at the key release re-derives
only what is not byte for byte an entry it checked. Whatever the coordinator streamed, the
member commits only to a set every entry of which it checked, never before the deadline by its
own clock, once per slot. One real member per test (real ciphertexts, real signed calls,
SQLite protection)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.searcher import encrypted_bundle_params
from auction.slots import compute_deadline_ms
from auction.types import Evidence, LoggedSealedBid
from committee import encryption, reopening
from committee.errors import (
    AlreadyCommittedOtherRoot,
    CommitmentMismatch,
    DeadlineNotPassed,
    InvalidEvidence,
    MalformedProposal,
    NotMember,
    SlotExpired,
    StreamGap,
)
from committee.member import Member
from committee.protection import ProtectionStore
from committee.sealedset import (
    ENTRIES_DIGEST_TAG,
    compute_entries_digest,
    compute_sealed_entry_bytes,
    compute_sealed_order,
    compute_slot_ciphertext_root,
    sealed_entry_to_json,
)
from committee.sealing import ReleaseRequest, encode_release_request
from committee.stream import compute_digests, decode_stream_batch, encode_stream_batch
from tests.committee.conftest import Dealt
from tests.committee.sealed_slots import bundle_body, encryptor, sealed_entry
from tests.committee.slots import CLOCK, ROLLUP, SLOT, after_close, config_of, key
from tests.committee.test_stream import Clock, open_time

DEADLINE = compute_deadline_ms(CLOCK, SLOT)




@pytest.fixture(scope="module")
def entries(dealt: Dealt) -> tuple[LoggedSealedBid, ...]:
    """Five sealed calls of three searchers (Alice's three under one encapsulation), in log
    order; and, at the end, one more of Alice's under the same encapsulation."""
    alice, bob, carol = key(1), key(2), key(3)
    enc_a = encryptor(dealt.committee, alice)
    made = [
        sealed_entry(dealt.committee, alice, enc_a.encrypt(bundle_body(alice, bid_wei=10**15))),
        sealed_entry(dealt.committee, bob, encryptor(dealt.committee, bob).encrypt(
            bundle_body(bob, bid_wei=2 * 10**15))),
        sealed_entry(dealt.committee, alice, enc_a.encrypt(bundle_body(alice, bid_wei=3 * 10**15))),
        sealed_entry(dealt.committee, carol, encryptor(dealt.committee, carol).encrypt(
            bundle_body(carol, bid_wei=4 * 10**15))),
        sealed_entry(dealt.committee, alice, enc_a.encrypt(bundle_body(alice, bid_wei=5 * 10**15))),
    ]  # fmt: skip
    assert list(compute_sealed_order(made)) == made
    return tuple(made)


def member_of(dealt: Dealt, path: Path, clock: Clock, index: int = 1) -> Member:
    path.mkdir(parents=True, exist_ok=True)
    return Member(dealt.shares[index - 1], config_of(dealt.committee, index),
                  ProtectionStore(path / f"member-{index}.sqlite3"), clock_ms=clock)  # fmt: skip


def sealed_batch(dealt: Dealt, entries: Any, start: int = 0, *, slot: int = SLOT,
                 rollup: int = ROLLUP, committee_id: bytes | None = None) -> bytes:
    cid = committee_id if committee_id is not None else dealt.committee.committee_id
    return encode_stream_batch(cid, slot, rollup, start,
                               [compute_sealed_entry_bytes(e) for e in entries], sealed=True)


def request_of(dealt: Dealt, entries: Any, *, slot: int = SLOT) -> bytes:
    cid = dealt.committee.committee_id
    root = compute_slot_ciphertext_root(cid, slot, entries)
    return encode_release_request(ReleaseRequest(cid, slot, root, tuple(entries)))


@pytest.fixture
def rederived(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The bid ids the key release re-derives from their signed calls (in order)."""
    seen: list[str] = []
    real = reopening.check_sealed_entry

    def spy(config: Any, slot: int, entry: LoggedSealedBid) -> None:
        seen.append(entry.event.bid_id)
        real(config, slot, entry)

    monkeypatch.setattr(reopening, "check_sealed_entry", spy)
    yield seen


def streamed(dealt: Dealt, tmp_path: Path, entries: Any, clock: Clock | None = None) -> Member:
    """A member that checked ``entries`` as they streamed in (two batches), its clock then
    moved past the deadline."""
    clock = clock or Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    half = len(entries) // 2
    ack = member.accept_stream(sealed_batch(dealt, entries[:half]))
    assert ack["log"] == "sealed" and ack["count"] == half
    ack = member.accept_stream(sealed_batch(dealt, entries[half:], half))
    raws = [compute_sealed_entry_bytes(e) for e in entries]
    assert ack["count"] == len(entries)
    assert ack["digest"] == "0x" + compute_digests(raws)[len(entries)].hex()
    clock.ms = DEADLINE
    return member


def released_share_opens(dealt: Dealt, member: Member, entries: Any) -> None:
    release = member.release_key_share(request_of(dealt, entries))
    assert encryption.verify_key_share(dealt.committee, member.index, SLOT, release.key_share)
    root = compute_slot_ciphertext_root(dealt.committee.committee_id, SLOT, entries)
    assert release.ciphertext_root == root


# --- honest streams -------------------------------------------------------------------------


def test_streamed_sealed_calls_are_not_derived_again_at_release(dealt, entries, tmp_path,
                                                                rederived):  # fmt: skip
    member = streamed(dealt, tmp_path, entries[:4])
    assert member.streams.sealed_held(SLOT, ROLLUP) == 4
    released_share_opens(dealt, member, entries[:4])
    assert rederived == []


def test_the_entries_digest_is_the_json_array_of_the_entries(entries):
    """The release hashes each entry's canonical bytes once (also what the stream holds): the
    digest is the one decision 114 defined over the JSON array."""
    body = orjson.dumps([sealed_entry_to_json(e) for e in entries])
    assert compute_entries_digest(entries) == hashlib.sha256(ENTRIES_DIGEST_TAG + body).digest()


def test_a_member_that_missed_part_of_the_stream_checks_the_rest_at_release(
    dealt, entries, tmp_path, rederived
):
    member = member_of(dealt, tmp_path, Clock(open_time()))
    member.accept_stream(sealed_batch(dealt, entries[:2]))  # the rest never reached it
    member._clock_ms.ms = DEADLINE  # type: ignore[attr-defined]
    released_share_opens(dealt, member, entries[:4])
    assert rederived == [e.event.bid_id for e in entries[2:4]]
    # A member whose streams were dropped (a restart) re-derives everything
    rederived.clear()
    other = streamed(dealt, tmp_path / "other", entries[:4])
    other.streams.drop_through(SLOT)
    released_share_opens(dealt, other, entries[:4])
    assert rederived == [e.event.bid_id for e in entries[:4]]


# --- a set other than the one streamed --------------------------------------------------------


def test_an_extra_entry_is_derived_in_full(dealt, entries, tmp_path, rederived):
    member = streamed(dealt, tmp_path, entries[:4])
    # A valid extra sealed call (it was logged after the last push): checked now, committed
    released_share_opens(dealt, member, entries)
    assert rederived == [entries[4].event.bid_id]


def test_an_extra_forged_entry_is_refused(dealt, entries, tmp_path, rederived):
    member = streamed(dealt, tmp_path, entries[:4])
    mallory = key(9)
    forged = dataclasses.replace(entries[3].event, searcher=mallory.address)
    extra = LoggedSealedBid(entries[4].seq, forged)
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, (*entries[:4], extra)))
    assert rederived == [forged.bid_id]
    assert member.protection.get_commitment(dealt.committee.committee_id, SLOT) is None


def test_a_dropped_entry_commits_to_the_smaller_set_checked(dealt, entries, tmp_path, rederived):
    """A set without a streamed sealed call is a valid set (the stream may have read an entry
    a failover lost before it was acknowledged; docs/encryption.md): the member commits to what it
    is asked after the slot-wide rules over that set, re-deriving nothing; the signed
    ciphertext root then shows the drop (a receipt for it is censorship evidence)."""
    member = streamed(dealt, tmp_path, entries[:4])
    fewer = (entries[0], entries[2], entries[3])
    released_share_opens(dealt, member, fewer)
    assert rederived == []
    # ... once: the full set is another root now
    with pytest.raises(AlreadyCommittedOtherRoot):
        member.release_key_share(request_of(dealt, entries[:4]))


def test_a_swapped_ciphertext_is_derived_in_full_and_refused(dealt, entries, tmp_path,
                                                             rederived):  # fmt: skip
    member = streamed(dealt, tmp_path, entries[:4])
    # Bob's ciphertext swapped for Carol's under Bob's signed call: not what the call makes
    bob, carol = entries[1], entries[3]
    swapped = dataclasses.replace(bob.event, ciphertext=carol.event.ciphertext,
                                  ciphertext_hash=carol.event.ciphertext_hash)  # fmt: skip
    lying = (entries[0], dataclasses.replace(bob, event=swapped), entries[2])
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, lying))
    assert rederived == [bob.event.bid_id]
    # Bob's call swapped for another valid call of his (never streamed): checked, committed
    rederived.clear()
    other_call = sealed_entry(dealt.committee, key(2), encryptor(dealt.committee, key(2)).encrypt(
        bundle_body(key(2), bid_wei=7 * 10**15)))  # fmt: skip
    other = LoggedSealedBid(bob.seq, other_call.event)
    released_share_opens(dealt, member, (entries[0], other, entries[2], entries[3]))
    assert rederived == [other_call.event.bid_id]


def test_an_altered_seq_or_arrival_time_is_derived_in_full(dealt, entries, tmp_path, rederived):
    member = streamed(dealt, tmp_path, entries[:4])
    first = entries[0]
    # Arrival after the deadline: re-derived, refused
    late = dataclasses.replace(first, event=dataclasses.replace(first.event,
                                                                received_ms=DEADLINE + 1))
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, (late, *entries[1:4])))
    assert rederived == [first.event.bid_id]
    # Moved after a later entry (out of log order): refused by the slot-wide rules
    rederived.clear()
    moved = dataclasses.replace(first, seq="999999999-0")
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, (moved, *entries[1:4])))
    assert rederived == [first.event.bid_id]
    # Another arrival time within the slot, in order: a valid entry, checked in full
    rederived.clear()
    earlier = dataclasses.replace(first, event=dataclasses.replace(
        first.event, received_ms=first.event.received_ms - 1))  # fmt: skip
    released_share_opens(dealt, member, (earlier, *entries[1:4]))
    assert rederived == [first.event.bid_id]


def test_streamed_calls_do_not_vouch_for_another_slot(dealt, entries, tmp_path, rederived):
    member = streamed(dealt, tmp_path, entries[:4])
    member._clock_ms.ms = compute_deadline_ms(CLOCK, SLOT + 1)  # type: ignore[attr-defined]
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, entries[:4], slot=SLOT + 1))
    assert rederived == [entries[0].event.bid_id]


def test_streaming_does_not_release_early_or_twice(dealt, entries, tmp_path):
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    member.accept_stream(sealed_batch(dealt, entries[:4]))
    clock.ms = DEADLINE - 1
    with pytest.raises(DeadlineNotPassed):
        member.release_key_share(request_of(dealt, entries[:4]))
    clock.ms = DEADLINE
    first = member.release_key_share(request_of(dealt, entries[:4]))
    assert member.release_key_share(request_of(dealt, entries[:4])).key_share == first.key_share
    with pytest.raises(AlreadyCommittedOtherRoot):
        member.release_key_share(request_of(dealt, entries))
    # The commitment is durable: a restarted member (no stream) answers the same, once
    again = member_of(dealt, tmp_path, Clock(DEADLINE + 100))
    assert again.release_key_share(request_of(dealt, entries[:4])).repeated


# --- refused at stream time ---------------------------------------------------------------------


def forged_signature(entry: LoggedSealedBid) -> LoggedSealedBid:
    ev = entry.event
    sig = ev.evidence.signature
    bad = sig[:-3] + ("00" if sig[-3:-1] != "00" else "11") + sig[-1:]
    return dataclasses.replace(entry, event=dataclasses.replace(
        ev, evidence=Evidence(ev.evidence.body, bad)))  # fmt: skip


def test_a_bad_signature_is_refused_at_stream_time_and_never_committed(dealt, entries, tmp_path,
                                                                       rederived):  # fmt: skip
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    bad = forged_signature(entries[1])
    with pytest.raises(InvalidEvidence):
        member.accept_stream(sealed_batch(dealt, (entries[0], bad)))
    assert member.streams.size() == 0  # nothing of the batch kept
    member.accept_stream(sealed_batch(dealt, entries[:1]))
    with pytest.raises(StreamGap):  # the refused batch's place was not taken
        member.accept_stream(sealed_batch(dealt, (bad,), 2))
    with pytest.raises(InvalidEvidence):
        member.accept_stream(sealed_batch(dealt, (bad,), 1))
    assert member.streams.sealed_held(SLOT, ROLLUP) == 1
    clock.ms = DEADLINE
    with pytest.raises(CommitmentMismatch):
        member.release_key_share(request_of(dealt, (entries[0], bad)))
    assert rederived == [bad.event.bid_id]
    assert member.protection.get_commitment(dealt.committee.committee_id, SLOT) is None


def test_the_slot_wide_rules_are_checked_as_calls_stream_in(dealt, entries, tmp_path):
    member = member_of(dealt, tmp_path, Clock(open_time()))
    member.accept_stream(sealed_batch(dealt, entries[:2]))
    # A second encapsulation for Alice (a fresh encryptor), in a later batch
    alice = key(1)
    second = sealed_entry(dealt.committee, alice, encryptor(dealt.committee, alice).encrypt(
        bundle_body(alice, bid_wei=9 * 10**15)))  # fmt: skip
    with pytest.raises(InvalidEvidence):
        member.accept_stream(sealed_batch(dealt, (second,), 2))
    # The same sealed call again under a later seq (a replay)
    replay = dataclasses.replace(entries[0], seq=entries[2].seq)
    with pytest.raises(InvalidEvidence):
        member.accept_stream(sealed_batch(dealt, (replay,), 2))
    # Out of log order, or a seq already held
    with pytest.raises(MalformedProposal):
        member.accept_stream(sealed_batch(dealt, (entries[3], entries[2]), 2))
    with pytest.raises(MalformedProposal):
        member.accept_stream(sealed_batch(dealt, (dataclasses.replace(entries[2],
                                                                      seq=entries[1].seq),), 2))
    assert member.streams.sealed_held(SLOT, ROLLUP) == 2
    member.accept_stream(sealed_batch(dealt, entries[2:], 2))
    assert member.streams.sealed_held(SLOT, ROLLUP) == 5


def test_sealed_streams_for_a_closed_slot_or_another_committee_are_refused(dealt, entries,
                                                                           tmp_path):  # fmt: skip
    clock = Clock(open_time())
    member = member_of(dealt, tmp_path, clock)
    with pytest.raises(NotMember):
        member.accept_stream(sealed_batch(dealt, entries[:2], committee_id=b"\x01" * 32))
    with pytest.raises(NotMember):
        member.accept_stream(sealed_batch(dealt, entries[:2], rollup=ROLLUP + 1))
    # This slot's calls streamed as the next slot's: not that slot's
    with pytest.raises(InvalidEvidence):
        member.accept_stream(sealed_batch(dealt, entries[:2], slot=SLOT + 1))
    with pytest.raises(SlotExpired):
        member.accept_stream(sealed_batch(dealt, entries[:2], slot=SLOT + 1000))
    clock.ms = after_close() + 1_000
    with pytest.raises(SlotExpired):
        member.accept_stream(sealed_batch(dealt, entries[:2]))
    assert member.streams.size() == 0


def test_a_sealed_call_of_another_rollups_log_is_refused(dealt, entries, tmp_path):
    member = member_of(dealt, tmp_path, Clock(open_time()))
    other = dataclasses.replace(entries[0], event=dataclasses.replace(entries[0].event,
                                                                      rollup=ROLLUP + 1))
    with pytest.raises(InvalidEvidence):
        member.accept_stream(sealed_batch(dealt, (other,)))
    assert member.streams.size() == 0


@pytest.mark.parametrize("mutate", [
    lambda d: d | {"log": "plain"},
    lambda d: d | {"log": None},
    lambda d: d | {"entries": [{"seq": "1-1", "event": {"kind": "bid"}}]},
    lambda d: {k: v for k, v in d.items() if k != "log"},  # sealed entries as plaintext events
])
def test_malformed_sealed_batches_are_refused(dealt, entries, tmp_path, mutate):  # noqa: ANN001
    doc = orjson.loads(sealed_batch(dealt, entries[:1]))
    assert isinstance(decode_stream_batch(orjson.dumps(doc)).entries[0], LoggedSealedBid)
    member = member_of(dealt, tmp_path, Clock(open_time()))
    with pytest.raises(MalformedProposal):
        member.accept_stream(orjson.dumps(mutate(doc)))
    assert member.streams.size() == 0


def test_sealed_batches_carry_ciphertexts_only(dealt, entries):
    """Nothing streamed is readable before the key exists: a sealed batch holds the signed
    encrypted calls, not the bundles they encrypt."""
    alice = key(1)
    body = bundle_body(alice, bid_wei=10**15)
    enc = encryptor(dealt.committee, alice)
    entry = sealed_entry(dealt.committee, alice, enc.encrypt(body))
    data = sealed_batch(dealt, (entry,))
    params = orjson.loads(body)["params"][0]
    assert params["txs"][0][2:] not in data.decode()
    assert encrypted_bundle_params(entry.event.ciphertext)["ciphertext"][2:] in data.decode()
