"""Closing a slot: from its intake log (and the public txs carried over) to the block and the
outcome of every bid.

Order of the block: winning bundles (block order of ``ordering.problem``), then the public lane
first-come first-served. Fairness rules are hard constraints:
- ``reserved_public_gas`` is kept from bundles for the public lane;
- public txs that waited ``inclusion_after_slots`` slots or more are *due*: they are in the block
  (the lane grows past its reserve if they need it, and no bundle that conflicts with one may win);
- a bundle carrying a protected tx anywhere but first is rejected (no front-runs or sandwiches);
- ``max_gas_share_per_searcher`` caps each searcher's bundle gas;
- the public pool is bounded (``auction.pool``): txs below the fee floor, over the gas cap or
  too old are dropped, and what stays pending is capped per sender and in all (cheapest evicted).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from auction import constants as C
from auction.book import Book, compute_book
from auction.bundles import compute_bid_id
from auction.encoding import compute_bid_set_root, compute_block_hash, compute_pending_root
from auction.pool import compute_kept, is_expired, is_public_tx_admissible
from auction.presets import Rollup
from auction.types import (
    Bid,
    BidOutcome,
    Block,
    LoggedEvent,
    PendingTx,
    PublicTx,
    SlotResult,
    Tx,
    WinningBundle,
)
from ordering import packer
from ordering.problem import Item, Packing, PackingInput, compute_searcher_gas_cap

CODE_PROTECTED = "protected_tx_not_first"


def compute_tx_keys(t: Tx) -> tuple[str, ...]:
    """Keys two transactions (or bundles holding them) must not share."""
    return ("t" + t.hash, f"n{t.sender}:{t.nonce}", *("w" + k for k in t.access_keys))


def compute_conflict_keys(bid: Bid) -> tuple[str, ...]:
    """Keys two bundles must not share: tx hash, (sender, nonce), accessed storage location."""
    keys: list[str] = []
    for t in bid.txs:
        keys.extend(compute_tx_keys(t))
    return tuple(dict.fromkeys(keys))


def compute_packing_input(
    rollup: Rollup,
    bids: Sequence[Bid],
    *,
    fair: bool = True,
    lane_gas: int | None = None,
) -> PackingInput:
    """The packing instance of a slot's eligible bids under the rollup's policy."""
    policy = rollup.policy
    reserve = policy.reserved_public_gas if lane_gas is None else lane_gas
    gas_limit = policy.gas_limit - reserve if fair else policy.gas_limit
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
    if isinstance(ev, Bid):
        return ev.bid_id
    if isinstance(ev, PublicTx):
        return ev.tx.hash
    return compute_bid_id(ev.evidence)


def compute_pool(
    rollup: Rollup, slot: int, carried: Sequence[PendingTx], log: Sequence[LoggedEvent]
) -> list[PendingTx]:
    """The public txs this slot may include: those carried over, then its own arrivals, less
    any the pool's rules refuse (below the fee floor, over the gas cap, too old)."""
    policy = rollup.policy
    pool: list[PendingTx] = []
    seen: set[str] = set()
    arrivals = (
        PendingTx(e.event.tx, slot, e.seq, e.event.protected)
        for e in log
        if isinstance(e.event, PublicTx)
    )
    for p in itertools.chain(carried, arrivals):
        if p.tx.hash in seen:
            continue
        seen.add(p.tx.hash)
        # Intake checked these; a log or pool that reached us otherwise is held to them too.
        if is_public_tx_admissible(policy, p.tx) and not is_expired(policy, slot, p):
            pool.append(p)
    return pool


def is_protected_misplaced(bid: Bid, protected: set[str]) -> bool:
    return any(t.hash in protected for t in bid.txs[1:])


def compute_due(rollup: Rollup, slot: int, pool: Sequence[PendingTx]) -> list[PendingTx]:
    """The inclusion list: due txs that can all be in the block together, oldest first."""
    after = rollup.policy.inclusion_after_slots
    if after <= 0:
        return []
    due, keys, gas = [], set[str](), 0
    for p in pool:
        if slot - p.arrival_slot < after:
            continue
        k = set(compute_tx_keys(p.tx)[:2])  # hash and (sender, nonce); access lists don't bind txs
        # A due tx that cannot fit (gas) or is invalid beside an older due tx stays pending.
        if k & keys or gas + p.tx.gas_limit > rollup.policy.gas_limit:
            continue
        due.append(p)
        keys |= k
        gas += p.tx.gas_limit
    return due


