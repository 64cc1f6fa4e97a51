"""Builders for committee tests: real signed bids, slot logs, proposals and parent certificates.

Everything goes through the real core (``compute_bid``, ``compute_slot_result``), so a proposal
built here is exactly what an honest coordinator sends; tests then tamper with one thing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from api.searcher import SearcherKey, bundle_params
from auction.bundles import compute_bid, compute_cancel, compute_public_tx
from auction.encoding import ZERO_HASH
from auction.presets import MAINNET, Policy, Rollup
from auction.results import compute_slot_result
from auction.slotroot import compute_slot_proof, compute_slot_root
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, Block, Cancel, Evidence, LoggedEvent, PendingTx, PublicTx, SlotResult
from committee import bls, threshold
from committee.checks import MemberConfig
from committee.proposal import (
    ParentCertificate,
    Proposal,
    SlotProposal,
    compute_header_hash,
    compute_parent_certificate,
    compute_slot_proposal,
    encode_proposal,
)
from committee.records import compute_slot_leaves, compute_tx_hashes
from committee.signing import compute_slot_signing_root
from committee.threshold import CommitteeInfo

ROLLUP = 167_001
SLOT_MS = 2_000
CLOCK = SlotClock(genesis_ms=0, slot_ms=SLOT_MS)
SLOT = 1_000
WINDOW_MS = 2_000
SKEW_MS = 250
GWEI = 10**9
_nonces = itertools.count(1)


class ManualClock:
    """A member's clock the test moves (``clock.ms = ...``)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def rollup_of(policy: Policy | None = None) -> Rollup:
    return Rollup(ROLLUP, "test", policy or MAINNET.policy)


def config_of(
    committee: CommitteeInfo, index: int = 1, policy: Policy | None = None
) -> MemberConfig:
    return MemberConfig(
        committee=committee,
        index=index,
        rollups={ROLLUP: rollup_of(policy)},
        clock=CLOCK,
        max_slots_ahead=MAINNET.max_slots_ahead,
        signing_window_ms=WINDOW_MS,
        max_clock_skew_ms=SKEW_MS,
    )


def after_close(slot: int = SLOT) -> int:
    """An instant just after ``slot`` closed (a member may sign)."""
    return compute_deadline_ms(CLOCK, slot) + 10


def key(i: int) -> SearcherKey:
    return SearcherKey.from_seed(i)


def raw_tx(k: SearcherKey, *, nonce: int | None = None, gas: int = 60_000, tip_gwei: int = 2,
           access: list[str] | None = None) -> bytes:
    tx: dict[str, object] = {
        "type": 2, "chainId": ROLLUP, "nonce": next(_nonces) if nonce is None else nonce,
        "maxPriorityFeePerGas": tip_gwei * GWEI, "maxFeePerGas": 100 * GWEI, "gas": gas,
        "to": "0x" + "42" * 20, "value": 0, "data": b"",
    }
    if access:
        tx["accessList"] = [{"address": "0x" + "aa" * 20, "storageKeys": access}]
    return k.sign_tx(**tx)


def signed_bid(
    k: SearcherKey,
    slot: int = SLOT,
    *,
    bid_wei: int | None = 10**15,
    gas: int = 60_000,
    uuid: str | None = None,
    txs: list[bytes] | None = None,
    access: list[str] | None = None,
    policy: Policy | None = None,
    offset_ms: int = 5,
) -> Bid:
    """A bid as the engine accepts it: signed request, ``compute_bid`` at the slot's start."""
    raws = txs or [raw_tx(k, gas=gas, access=access)]
    params = bundle_params(raws, slot, bid_wei=bid_wei, replacement_uuid=uuid)
    body = k.request("eth_sendBundle", [params])
    return compute_bid(
        params,
        searcher=k.address,
        evidence=Evidence(body, k.sign_body(body)),
        rollups={ROLLUP: rollup_of(policy)},
        clock=CLOCK,
        now_ms=compute_slot_start_ms(CLOCK, slot) + offset_ms,
        max_slots_ahead=MAINNET.max_slots_ahead,
    )


def signed_cancel(k: SearcherKey, uuid: str, slot: int = SLOT) -> Cancel:
    params = {"replacementUuid": uuid}
    body = k.request("eth_cancelBundle", [params])
    return compute_cancel(
        params, searcher=k.address, evidence=Evidence(body, k.sign_body(body)), rollup=ROLLUP,
        clock=CLOCK, now_ms=compute_slot_start_ms(CLOCK, slot) + 50,
        max_slots_ahead=MAINNET.max_slots_ahead,
    )


