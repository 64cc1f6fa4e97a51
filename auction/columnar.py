"""A slot's packing input kept as its logs are appended (issue 13's packing target, issue 12's
deadline latency): the conflict keys of every bid copy computed once, when it is logged, and
its leg appended to columns (``ordering.columns``), so that at the deadline the close reads
arrays instead of walking every bid, transaction and key string.

Pure: no I/O, no clock. One ``SlotEncoder`` per slot, fed in log order (``append``) by whoever
follows the slot's logs: the engine (``api/engine.py``) and each committee member
(``committee/member.py``, from its stream). The close takes it as an argument
(``auction.results.compute_slot_results(..., encoder=)``) and runs exactly the rules it runs
without one: the encoder is a cache of values the rules compute, never a second copy of them.

Soundness: a bid copy is reused only for the very object it was computed from (``is``), which
the encoder holds, so a copy is never read from a different bid that shares its id. An object
the encoder has not seen is encoded on the spot (and kept). The engine reads the closed log
back from its store (new objects): ``compute_covered_log`` then gives the encoder's own
objects when the encoder holds exactly that log (the same event ids in the same order), and
the close uses the log as read otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from auction.constants import OUTCOME_LOST
from auction.encoding import MerkleFrontier
from auction.hashing import to_hex
from auction.results import SlotPart, compute_conflict_keys, compute_event_id
from auction.types import Bid, BidOutcome, LoggedEvent
from ordering.columns import ColumnSnapshot, EncodedLegs, LegColumns
from ordering.problem import JointItem
from ordering.problem import Leg as PackLeg


@dataclass(frozen=True, slots=True)
class EncodedCopy:
    """One bid's copy for one rollup as the packing reads it."""

    bid: Bid  # the object it was computed from
    keys: tuple[str, ...]  # compute_conflict_keys(bid)
    leg: PackLeg  # (rollup, bid.gas, keys)
    row: int  # its row in the encoder's columns; -1 when it does not fit them (int64)
    item: JointItem  # the bid as a one-leg packing item (this leg): a single-rollup bid's