def compute_pending(
    rollup: Rollup, slot: int, pool: Sequence[PendingTx], block_txs: Sequence[Tx]
) -> tuple[PendingTx, ...]:
    """What the pool leaves to the next slot, in first-come first-served order: the txs not in
    the block, not made invalid by a block tx with their (sender, nonce), not too old for the
    next slot, and within the pool's size and per-sender caps (cheapest, then newest, evicted)."""
    policy = rollup.policy
    in_block = {t.hash for t in block_txs}
    block_nonces = {f"n{t.sender}:{t.nonce}" for t in block_txs}
    waiting = [
        p
        for p in pool
        if p.tx.hash not in in_block
        and f"n{p.tx.sender}:{p.tx.nonce}" not in block_nonces
        and not is_expired(policy, slot + 1, p)
    ]
    return compute_kept(policy, waiting)


def compute_slot_result(
    rollup: Rollup,
    slot: int,
    deadline_ms: int,
    parent_hash: str,
    log: Sequence[LoggedEvent],
    carried: Sequence[PendingTx] = (),
    *,
    price_of_fairness: bool = True,
) -> SlotResult:
    """Run the slot's auction. Deterministic: same inputs, same result, bit for bit.

    ``price_of_fairness=False`` skips the second, unconstrained packing (then
    ``unconstrained_bids_wei`` is just the winning bids): the figure is for analysts and is not
    part of the block, so a committee member re-checking a block need not pay for it.
    """
    policy = rollup.policy
    book = compute_book(log)
    pool = compute_pool(rollup, slot, carried, log)
    due = compute_due(rollup, slot, pool)
    eligible, rejected = compute_eligible_bids(book, pool, due)
    # The bundles: packed under the lane's reserve (grown to the due txs' gas), then priced.
    lane_gas = max(policy.reserved_public_gas, sum(p.tx.gas_limit for p in due))
    inp = compute_packing_input(rollup, eligible, lane_gas=lane_gas)
    packing = packer.pack(inp, policy.time_budget_ms)
    unconstrained = packing.revenue_wei
    if price_of_fairness:
        unconstrained = compute_unconstrained_wei(rollup, book, rejected, packing, inp, eligible)
    payments = packer.compute_payments(inp, packing, policy.payment_rule)
    by_id = {b.bid_id: b for b in eligible}
    winners = [by_id[i] for i in packing.included]
    bundle_txs = [t for b in winners for t in b.txs]
    # The public lane, then what stays pending for the next slot.
    lane = compute_public_lane(pool, due, bundle_txs, policy.gas_limit - packing.gas_used)
    pending = compute_pending(rollup, slot, pool, [*bundle_txs, *lane])
    block = compute_block(rollup, slot, parent_hash, log, carried, winners, payments, lane, pending)
    return SlotResult(
        rollup=rollup.chain_id,
        slot=slot,
        deadline_ms=deadline_ms,
        block=block,
        outcomes=compute_outcomes(book, set(packing.included), payments, rejected),
        winning_bids_wei=packing.revenue_wei,
        upper_bound_wei=packing.upper_bound_wei,
        unconstrained_bids_wei=unconstrained,
        solver=packing.solver,
        pending=pending,
    )


def compute_eligible_bids(
    book: Book, pool: Sequence[PendingTx], due: Sequence[PendingTx]
) -> tuple[list[Bid], dict[str, str]]:
    """The live bids that may win, and those rejected with a code. A bundle carrying a protected
    tx after its first is rejected; one that conflicts with a due public tx cannot win (lost)."""
    protected = {p.tx.hash for p in pool if p.protected}
    due_keys = {k for p in due for k in compute_tx_keys(p.tx)[:2]}
    rejected: dict[str, str] = {}
    eligible: list[Bid] = []
    for entry in book.live:
        bid = entry.event
        assert isinstance(bid, Bid)
        if is_protected_misplaced(bid, protected):
            rejected[bid.bid_id] = CODE_PROTECTED
        elif due_keys.isdisjoint(compute_conflict_keys(bid)):
            eligible.append(bid)
    return eligible, rejected


