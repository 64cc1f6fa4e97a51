"""The store interface every engine component talks to, and its contract.

Contract (tests/stores/test_contract.py runs it against every implementation):
- ``append`` returns only after the event is durable in the store; the returned ``seq`` orders
  the slot's log. It raises ``SlotClosed`` once ``close_slot`` ran for that slot, and
  ``SearcherLimitExceeded`` when the searcher's bundles or bytes for the slot would pass the limits
  (the check and the append are one atomic step), and ``SlotFull`` when the slot's total events
  or bytes would. Bytes are those of the signed request (the evidence), which is what the log
  keeps. Re-appending an already logged bid id is idempotent: it returns the first seq and
  changes nothing.
- ``append_bid_copies`` logs the copies of one cross-rollup bundle in every spanned rollup's
  log at once or in none (docs/shared-sequencing.md), under each log's own limits.
- ``close_slot`` atomically stops intake for the slot and returns its whole log, in order.
  Calling it again returns the same log.
- ``read_log_from(rollup, slot, start)`` is ``read_log(rollup, slot)[start:]`` (``[]`` from the
  end on, ``ValueError`` below 0), reading only those entries where the store can: a log only
  grows, so what a reader holds of it stays its prefix (decision 160).
- ``close_slot_parts_from(rollup, slot, start, sealed_start)`` is ``close_slot`` returning both
  parts of the closed log from those offsets when this process's offset reads of the log
  (``read_log_parts_from``) handed out exactly the closed log's entries before them, checked
  against the store in the close's atomic step; else the whole log (``ClosedLog.start`` says
  which). Only the tail is transferred and decoded (decision 164).
- Close leases and fencing (``node/stores/fencing.py``, decision 110): ``claim_close`` gives
  one owner at a time the lease to close a slot, with a fencing token that grows each time the
  lease is taken anew; every write of a close given a ``CloseLease`` (the close log, results
  and history, the committee's proposal, signed blocks and failure records) raises
  ``CloseFenced`` and changes nothing if a newer token reached its hash tag first.
- Results are written once per (rollup, slot) and never expire (retention aside). The Redis
  store writes each outcome's bid as its log seq when the slot's log is stored (the engine's
  case: the log lives exactly as long as the result) and reads the bids back from it; a
  result saved without its log keeps its bids inline.
- History (issue 5, ``api/history.py``): ``save_result(result, history=...)`` writes the slot's
  history in the same atomic step as its result, so a slot has a history exactly when it has a
  result, and nothing of it is readable before the slot closed. Bid records get history ids
  (``<ms>-<n>``) that increase in the order they were written; every listing of bids is newest
  first by that id, so a cursor (the last id seen) pages through every bid exactly once while new
  slots arrive. ``trim_history`` removes whole slots (history, result, log and intake keys).
- Committee (issue 4, ``committee/records.py``; tests/stores/test_contract_committee.py): a slot
  gets at most one of a signed block or a failure record, written once, never trimmed or
  expired. ``record_partial`` keeps every distinct valid partial per (committee, member, signing
  root) and, atomically with the write, stores equivocation evidence when a member's second
  signing root for the slot arrives. Evidence ids (``<ms>-<n>``) increase in write order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auction.history import BidRecord, SlotDetail, SlotHistory, StatsPart
from auction.ledger import Change, LedgerEntry, Withdrawal
from auction.types import Bid, Cancel, LoggedEvent, LoggedSealedBid, PublicTx, SealedBid, SlotResult
from committee.opening import compute_closed_log
from committee.records import FailedSlot, MemberEvidence, PartialRecord, SignedBlock
from committee.sealedset import OpeningRecord
from node.stores.fencing import CloseLease


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """What one slot's log may take, checked atomically with each append (bids and cancels):
    per searcher, events and bytes of signed requests; per slot, the same for everyone."""

    max_bundles: int
    max_bytes: int
    max_slot_events: int = 1 << 24
    max_slot_bytes: int = 1 << 40


@dataclass(frozen=True)
class ClosedLog:
    """A slot's closed log as ``close_slot_parts_from`` hands it out: the plaintext events
    from index ``start`` on and the sealed bids from index ``sealed_start`` on; each offset is
    the one asked for (the store vouched for what the reader holds before it) or 0 (the whole
    part)."""

    start: int
    sealed_start: int
    events: list[LoggedEvent]
    sealed: list[LoggedSealedBid]


# Offset-read cursors a store object keeps (``close_slot_parts_from``): a few slots' logs per
# rollup; the least recent goes first.
LOG_CURSORS_KEPT = 256


def check_log_start(start: int) -> None:
    """A log offset is an index from 0: a negative one is a caller's bug, refused rather than
    read from the end as a Python slice would."""
    if start < 0:
        raise ValueError(f"a log offset is at least 0, not {start}")


class SlotLogs(ABC):
    """Each slot's append-only intake log: bids, cancels and public txs, checked against the
    intake limits as they are appended; closed once (memory: ``memory.py``; Redis: the scripts in
    ``redis.py``)."""

    @abstractmethod
    async def append_bid(self, bid: Bid, limits: IntakeLimits) -> str:
        """Log a bid for its (rollup, slot); return its seq."""

    @abstractmethod
    async def append_bid_copies(
        self, copies: Sequence[Bid], limits: Sequence[IntakeLimits]
    ) -> list[str]:
        """Log every copy of one cross-rollup bundle (``auction.legs.compute_bid_copies``: one
        per rollup it spans, all of one slot), each in its rollup's slot log, in ONE atomic
        step: all or none. Every log must be open (else ``SlotClosed``) and take its copy under
        ``limits[i]``, that rollup's (else that log's ``SearcherLimitExceeded`` or ``SlotFull``,
        ``data.rollup`` naming it); a refusal logs and counts nothing anywhere. Returns each
        copy's seq; re-appending a logged bundle returns its seqs and changes nothing."""

    @abstractmethod
    async def append_sealed_bid(self, sealed: SealedBid, limits: IntakeLimits) -> str:
        """Log a sealed bid in its (rollup, slot) log; return its seq. Like ``append_bid``
        (closed slot, idempotent by bid id, the same limits, its uuid seen by cancels) and, in
        the same atomic step, one encapsulation per searcher per slot over every rollup
        (else ``EncapsulationLimit``) and one logging of a ciphertext per slot (else
        ``CiphertextReplayed``)."""

    @abstractmethod
    async def read_sealed_log(self, rollup: int, slot: int) -> list[LoggedSealedBid]:
        """The slot's sealed bids so far, in log order. ``close_slot`` and ``read_log`` hand
        out the plaintext events only: a sealed bid is nothing to a reader before its slot key
        exists; its seq orders it among them."""

    async def read_log_parts(
        self, rollup: int, slot: int
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        """The slot's log so far as ``read_log`` and ``read_sealed_log`` hand it out, in one read
        where the store can (the committee's feeder follows both while the slot is open)."""
        return await self.read_log(rollup, slot), await self.read_sealed_log(rollup, slot)

    @abstractmethod
    async def read_log_from(self, rollup: int, slot: int, start: int) -> list[LoggedEvent]:
        """The slot's log so far from index ``start`` on: ``read_log(rollup, slot)[start:]``,
        costing what is returned rather than the whole log where the store can (the engine
        reads only what is new in each open slot's log, ``node/follower.py``). ``[]`` when
        ``start`` is at or beyond the end; ``ValueError`` for a negative ``start``."""

    async def read_log_parts_from(
        self, rollup: int, slot: int, start: int, sealed_start: int
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        """``read_log_parts`` from an offset into each part: the plaintext events from index
        ``start`` on and the sealed bids from index ``sealed_start`` on (each ``[]`` at or
        beyond its end; ``ValueError`` for a negative offset), in one read where the store can."""
        check_log_start(sealed_start)
        events = await self.read_log_from(rollup, slot, start)
        return events, (await self.read_sealed_log(rollup, slot))[sealed_start:]

    async def read_sealed_bids(self, rollups: Sequence[int], slot: int) -> list[LoggedSealedBid]:
        """Every rollup's sealed bids of ``slot`` (each logged once, in one rollup's log)."""
        return [e for r in rollups for e in await self.read_sealed_log(r, slot)]

    async def read_closed_log(
        self, rollups: Sequence[int], result: SlotResult
    ) -> list[LoggedEvent]:
        """A closed slot's whole log of ``result``'s rollup as its block committed to it
        (``committee.opening.compute_closed_log``: the plaintext events and the bids opened
        from the slot's sealed bids of ``rollups``, at their seqs)."""
        plain = await self.read_log(result.rollup, result.slot)
        sealed = await self.read_sealed_bids(rollups, result.slot)
        return compute_closed_log(plain, sealed, result)

    @abstractmethod
    async def append_public_tx(self, ptx: PublicTx, slot: int) -> str:
        """Log a public tx in the slot it arrived in (once per tx hash); return its seq."""

    @abstractmethod
    async def append_cancel(
        self, cancel: Cancel, slots: list[int], limits: IntakeLimits, window_ms: int
    ) -> list[int]:
        """Log a cancel into each still-open slot of ``slots`` (its window) where its searcher
        logged a bid under its uuid; return those slots.

        A signed cancel takes effect once: for ``window_ms`` after it was first seen, the same
        cancel sent again (a retry, or anyone's replay, to any rollup) answers what it answered
        then, for its first rollup only, and changes nothing. Each slot it goes into counts it
        against ``limits``; a slot whose limits it would pass is skipped (``SearcherLimitExceeded``
        or ``SlotFull`` if that leaves none). A cancel that goes nowhere is still remembered, so
        it counts once against the sender's limits in the first slot of ``slots``."""

    @abstractmethod
    async def claim_close(self, rollup: int, slot: int, owner: str, lease_ms: int) -> int:
        """Take or renew the lease to close (rollup, slot) for ``lease_ms``: its fencing token
        (> 0) if ``owner`` holds it now, else 0. A lease taken anew (free, or expired) gets a
        token above every earlier one of the slot; renewing (the holder again) keeps it."""

    @abstractmethod
    async def raise_fences(self, lease: CloseLease, rollups: Sequence[int]) -> None:
        """Raise the slot's fence to the lease's token where the close will write (each
        rollup's results, the committee records), before reading any of it; ``CloseFenced``
        if a newer token got to one first."""

    @abstractmethod
    async def close_slot(
        self, rollup: int, slot: int, lease: CloseLease | None = None
    ) -> list[LoggedEvent]:
        """Stop intake for the slot and return its log (``CloseFenced``: ``lease``'s token is
        older than the slot's newest, and nothing changed)."""

    async def close_slot_parts_from(
        self,
        rollup: int,
        slot: int,
        start: int,
        sealed_start: int,
        lease: CloseLease | None = None,
    ) -> ClosedLog:
        """``close_slot``, returning both parts of the closed log (the plaintext events and
        the sealed bids) from ``start`` and ``sealed_start`` on, where this process's last
        offset read of the log (``read_log_parts_from``) ended there and the store can vouch,
        in the close's atomic step, that the chain of such reads from index 0 handed out
        exactly the closed log's entries before those offsets (same entries, same order, same
        bytes); otherwise the whole log (``ClosedLog`` offsets 0). What a reader gets is then
        the closed log when appended to what it holds. One offset reader per log per process
        (the engine's follower). ``CloseFenced`` as ``close_slot``. This default cannot vouch:
        the whole log."""
        check_log_start(start)
        check_log_start(sealed_start)
        events = await self.close_slot(rollup, slot, lease)
        return ClosedLog(0, 0, events, await self.read_sealed_log(rollup, slot))

    @abstractmethod
    async def read_log(self, rollup: int, slot: int) -> list[LoggedEvent]:
        """The slot's log so far (for replay and audits; never served before close)."""

    @abstractmethod
    async def find_bid_seq(self, rollup: int, slot: int, key: str) -> str | None:
        """Seq of a logged bid by bid id or by ``<searcher>:<bundle_hash>``."""



class Results(ABC):
    """Each closed slot's result, written once (with its history, atomically)."""

    @abstractmethod
    async def save_result(
        self,
        result: SlotResult,
        history: SlotHistory | None = None,
        lease: CloseLease | None = None,
    ) -> bool:
        """Store a slot's result (and its history, atomically with it); False (and no change)
        if one is already stored; ``CloseFenced`` if ``lease`` is stale."""

    @abstractmethod
    async def get_result(self, rollup: int, slot: int) -> SlotResult | None: ...

    @abstractmethod
    async def latest_result(self, rollup: int) -> SlotResult | None: ...

    @abstractmethod
    async def list_result_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None, limit: int
    ) -> list[int]:
        """Slots with a stored result in [from_slot, to_slot], newest first."""



class HistoryRecords(ABC):
    """What analysts read about closed slots (issue 5; auction/history.py, docs/data-api.md;
    memory: ``memory_history.py``; Redis: ``redis_history.py`` and its scripts)."""

    @abstractmethod
    def record_refusal(self, record: BidRecord) -> None:
        """File a refused bid under its (still open) slot. Best effort and bounded: it never
        waits for I/O, and may drop refusals under a flood."""

    @abstractmethod
    async def list_refusals(self, rollup: int, slot: int) -> list[BidRecord]:
        """The refusals filed under a slot, in the order they were filed."""

    @abstractmethod
    async def list_history_slots(
        self,
        rollup: int,
        *,
        from_slot: int | None,
        to_slot: int | None,
        limit: int,
        descending: bool = True,
    ) -> list[int]:
        """Slots with a history in [from_slot, to_slot], newest first unless ``descending`` is
        False."""

    @abstractmethod
    async def get_slot_summaries(
        self, rollup: int, slots: Sequence[int]
    ) -> list[dict[str, Any] | None]:
        """Each slot's summary, with ``committee`` set to its committee record or None."""

    @abstractmethod
    async def get_slot_details(self, rollup: int, slots: Sequence[int]) -> list[SlotDetail | None]:
        """Each slot's summary, block order and bids (arrival order)."""

    @abstractmethod
    async def list_history_bids(
        self,
        rollup: int,
        *,
        searcher: str | None,
        outcome: str | None,
        slot: int | None,
        before: str | None,
        inclusive: bool,
        limit: int,
        cross: bool | None = None,
        spans: int | None = None,
    ) -> list[tuple[str, BidRecord]]:
        """Up to ``limit`` (history id, bid) matching every given filter, newest first, with ids
        below ``before`` (or equal to it, if ``inclusive``). ``cross``: only cross-rollup
        bundles' bids (True) or only single-rollup ones (False); ``spans``: only bids of bundles
        spanning that rollup (``auction.history.is_record_match``)."""

    @abstractmethod
    async def get_searcher_tally(self, rollup: int, searcher: str) -> dict[str, int]:
        """The searcher's counters (``auction.history.TALLY_FIELDS``) over the retained history."""

    @abstractmethod
    async def list_stats_parts(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None
    ) -> list[StatsPart]:
        """Stats parts (single slots or pre-aggregated buckets) that together cover exactly the
        slots with a history in [from_slot, to_slot]."""

    @abstractmethod
    async def record_committee(self, rollup: int, slot: int, record: Mapping[str, Any]) -> bool:
        """Attach the committee's result (``{"status": "signed" | "failed", ...}``) to a slot's
        history; False if the slot has none. The last record wins."""

    @abstractmethod
    async def count_failed_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None
    ) -> int:
        """Slots in [from_slot, to_slot] whose committee record says ``failed``."""

    @abstractmethod
    async def trim_history(self, rollup: int, before_slot: int, max_slots: int) -> list[int]:
        """Remove up to ``max_slots`` of the oldest slots below ``before_slot`` entirely (history,
        result, log and intake keys); return the slots removed, oldest first."""



