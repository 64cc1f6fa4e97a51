"""One slot across three rollups through the engine, its coordinator and in-process members.

The engine closes every rollup's slot, hands all the results to the coordinator at once, and
the committee signs one slot root; each rollup gets its own signed block with its proof, and
each rollup's chain advances. A slot that fails, fails for every rollup, and the clock moves on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.searcher import bundle_params
from auction.encoding import ZERO_HASH
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from auction.types import Evidence
from committee.records import FAILED_CLOSE, FailedSlot, SignedBlock
from committee.verify import verify_partner_blocks, verify_signed_block
from node.settings import Settings
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT, SLOT_MS, WINDOW_MS, key
from tests.committee.test_coordinator import Clock, Harness

pytestmark = pytest.mark.anyio

A, B = 10, 8453
RIGHT = [A, B, ROLLUP]
SETTINGS3 = Settings(slot_ms=SLOT_MS, rollups=[ROLLUP, A, B], signing_window_ms=WINDOW_MS)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def h(dealt: Dealt, tmp_path: Path) -> AsyncIterator[Harness]:
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    harness = Harness(dealt, tmp_path, clock, {}, settings=SETTINGS3)
    await harness.engine.start(run_clock=False)
    yield harness
    await harness.coordinator.aclose()


async def bid_on(h: Harness, rollup: int, slot: int, seed: int, bid_wei: int) -> None:
    """A signed bundle of one transaction for ``rollup`` (its chain id)."""
    k = key(seed)
    raw = k.sign_tx(
        type=2,
        chainId=rollup,
        nonce=seed,
        maxPriorityFeePerGas=2 * 10**9,
        maxFeePerGas=100 * 10**9,
        gas=60_000,
        to="0x" + "42" * 20,
        value=0,
        data=b"",
    )
    params = bundle_params([raw], slot, bid_wei=bid_wei)
    body = k.request("eth_sendBundle", [params])
    await h.engine.intake.submit_bundle(
        params,
        searcher=k.address,
        evidence=Evidence(body, k.sign_body(body)),
        endpoint_rollup=None,
        transport="http",
    )


async def run(h: Harness, slot: int) -> None:
    """Bids on two of the three rollups, then the deadline and the close."""
    h.clock.ms = compute_slot_start_ms(CLOCK, slot) + 1
    for i in range(3):
        await h.bid(slot, 10 * slot % 997 + i, 10**15 * (i + 1))
    await bid_on(h, A, slot, 500 + slot % 97, 10**15)
    await bid_on(h, A, slot, 600 + slot % 97, 2 * 10**15)
    h.clock.ms = compute_deadline_ms(CLOCK, slot) + 5
    await h.engine.close_slot(slot)


async def outcome(h: Harness, slot: int) -> list[SignedBlock | FailedSlot | None]:
    out: list[SignedBlock | FailedSlot | None] = []
    for r in RIGHT:
        out.append(
            await h.store.get_signed_block(r, slot) or await h.store.get_failed_slot(r, slot)
        )
    return out


async def test_one_signature_per_slot_covers_every_rollup_and_each_chain_advances(h: Harness):
    await run(h, SLOT)
    await run(h, SLOT + 1)
    first, second = await outcome(h, SLOT), await outcome(h, SLOT + 1)
    for blocks in (first, second):
        assert all(isinstance(b, SignedBlock) for b in blocks)
        signed = [b for b in blocks if isinstance(b, SignedBlock)]
        assert [b.block.rollup for b in signed] == RIGHT
        assert len({(b.slot_root, b.signature) for b in signed}) == 1  # one root, one signature
        for b in signed:
            verify_signed_block(b, h.dealt.committee, expected_rollups=RIGHT)
            verify_partner_blocks(b, [p for p in signed if p is not b], h.dealt.committee)
    # Each rollup's chain: its block of SLOT + 1 extends its block of SLOT.
    for a, b in zip(first, second, strict=True):
        assert isinstance(a, SignedBlock) and isinstance(b, SignedBlock)
        assert a.block.parent_hash == ZERO_HASH and b.block.parent_hash == a.block.block_hash
    assert [len(b.block.bundles) for b in first if isinstance(b, SignedBlock)] == [2, 0, 3]
    # One proposal per slot, with a part per rollup.
    assert [t["rollups"] for t in h.coordinator.timings] == [RIGHT, RIGHT]
    assert all(t["status"] == "signed" for t in h.coordinator.timings)
    # Each rollup's history names the slot root it was signed under.
    for r in RIGHT:
        (summary,) = await h.store.get_slot_summaries(r, [SLOT])
        assert summary is not None
        assert summary["committee"]["slot_root"] == "0x" + first[0].slot_root.hex()  # type: ignore[union-attr]


def members_use_vcg_on(h: Harness, rollup: int) -> None:
    for m in h.members:
        config = m.member.config
        r = config.rollups[rollup]
        policy = r.policy.with_(payment_rule="vcg")
        m.member.config = dataclasses.replace(
            config, rollups={**config.rollups, rollup: dataclasses.replace(r, policy=policy)}
        )


async def test_a_slot_one_rollups_block_is_refused_fails_for_every_rollup(h: Harness) -> None:
    members_use_vcg_on(h, A)  # only rollup A's block differs from what members re-derive
    await run(h, SLOT)
    failed = await outcome(h, SLOT)
    assert all(isinstance(f, FailedSlot) for f in failed)
    assert {code for f in failed if isinstance(f, FailedSlot) for _, code in f.refused} == {
        "block_mismatch"
    }
    # Nobody signed any of its blocks: the next slot builds every chain on genesis again.
    for m in h.members:
        m.member.config = dataclasses.replace(
            m.member.config, rollups={**m.member.config.rollups, A: h.engine.rollups[A]}
        )
    await run(h, SLOT + 1)
    signed = await outcome(h, SLOT + 1)
    assert all(isinstance(b, SignedBlock) and b.block.parent_hash == ZERO_HASH for b in signed)


async def test_a_slot_whose_close_fails_for_one_rollup_fails_for_all_and_the_clock_moves_on(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_record = h.engine._record

    async def record(result, lease):  # noqa: ANN001, ANN202
        if (result.rollup, result.slot) == (A, SLOT):
            raise RuntimeError("a bug while storing rollup A's block")
        return await real_record(result, lease)

    monkeypatch.setattr(h.engine, "_record", record)
    h.clock.ms = compute_slot_start_ms(CLOCK, SLOT) + 1
    await h.bid(SLOT, 1)
    h.clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
    assert await h.engine.close_or_fail(SLOT)
    failed = await outcome(h, SLOT)
    assert all(isinstance(f, FailedSlot) and f.reason == FAILED_CLOSE for f in failed)
    assert await h.store.list_partials(ROLLUP, SLOT) == []  # never proposed
    await run(h, SLOT + 1)
    assert all(isinstance(b, SignedBlock) for b in await outcome(h, SLOT + 1))