def compute_unconstrained_wei(
    rollup: Rollup,
    book: Book,
    rejected: Mapping[str, str],
    packing: Packing,
    inp: PackingInput,
    eligible: Sequence[Bid],
) -> int:
    """The best block without the fairness rules (the price of fairness, for analysts)."""
    constrained = (
        inp.max_gas_per_searcher is not None or inp.gas_limit < rollup.policy.gas_limit
        or len(eligible) < len(book.live)
    )  # fmt: skip
    if not constrained:
        return packing.revenue_wei
    all_live = [e.event for e in book.live if e.event.bid_id not in rejected]  # type: ignore[union-attr]
    unconstrained = packer.pack(
        compute_packing_input(rollup, all_live, fair=False),  # type: ignore[arg-type]
        rollup.policy.time_budget_ms,
    ).revenue_wei
    return max(unconstrained, packing.revenue_wei)


def compute_public_lane(
    pool: Sequence[PendingTx], due: Sequence[PendingTx], bundle_txs: Sequence[Tx], room: int
) -> list[Tx]:
    """The public lane after the bundles: due txs first (room is reserved for them), then
    first-come first-served, each only if it fits and is not made invalid by a block tx."""
    used_keys = {k for t in bundle_txs for k in compute_tx_keys(t)[:2]}
    included_hashes = {t.hash for t in bundle_txs}
    lane: list[Tx] = []
    due_hashes = {p.tx.hash for p in due}
    for p in [*due, *(p for p in pool if p.tx.hash not in due_hashes)]:
        keys = compute_tx_keys(p.tx)[:2]
        if p.tx.hash in included_hashes or used_keys.intersection(keys):
            continue
        if p.tx.gas_limit > room:
            continue
        lane.append(p.tx)
        used_keys.update(keys)
        included_hashes.add(p.tx.hash)
        room -= p.tx.gas_limit
    return lane


def compute_block(
    rollup: Rollup,
    slot: int,
    parent_hash: str,
    log: Sequence[LoggedEvent],
    carried: Sequence[PendingTx],
    winners: Sequence[Bid],
    payments: Mapping[str, int],
    lane: Sequence[Tx],
    pending: Sequence[PendingTx],
) -> Block:
    """The block: the winning bundles in block order, then the lane, with its roots and hash."""
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
    txs = [*(t for b in winners for t in b.txs), *lane]
    fields = dict(
        rollup=rollup.chain_id,
        slot=slot,
        parent_hash=parent_hash,
        bid_set_root=compute_bid_set_root([compute_event_id(e) for e in log]),
        gas_used=sum(t.gas_limit for t in txs),
        revenue_wei=sum(payments.values()),
        bundles=bundles,
        public_tx_count=len(lane),
        carried_root=compute_pending_root(carried),
        pending_root=compute_pending_root(pending),
    )
    block_hash = compute_block_hash(tx_hashes=[t.hash for t in txs], **fields)
    return Block(txs=tuple(t.raw for t in txs), block_hash=block_hash, **fields)  # type: ignore[arg-type]


def compute_outcomes(
    book: Book, won: set[str], payments: Mapping[str, int], rejected: Mapping[str, str]
) -> tuple[BidOutcome, ...]:
    """What became of every distinct bid of the log, in log order."""
    outcomes = []
    for entry in book.bids:
        bid = entry.event
        assert isinstance(bid, Bid)
        if bid.bid_id in won:
            outcomes.append(BidOutcome(bid, C.OUTCOME_WON, payments[bid.bid_id], entry.seq))
        elif bid.bid_id in rejected:
            outcomes.append(BidOutcome(bid, C.OUTCOME_REJECTED, 0, entry.seq, rejected[bid.bid_id]))
        else:
            outcome = book.superseded.get(bid.bid_id, C.OUTCOME_LOST)
            outcomes.append(BidOutcome(bid, outcome, 0, entry.seq))
    return tuple(outcomes)