def public_tx(k: SearcherKey, slot: int = SLOT, *, gas: int = 21_000,
              policy: Policy | None = None) -> PublicTx:
    raw = raw_tx(k, gas=gas)
    return compute_public_tx(
        ["0x" + raw.hex()], rollups={ROLLUP: rollup_of(policy)},
        now_ms=compute_slot_start_ms(CLOCK, slot) + 7,
    )


def log_of(events: Sequence[Bid | Cancel | PublicTx], slot: int = SLOT) -> tuple[LoggedEvent, ...]:
    start = compute_slot_start_ms(CLOCK, slot)
    return tuple(LoggedEvent(f"{start + i}-0", ev) for i, ev in enumerate(events))


def result_of(
    log: tuple[LoggedEvent, ...],
    slot: int = SLOT,
    *,
    parent_hash: str = ZERO_HASH,
    carried: tuple[PendingTx, ...] = (),
    policy: Policy | None = None,
) -> SlotResult:
    return compute_slot_result(
        rollup_of(policy), slot, compute_deadline_ms(CLOCK, slot), parent_hash, log, carried
    )


def signing_root_of(committee: CommitteeInfo, *blocks: Block) -> bytes:
    """The slot signing root of a slot made of ``blocks`` (one per rollup, one slot)."""
    slot_root = compute_slot_root(compute_slot_leaves(blocks))
    return compute_slot_signing_root(committee.committee_id, blocks[0].slot, slot_root)


def certify(
    committee: CommitteeInfo, group_secret: int, block: Block, *others: Block
) -> ParentCertificate:
    """The certificate of ``block`` as if the committee had signed its slot (``block`` and the
    other rollups' ``others``)."""
    leaves = compute_slot_leaves([block, *others])
    signature = bls.sign(group_secret, signing_root_of(committee, block, *others))
    return compute_parent_certificate(block, compute_slot_proof(leaves, block.rollup), signature)


def slot_of(*parts: Proposal) -> SlotProposal:
    """The slot proposal made of ``parts`` (the first one's committee, slot and completion)."""
    first = parts[0]
    return compute_slot_proposal(
        first.committee_id, first.slot, list(parts), completion=first.completion
    )


def encode_part(*parts: Proposal) -> bytes:
    """The wire bytes of the slot made of ``parts`` (a one-rollup slot for one part)."""
    return encode_proposal(slot_of(*parts))


def proposal_of(
    committee: CommitteeInfo,
    log: tuple[LoggedEvent, ...],
    slot: int = SLOT,
    *,
    parent: ParentCertificate | None = None,
    carried: tuple[PendingTx, ...] = (),
    policy: Policy | None = None,
) -> Proposal:
    """The honest proposal for ``log`` (built by the real slot function)."""
    parent_hash = parent.header.block_hash if parent else ZERO_HASH
    result = result_of(log, slot, parent_hash=parent_hash, carried=carried, policy=policy)
    return Proposal(committee.committee_id, ROLLUP, slot, result.block, parent, carried, log)


def rehash(block: Block) -> Block:
    """``block`` with its hash recomputed from its (tampered) fields: a well-formed lie."""
    return dataclasses.replace(
        block, block_hash=compute_header_hash(block, compute_tx_hashes(block))
    )


def with_block(p: Proposal, block: Block) -> Proposal:
    return dataclasses.replace(p, block=rehash(block))


def combine_all(committee: CommitteeInfo, shares: list[threshold.KeyShare], root: bytes) -> bytes:
    partials = {s.index: threshold.partial_sign(s, root) for s in shares[: committee.t]}
    return threshold.combine(partials, committee.t, committee.n)


class SignsNothing:
    """An engine's signer that prepares and follows like ``coordinator`` but never proposes a
    block it built: an engine that stores a result and dies before proposing it (or a test that
    sends proposals by hand)."""

    def __init__(self, coordinator) -> None:  # noqa: ANN001
        self.coordinator = coordinator

    async def load_head(self, rollup: int):  # noqa: ANN201
        return await self.coordinator.load_head(rollup)

    async def prepare(self, slot: int) -> None:
        await self.coordinator.prepare(slot)

    async def sign(self, results, entries, lease=None) -> None:  # noqa: ANN001
        return None

    async def follow(self, results) -> None:  # noqa: ANN001
        await self.coordinator.follow(results)
