"""Shared sequencing, stage 1: one slot across three rollups, one signed slot root.

A lying coordinator against a member serving three rollups: it cannot get two different slot
roots signed for one slot, a slot root that leaves out a served rollup or names one twice, a
block of one rollup past that rollup's lock, or a slot with one bad part. A verifier cannot be
given a proof of rollup A as rollup B's, nor a slot signature passed off as a per-rollup block
signature of protocol version 1 or for another committee or slot.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import orjson
import pytest

from auction.bundles import compute_public_tx
from auction.encoding import ZERO_HASH
from auction.presets import MAINNET, Rollup
from auction.results import compute_slot_result
from auction.slotroot import SlotLeaf, compute_slot_root, verify_slot_proof
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Block, LoggedEvent, PublicTx
from committee import bls, threshold
from committee.checks import MemberConfig, check_slot
from committee.errors import (
    DoubleSign,
    IncompleteSlot,
    InvalidSignedBlock,
    Locked,
    MalformedProposal,
    NotMember,
    Refusal,
)
from committee.member import Member
from committee.proposal import Proposal, SlotProposal, encode_proposal
from committee.protection import ProtectionStore
from committee.records import (
    SignedBlock,
    compute_signed_slot,
    compute_slot_leaves,
    signed_block_from_json,
    signed_block_to_json,
)
from committee.signing import compute_slot_signing_root, is_valid_slot_signature
from committee.verify import verify_partner_blocks, verify_signed_block
from tests.committee.conftest import Dealt
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    after_close,
    certify,
    config_of,
    key,
    log_of,
    rehash,
    signed_bid,
    signing_root_of,
    slot_of,
)

A, B = 10, 8453  # the deployment's other two rollups (ROLLUP is 167001)
RIGHT = (A, B, ROLLUP)
POLICY = MAINNET.policy


def config3(dealt: Dealt, index: int = 1) -> MemberConfig:
    config = config_of(dealt.committee, index)
    rollups = {r: Rollup(r, "test", POLICY) for r in (A, B)}
    return dataclasses.replace(config, rollups={**config.rollups, **rollups})


def member3(dealt: Dealt, path: Path, index: int = 1, slot: int = SLOT) -> Member:
    return Member(
        dealt.shares[index - 1],
        config3(dealt, index),
        ProtectionStore(path / f"member-{index}.sqlite3"),
        clock_ms=lambda: after_close(slot),
    )


def public_tx_on(rollup: int, seed: int, slot: int = SLOT) -> PublicTx:
    """A public tx of another rollup (signed for its chain id)."""
    raw = key(seed).sign_tx(
        type=2, chainId=rollup, nonce=seed, maxPriorityFeePerGas=2 * 10**9,
        maxFeePerGas=100 * 10**9, gas=21_000, to="0x" + "42" * 20, value=0, data=b"",
    )
    return compute_public_tx(
        ["0x" + raw.hex()], rollups={rollup: Rollup(rollup, "test", POLICY)},
        now_ms=compute_slot_start_ms(CLOCK, slot) + 9,
    )


def part(
    dealt: Dealt,
    rollup: int,
    slot: int = SLOT,
    events: tuple = (),
    parent: Block | None = None,
    parent_slot: tuple[Block, ...] = (),
) -> Proposal:
    """One rollup's honest part: its block re-derived by the slot function; ``parent`` certified
    as a block of the slot made of ``parent_slot``."""
    log = log_of(list(events), slot)
    cert = certify(dealt.committee, dealt.group_secret, parent, *parent_slot) if parent else None
    result = compute_slot_result(
        Rollup(rollup, "test", POLICY), slot, compute_deadline_ms(CLOCK, slot),
        parent.block_hash if parent else ZERO_HASH, log, (),
    )
    return Proposal(dealt.committee.committee_id, rollup, slot, result.block, cert, (), log)


@pytest.fixture(scope="module")
def honest(dealt: Dealt) -> SlotProposal:
    """Slot SLOT of three rollups: bids on ours, a public tx on A, nothing on B."""
    bids = tuple(signed_bid(key(i)) for i in range(3))
    return slot_of(
        part(dealt, ROLLUP, events=bids),
        part(dealt, A, events=(public_tx_on(A, 1),)),
        part(dealt, B),
    )


def test_a_three_rollup_slot_is_signed_once_over_its_slot_root(dealt, honest, tmp_path) -> None:
    assert honest.rollups == RIGHT  # ascending: the leaves' order
    member = member3(dealt, tmp_path)
    reply = member.sign_proposal(encode_proposal(honest))
    blocks = [p.block for p in honest.parts]
    assert reply.slot_root == compute_slot_root(compute_slot_leaves(blocks))
    assert reply.signing_root == signing_root_of(dealt.committee, *blocks)
    assert threshold.verify_partial(dealt.committee.member_public_key(1), reply.signing_root,
                                    reply.partial)
    # Every rollup's head moved to its block of the slot.
    cid = dealt.committee.committee_id
    for p in honest.parts:
        head = member.protection.get_head(cid, p.rollup)
        assert head is not None and (head.slot, head.block_hash) == (SLOT, p.block.block_hash)
    assert member.protection.count_signed(cid) == 1


def test_two_slot_roots_for_one_slot_are_never_signed(dealt, honest, tmp_path) -> None:
    member = member3(dealt, tmp_path)
    first = member.sign_proposal(encode_proposal(honest))
    # Rollup B's block differs (a public tx more), every other part the same: another root.
    other = slot_of(honest.parts[2], honest.parts[0],
                    part(dealt, B, events=(public_tx_on(B, 2),)))
    assert other.compute_slot_root() != first.slot_root
    with pytest.raises(DoubleSign) as refused:
        member.sign_proposal(encode_proposal(other))
    assert refused.value.data["signed_slot_root"] == "0x" + first.slot_root.hex()
    # The same slot again gets the same partial; after a restart too.
    assert member.sign_proposal(encode_proposal(honest)).partial == first.partial
    member.protection.close()
    restarted = member3(dealt, tmp_path)
    with pytest.raises(DoubleSign):
        restarted.sign_proposal(encode_proposal(other))
    assert restarted.sign_proposal(encode_proposal(honest)).partial == first.partial


def test_a_slot_leaving_out_a_served_rollup_is_refused(dealt, honest, tmp_path) -> None:
    member = member3(dealt, tmp_path)
    for kept in ((0, 2), (1, 2), (2,)):
        short = dataclasses.replace(honest, parts=tuple(honest.parts[i] for i in kept))
        with pytest.raises(IncompleteSlot) as refused:
            member.sign_proposal(encode_proposal(short))
        assert refused.value.code == "incomplete_slot"
        assert set(refused.value.data["missing"]) == set(RIGHT) - set(short.rollups)
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None


def test_a_slot_naming_a_rollup_twice_or_one_not_served_is_refused(dealt, honest, tmp_path):
    member = member3(dealt, tmp_path)
    doc = orjson.loads(encode_proposal(honest))
    # The same part twice, or two different blocks for one rollup: never two leaves of one.
    twice = {**doc, "parts": [doc["parts"][0], *doc["parts"]]}
    with pytest.raises(MalformedProposal):
        member.sign_proposal(orjson.dumps(twice))
    b_other = orjson.loads(encode_proposal(slot_of(part(dealt, B, events=(public_tx_on(B, 3),)))))
    two_blocks = {**doc, "parts": [*doc["parts"][:2], doc["parts"][2], *b_other["parts"]]}
    two_blocks["parts"].sort(key=lambda p: p["rollup"])
    with pytest.raises(MalformedProposal):
        member.sign_proposal(orjson.dumps(two_blocks))
    # Out of order (the leaves are sorted by rollup): refused as well.
    with pytest.raises(MalformedProposal):
        member.sign_proposal(orjson.dumps({**doc, "parts": doc["parts"][::-1]}))
    # Built in process, past the decoder: the check itself refuses two parts of one rollup,
    # and the slot root cannot even be computed over them.
    dup = dataclasses.replace(honest, parts=(*honest.parts, honest.parts[2]))
    with pytest.raises(IncompleteSlot):
        check_slot(config3(dealt), dup)
    with pytest.raises(ValueError, match="two leaves"):
        dup.compute_slot_root()
    # A fourth rollup the member does not serve.
    extra = slot_of(*honest.parts, part(dealt, 42161))
    with pytest.raises(NotMember):
        member.sign_proposal(encode_proposal(extra))
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT) is None


def test_one_rollups_bad_block_fails_the_whole_slot(dealt, honest, tmp_path) -> None:
    member = member3(dealt, tmp_path)
    cid = dealt.committee.committee_id
    a = honest.parts[0]
    lie = dataclasses.replace(a, block=rehash(dataclasses.replace(a.block, public_tx_count=0,
                                                                  txs=())))
    with pytest.raises(Refusal) as refused:
        member.sign_proposal(encode_proposal(slot_of(lie, *honest.parts[1:])))
    assert refused.value.code in {"block_mismatch", "forced_tx_missing", "bid_set_mismatch"}
    # Nothing signed and no head moved, for any rollup.
    assert member.protection.get_signed(cid, SLOT) is None
    assert all(member.protection.get_head(cid, r) is None for r in RIGHT)


def test_a_block_past_its_rollups_lock_fails_the_whole_slot(dealt, honest, tmp_path) -> None:
    member = member3(dealt, tmp_path)
    cid = dealt.committee.committee_id
    member.sign_proposal(encode_proposal(honest))
    blocks = tuple(p.block for p in honest.parts)
    # Slot + 1: ROLLUP and A extend their heads; B's block has no parent (a sibling of B's
    # signed block): locked, and nothing moves for ROLLUP or A either.
    nxt = SLOT + 1
    good = [part(dealt, r, nxt, parent=b, parent_slot=tuple(x for x in blocks if x is not b))
            for r, b in ((A, blocks[0]), (ROLLUP, blocks[2]))]
    member = Member(dealt.shares[0], config3(dealt), member.protection,
                    clock_ms=lambda: after_close(nxt))
    with pytest.raises(Locked) as refused:
        member.sign_proposal(encode_proposal(slot_of(*good, part(dealt, B, nxt))))
    assert refused.value.data["rollup"] == B
    assert member.protection.get_signed(cid, nxt) is None
    for r, b in zip(RIGHT, blocks, strict=True):
        head = member.protection.get_head(cid, r)
        assert head is not None and head.block_hash == b.block_hash
    # With B's block on its head, the slot is signed and every head moves.
    b_next = part(dealt, B, nxt, parent=blocks[1], parent_slot=(blocks[0], blocks[2]))
    member.sign_proposal(encode_proposal(slot_of(*good, b_next)))
    assert member.protection.get_head(cid, B).block_hash == b_next.block.block_hash  # type: ignore[union-attr]


def test_a_parent_certificate_with_another_rollups_proof_is_refused(dealt, honest, tmp_path):
    """B's next block on B's real signed block, but its certificate carries A's proof (valid
    for A's leaf under the same signed root): a member that must verify it refuses it."""
    member = Member(dealt.shares[0], config3(dealt), ProtectionStore(tmp_path / "m.sqlite3"),
                    clock_ms=lambda: after_close(SLOT + 1))
    blocks = tuple(p.block for p in honest.parts)
    parents = {b.rollup: b for b in blocks}
    nxt = [part(dealt, r, SLOT + 1, parent=parents[r],
                parent_slot=tuple(b for b in blocks if b.rollup != r)) for r in RIGHT]
    a_cert, b_cert = nxt[0].parent, nxt[1].parent
    assert a_cert is not None and b_cert is not None
    lie = dataclasses.replace(nxt[1], parent=dataclasses.replace(
        b_cert, slot_proof=a_cert.slot_proof))
    with pytest.raises(Refusal) as refused:
        member.sign_proposal(encode_proposal(slot_of(nxt[0], lie, nxt[2])))
    assert refused.value.code == "unknown_parent"
    assert member.protection.get_signed(dealt.committee.committee_id, SLOT + 1) is None
    # The honest certificates are adopted and the slot signed.
    member.sign_proposal(encode_proposal(slot_of(*nxt)))


