"""The store interface every engine component talks to, and its contract.

Contract (tests/stores/test_contract.py runs it against every implementation):
- ``append`` returns only after the event is durable in the store; the returned ``seq`` orders
  the slot's log. It raises ``SlotClosed`` once ``close_slot`` ran for that slot, and
  ``SearcherLimitExceeded`` when the searcher's bundles or bytes for the slot would pass the limits
  (the check and the append are one atomic step). Re-appending an already logged bid id is
  idempotent: it returns the first seq and changes nothing.
- ``close_slot`` atomically stops intake for the slot and returns its whole log, in order.
  Calling it again returns the same log.
- Results are written once per (rollup, slot) and never expire.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from auction.types import Bid, Cancel, LoggedEvent, PublicTx, SlotResult


@dataclass(frozen=True, slots=True)
class SearcherLimits:
    max_bundles: int
    max_bytes: int


class Store(ABC):
    name: str = "store"

    @abstractmethod
    async def append_bid(self, bid: Bid, limits: SearcherLimits) -> str:
        """Log a bid for its (rollup, slot); return its seq."""

    @abstractmethod
    async def append_public_tx(self, ptx: PublicTx, slot: int) -> str:
        """Log a public tx in the slot it arrived in (once per tx hash); return its seq."""

    @abstractmethod
    async def append_cancel(self, cancel: Cancel, slots: list[int]) -> list[int]:
        """Log a cancel into each still-open slot of ``slots``; return the slots it went into."""

    @abstractmethod
    async def close_slot(self, rollup: int, slot: int) -> list[LoggedEvent]:
        """Stop intake for the slot and return its log."""

    @abstractmethod
    async def read_log(self, rollup: int, slot: int) -> list[LoggedEvent]:
        """The slot's log so far (for replay and audits; never served before close)."""

    @abstractmethod
    async def find_bid_seq(self, rollup: int, slot: int, key: str) -> str | None:
        """Seq of a logged bid by bid id or by ``<searcher>:<bundle_hash>``."""

    @abstractmethod
    async def save_result(self, result: SlotResult) -> bool:
        """Store a slot's result; False (and no change) if one is already stored."""

    @abstractmethod
    async def get_result(self, rollup: int, slot: int) -> SlotResult | None: ...

    @abstractmethod
    async def latest_result(self, rollup: int) -> SlotResult | None: ...

    @abstractmethod
    async def list_result_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None, limit: int
    ) -> list[int]:
        """Slots with a stored result in [from_slot, to_slot], newest first."""

    @abstractmethod
    async def ping(self) -> bool: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
