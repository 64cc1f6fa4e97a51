"""The public pool's bounds: which public txs it admits and which it keeps waiting.

Rules (docs/decisions.md, "The public pool's bounds"), all from the rollup's ``Policy``:

- *admissible*: effective priority fee per gas at least ``min_public_fee_per_gas_wei``, and gas
  at most ``min(max_public_tx_gas, gas_limit)``. Checked at intake (``compute_public_tx``) and
  again when a slot closes, so a tx the rules refuse never waits, however it reached the log.
- *kept*: after a block, a tx stays pending only while its age (slot - arrival slot) is at most
  ``max_public_tx_age_slots``; then at most ``max_public_txs_per_sender`` per sender and
  ``max_pending_public_txs`` in all are kept, best fee per gas first, then oldest (the cheapest,
  then newest, are evicted). Deterministic: every member keeps the same txs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from auction.errors import FeeTooLow, TxGasTooHigh
from auction.presets import Policy
from auction.transactions import compute_priority_fee_wei
from auction.types import PendingTx, Tx


def compute_max_public_tx_gas(policy: Policy) -> int:
    """The most gas one public tx may claim: the policy's cap, never more than a block."""
    return min(policy.max_public_tx_gas, policy.gas_limit)


def check_public_tx_admissible(policy: Policy, tx: Tx) -> None:
    """Raise ``FeeTooLow`` / ``TxGasTooHigh`` for a tx the public pool must not take."""
    # Verify it pays at least the floor per gas (a zero-fee tx pays no one for its place)
    fee = compute_priority_fee_wei(tx)
    floor = policy.min_public_fee_per_gas_wei
    if fee < floor:
        raise FeeTooLow(
            f"priority fee of {fee} wei per gas is below the public pool's floor of {floor}",
            fee_per_gas_wei=str(fee),
            min_fee_per_gas_wei=str(floor),
        )
    # Verify its gas is sane: one public tx may not claim more than the cap (or a block)
    cap = compute_max_public_tx_gas(policy)
    if tx.gas_limit > cap:
        raise TxGasTooHigh(
            f"transaction gas {tx.gas_limit} exceeds the {cap} a public tx may use",
            gas=str(tx.gas_limit),
            max_gas=cap,
        )


def is_public_tx_admissible(policy: Policy, tx: Tx) -> bool:
    return (
        compute_priority_fee_wei(tx) >= policy.min_public_fee_per_gas_wei
        and tx.gas_limit <= compute_max_public_tx_gas(policy)
    )


def is_expired(policy: Policy, slot: int, p: PendingTx) -> bool:
    """Whether ``p`` is too old to be in ``slot``'s pool."""
    return slot - p.arrival_slot > policy.max_public_tx_age_slots


def compute_kept(policy: Policy, waiting: Sequence[PendingTx]) -> tuple[PendingTx, ...]:
    """The txs of ``waiting`` (in first-come first-served order) the pool keeps, in that order:
    best fee per gas first, then oldest, at most ``max_public_txs_per_sender`` per sender and
    ``max_pending_public_txs`` in all. O(n log n)."""
    if (
        len(waiting) <= policy.max_public_txs_per_sender
        and len(waiting) <= policy.max_pending_public_txs
    ):
        return tuple(waiting)
    order = sorted(range(len(waiting)), key=lambda i: (-compute_priority_fee_wei(waiting[i].tx), i))
    per_sender: Counter[str] = Counter()
    kept: set[int] = set()
    for i in order:
        if len(kept) == policy.max_pending_public_txs:
            break
        sender = waiting[i].tx.sender
        if per_sender[sender] < policy.max_public_txs_per_sender:
            per_sender[sender] += 1
            kept.add(i)
    return tuple(p for i, p in enumerate(waiting) if i in kept)
