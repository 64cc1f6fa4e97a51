"""Following each open slot's logs in the engine, so that its close packs from columns
(issue 13's packing target, issue 12's deadline latency; decision 160).

Every ``FOLLOW_INTERVAL_MS`` the engine (``api/engine.py``) asks its ``OpenSlotFollower`` to
read what is new in each rollup's log of the open slot: only the entries beyond those it holds
(``Store.read_log_parts_from``), never the whole log again, so following a slot costs each
entry once. Each new plaintext entry is appended to the slot's ``SlotEncoder``
(``auction.columnar``: its conflict keys and packing leg computed once); the sealed calls are
kept as read. Listeners (the committee's feeder, with streaming on) see the slot after every
read and stream from the same entries: one reader of the store per engine process, whether a
committee streams, signs without streaming, or there is none (``UnsignedChain``).

At the deadline the close takes the slot (``take_slot``: the entries read and the encoder):
handed over, so nothing appends to them while the close runs, and the slot is followed no more
(a read in flight when it was taken is dropped when it returns). The close has the store read
only the tail beyond the entries held (``Store.close_slot_parts_from``: the store checks, in the
close's atomic step, that the reads handed out exactly the closed log's first entries, else it
returns the whole log; decision 164), and uses the encoder only if what it followed is a
prefix of the closed log (``auction.columnar.compute_encoded_parts``: the same seqs naming the
same event ids), closing from scratch otherwise. Those checks are the safety rules; the
follower adds a cheaper one of its own: a read whose first entry does not come after the last
one held (the log was written anew) stops following the slot, whose close then reads the whole
log and packs from scratch.

Not to be confused with a *follower process* in a close (``Engine._follow``: one that adopts
the results another engine process stored): this follows a log, not a close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from auction.columnar import SlotEncoder
from auction.types import LoggedEvent, LoggedSealedBid
from node.stores.base import Store

log = logging.getLogger("blockspace.follower")

# How often the open slot's logs are read (the committee feeder's interval, decision 106).
FOLLOW_INTERVAL_MS: Final[int] = 100
# Slots kept: the open one and the one being closed (taken or not).
SLOTS_KEPT: Final[int] = 2


@dataclass
class FollowedSlot:
    """One slot's logs as read so far, per rollup, and its encoder (None once taken or given
    up). The lists only grow: a listener may keep them and read what is beyond its own count."""

    encoder: SlotEncoder | None = field(default_factory=SlotEncoder)
    logs: dict[int, list[LoggedEvent]] = field(default_factory=dict)
    sealed: dict[int, list[LoggedSealedBid]] = field(default_factory=dict)


Listener = Callable[[int, FollowedSlot], None]


def _seq_key(seq: str) -> tuple[int, int]:
    ms, _, n = seq.partition("-")
    return int(ms), int(n)


def _continues(held: Sequence[LoggedEvent | LoggedSealedBid],
               new: Sequence[LoggedEvent | LoggedSealedBid]) -> bool:  # fmt: skip
    """Whether ``new`` can follow ``held`` in one append-only log: every seq after the one
    before it (a store hands out increasing seqs). O(len(new))."""
    keys = [_seq_key(e.seq) for e in held[-1:]] + [_seq_key(e.seq) for e in new]
    return all(a < b for a, b in zip(keys, keys[1:], strict=False))


class OpenSlotFollower:
    """Reads each open slot's logs from where it stopped and keeps the slot's encoder (see the
    module docstring)."""

    def __init__(
        self, store: Store, rollups: Sequence[int], *, interval_ms: int = FOLLOW_INTERVAL_MS
    ) -> None:
        self.store = store
        self.rollups = tuple(sorted(rollups))
        self.interval_ms = interval_ms
        self.slots: dict[int, FollowedSlot] = {}
        self.listeners: list[Listener] = []
        self._taken_through = -1  # the newest slot whose encoder a close took
        self._lock = asyncio.Lock()  # one read of the store at a time
        self.reads = 0  # rounds completed (tests, benchmark)
        self.given_up = 0  # slots no longer followed because a read did not continue the log

    async def follow(self, slot: int) -> None:
        """One round: read what is new in each rollup's log of ``slot`` (the open slot), append
        it, then show the slot to every listener. Nothing for a slot already taken by a close."""
        async with self._lock:
            if slot <= self._taken_through:
                return
            followed = self.slots.get(slot)
            if followed is None:
                followed = self.slots[slot] = FollowedSlot()
                for old in [s for s in self.slots if s <= slot - SLOTS_KEPT]:
                    del self.slots[old]
            for rollup in self.rollups:
                held = followed.logs.setdefault(rollup, [])
                held_sealed = followed.sealed.setdefault(rollup, [])
                new, new_sealed = await self.store.read_log_parts_from(
                    rollup, slot, len(held), len(held_sealed)
                )
                if self.slots.get(slot) is not followed:
                    return  # taken by the close (or forgotten) while this read was in flight
                if not (_continues(held, new) and _continues(held_sealed, new_sealed)):
                    self._give_up(slot, rollup)
                    return
                held += new
                held_sealed += new_sealed
                if followed.encoder is not None:
                    followed.encoder.extend(rollup, new)
            self.reads += 1
            for listener in self.listeners:
                listener(slot, followed)

    def take_slot(self, slot: int) -> FollowedSlot | None:
        """``slot`` as followed (its entries read and its encoder), handed over to its close
        (None if the slot was not followed, or given up); the slot is followed no more."""
        self._taken_through = max(self._taken_through, slot)
        return self.slots.pop(slot, None)

    def take_encoder(self, slot: int) -> SlotEncoder | None:
        """``take_slot``'s encoder alone (benchmarks and tests of the columns)."""
        followed = self.take_slot(slot)
        return followed.encoder if followed is not None else None

    def _give_up(self, slot: int, rollup: int) -> None:
        """Stop following ``slot``: a read did not continue what was held of ``rollup``'s log
        (it was written anew). Its close encodes from scratch."""
        log.warning("slot %d: rollup %d's log does not continue what was read of it; the "
                    "slot is closed from scratch", slot, rollup)  # fmt: skip
        self.given_up += 1
        self._taken_through = max(self._taken_through, slot)
        self.slots.pop(slot, None)

    async def run(self, open_slot: Callable[[], int], on_fault: Callable[[], None]) -> None:
        """Follow the open slot (``open_slot()``) every interval until cancelled; a failed
        round is logged and counted (``on_fault``) and the next one tries again."""
        while True:
            try:
                await self.follow(open_slot())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the open slot failed")
                on_fault()
            await asyncio.sleep(self.interval_ms / 1000)
