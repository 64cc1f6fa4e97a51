"""A small dealt committee and honest proposals to mutate: the starting points of the committee
fuzz tests (``tests/committee/slots.py`` builds them through the real core).

Two proposals: slot ``SLOT`` from genesis (bids, one with a replacement uuid, public txs, two of
which stay pending), and slot ``SLOT + 1`` on the first one's certified block, carrying those
pending txs (due under the inclusion list) and holding a replacement and a cancel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from auction.presets import MAINNET, Rollup
from auction.slots import compute_slot_start_ms
from auction.types import Bid, Cancel, PendingTx, PublicTx
from committee import bls, threshold
from committee.member import Member
from committee.proposal import Proposal
from committee.protection import ProtectionStore
from committee.records import SignedBlock, compute_signed_slot
from committee.threshold import CommitteeInfo, KeyShare
from tests.committee.slots import (
    CLOCK,
    ROLLUP,
    SLOT,
    after_close,
    certify,
    config_of,
    key,
    log_of,
    proposal_of,
    public_tx,
    result_of,
    signed_bid,
    signed_cancel,
    signing_root_of,
)

# A small block (two bundles and a public tx fill it) with the inclusion list on, so txs stay
# pending and the next slot must include them.
POLICY = MAINNET.policy.with_(gas_limit=150_000, inclusion_after_slots=1)
ROLLUPS = {ROLLUP: Rollup(ROLLUP, "test", POLICY)}
UUID = "12345678-1234-1234-1234-123456789abc"


@dataclass(frozen=True)
class World:
    committee: CommitteeInfo
    shares: list[KeyShare]
    group_secret: int
    proposals: list[Proposal]
    signed_block: SignedBlock  # the first proposal's block, signed by t members


def build_world() -> World:
    committee, shares = threshold.deal(4, 3, bytes(range(32)))
    lambdas = threshold.lagrange_coefficients_at_zero([s.index for s in shares[:3]])
    group_secret = sum(lam * s.secret for lam, s in zip(lambdas, shares[:3], strict=True))
    group_secret %= bls.CURVE_ORDER
    k = [key(100 + i) for i in range(8)]
    log0 = log_of([
        signed_bid(k[0], policy=POLICY),
        signed_bid(k[1], bid_wei=2 * 10**15, uuid=UUID, policy=POLICY),
        public_tx(k[3], policy=POLICY),
        public_tx(k[4], policy=POLICY),
        public_tx(k[5], policy=POLICY),
        signed_bid(k[2], policy=POLICY, access=["0x" + "01" * 32]),
    ])
    first = proposal_of(committee, log0, SLOT, policy=POLICY)
    pending = result_of(log0, SLOT, policy=POLICY).pending
    assert pending, "the first slot must leave public txs pending"
    parent = certify(committee, group_secret, first.block)
    log1 = log_of([
        signed_bid(k[1], SLOT + 1, uuid=UUID, policy=POLICY),
        signed_bid(k[6], SLOT + 1, bid_wei=3 * 10**15, uuid=UUID, policy=POLICY),
        signed_bid(k[6], SLOT + 1, bid_wei=4 * 10**15, uuid=UUID, policy=POLICY),
        signed_cancel(k[1], UUID, SLOT + 1),
        public_tx(k[7], SLOT + 1, policy=POLICY),
    ], SLOT + 1)
    second = proposal_of(committee, log1, SLOT + 1, parent=parent, carried=pending,
                         policy=POLICY)
    root = signing_root_of(committee, first.block)
    partials = tuple((s.index, threshold.partial_sign(s, root)) for s in shares[:3])
    (signed,) = compute_signed_slot(
        [first.block],
        committee.committee_id,
        threshold.combine(partials, committee.t, committee.n),
        partials,
        deadline_ms=CLOCK.slot_ms * (SLOT + 1),
        published_ms=CLOCK.slot_ms * (SLOT + 1) + 300,
    )
    return World(committee, shares, group_secret, [first, second], signed)


def fresh_member(
    world: World, slot: int, *, clock_ms: Callable[[], int] | None = None
) -> Member:
    """Member 1 with empty slashing protection, just after ``slot`` closed (or at
    ``clock_ms``), checking the evidence of every event (no sampling: what it signs must then
    be exactly right)."""
    return Member(
        world.shares[0],
        config_of(world.committee, 1, POLICY),
        ProtectionStore(":memory:"),
        evidence_sample=1 << 30,
        clock_ms=clock_ms or (lambda: after_close(slot)),
    )


def unauthenticated(event: Bid | Cancel | PublicTx | PendingTx) -> object:
    """``event`` without what no evidence can prove and the coordinator states: when the
    engine received it (within the windows members check), its log position, whether a public
    tx came as private (protected)."""
    if isinstance(event, PendingTx):
        return event.tx  # the pending root pins the slot, seq and protection
    if isinstance(event, PublicTx):
        return dataclasses.replace(event, received_ms=0, protected=False)
    return dataclasses.replace(event, received_ms=0)


def slot_start(slot: int) -> int:
    return compute_slot_start_ms(CLOCK, slot)
