"""The public pool's bounds: which public txs it admits and which it keeps waiting.

Rules (docs/decisions.md, "The public pool's bounds"), all from the rollup's ``Policy``:

- *admissible*: effective priority fee per gas at least ``min_public_fee_per_gas_wei``, and gas
  at least ``MIN_TX_GAS`` and at most ``min(max_public_tx_gas, gas_limit)``. Checked at intake
  (``compute_public_tx``) and again when a slot closes, so a tx the rules refuse never waits,
  however it reached the log.
- *kept*: after a block, a tx stays pending only while its age (slot - arrival slot) is at most
  ``max_public_tx_age_slots``; then at most ``max_public_txs_per_sender`` per sender and
  ``max_pending_public_txs`` in all are kept, best fee per gas first, then oldest (the cheapest,
  then newest, are evicted). Deterministic: every member keeps the same txs.
- *intake* (``PoolView``): a sender over its cap is refused; a full pool refuses a tx unless it
  pays more per gas than the cheapest waiting one, which it then displaces; one slot logs at most
  ``compute_max_arrivals_per_slot`` public txs.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence

from auction import constants as C
from auction.errors import FeeTooLow, PublicPoolFull, SenderLimitExceeded, TxGasTooHigh
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


def compute_max_arrivals_per_slot(policy: Policy) -> int:
    """How many public txs one engine logs in a slot: a full pool's worth, and as many again
    that displace cheaper ones (so displacing cannot grow a slot's log without bound)."""
    return 2 * policy.max_pending_public_txs


def is_public_tx_admissible(policy: Policy, tx: Tx) -> bool:
    return (
        compute_priority_fee_wei(tx) >= policy.min_public_fee_per_gas_wei
        and C.MIN_TX_GAS <= tx.gas_limit <= compute_max_public_tx_gas(policy)
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


class PoolView:
    """One engine's intake view of a rollup's public pool: the txs the last block it knows left
    pending, and the arrivals it logged since. It decides admission at intake; the close
    (``compute_kept``) decides for real, so a view that a race or another engine makes
    inexact costs at most one refusal or one admission that the close undoes.

    Entries are ordered as the close evicts: cheapest fee per gas first, then newest.
    """

    __slots__ = ("policy", "logged", "_entries", "_senders", "_heap", "_next")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.logged = 0  # arrivals logged since the last close (compute_max_arrivals_per_slot)
        # hash -> (fee per gas, order, sender, arrived since the last close)
        self._entries: dict[str, tuple[int, int, str, bool]] = {}
        self._senders: Counter[str] = Counter()
        self._heap: list[tuple[int, int, str]] = []  # (fee, -order, hash), stale entries skipped
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries)

    def count_sender(self, sender: str) -> int:
        return self._senders[sender]

    def set_pending(self, pending: Iterable[PendingTx], *, keep_arrivals: bool = False) -> None:
        """Start from a block's pending pool; arrivals since its close stay when ``keep_arrivals``
        (a signed head adopted while the next slot is open), else they are forgotten."""
        entries = {h: e for h, e in self._entries.items() if e[3]} if keep_arrivals else {}
        pending = list(pending)
        for i, p in enumerate(pending):  # older than every arrival: negative orders
            entries[p.tx.hash] = (
                compute_priority_fee_wei(p.tx), i - len(pending), p.tx.sender, False
            )
        if not keep_arrivals:
            self.logged = 0
        self._reset(entries)

    def clear_arrivals(self) -> None:
        """A slot closed: its arrivals are now the next block's business (pending or not)."""
        self.logged = 0
        self._reset({h: e for h, e in self._entries.items() if not e[3]})

    def check(self, tx: Tx) -> bool:
        """Whether ``tx`` should be logged: False when it already waits here; raises
        ``SenderLimitExceeded`` or ``PublicPoolFull`` when the pool refuses it."""
        if tx.hash in self._entries:
            return False
        policy = self.policy
        # Verify the sender's cap over pending and arriving txs
        if self._senders[tx.sender] >= policy.max_public_txs_per_sender:
            raise SenderLimitExceeded(
                f"sender {tx.sender} already has {policy.max_public_txs_per_sender} public txs "
                "waiting",
                limit=policy.max_public_txs_per_sender,
            )
        # Verify this slot's log has room (it bounds what one close, and a proposal, carries)
        if self.logged >= compute_max_arrivals_per_slot(policy):
            raise PublicPoolFull(
                f"this slot already logged {self.logged} public txs; try again after the block",
                limit=compute_max_arrivals_per_slot(policy),
            )
        # Verify the pool has room, or the tx pays more per gas than the cheapest waiting one
        if len(self._entries) >= policy.max_pending_public_txs:
            cheapest = self._cheapest()
            if compute_priority_fee_wei(tx) <= cheapest:
                raise PublicPoolFull(
                    f"{policy.max_pending_public_txs} public txs are waiting; pay more than "
                    f"{cheapest} wei per gas to displace the cheapest",
                    limit=policy.max_pending_public_txs,
                    min_fee_per_gas_wei=str(cheapest + 1),
                )
        return True

    def add(self, tx: Tx) -> None:
        """Record a logged arrival; over the pool's size the cheapest (then newest) leave."""
        if tx.hash in self._entries:
            return
        fee = compute_priority_fee_wei(tx)
        self._entries[tx.hash] = (fee, self._next, tx.sender, True)
        self._senders[tx.sender] += 1
        heapq.heappush(self._heap, (fee, -self._next, tx.hash))
        self._next += 1
        self.logged += 1
        while len(self._entries) > self.policy.max_pending_public_txs:
            self._evict_cheapest()

    def discard(self, tx_hash: str) -> None:
        """Forget a tx (its log write failed)."""
        entry = self._entries.pop(tx_hash, None)
        if entry is not None:
            self._senders[entry[2]] -= 1

    def _reset(self, entries: dict[str, tuple[int, int, str, bool]]) -> None:
        self._entries = entries
        self._senders = Counter(e[2] for e in entries.values())
        self._heap = [(e[0], -e[1], h) for h, e in entries.items()]
        heapq.heapify(self._heap)

    def _top(self) -> tuple[int, int, str]:
        while True:
            fee, neg_order, h = self._heap[0]
            entry = self._entries.get(h)
            if entry is not None and entry[1] == -neg_order:
                return fee, neg_order, h
            heapq.heappop(self._heap)  # stale: evicted or discarded since

    def _cheapest(self) -> int:
        return self._top()[0]

    def _evict_cheapest(self) -> None:
        _, _, h = self._top()
        heapq.heappop(self._heap)
        self.discard(h)
