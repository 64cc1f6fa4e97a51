"""Rule-breaking evidence through the real coordinator: it endorses the proposal with the
operator key, one member (test-only, ``tests.accountability.faulty_member``) signs a block the
rules do not produce, every honest member refuses it, and the endorsement that member kept plus
its partial convict it offline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from auction.receipts import compute_operator_key
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from committee.coordinator import LocalMember
from committee.evidence import compute_rule_breaking_evidence, verify_evidence
from committee.protection import ProtectionStore
from committee.signer import compute_member_config
from tests.accountability.faulty_member import RubberStampMember
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, SLOT, SignsNothing, slot_of, with_block
from tests.committee.test_coordinator import SETTINGS, Clock, Harness
from tests.committee.test_streaming_coordinator import StreamingHarness

pytestmark = pytest.mark.anyio
OPERATOR = compute_operator_key(bytes([51]) * 32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_member_signing_a_bad_block_through_the_coordinator_is_caught(
    dealt: Dealt, tmp_path: Path
) -> None:
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    h = Harness(dealt, tmp_path, clock, {})
    h.coordinator.operator_key = OPERATOR  # the coordinator endorses what it sends
    config = compute_member_config(SETTINGS, dealt.committee, 1)
    liar = RubberStampMember(dealt.shares[0], config, ProtectionStore(tmp_path / "liar.sqlite3"),
                             clock_ms=clock)
    h.coordinator.members[0] = LocalMember(liar)
    await h.engine.start(run_clock=False)
    h.engine.signer = SignsNothing(h.coordinator)  # proposals are sent by hand below
    try:
        for i in range(3):
            await h.bid(SLOT, 300 + i, 10**15 * (i + 1))
        clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
        [result] = await h.engine.close_slot(SLOT)
        (part,) = (await h.coordinator.build_proposal([result])).parts
        winners = list(part.block.bundles)
        winners[0] = dataclasses.replace(winners[0], payment_wei=0)  # the first winner pays 0
        bad = slot_of(with_block(part, dataclasses.replace(part.block, bundles=tuple(winners))))
        collection = await h.coordinator.solicit(bad)
        # The control: every honest member refuses the block; the faulty one signs it
        assert set(collection.valid) == {1}
        assert collection.refused == {i: "block_mismatch" for i in range(2, 11)}
        # The endorsement the faulty member kept (the coordinator's), and its partial
        endorsement = liar.keeping.get_endorsement(SLOT)
        assert endorsement is not None and endorsement.operator == OPERATOR.address
        doc = compute_rule_breaking_evidence(bad, endorsement, 1, collection.valid[1])
        verdict = verify_evidence(doc, dealt.committee, operator=OPERATOR.address, rules=config)
        assert verdict.offender == "member 1" and "block_mismatch" in verdict.detail
    finally:
        await h.coordinator.aclose()


async def test_streamed_bodies_carry_the_slots_one_endorsement(dealt: Dealt,
                                                               tmp_path: Path) -> None:
    """Under streaming each member gets its own bytes (version 7, without its streamed prefix):
    one endorsement of the slot root covers them all, members that pin the operator sign, and
    none of them mistakes the per-member bodies for equivocation."""
    h = StreamingHarness(dealt, tmp_path, Clock(compute_slot_start_ms(CLOCK, SLOT) + 1))
    h.coordinator.operator_key = OPERATOR
    for m in h.members:
        m.member.operator = OPERATOR.address
    await h.engine.start(run_clock=False)
    try:
        await h.open_slot(SLOT, 3)
        await h.stream()
        await h.open_slot(SLOT, 1, first=3)  # one more bid after the push: each body's tail
        signed = await h.close(SLOT)
        assert len(signed.block.bundles) == 4
        for m in h.members:
            kept = m.member.keeping.get_endorsement(SLOT)
            assert kept is not None and kept.operator == OPERATOR.address
            assert m.member.keeping.list_evidence() == []
    finally:
        await h.coordinator.aclose()
