"""The lock, per slot root: a lying coordinator cannot get a fork of any rollup signed, nor two
slot roots for one slot, when each signature covers a slot of two rollups.

As ``test_lock.py`` for one rollup, but every proposal is a slot of two rollups whose parents
the coordinator picks independently (certified or forged certificates, any slot, late
completion requests, any subset of members); the fourth member's share is the coordinator's.
After every step: per rollup, every block in a slot with t valid partials lies on one chain;
per slot, at most one slot root has t valid partials.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction.encoding import ZERO_HASH
from auction.presets import MAINNET, Rollup
from auction.results import compute_slot_result
from auction.slotroot import compute_slot_proof
from auction.slots import compute_deadline_ms
from auction.types import Block, LoggedEvent
from committee import bls, threshold
from committee.errors import Refusal
from committee.member import Member
from committee.proposal import ParentCertificate, Proposal, compute_parent_certificate
from committee.protection import ProtectionStore
from committee.records import compute_slot_leaves
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    config_of,
    encode_part,
    log_of,
    signing_root_of,
)
from tests.committee.test_slot_attacks import public_tx_on

N, T = 4, 3
LIAR = 4
COMMITTEE, SHARES = threshold.deal(N, T, b"slot lock".ljust(32, b"\0"))
A = 10
ROLLUPS = (A, ROLLUP)
SLOTS = 6
NOW = compute_deadline_ms(CLOCK, SLOT + SLOTS) + 10


def honest_members(tmp: Path) -> list[Member]:
    out = []
    for i in range(1, N):
        config = config_of(COMMITTEE, i)
        rollups = {**config.rollups, A: Rollup(A, "a", MAINNET.policy)}
        out.append(Member(SHARES[i - 1], dataclasses.replace(config, rollups=rollups),
                          ProtectionStore(tmp / f"m{i}.sqlite3"), clock_ms=lambda: NOW))
    return out


@dataclasses.dataclass(eq=False)
class BuiltBlock:
    block: Block
    parent: BuiltBlock | None
    log: tuple[LoggedEvent, ...]

    def descends_from(self, other: BuiltBlock) -> bool:
        node: BuiltBlock | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


@dataclasses.dataclass(eq=False)
class BuiltSlot:
    slot: int
    blocks: dict[int, BuiltBlock]  # by rollup
    partials: dict[int, bytes]

    @property
    def root(self) -> bytes:
        return signing_root_of(COMMITTEE, *(b.block for b in self.blocks.values()))

    def certified(self) -> bool:
        return len(self.partials) >= T


class LyingCoordinator:
    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.blocks: dict[int, list[BuiltBlock]] = {r: [] for r in ROLLUPS}
        self.slots: list[BuiltSlot] = []

    def certificate(self, parent: BuiltBlock) -> ParentCertificate:
        """A real certificate from a certified slot holding ``parent``, else a forged one."""
        holding = [s for s in self.slots if parent in s.blocks.values()]
        good = [s for s in holding if s.certified()]
        chosen = good[0] if good else holding[0]
        if good:
            signature = threshold.combine(sorted(chosen.partials.items())[:T], T, N)
        else:
            signature = bls.sign(12345, chosen.root)  # well formed, signed by nobody
        leaves = compute_slot_leaves([b.block for b in chosen.blocks.values()])
        proof = compute_slot_proof(leaves, parent.block.rollup)
        return compute_parent_certificate(parent.block, proof, signature)

    def build_block(self, rollup: int, slot: int, parent: BuiltBlock | None, variant: int):  # noqa: ANN201
        events = [public_tx_on(rollup, 900 + variant, slot)] if variant else []
        log = log_of(events, slot)
        result = compute_slot_result(
            Rollup(rollup, "x", MAINNET.policy), slot, compute_deadline_ms(CLOCK, slot),
            parent.block.block_hash if parent else ZERO_HASH, log, (),
        )
        for known in self.blocks[rollup]:  # the same block built again is the same block
            if known.block.block_hash == result.block.block_hash:
                return known
        built = BuiltBlock(result.block, parent, log)
        self.blocks[rollup].append(built)
        return built

    def build(self, slot: int, parents: dict[int, BuiltBlock | None], variants: dict[int, int]
              ) -> BuiltSlot:
        blocks = {r: self.build_block(r, slot, parents[r], variants[r]) for r in ROLLUPS}
        for known in self.slots:
            if known.slot == slot and all(known.blocks[r] is blocks[r] for r in ROLLUPS):
                return known
        built = BuiltSlot(slot, blocks, {})
        built.partials[LIAR] = threshold.partial_sign(SHARES[LIAR - 1], built.root)
        self.slots.append(built)
        return built

    def propose(self, built: BuiltSlot, to: list[int], completion: bool) -> list[str]:
        parts = [
            Proposal(COMMITTEE.committee_id, r, built.slot, b.block,
                     self.certificate(b.parent) if b.parent else None, (), b.log, completion)
            for r, b in built.blocks.items()
        ]
        answers = []
        for index in to:
            member = self.members[index - 1]
            try:
                reply = member.sign_proposal(encode_part(*parts))
            except Refusal as refusal:
                answers.append(refusal.code)
                continue
            assert threshold.verify_partial(
                COMMITTEE.member_public_key(member.index), built.root, reply.partial
            )
            built.partials[member.index] = reply.partial
            answers.append("signed")
        return answers

    def check(self) -> None:
        certified = [s for s in self.slots if s.certified()]
        # One slot root per slot.
        by_slot: dict[int, bytes] = {}
        for s in certified:
            assert by_slot.setdefault(s.slot, s.root) == s.root, f"two roots for slot {s.slot}"
        # Per rollup, one chain.
        for r in ROLLUPS:
            blocks = [s.blocks[r] for s in certified]
            for a in blocks:
                for b in blocks:
                    assert a.descends_from(b) or b.descends_from(a), (
                        f"fork of rollup {r}: slots {a.block.slot} and {b.block.slot}"
                    )


def test_a_sibling_on_one_rollup_fails_the_slot_for_both(tmp_path: Path) -> None:
    c = LyingCoordinator(honest_members(tmp_path))
    first = c.build(SLOT, {A: None, ROLLUP: None}, {A: 0, ROLLUP: 0})
    assert c.propose(first, [1, 2, 3], True) == ["signed"] * 3
    # Rollup A extends its head; ROLLUP's block is a sibling of its signed block: refused.
    second = c.build(SLOT + 1, {A: first.blocks[A], ROLLUP: None}, {A: 0, ROLLUP: 1})
    assert c.propose(second, [1, 2, 3], True) == ["locked"] * 3
    third = c.build(SLOT + 1, {A: first.blocks[A], ROLLUP: first.blocks[ROLLUP]},
                    {A: 0, ROLLUP: 0})
    assert c.propose(third, [1, 2, 3], True) == ["signed"] * 3
    c.check()


steps = st.lists(
    st.tuples(
        st.integers(0, SLOTS - 1),  # slot offset
        st.tuples(st.integers(0, 32), st.integers(0, 32)),  # parent picks, per rollup
        st.tuples(st.integers(0, 1), st.integers(0, 1)),  # variants, per rollup
        st.lists(st.integers(1, N - 1), min_size=1, max_size=N - 1, unique=True),
        st.booleans(),  # completion
        st.booleans(),  # re-send a slot built earlier
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_a_lying_coordinator_never_gets_a_fork_or_two_roots_signed(plan) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        c = LyingCoordinator(honest_members(Path(tmp)))
        try:
            for offset, picks, variants, to, completion, resend in plan:
                if resend and c.slots:
                    built = c.slots[picks[0] % len(c.slots)]
                else:
                    parents: dict[int, BuiltBlock | None] = {}
                    for r, pick in zip(ROLLUPS, picks, strict=True):
                        options: list[BuiltBlock | None] = [None, *c.blocks[r]]
                        parents[r] = options[pick % len(options)]
                    slot = max([SLOT + offset] + [p.block.slot + 1 for p in parents.values()
                                                  if p is not None])
                    built = c.build(slot, parents, dict(zip(ROLLUPS, variants, strict=True)))
                c.propose(built, to, completion)
                c.check()
        finally:
            for m in c.members:
                m.protection.close()
