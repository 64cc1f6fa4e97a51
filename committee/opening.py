"""Opening a slot's sealed bids with its slot key: the pure step after key release.

``compute_openings`` opens every logged sealed bid of a slot (one decapsulation per distinct
encapsulation, through ``committee.encryption.Opener``) and turns each payload into a bid
through the SAME intake rules as a plaintext ``eth_sendBundle``
(``auction.intake.compute_intake_event`` with ``opened_from``), or into a refusal with its stable
code, recorded against its searcher: a ciphertext that does not open
(``invalid_encapsulation``, ``payload_auth_failed``, ...), a payload that is no valid bundle (the
plaintext rules' own codes), or one that contradicts its public fields
(``opened_bid_contradicts_public_fields``). ``compute_opened_log`` puts the opened bids back
into their rollup's log at their seqs, so the book (replacements, cancels) replays exactly as
for plaintext bids.

Pure: no clock (each bid is judged at its own arrival time), no I/O. Who calls it, and when
(after the committee signed the ciphertext-set root and released the key), is the close's
business (stage 2b; docs/encryption.md, "Opening").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from auction.ciphertext import CiphertextError, CiphertextLeaf
from auction.errors import BlockspaceError
from auction.history import BidRecord, compute_rejection
from auction.intake import IntakeContext, Refused, compute_intake_event
from auction.legs import compute_bid_copies
from auction.types import Bid, LoggedEvent, LoggedSealedBid, SealedBid, SlotResult
from committee.encryption import Opener
from committee.threshold import CommitteeInfo


@dataclass(frozen=True, slots=True)
class Opening:
    """What one sealed bid opened to: its bid's copies (one per rollup it spans; one for a
    single-rollup bundle), or its refusal with the record filed against its searcher."""

    seq: str
    sealed: SealedBid
    bids: tuple[Bid, ...] = ()
    refused: Refused | None = None


@dataclass(frozen=True, slots=True)
class OpenedSlot:
    """Every sealed bid of a slot, opened, in log order; and what opening them cost."""

    openings: tuple[Opening, ...]
    decapsulations: int  # pairings paid: one per distinct encapsulation


def compute_ciphertext_leaves(entries: Iterable[LoggedSealedBid]) -> list[CiphertextLeaf]:
    """The leaves of a slot's ciphertext-set root (``auction.ciphertext``)."""
    return [CiphertextLeaf(e.event.bid_id, e.event.ciphertext) for e in entries]


def compute_openings(
    committee: CommitteeInfo,
    slot: int,
    slot_key: bytes,
    entries: Sequence[LoggedSealedBid],
    ctx: IntakeContext,
) -> OpenedSlot:
    """Open every sealed bid of ``slot`` (every rollup's, in any order) with ``slot_key``,
    which must verify (else ``InvalidSlotKey``). ``ctx`` is the intake context the bids are
    judged in (rollups, clock, window, protected txs); each is read for its own rollup."""
    opener = Opener(committee, slot, slot_key)
    openings = tuple(compute_opening(opener, entry, ctx) for entry in entries)
    return OpenedSlot(openings, opener.decapsulations)


def compute_opening(opener: Opener, entry: LoggedSealedBid, ctx: IntakeContext) -> Opening:
    """Open one sealed bid and judge its payload as its plaintext twin would be."""
    sealed = entry.event
    # Verify the ciphertext opens (the opener caches its encapsulation's verdict)
    try:
        opened = opener.open(sealed.ciphertext)
    except CiphertextError as exc:
        return compute_unopened(entry, exc)
    return compute_payload_opening(entry, opened.payload, ctx)


def compute_unopened(entry: LoggedSealedBid, error: CiphertextError) -> Opening:
    """The refusal of a sealed bid whose ciphertext does not open."""
    record = compute_sealed_record(entry.event, error, entry.seq)
    return Opening(entry.seq, entry.event, refused=Refused(error, record))


def compute_payload_opening(entry: LoggedSealedBid, payload: bytes, ctx: IntakeContext
                            ) -> Opening:  # fmt: skip
    """Judge a sealed bid's opened ``payload`` as its plaintext twin would be: its bid's
    copies, or its refusal. ``ctx.decode`` decodes its transactions."""
    sealed = entry.event
    # Verify the payload is a valid bundle by the intake rules, and keeps its public fields
    own = dataclasses.replace(ctx, endpoint_rollup=None, default_rollup=sealed.rollup)
    event = compute_intake_event(payload, None, sealed.received_ms, own,
                                 opened_from=sealed)  # fmt: skip
    if isinstance(event, Refused):
        # Filed where its evidence is: the sealed bid's log, whatever the payload claims
        record = (
            dataclasses.replace(event.record, rollup=sealed.rollup, slot=sealed.slot,
                                seq=entry.seq)  # fmt: skip
            if event.record is not None
            else compute_sealed_record(sealed, event.error, entry.seq)
        )
        return Opening(entry.seq, sealed, refused=Refused(event.error, record))
    if not isinstance(event, Bid):  # compute_opened_bid makes bids only
        raise TypeError(f"an opened payload made a {type(event).__name__}")
    return Opening(entry.seq, sealed, bids=compute_bid_copies(event))


def compute_sealed_record(sealed: SealedBid, error: BlockspaceError, seq: str) -> BidRecord:
    """The history record of a sealed bid refused at opening, from its public fields alone
    (the bundle is unknown when the ciphertext does not open)."""
    params = {"blockNumber": hex(sealed.slot), "replacementUuid": sealed.replacement_uuid}
    record = compute_rejection(
        params,
        searcher=sealed.searcher,
        code=error.code,
        received_ms=sealed.received_ms,
        default_rollup=sealed.rollup,
        endpoint_rollup=sealed.rollup,
    )
    if record is None:  # unreachable: the slot is always readable
        raise ValueError("a sealed bid without a slot")
    return dataclasses.replace(record, seq=seq)


def _seq_key(seq: str) -> tuple[int, int]:
    ms, _, n = seq.partition("-")
    return int(ms), int(n)


def compute_opened_log(
    rollup: int, log: Sequence[LoggedEvent], opened: OpenedSlot
) -> list[LoggedEvent]:
    """``rollup``'s log with its opened bids in place: each bid copy for ``rollup`` at its
    sealed bid's seq, so ``auction.book.compute_book`` replays replacements and cancels across
    plaintext and opened bids exactly in arrival order."""
    copies = [
        LoggedEvent(o.seq, bid) for o in opened.openings for bid in o.bids if bid.rollup == rollup
    ]
    return sorted([*log, *copies], key=lambda e: _seq_key(e.seq))


def compute_closed_log(
    plain: Sequence[LoggedEvent], sealed: Sequence[LoggedSealedBid], result: SlotResult
) -> list[LoggedEvent]:
    """A closed slot's whole log of ``result``'s rollup as its block committed to it, from what
    a store keeps: its plaintext events (``plain``) and, at their sealed bids' seqs (``sealed``:
    every rollup's sealed bids of the slot), the bids opened from them, which the result's
    outcomes hold (a sealed bid refused at opening is in no log)."""
    seqs = {e.event.bid_id: e.seq for e in sealed}
    opened = [LoggedEvent(seqs[o.bid.bid_id], o.bid) for o in result.outcomes
              if o.bid.bid_id in seqs]  # fmt: skip
    if not opened:
        return list(plain)
    return sorted([*plain, *opened], key=lambda e: _seq_key(e.seq))