# --- delivery and verification -----------------------------------------------------------------


@pytest.fixture(scope="module")
def delivered(dealt: Dealt, honest: SlotProposal) -> list[SignedBlock]:
    blocks = [p.block for p in honest.parts]
    root = signing_root_of(dealt.committee, *blocks)
    partials = [(s.index, threshold.partial_sign(s, root)) for s in dealt.shares[:7]]
    signature = threshold.combine(partials, dealt.committee.t, dealt.committee.n)
    return compute_signed_slot(blocks, dealt.committee.committee_id, signature, partials,
                               deadline_ms=1, published_ms=2)


def test_every_rollup_gets_its_block_under_the_one_signed_root(dealt, delivered) -> None:
    assert [s.block.rollup for s in delivered] == list(RIGHT)
    for s in delivered:
        verify_signed_block(s, dealt.committee, expected_rollups=RIGHT)
        others = [p for p in delivered if p is not s]
        assert sorted(verify_partner_blocks(s, others, dealt.committee)) == list(RIGHT)


def test_a_proof_of_rollup_a_is_not_rollup_bs(dealt, delivered) -> None:
    a, b, _ = delivered
    root = a.slot_root
    assert not verify_slot_proof(root, B, b.block.block_hash, a.slot_proof)
    assert not verify_slot_proof(root, B, a.block.block_hash, a.slot_proof)
    assert not verify_slot_proof(root, A, b.block.block_hash, a.slot_proof)
    # B's signed block carrying A's proof, or A's block relabelled as B's: refused.
    for lie in (dataclasses.replace(b, slot_proof=a.slot_proof),
                dataclasses.replace(a, block=dataclasses.replace(a.block, rollup=B))):
        doc = signed_block_to_json(lie)
        with pytest.raises(InvalidSignedBlock):
            verify_signed_block(signed_block_from_json(doc), dealt.committee)
    # A partner of another slot root (B's block of another slot) is not a partner.
    other_root = compute_slot_root([SlotLeaf(B, "0x" + "11" * 32), SlotLeaf(A, "0x" + "22" * 32)])
    with pytest.raises(InvalidSignedBlock) as refused:
        verify_partner_blocks(a, [dataclasses.replace(b, slot_root=other_root)], dealt.committee)
    assert refused.value.data["field"] == "partners"


