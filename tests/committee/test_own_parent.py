"""A parent certificate naming the block a member signed last is read as the member's own
header (decision 169): not decoded again at the deadline, with the same answers as decoding it.

Attacks: a coordinator pairing the member's block hash with other header fields (the fields are
the member's own, so nothing changes what it signs); a certificate naming another block, or the
same block in another spelling, is decoded and checked in full as before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from committee.errors import Locked, UnknownParent
from committee.member import Member
from committee.proposal import (
    Proposal,
    compute_signed_header,
    parse_proposal,
)
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
    rehash,
    signed_bid,
)
from tests.committee.slots import ManualClock as Clock


def member_of(dealt: Dealt, path: Path, name: str) -> tuple[Member, Clock]:
    clock = Clock(after_close(SLOT))
    member = Member(dealt.shares[0], config_of(dealt.committee, 1),
                    ProtectionStore(path / f"{name}.sqlite3"), clock_ms=clock)  # fmt: skip
    return member, clock


@pytest.fixture(scope="module")
def first(dealt: Dealt) -> Proposal:
    return proposal_of(dealt.committee, log_of([signed_bid(key(i)) for i in range(4)]))


@pytest.fixture(scope="module")
def child(dealt: Dealt, first: Proposal) -> Proposal:
    cert = certify(dealt.committee, dealt.group_secret, first.block)
    log = log_of([signed_bid(key(7), SLOT + 1), signed_bid(key(8), SLOT + 1)], SLOT + 1)
    return proposal_of(dealt.committee, log, SLOT + 1, parent=cert)


def with_parent_field(body: bytes, field: str, value: object) -> bytes:
    doc = orjson.loads(body)
    doc["parts"][0]["parent"]["header"][field] = value
    return orjson.dumps(doc)


def test_the_parent_a_member_signed_is_its_own_header_and_signs_the_same(
    dealt, first, child, tmp_path
) -> None:
    member, clock = member_of(dealt, tmp_path, "a")
    member.sign_proposal(encode_part(first))
    own = member._own_headers()
    assert own[first.rollup] == compute_signed_header(first.block)
    body = encode_part(child)
    parsed = parse_proposal(body, own)
    cert = parsed.head.parts[0].parent
    assert cert is not None and cert.header is own[first.rollup].header  # not decoded again
    assert cert.own and cert.compute_block_hash() == first.block.block_hash
    decoded = parse_proposal(body).head.parts[0].parent
    assert decoded is not None
    assert (cert.header, cert.tx_hashes) == (decoded.header, decoded.tx_hashes)
    clock.ms = after_close(SLOT + 1)
    reply = member.sign_proposal(body)
    # A member that decodes the certificate (restarted: it keeps no header) signs the same
    restarted, rclock = member_of(dealt, tmp_path, "b")
    restarted.sign_proposal(encode_part(first))
    restarted._signed_blocks.clear()
    assert restarted._own_headers() == {}
    rclock.ms = after_close(SLOT + 1)
    assert restarted.sign_proposal(body).partial == reply.partial


def test_other_fields_beside_the_members_block_hash_change_nothing(
    dealt, first, child, tmp_path
) -> None:
    member, clock = member_of(dealt, tmp_path, "a")
    honest, hclock = member_of(dealt, tmp_path, "b")
    for m in (member, honest):
        m.sign_proposal(encode_part(first))
    clock.ms = hclock.ms = after_close(SLOT + 1)
    # The coordinator names the member's block but lies about its revenue and winners: the
    # member reads its own header, whose fields hash to that block hash.
    lying = with_parent_field(encode_part(child), "revenue_wei", "1")
    lying = with_parent_field(lying, "bundles", [])
    assert member.sign_proposal(lying).partial == honest.sign_proposal(encode_part(child)).partial


def test_a_certificate_naming_another_block_is_decoded_and_checked(
    dealt, first, child, tmp_path
) -> None:
    member, clock = member_of(dealt, tmp_path, "a")
    member.sign_proposal(encode_part(first))
    clock.ms = after_close(SLOT + 1)
    # The same block hash in upper case is another spelling: decoded in full (and, being the
    # same block, accepted as it always was)
    upper = "0x" + first.block.block_hash[2:].upper()
    spelled = with_parent_field(encode_part(child), "block_hash", upper)
    own = member._own_headers()
    cert = parse_proposal(spelled, own).head.parts[0].parent
    assert cert is not None and cert.header is not own[first.rollup].header
    assert cert.header == own[first.rollup].header and not cert.own
    # A tampered header under its own (wrong) hash: decoded, and its hash does not match
    tampered = with_parent_field(encode_part(child), "slot", SLOT - 1)
    with pytest.raises((UnknownParent, Locked)):
        member.sign_proposal(tampered)
    # A well-formed other block at the same slot (rehashed): decoded; not the member's head
    forged = dataclasses.replace(first.block, revenue_wei=first.block.revenue_wei + 1)
    cert = certify(dealt.committee, dealt.group_secret, rehash(forged))
    sibling_child = proposal_of(dealt.committee, child.log, SLOT + 1, parent=cert)
    assert parse_proposal(encode_part(sibling_child), member._own_headers()).head.parts[
        0
    ].parent.header is not member._own_headers()[first.rollup].header  # type: ignore[union-attr]
    with pytest.raises(Locked):
        member.sign_proposal(encode_part(sibling_child))
    # and the member still signs the honest child
    member.sign_proposal(encode_part(child))


def test_a_stream_batch_makes_the_header_before_the_deadline(dealt, first, tmp_path) -> None:
    member, _clock = member_of(dealt, tmp_path, "a")
    member.sign_proposal(encode_part(first))
    assert member._signed_headers == {}  # kept as the block at the signature
    assert set(member._own_headers()) == {first.rollup}
    assert member._signed_headers[first.rollup].header.block_hash == first.block.block_hash
