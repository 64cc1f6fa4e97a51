"""What a member keeps for accountability: the operator's endorsements of the proposals it was
sent, the operator-equivocation evidence they add up to, and the event lists of the blocks it
signed (docs/accountability.md).

* Endorsements: the first valid endorsement per slot. A second one for the same (committee,
  slot) with another slot root is operator equivocation: the member builds the evidence
  document (``committee.evidence.compute_operator_equivocation_evidence``) and keeps it.
* Event lists: per (rollup, slot) the member signed, the block hash, its bid-set root and the
  ids of the log's events in log order (their Merkle root is that bid-set root), so a searcher
  can build censorship evidence without asking the engine it accuses.

Kept in memory for the newest ``kept_slots`` slots (a restart forgets them: the protection
store is what must survive). Thread-safe. No I/O.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from committee.endorsement import Endorsement

DEFAULT_KEPT_SLOTS: Final = 256
MAX_KEPT_EVIDENCE: Final = 1024


@dataclass(frozen=True, slots=True)
class SignedLog:
    """The event ids of one rollup's block this member signed, in log order."""

    rollup: int
    slot: int
    block_hash: str
    bid_set_root: str
    event_ids: tuple[str, ...]


class MemberKeeping:
    """A member's endorsements, operator-equivocation evidence and signed event lists."""

    def __init__(self, kept_slots: int = DEFAULT_KEPT_SLOTS) -> None:
        if kept_slots < 1:
            raise ValueError("kept_slots must be at least 1")
        self.kept_slots = kept_slots
        self._endorsements: OrderedDict[int, Endorsement] = OrderedDict()
        self._logs: OrderedDict[tuple[int, int], SignedLog] = OrderedDict()
        self._evidence: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def keep_endorsement(self, endorsement: Endorsement) -> Endorsement | None:
        """Keep the slot's first endorsement; return the kept one if it signs another slot
        root (the operator equivocated), else None."""
        with self._lock:
            kept = self._endorsements.setdefault(endorsement.slot, endorsement)
            self._trim(self._endorsements, lambda slot: slot)
            return kept if kept.slot_root != endorsement.slot_root else None

    def get_endorsement(self, slot: int) -> Endorsement | None:
        with self._lock:
            return self._endorsements.get(slot)

    def keep_evidence(self, slot: int, document: dict[str, Any]) -> None:
        """Keep one operator-equivocation document per slot (the first pair found)."""
        with self._lock:
            self._evidence.setdefault(slot, document)
            while len(self._evidence) > MAX_KEPT_EVIDENCE:
                self._evidence.popitem(last=False)

    def list_evidence(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._evidence.values())

    def keep_log(self, log: SignedLog) -> None:
        with self._lock:
            self._logs[(log.rollup, log.slot)] = log
            self._trim(self._logs, lambda key: key[1])

    def get_log(self, rollup: int, slot: int) -> SignedLog | None:
        with self._lock:
            return self._logs.get((rollup, slot))

    def _trim(self, kept: OrderedDict[Any, Any], slot_of: Any) -> None:
        """Forget what is older than the newest ``kept_slots`` slots."""
        newest = max((slot_of(k) for k in kept), default=0)
        for key in [k for k in kept if slot_of(k) <= newest - self.kept_slots]:
            del kept[key]
