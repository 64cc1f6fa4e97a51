"""The lock (issue 9, finding 2): a lying coordinator cannot get a forked chain signed.

A member's head is the newest block it signed or adopted, and it signs only children of its
head, so it never signs two blocks with the same parent. The property test lets a coordinator
that lies freely (any slot, any parent, certified or not, forged certificates, late completion
requests, to any subset of members) drive three honest members, with the fourth member's share
in its own hands, and checks after every step that all blocks with t valid partials lie on one
chain.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction.encoding import ZERO_HASH
from auction.slotroot import compute_slot_proof
from auction.slots import compute_deadline_ms
from auction.types import Block, LoggedEvent
from committee import bls, threshold
from committee.errors import InvalidCommitteeParams, Locked, Refusal
from committee.member import Member
from committee.proposal import ParentCertificate, Proposal, compute_parent_certificate
from committee.protection import ProtectionStore
from committee.records import compute_slot_leaves
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    config_of,
    key,
    log_of,
    public_tx,
    result_of,
    signing_root_of,
)
from tests.committee.slots import encode_part as encode

N, T = 4, 3
LIAR = 4  # the coordinator holds this member's share: it signs whatever the coordinator likes
COMMITTEE, SHARES = threshold.deal(N, T, b"lock".ljust(32, b"\0"))
SLOTS = 8
NOW = compute_deadline_ms(CLOCK, SLOT + SLOTS) + 10  # every slot closed; most signing windows over


class Clock:
    def __call__(self) -> int:
        return NOW


def honest_members(tmp: Path) -> list[Member]:
    return [
        Member(SHARES[i - 1], config_of(COMMITTEE, i), ProtectionStore(tmp / f"m{i}.sqlite3"),
               clock_ms=Clock())
        for i in range(1, N) if i != LIAR
    ]


@dataclasses.dataclass
class Built:
    """A block the coordinator built, its parent, and the valid partials it collected."""

    block: Block
    parent: Built | None
    log: tuple[LoggedEvent, ...]
    partials: dict[int, bytes]

    @property
    def root(self) -> bytes:
        return signing_root_of(COMMITTEE, self.block)

    def certified(self) -> bool:
        return len(self.partials) >= T

    def descends_from(self, other: Built) -> bool:
        node: Built | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


class LyingCoordinator:
    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.built: list[Built] = []

    def certificate(self, parent: Built) -> ParentCertificate:
        """A real certificate when it holds t partials, else a forged one."""
        if parent.certified():
            chosen = sorted(parent.partials.items())[:T]
            signature = threshold.combine(chosen, T, N)
        else:
            signature = bls.sign(12345, parent.root)  # well formed, signed by nobody
        proof = compute_slot_proof(compute_slot_leaves([parent.block]), ROLLUP)
        return compute_parent_certificate(parent.block, proof, signature)

    def build(self, slot: int, parent: Built | None, variant: int) -> Built:
        log = log_of([public_tx(key(900 + variant), slot)] if variant else [], slot)
        result = result_of(log, slot, parent_hash=parent.block.block_hash if parent else ZERO_HASH)
        for known in self.built:  # the same block built again is the same block
            if known.block.block_hash == result.block.block_hash:
                return known
        built = Built(result.block, parent, log, {})
        # Its own member's partial is always there for the taking.
        built.partials[LIAR] = threshold.partial_sign(SHARES[LIAR - 1], built.root)
        self.built.append(built)
        return built

    def propose(self, built: Built, to: list[int], completion: bool) -> list[str]:
        """Send ``built`` to the members in ``to``; return what each answered."""
        parent = built.parent
        proposal = Proposal(
            COMMITTEE.committee_id, ROLLUP, built.block.slot, built.block,
            self.certificate(parent) if parent else None, (), built.log, completion,
        )
        answers = []
        for index in to:
            member = self.members[index - 1]
            try:
                reply = member.sign_proposal(encode(proposal))
            except Refusal as refusal:
                answers.append(refusal.code)
                continue
            assert threshold.verify_partial(
                COMMITTEE.member_public_key(member.index), built.root, reply.partial
            )
            built.partials[member.index] = reply.partial
            answers.append("signed")
        return answers

    def check_one_chain(self) -> None:
        certified = [b for b in self.built if b.certified()]
        for a in certified:
            for b in certified:
                assert a.descends_from(b) or b.descends_from(a), (
                    f"fork: slot {a.block.slot} and slot {b.block.slot} are both signed"
                )


def test_two_children_of_one_parent_are_never_both_signed(tmp_path: Path) -> None:
    """The reported attack: slots S and S+1 both on the zero parent, then children of both."""
    coordinator = LyingCoordinator(honest_members(tmp_path))
    first = coordinator.build(SLOT, None, 0)
    assert coordinator.propose(first, [1, 2, 3], completion=True) == ["signed"] * 3
    second = coordinator.build(SLOT + 1, None, 0)
    assert coordinator.propose(second, [1, 2, 3], completion=True) == ["locked"] * 3
    assert not second.certified()
    # A child of the signed branch is signed; a child of the other branch is not.
    assert coordinator.propose(coordinator.build(SLOT + 2, first, 0), [1, 2, 3], True) == [
        "signed"
    ] * 3
    third = coordinator.build(SLOT + 3, second, 0)
    assert coordinator.propose(third, [1, 2, 3], completion=True) == ["locked"] * 3
    coordinator.check_one_chain()


def test_a_block_signed_by_a_minority_is_completed_late_not_forked(tmp_path: Path) -> None:
    """One member signed S before its deadline passed; S is completed later, never replaced."""
    coordinator = LyingCoordinator(honest_members(tmp_path))
    s = coordinator.build(SLOT, None, 0)
    assert coordinator.propose(s, [1], completion=True) == ["signed"]
    # A sibling gets the two other honest members and the liar: t = 3, a certified sibling...
    sibling = coordinator.build(SLOT + 1, None, 1)
    assert coordinator.propose(sibling, [1, 2, 3], completion=True) == [
        "locked", "signed", "signed"
    ]
    assert sibling.certified()
    # ...which makes S dead: members 2 and 3 never sign it now, member 1 adopts the sibling.
    assert coordinator.propose(s, [2, 3], completion=True) == ["locked", "locked"]
    child = coordinator.build(SLOT + 2, sibling, 0)
    assert coordinator.propose(child, [1], completion=True) == ["signed"]
    coordinator.check_one_chain()


def test_a_late_fresh_proposal_is_refused_without_locking(tmp_path: Path) -> None:
    members = honest_members(tmp_path)
    coordinator = LyingCoordinator(members)
    late = coordinator.build(SLOT, None, 0)  # its signing window ended long ago
    assert coordinator.propose(late, [1], completion=False) == ["slot_expired"]
    assert members[0].protection.get_head(COMMITTEE.committee_id, ROLLUP) is None


steps = st.lists(
    st.tuples(
        st.integers(0, SLOTS - 1),  # slot offset
        st.integers(0, 64),  # parent: none, or one of the blocks built so far
        st.integers(0, 1),  # variant (two different blocks for one slot and parent)
        st.lists(st.integers(1, N - 1), min_size=1, max_size=N - 1, unique=True),  # members
        st.booleans(),  # a completion request (late signing allowed)
        st.booleans(),  # re-send a block built earlier instead of a new one
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_a_lying_coordinator_never_gets_a_fork_signed(plan) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        coordinator = LyingCoordinator(honest_members(Path(tmp)))
        try:
            for offset, parent_pick, variant, to, completion, resend in plan:
                if resend and coordinator.built:
                    built = coordinator.built[parent_pick % len(coordinator.built)]
                else:
                    options = [None, *coordinator.built]
                    parent = options[parent_pick % len(options)]
                    slot = SLOT + offset
                    if parent is not None and parent.block.slot >= slot:
                        slot = parent.block.slot + 1
                    built = coordinator.build(slot, parent, variant)
                coordinator.propose(built, to, completion)
                coordinator.check_one_chain()
        finally:
            for m in coordinator.members:
                m.protection.close()


@pytest.mark.parametrize("with_lock", [True])
def test_locked_refusal_names_the_head(tmp_path: Path, with_lock: bool) -> None:
    coordinator = LyingCoordinator(honest_members(tmp_path))
    first = coordinator.build(SLOT, None, 0)
    coordinator.propose(first, [1], completion=True)
    second = coordinator.build(SLOT + 1, None, 0)
    proposal = Proposal(COMMITTEE.committee_id, ROLLUP, SLOT + 1, second.block, None, (), (), True)
    with pytest.raises(Locked) as refused:
        coordinator.members[0].sign_proposal(encode(proposal))
    assert refused.value.data["known_block_hash"] == first.block.block_hash


def test_a_committee_whose_threshold_allows_two_branches_is_refused(tmp_path: Path) -> None:
    # 2 of 3 with one liar: two disjoint honest members plus the liar sign two siblings
    # (found in review). A signing committee needs t > 2n/3.
    committee, shares = threshold.deal(3, 2, b"two of three".ljust(32, b"\0"))
    with pytest.raises(InvalidCommitteeParams):
        Member(shares[0], config_of(committee, 1), ProtectionStore(tmp_path / "m.sqlite3"),
               clock_ms=Clock())
    threshold.check_signing_threshold(N, T)  # 3 of 4 holds: 2t - n = 2 > n - t = 1
