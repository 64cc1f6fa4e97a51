"""The fairness rules as a checker: what every block must keep, whatever packed it.

``compute_slot_result`` builds blocks that keep these rules by construction; this module checks
a block against them from the outside, as committee members do before they sign (defence in
depth: a packer bug must not get signed) and as the core's property tests do after every
randomized step (the invariant checker, in the manner of sortedcontainers' ``_check``).

Rules (auction/results.py): due public txs (the inclusion list) are in the block; bundles leave
the public lane's reserve (grown to the due txs' gas); each searcher stays under its gas cap; no
two winning bundles conflict, and none conflicts with a due tx; a protected tx only opens a
bundle; every winner is a live bid of the log. Pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from auction.book import compute_book
from auction.errors import FairnessViolation, ForcedTxMissing
from auction.hashing import keccak256, to_hex
from auction.presets import Rollup
from auction.results import (
    compute_conflict_keys,
    compute_due,
    compute_pool,
    compute_tx_keys,
    is_protected_misplaced,
)
from auction.types import Bid, Block, LoggedEvent, PendingTx
from ordering.problem import compute_searcher_gas_cap


def check_block_fairness(
    rollup: Rollup,
    slot: int,
    carried: Sequence[PendingTx],
    log: Sequence[LoggedEvent],
    block: Block,
) -> None:
    """Raise ``FairnessViolation`` unless ``block`` (for ``slot``, from ``log`` and the
    ``carried`` pool) keeps every fairness rule of ``rollup``'s policy.

    Rules (auction/results.py): due public txs (the inclusion list) are in the block; bundles
    leave the public lane's reserve (grown to the due txs' gas); each searcher stays under its gas
    cap; no two winning bundles conflict, and none conflicts with a due tx; a protected tx only
    opens a bundle.
    """
    policy = rollup.policy
    pool = compute_pool(rollup, slot, carried, log)
    due = compute_due(rollup, slot, pool)
    # Verify the inclusion list: every due public tx is in the block.
    in_block = {to_hex(keccak256(raw)) for raw in block.txs}
    missing = [p.tx.hash for p in due if p.tx.hash not in in_block]
    if missing:
        raise ForcedTxMissing(
            f"{len(missing)} due public tx(s) missing from the block", txs=missing[:16]
        )
    live = {e.event.bid_id: e.event for e in compute_book(log).live
            if isinstance(e.event, Bid)}
    winners: list[Bid] = []
    for w in block.bundles:
        bid = live.get(w.bid_id)
        if bid is None:
            raise FairnessViolation("a winning bundle is not a live bid", rule="live_bid")
        winners.append(bid)
    # Verify the public lane's reserve (grown to the due txs' gas) is kept from bundles.
    lane_gas = max(policy.reserved_public_gas, sum(p.tx.gas_limit for p in due))
    bundle_gas_limit = policy.gas_limit - lane_gas
    bundle_gas = sum(b.gas for b in winners)
    if bundle_gas > bundle_gas_limit:
        raise FairnessViolation(
            f"bundles use {bundle_gas} gas; the public lane leaves them {bundle_gas_limit}",
            rule="public_lane_reserve",
        )
    # Verify each searcher's gas cap.
    cap = compute_searcher_gas_cap(bundle_gas_limit, policy.max_gas_share_per_searcher)
    if cap is not None:
        per: dict[str, int] = defaultdict(int)
        for b in winners:
            per[b.searcher] += b.gas
        over = sorted(s for s, g in per.items() if g > cap)
        if over:
            raise FairnessViolation(
                f"searcher {over[0]} uses {per[over[0]]} gas; the cap is {cap}",
                rule="searcher_cap",
            )
    # Verify no bundle conflicts with another or with a due public tx.
    owner: dict[str, str] = {}
    for p in due:
        for k in compute_tx_keys(p.tx)[:2]:
            owner[k] = p.tx.hash
    for b in winners:
        for k in compute_conflict_keys(b):
            if k in owner:
                raise FairnessViolation(
                    f"bundle {b.bid_id} conflicts with {owner[k]}", rule="conflict", key=k
                )
        for k in compute_conflict_keys(b):
            owner[k] = b.bid_id
    # Verify protected txs only open bundles (no front-runs, no sandwiches).
    protected = {p.tx.hash for p in pool if p.protected}
    for b in winners:
        if is_protected_misplaced(b, protected):
            raise FairnessViolation(
                f"bundle {b.bid_id} carries a protected tx after its first", rule="protected_tx"
            )
