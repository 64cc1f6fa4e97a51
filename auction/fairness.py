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
from collections.abc import Mapping, Sequence

from auction.book import compute_book
from auction.errors import FairnessViolation, ForcedTxMissing
from auction.hashing import keccak256, to_hex
from auction.presets import Rollup
from auction.results import (
    compute_attribution,
    compute_conflict_keys,
    compute_due,
    compute_pool,
    compute_tx_binding_keys,
    is_protected_misplaced,
)
from auction.types import Bid, Block, LoggedEvent, PendingTx, WinningBundle
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
    # Verify the inclusion list: every due public tx is in the block (the block's txs hashed
    # only when a tx is due).
    in_block = {to_hex(keccak256(raw)) for raw in block.txs} if due else set()
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
        for k in compute_tx_binding_keys(p.tx):
            owner[k] = p.tx.hash
    for b in winners:
        keys = compute_conflict_keys(b)
        for k in keys:
            if k in owner:
                raise FairnessViolation(
                    f"bundle {b.bid_id} conflicts with {owner[k]}", rule="conflict", key=k
                )
        for k in keys:
            owner[k] = b.bid_id
    # Verify protected txs only open bundles (no front-runs, no sandwiches).
    protected = {p.tx.hash for p in pool if p.protected}
    for b in winners:
        if is_protected_misplaced(b, protected):
            raise FairnessViolation(
                f"bundle {b.bid_id} carries a protected tx after its first", rule="protected_tx"
            )


# --- atomicity of cross-rollup bundles, over the blocks of a slot ------------------------------


class _BlockIndex:
    """A block's entries by bid id and the positions of its bundle txs (the public lane left
    out), built once per block so that checking every entry is linear, not quadratic."""

    def __init__(self, block: Block) -> None:
        self.entries: dict[str, WinningBundle] = {}
        for b in block.bundles:
            self.entries.setdefault(b.bid_id, b)  # the first entry of an id, as a scan finds
        n = len(block.txs) - block.public_tx_count
        self.hashes = [to_hex(keccak256(raw)) for raw in block.txs[:n]]
        self.position: dict[str, int] = {}
        for i, h in enumerate(self.hashes):
            self.position.setdefault(h, i)

    def has_run(self, run: Sequence[str]) -> bool:
        """Whether ``run`` (non-empty) is a contiguous run of the bundle txs, in order (a tx
        hash is in a block once, so the run's first hash fixes where it must be)."""
        i = self.position.get(run[0]) if run else None
        return i is not None and self.hashes[i : i + len(run)] == list(run)


def check_cross_entries(
    block: Block, blocks: Mapping[int, Block], indexes: dict[int, _BlockIndex] | None = None
) -> list[int]:
    """Check every cross-rollup entry of ``block`` against the blocks of the other rollups it
    names (``blocks``, by rollup, of the same slot); return the rollups some entry names whose
    block is not in ``blocks`` (those legs could not be checked).

    An entry is atomic when it names two or more rollups, ascending, its own among them; its own
    leg's txs are in ``block``, in order, as one run; and every other named rollup's block has an
    entry with the same bid id, bundle hash, searcher, bid and legs, with that leg's txs in
    order. When every named block is given, the entries' payments must be the split of their sum
    by leg gas (``auction.results.compute_attribution``) and their sum at most the bid. Raises
    ``FairnessViolation`` (rule ``atomicity``) on the first entry that breaks this. Pure; one
    keccak per bundle tx of each block looked at (``indexes``, by rollup, keeps them for the
    next call on the same slot)."""
    built = indexes if indexes is not None else {}

    def index_of(rollup: int) -> _BlockIndex:
        if rollup not in built:
            built[rollup] = _BlockIndex(blocks[rollup] if rollup != block.rollup else block)
        return built[rollup]

    missing: set[int] = set()
    for w in block.bundles:
        if not w.legs:
            continue
        what = {"rule": "atomicity", "bid_id": w.bid_id}
        rollups = w.rollups
        # Verify the entry names its rollups properly, its own included.
        if len(rollups) < 2 or list(rollups) != sorted(set(rollups)) or block.rollup not in rollups:
            raise FairnessViolation(
                f"cross-rollup entry {w.bid_id} names its rollups wrongly", **what
            )
        entries = {block.rollup: w}
        for leg in w.legs:
            if leg.rollup != block.rollup and leg.rollup not in blocks:
                missing.add(leg.rollup)
                continue
            other = entries.get(leg.rollup) or index_of(leg.rollup).entries.get(w.bid_id)
            # Verify the bundle is in that rollup's block, as the same bundle.
            if other is None or _identity(other) != _identity(w):
                raise FairnessViolation(
                    f"cross-rollup bundle {w.bid_id} is not in rollup {leg.rollup}'s block "
                    "as the same bundle", rollup=leg.rollup, **what,
                )
            entries[leg.rollup] = other
            # Verify its leg's txs are in that block, in order.
            if not index_of(leg.rollup).has_run(leg.tx_hashes):
                raise FairnessViolation(
                    f"cross-rollup bundle {w.bid_id}'s leg is not in rollup {leg.rollup}'s "
                    "block in order", rollup=leg.rollup, **what,
                )
        if len(entries) == len(rollups):
            _check_attribution(w, entries)
    return sorted(missing)


def _identity(w: WinningBundle) -> tuple[object, ...]:
    return (w.bid_id, w.bundle_hash, w.searcher, w.bid_wei, w.legs)


def _check_attribution(w: WinningBundle, entries: Mapping[int, WinningBundle]) -> None:
    """The payment's split over the blocks is the one rule's (by leg gas, remainder to the lowest
    rollup) and the whole payment is at most the bid."""
    total = sum(e.payment_wei for e in entries.values())
    expected = compute_attribution(total, [(r, e.gas) for r, e in entries.items()])
    if total > w.bid_wei or any(e.payment_wei != expected[r] for r, e in entries.items()):
        raise FairnessViolation(
            f"cross-rollup bundle {w.bid_id}'s payment is not split over its rollups by gas",
            rule="atomicity", bid_id=w.bid_id,
        )


def check_slot_atomicity(blocks: Mapping[int, Block]) -> None:
    """Raise ``FairnessViolation`` (rule ``atomicity``) unless every cross-rollup entry of every
    block of the slot (``blocks``, by rollup: all of them) is in the block of every rollup it
    names, as the same bundle, with each leg's txs in order, and its payment split by gas."""
    indexes: dict[int, _BlockIndex] = {}  # each block indexed (and its txs hashed) once
    for block in blocks.values():
        missing = check_cross_entries(block, blocks, indexes)
        if missing:
            raise FairnessViolation(
                f"a cross-rollup entry of rollup {block.rollup}'s block names rollup "
                f"{missing[0]}, which has no block in the slot",
                rule="atomicity", rollup=missing[0],
            )