def test_a_slot_signature_is_no_block_signature_nor_anothers(dealt, delivered) -> None:
    s = delivered[2]
    cid, group = dealt.committee.committee_id, dealt.committee.group_public_key
    assert bls.verify(group, s.signing_root, s.signature)
    # Protocol version 1's per-rollup block signing root (docs of that version), for every
    # rollup's block of the slot: the slot signature verifies over none of them.
    for b in delivered:
        v1 = hashlib.sha256(
            b"blockspace/block-signing-root/v1\x00" + cid
            + b.block.rollup.to_bytes(8, "big") + b.block.slot.to_bytes(8, "big")
            + bytes.fromhex(b.block.block_hash[2:])
        ).digest()
        assert not bls.verify(group, v1, s.signature)
    # Another slot, another committee: other messages, and the signature verifies over none.
    assert not is_valid_slot_signature(dealt.committee, SLOT + 1, s.slot_root, s.signature)
    other_committee, _ = threshold.deal(4, 3, b"\x07" * 32)
    assert not is_valid_slot_signature(other_committee, SLOT, s.slot_root, s.signature)
    assert compute_slot_signing_root(other_committee.committee_id, SLOT, s.slot_root) != (
        s.signing_root
    )
    moved = dataclasses.replace(s, block=dataclasses.replace(s.block, slot=SLOT + 1))
    with pytest.raises(InvalidSignedBlock):
        verify_signed_block(moved, dealt.committee)
    # A document of the old kind (version 1) is refused before any check.
    doc = signed_block_to_json(s)
    with pytest.raises(InvalidSignedBlock) as refused:
        signed_block_from_json({**doc, "version": 1})
    assert refused.value.data["field"] == "version"


def test_the_proposal_carries_each_rollups_log_once(dealt, honest) -> None:
    """The wire form: one slot, parts in leaf order, each with its own log."""
    doc = orjson.loads(encode_proposal(honest))
    assert doc["version"] == 5 and doc["slot"] == SLOT
    assert [p["rollup"] for p in doc["parts"]] == list(RIGHT)
    assert [len(p["log"]) for p in doc["parts"]] == [1, 0, 3]
    assert all(isinstance(e, dict) for p in doc["parts"] for e in p["log"])
    assert isinstance(honest.parts[0].log[0], LoggedEvent)
