"""Closing a slot: from its intake log to the block and the outcome of every bid."""

from __future__ import annotations

from collections.abc import Sequence

from auction import constants as C
from auction.book import compute_book
from auction.bundles import compute_bid_id
from auction.encoding import compute_bid_set_root, compute_block_hash
from auction.presets import Rollup
from auction.types import Bid, BidOutcome, Block, LoggedEvent, SlotResult, WinningBundle
from ordering import packer
from ordering.problem import Item, PackingInput, compute_searcher_gas_cap


def compute_conflict_keys(bid: Bid) -> tuple[str, ...]:
    """Keys two bundles must not share: tx hash, (sender, nonce), accessed storage location."""
    keys: list[str] = []
    for t in bid.txs:
        keys.append("t" + t.hash)
        keys.append(f"n{t.sender}:{t.nonce}")
        keys.extend("w" + k for k in t.access_keys)
    return tuple(dict.fromkeys(keys))


def compute_packing_input(
    rollup: Rollup, bids: Sequence[Bid], *, fair: bool = True
) -> PackingInput:
    """The packing instance of a slot's live bids under the rollup's policy."""
    policy = rollup.policy
    gas_limit = policy.gas_limit - policy.reserved_public_gas
    items = tuple(
        Item(
            id=b.bid_id,
            searcher=b.searcher,
            bid_wei=b.bid_wei,
            gas=b.gas,
            keys=compute_conflict_keys(b),
        )
        for b in bids
    )
    cap = compute_searcher_gas_cap(gas_limit, policy.max_gas_share_per_searcher) if fair else None
    return PackingInput(gas_limit=gas_limit, items=items, max_gas_per_searcher=cap)


def compute_event_id(entry: LoggedEvent) -> str:
    ev = entry.event
    return ev.bid_id if isinstance(ev, Bid) else compute_bid_id(ev.evidence)


def compute_slot_result(
    rollup: Rollup,
    slot: int,
    deadline_ms: int,
    parent_hash: str,
    log: Sequence[LoggedEvent],
) -> SlotResult:
    """Run the slot's auction on its log. Deterministic: same inputs, same result, bit for bit."""
    policy = rollup.policy
    book = compute_book(log)
    live = [e.event for e in book.live]
    assert all(isinstance(b, Bid) for b in live)
    inp = compute_packing_input(rollup, live)  # type: ignore[arg-type]
    packing = packer.pack(inp, policy.time_budget_ms)
    if inp.max_gas_per_searcher is not None:
        unconstrained = packer.pack(
            compute_packing_input(rollup, live, fair=False),  # type: ignore[arg-type]
            policy.time_budget_ms,
        ).revenue_wei
    else:
        unconstrained = packing.revenue_wei
    payments = packer.compute_payments(inp, packing, policy.payment_rule)
    by_id: dict[str, Bid] = {b.bid_id: b for b in live}  # type: ignore[union-attr]
    winners = [by_id[i] for i in packing.included]
    bundles = tuple(
        WinningBundle(
            bid_id=b.bid_id,
            bundle_hash=b.bundle_hash,
            searcher=b.searcher,
            bid_wei=b.bid_wei,
            payment_wei=payments[b.bid_id],
            gas=b.gas,
        )
        for b in winners
    )
    txs = tuple(t for b in winners for t in b.txs)
    revenue = sum(payments.values())
    bid_set_root = compute_bid_set_root([compute_event_id(e) for e in log])
    block_hash = compute_block_hash(
        rollup=rollup.chain_id,
        slot=slot,
        parent_hash=parent_hash,
        bid_set_root=bid_set_root,
        gas_used=packing.gas_used,
        revenue_wei=revenue,
        bundles=bundles,
        tx_hashes=[t.hash for t in txs],
    )
    block = Block(
        rollup=rollup.chain_id,
        slot=slot,
        parent_hash=parent_hash,
        bundles=bundles,
        txs=tuple(t.raw for t in txs),
        gas_used=packing.gas_used,
        revenue_wei=revenue,
        bid_set_root=bid_set_root,
        block_hash=block_hash,
    )
    won = set(packing.included)
    outcomes = []
    for entry in book.bids:
        bid = entry.event
        assert isinstance(bid, Bid)
        if bid.bid_id in won:
            outcomes.append(BidOutcome(bid, C.OUTCOME_WON, payments[bid.bid_id], entry.seq))
        else:
            outcome = book.superseded.get(bid.bid_id, C.OUTCOME_LOST)
            outcomes.append(BidOutcome(bid, outcome, 0, entry.seq))
    return SlotResult(
        rollup=rollup.chain_id,
        slot=slot,
        deadline_ms=deadline_ms,
        block=block,
        outcomes=tuple(outcomes),
        winning_bids_wei=packing.revenue_wei,
        upper_bound_wei=packing.upper_bound_wei,
        unconstrained_bids_wei=unconstrained,
        solver=packing.solver,
    )
