"""A rollup's chain as one engine process sees it: the one object that owns that state.

``ChainState`` holds the head the next block is built on (the newest signed block with a
committee, else the newest result), the public pool that head left pending, the protected tx
hashes intake knows of, this process's view of the pool (its arrivals since the last close, for
the intake checks) and the newest slot this process has settled. The engine's close pipeline and
its signer move it forward (``closed``, ``set_head``); intake reads it (``protected``, ``pool``)
and notes arrivals (``arrived``). Every decision about what the pool keeps is the core's
(``auction/pool.py``, ``auction/results.py``); this is only the process's memory of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auction.encoding import ZERO_HASH
from auction.pool import PoolView
from auction.presets import Rollup
from auction.types import PendingTx, PublicTx, SlotResult


@dataclass
class ChainState:
    rollup: Rollup
    head: str = ZERO_HASH  # the block hash the next block's parent is
    pending: tuple[PendingTx, ...] = ()  # the public txs ``head`` left waiting
    closed_through: int = -1  # the newest slot this process closed or followed
    pool: PoolView = field(init=False)
    _arriving_protected: set[str] = field(default_factory=set)  # in open slots' logs
    # ``protected`` as last computed; None once pending or arrivals changed. Intake reads it for
    # every request, and rebuilding it from the pool cost more than the bid's other checks.
    _protected: frozenset[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.pool = PoolView(self.rollup.policy)

    @property
    def protected(self) -> frozenset[str]:
        """The protected txs intake knows of: waiting in the pool, or arriving (the close
        re-checks from the log and the pool, so a race only costs a later refusal). The same
        object until either changes."""
        if self._protected is None:
            self._protected = (
                frozenset(p.tx.hash for p in self.pending if p.protected)
                | self._arriving_protected
            )
        return self._protected

    def set_head(self, block_hash: str, pending: tuple[PendingTx, ...]) -> None:
        """Make ``block_hash`` the parent of the next block, with the pool it left pending.
        Arrivals since the last close stay in the pool's view (they are in an open slot)."""
        self.head = block_hash
        self.pending = pending
        self._protected = None
        self.pool.set_pending(pending, keep_arrivals=True)

    def start(self, block_hash: str, pending: tuple[PendingTx, ...], closed_through: int) -> None:
        """Where a (re)starting process takes up the chain."""
        self.head = block_hash
        self.pending = pending
        self._arriving_protected = set()
        self._protected = None
        self.pool.set_pending(pending, keep_arrivals=False)
        self.closed_through = closed_through

    def closed(self, result: SlotResult) -> bool:
        """Note that ``result``'s slot closed; False if it was already settled here. Its
        arrivals are in its log now, so they leave the pool's view of what is arriving."""
        if result.slot <= self.closed_through:
            return False
        self.closed_through = result.slot
        self.pool.clear_arrivals()
        self._arriving_protected = set()
        self._protected = None
        return True

    def skip(self, slot: int) -> None:
        """A slot that closed without a result here (failed, or settled by another process)."""
        self.closed_through = max(self.closed_through, slot)

    def arrived(self, ptx: PublicTx) -> None:
        """A public tx was logged in an open slot."""
        self.pool.add(ptx.tx)  # over the pool's size, the cheapest leaves the view
        if ptx.protected:
            self._arriving_protected.add(ptx.tx.hash)
            self._protected = None