class CommitteeRecords(ABC):
    """What the signing committee publishes and keeps (issue 4; committee/records.py,
    docs/committee.md; memory: ``memory_committee.py``; Redis: ``redis_committee.py``)."""

    @abstractmethod
    async def save_signed_blocks(
        self, blocks: Sequence[SignedBlock], lease: CloseLease | None = None
    ) -> bool:
        """Store one slot's signed blocks (every rollup's, under one slot root) in one atomic
        write; False (and no change) if any of their rollups already has a signed block or a
        failure record for the slot; ``CloseFenced`` if ``lease`` is stale."""

    @abstractmethod
    async def get_signed_block(self, rollup: int, slot: int) -> SignedBlock | None: ...

    @abstractmethod
    async def latest_signed_block(self, rollup: int) -> SignedBlock | None:
        """The signed block of the highest slot (the head of the signed chain)."""

    @abstractmethod
    async def save_failed_slots(
        self,
        failed: Sequence[FailedSlot],
        *,
        proposed_ok: bool = False,
        lease: CloseLease | None = None,
    ) -> bool:
        """Record one slot published as failed, for each of its rollups, in one atomic write;
        False (and no change) if any of them already has a signed block or a failure record
        for the slot, or (unless ``proposed_ok``: it can never be signed) a block was proposed
        for it: members may be locked to that block. ``CloseFenced`` if ``lease`` is stale."""

    @abstractmethod
    async def claim_proposal(
        self, slot: int, blocks: Sequence[tuple[int, str]], lease: CloseLease | None = None
    ) -> bool:
        """Record, before it is sent, that the (rollup, block hash) pairs are proposed for the
        slot, in one atomic write; False (and no change) if any of them has a failure record or
        another block proposed for the slot (the same blocks again are fine). Never expires: it
        is how a pending slot is found again, however old. ``CloseFenced`` if ``lease`` is
        stale."""

    @abstractmethod
    async def list_proposed(self, rollup: int, from_slot: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` (slot, block hash) proposed from ``from_slot`` on, oldest first."""

    @abstractmethod
    async def get_failed_slot(self, rollup: int, slot: int) -> FailedSlot | None: ...

    @abstractmethod
    async def record_partial(self, partial: PartialRecord) -> MemberEvidence | None:
        """Keep a member's valid partial. If the member already gave one for another signing
        root of the same (rollup, slot) and committee, store and return the equivocation
        evidence (its first partial and this one); otherwise return None."""

    @abstractmethod
    async def list_partials(self, rollup: int, slot: int) -> list[PartialRecord]:
        """Every kept partial of the slot, by member, then arrival."""

    @abstractmethod
    async def save_evidence(self, evidence: MemberEvidence) -> str:
        """Append evidence against a member (an invalid partial); return its id."""

    @abstractmethod
    async def list_evidence(
        self, rollup: int, *, before: str | None, limit: int
    ) -> list[tuple[str, MemberEvidence]]:
        """Up to ``limit`` (id, evidence), newest first, with ids below ``before``."""

    @abstractmethod
    async def save_slot_opening(self, slot: int, record: OpeningRecord) -> bool:
        """Keep the opening of a slot's sealed bids once the committee released its key (the
        key, the certificate of the committed set, the ids the ledger refused; never the
        plaintext); False (and no change) if the slot has one already: the first stays."""

    @abstractmethod
    async def get_slot_opening(self, slot: int) -> OpeningRecord | None: ...



class LedgerRecords(ABC):
    """The escrow ledger: balances, entries, bid holds and withdrawals (issue 11; memory:
    ``memory_ledger.py``; Redis: ``redis_ledger.py``). Deployment-wide, not per rollup."""

    @abstractmethod
    async def apply_ledger(
        self, changes: Sequence[Change], *, once: str, at_ms: int,
        expect: tuple[str, int] | None = None,
    ) -> list[LedgerEntry]:
        """Append one entry per change (in order) and update the balances, atomically and
        durably; raise ``AlreadyApplied`` if ``once`` was used before, ``StaleBalance`` if
        ``expect`` (account, balance) no longer holds (a change computed from a balance read
        earlier, like a slash's fraction), ``InsufficientBalance`` or
        ``WithdrawalExceedsFreeBalance`` (``auction.ledger.compute_new_balances``), each
        changing nothing."""

    @abstractmethod
    async def is_applied(self, once: str) -> bool:
        """Whether a change under ``once`` was applied."""

    @abstractmethod
    async def hold_bid(self, slot: int, chain: str, searcher: str, bid_wei: int) -> None:
        """Raise the chain's hold in ``slot`` to ``bid_wei`` (never lower it); raise
        ``InsufficientDeposit`` and change nothing if the searcher's holds would then pass its
        balance."""

    @abstractmethod
    async def release_holds(self, slot: int) -> None:
        """Drop every hold of ``slot`` (it is settled: paid, failed or past signing)."""

    @abstractmethod
    async def get_balance(self, account: str) -> tuple[int, int]:
        """The account's (balance, holds) in wei; (0, 0) for an account never seen."""

    @abstractmethod
    async def list_ledger_entries(
        self, account: str | None, *, before: str | None, limit: int
    ) -> list[LedgerEntry]:
        """Up to ``limit`` entries (of one account, or all), newest first, ids below
        ``before``."""

    @abstractmethod
    async def save_withdrawal(
        self, account: str, amount_wei: int, requested_ms: int, ready_ms: int
    ) -> Withdrawal:
        """Record a requested withdrawal under a new id."""

    @abstractmethod
    async def get_withdrawal(self, withdrawal_id: str) -> Withdrawal | None: ...


class Store(SlotLogs, Results, HistoryRecords, CommitteeRecords, LedgerRecords):
    """Everything an engine process keeps, in one backend (memory or Redis)."""

    name: str = "store"

    @abstractmethod
    async def ping(self) -> bool: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