class SlotEncoder:
    """One slot's logs, per rollup in log order, with every bid copy encoded once."""

    __slots__ = ("_copies", "_logs", "_lost", "_snapshot", "_trees", "columns")

    def __init__(self) -> None:
        self.columns = LegColumns()
        self._copies: dict[tuple[str, int], EncodedCopy] = {}
        # Per bid entry appended (by id(): the encoder holds the entry, so the id is its own),
        # the entry and its outcome should it lose: most bids lose, and the close reads these.
        self._lost: dict[int, tuple[LoggedEvent, BidOutcome]] = {}
        self._logs: dict[int, list[LoggedEvent]] = {}
        self._snapshot: ColumnSnapshot | None = None
        # Per rollup, the bid-set tree over the event ids of ``_logs`` (decision 150).
        self._trees: dict[int, MerkleFrontier] = {}

    def append(self, rollup: int, entry: LoggedEvent) -> None:
        """Append the next entry of ``rollup``'s log. O(keys of the bid)."""
        self._logs.setdefault(rollup, []).append(entry)
        tree = self._trees.get(rollup)
        if tree is None:
            tree = self._trees[rollup] = MerkleFrontier()
        tree.append(bytes.fromhex(compute_event_id(entry)[2:]))
        ev = entry.event
        if isinstance(ev, Bid):
            self.copy(ev, rollup)
            self._lost[id(entry)] = (entry, BidOutcome(ev, OUTCOME_LOST, 0, entry.seq))

    def extend(self, rollup: int, entries: Iterable[LoggedEvent]) -> None:
        for entry in entries:
            self.append(rollup, entry)

    def count(self, rollup: int) -> int:
        """Entries of ``rollup``'s log appended so far."""
        return len(self._logs.get(rollup, ()))

    def copy(self, bid: Bid, rollup: int) -> EncodedCopy:
        """``bid``'s copy for ``rollup`` encoded: the kept one when it was computed from this
        very object, else computed now (and kept)."""
        key = (bid.bid_id, rollup)
        kept = self._copies.get(key)
        if kept is not None and kept.bid is bid:
            return kept
        keys = compute_conflict_keys(bid)
        try:
            row = self.columns.add_leg(rollup, bid.gas, keys)
            self._snapshot = None
        except OverflowError:
            row = -1
        leg = PackLeg(rollup, bid.gas, keys)
        made = EncodedCopy(bid, keys, leg, row, JointItem(bid.bid_id, bid.searcher, bid.bid_wei,
                                                          (leg,)))  # fmt: skip
        self._copies[key] = made
        return made

    def copies(self, bids: Sequence[Bid], rollup: int) -> list[EncodedCopy]:
        """``[self.copy(b, rollup) for b in bids]``, the kept ones read in one pass (the
        close's loop over every eligible bid)."""
        kept = self._copies
        out = []
        for bid in bids:
            made = kept.get((bid.bid_id, rollup))
            out.append(made if made is not None and made.bid is bid else self.copy(bid, rollup))
        return out

    def keys_of(self, bid: Bid, rollup: int) -> tuple[str, ...]:
        """``compute_conflict_keys(bid)``, computed once per copy."""
        return self.copy(bid, rollup).keys

    def lost_outcome(self, entry: LoggedEvent) -> BidOutcome:
        """``BidOutcome(bid, OUTCOME_LOST, 0, seq)`` of a bid entry: the one made when this
        very entry object was appended, else made now."""
        kept = self._lost.get(id(entry))
        if kept is not None and kept[0] is entry:
            return kept[1]
        assert isinstance(entry.event, Bid)
        return BidOutcome(entry.event, OUTCOME_LOST, 0, entry.seq)

    def compute_encoded(self, rows: Sequence[int], counts: Sequence[int]) -> EncodedLegs | None:
        """The columns' rows of an instance's legs (``rows``, ``counts`` legs per item), or None
        when one of them is not in the columns (the instance is then encoded from scratch)."""
        if rows and min(rows) < 0:
            return None
        if self._snapshot is None:
            self._snapshot = self.columns.snapshot()
        return EncodedLegs(
            self._snapshot, np.array(rows, dtype=np.int64), np.array(counts, dtype=np.int64)
        )

    def compute_bid_set_root(self, rollup: int, log: Sequence[LoggedEvent]) -> str:
        """``compute_bid_set_root`` of ``log``'s event ids: the tree kept over the longest
        prefix of ``log`` that is this encoder's own entries of ``rollup`` (the very objects it
        was appended, so the same ids), the rest hashed now. O(len(log)) identity checks and
        O(log n) hashes for a log the encoder holds whole."""
        mine = self._logs.get(rollup, [])
        held = 0
        for own, entry in zip(mine, log, strict=False):  # the log may be longer or shorter
            if own is not entry:
                break
            held += 1
        more = [bytes.fromhex(compute_event_id(e)[2:]) for e in log[held:]]
        tree = self._trees.get(rollup)
        if tree is None:
            return to_hex(MerkleFrontier().root(0, more))
        return to_hex(tree.root(held, more))

    def compute_covered_log(
        self, rollup: int, log: Sequence[LoggedEvent]
    ) -> list[LoggedEvent] | None:
        """``log`` as the encoder's own entries, when what it holds of ``rollup`` is a prefix of
        ``log`` (the same seqs naming the same event ids, in order: an append-only log read
        again from the store, whose ids are the hashes of the signed evidence); the rest of
        ``log`` (the tail read at the deadline) is appended first. None when it is not a
        prefix: the close then uses ``log`` as read (its copies are encoded on the spot)."""
        mine = self._logs.get(rollup, [])
        held = len(mine)
        if held > len(log):
            return None
        if [(e.seq, compute_event_id(e)) for e in mine] != [
            (e.seq, compute_event_id(e)) for e in log[:held]
        ]:
            return None
        self.extend(rollup, log[held:])
        return list(self._logs.get(rollup, []))


def compute_encoded_parts(
    encoder: SlotEncoder | None, parts: Sequence[SlotPart]
) -> tuple[list[SlotPart], SlotEncoder | None]:
    """The close's parts with each log as ``encoder``'s own entries (``compute_covered_log``),
    and the encoder to close with; the parts as given and None when the encoder does not hold
    a prefix of every part's log (a slot it followed only in part is closed from scratch)."""
    if encoder is None:
        return list(parts), None
    out = []
    for part in parts:
        covered = encoder.compute_covered_log(part.rollup.chain_id, part.log)
        if covered is None:
            return list(parts), None
        out.append(dataclasses.replace(part, log=covered))
    return out, encoder

