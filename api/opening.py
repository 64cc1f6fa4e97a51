"""The close's opening step (issue 14, docs/encryption.md "Close"): a slot's sealed bids,
opened with the key the committee released for them and merged into the logs before packing.

``open_sealed_logs`` takes every rollup's sealed bids of the closed slot (as the close read them
with its logs, or from the store); if there are any, the
signer (the committee's coordinator) has the committee commit to them and release the slot
key, and opens them (``Coordinator.open_sealed``; with deposits enforced, each opened bid is held
in log order, decision 105). Each opened bid goes into its rollups' logs
at its sealed bid's seq (``committee.opening.compute_opened_log``), so the book replays
replacements and cancels in arrival order; each refusal at opening (a ciphertext that does not
open, an invalid bundle, one contradicting its public fields) becomes a history record against
its searcher and a notice to it. If the key is not released (fewer than t members within the
signing window) the slot cannot be built: ``SlotKeyNotReleased`` fails it visibly, and its
sealed bids are never opened by anyone. Shell only: the rules are ``committee.opening``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from auction.history import BidRecord
from auction.types import Bid, LoggedEvent, LoggedSealedBid
from committee.keyrelease import KeyNotReleased
from committee.opening import OpenedSlot, compute_opened_log
from node.escrow import Escrow
from node.stores.base import Store


class SlotKeyNotReleased(Exception):
    """The committee did not release the key of a slot with sealed bids: the slot fails."""

    def __init__(self, slot: int, detail: str, searchers: Sequence[str]) -> None:
        super().__init__(f"slot {slot}: the key was not released ({detail})")
        self.slot = slot
        self.detail = detail
        self.searchers = tuple(sorted(set(searchers)))


class Opener(Protocol):
    async def open_sealed(
        self,
        slot: int,
        entries: Sequence[LoggedSealedBid],
        hold: Callable[[Bid], Awaitable[None]] | None = None,
    ) -> OpenedSlot | KeyNotReleased: ...


@dataclass
class OpenedLogs:
    """Every rollup's log with its opened bids, and what opening refused."""

    entries: dict[int, list[LoggedEvent]]
    refused: dict[int, list[BidRecord]] = field(default_factory=dict)  # by rollup
    notices: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (searcher, ...)
    opened: int = 0  # sealed bids opened to a bid


async def open_sealed_logs(
    store: Store,
    signer: object,
    rollups: Sequence[int],
    slot: int,
    entries: Mapping[int, list[LoggedEvent]],
    escrow: Escrow | None = None,
    sealed_logs: Mapping[int, Sequence[LoggedSealedBid]] | None = None,
) -> OpenedLogs:
    """The close's logs with the slot's sealed bids opened into them (module docstring); the
    sealed bids are ``sealed_logs`` (each rollup's, as the close read them with its logs) or,
    without, read from the store."""
    sealed = (
        await store.read_sealed_bids(rollups, slot)
        if sealed_logs is None
        else [e for r in rollups for e in sealed_logs[r]]
    )
    if not sealed:
        return OpenedLogs(dict(entries))
    searchers = [e.event.searcher for e in sealed]
    open_sealed = getattr(signer, "open_sealed", None)
    if open_sealed is None:  # no committee: no key can ever exist (intake refuses these)
        raise SlotKeyNotReleased(slot, "no committee", searchers)
    hold = escrow.hold_bid if escrow is not None else None
    outcome = await open_sealed(slot, sealed, hold)
    if isinstance(outcome, KeyNotReleased):
        raise SlotKeyNotReleased(slot, outcome.detail, searchers)
    out = OpenedLogs({r: compute_opened_log(r, entries[r], outcome) for r in rollups})
    for o in outcome.openings:
        if o.refused is None:
            out.opened += 1
            continue
        record = o.refused.record
        if record is not None:
            out.refused.setdefault(record.rollup, []).append(record)
        out.notices.append((o.sealed.searcher, {
            "rollup": o.sealed.rollup, "slot": slot, "bidId": o.sealed.bid_id,
            "code": o.refused.error.code, **o.refused.error.data,
        }))  # fmt: skip
    return out
