"""Receipts as the engine hands them out: the operator signs one per logged event (shell side).

``Receipter`` signs with the operator key under the engine's current committee id (all zero
until a committee is attached) and returns the receipt's JSON (``auction.receipts``), which the
JSON-RPC and websocket answers carry beside the result (docs/protocol.md, "Receipts").

Batched (the default): the receipts asked for during one turn of the event loop (the bids one
group commit acknowledged resume together) are signed once, as version-2 receipts over their
batch's Merkle root. One ECDSA signature then serves the whole batch: under load it was a fifth
of the intake's CPU per bid when every receipt had its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from auction.bundles import compute_bid_id
from auction.hashing import keccak256, to_hex
from auction.receipts import (
    BATCH_RECEIPT_VERSION,
    KIND_BID,
    KIND_CANCEL,
    KIND_PUBLIC_TX,
    KIND_SEALED_BID,
    RECEIPT_VERSION,
    OperatorKey,
    Receipt,
    receipt_to_json,
    receipts_to_json,
    sign_receipt,
    sign_receipt_batch,
)
from auction.types import Bid, Cancel, PublicTx, SealedBid

# Receipts signed under one signature at most (a path of at most 10 hashes).
MAX_BATCH = 1024

log = logging.getLogger("blockspace.receipts")

_Waiting = tuple[Receipt, "asyncio.Future[dict[str, Any]]"]


class Receipter:
    """Signs the receipts of one engine process: each on its own (version 1), or, ``batched``,
    those asked for in one turn of the event loop together (version 2)."""

    def __init__(
        self, key: OperatorKey, committee_id: Callable[[], bytes], *, batched: bool = True
    ) -> None:
        self.key = key
        self._committee_id = committee_id
        self.batched = batched
        self.batches = 0  # signatures made for batches (a metric of how well they amortise)
        self._waiting: list[_Waiting] = []

    @property
    def operator(self) -> str:
        return self.key.address

    def _receipt(self, **fields: Any) -> Receipt:
        version = BATCH_RECEIPT_VERSION if self.batched else RECEIPT_VERSION
        return Receipt(committee_id=self._committee_id(), version=version, **fields)

    async def sign(self, receipts: list[Receipt]) -> list[dict[str, Any]]:
        """The signed JSON of ``receipts`` (built by the ``*_receipt`` methods): batched, after
        the current turn of the event loop, with every receipt asked for in it."""
        if not receipts:
            return []
        if not self.batched:
            return [receipt_to_json(sign_receipt(r, self.key)) for r in receipts]
        loop = asyncio.get_running_loop()
        if not self._waiting:
            # Runs after the callbacks already queued: the other bids of the same group commit
            loop.call_soon(self._sign_waiting)
        futures = []
        for receipt in receipts:
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting.append((receipt, fut))
            futures.append(fut)
        if len(futures) == 1:  # the common case, without gather's own future and callbacks
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    def _sign_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        by_committee: dict[bytes, list[_Waiting]] = {}
        for item in waiting:
            by_committee.setdefault(item[0].committee_id, []).append(item)
        for group in by_committee.values():
            for start in range(0, len(group), MAX_BATCH):
                chunk = group[start : start + MAX_BATCH]
                try:
                    signed = sign_receipt_batch([r for r, _ in chunk], self.key)
                    self.batches += 1
                except Exception as exc:  # never leave an acknowledgement waiting
                    log.exception("could not sign a batch of receipts")
                    for _, fut in chunk:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), doc in zip(chunk, receipts_to_json(signed), strict=True):
                    if not fut.done():
                        fut.set_result(doc)

    def bid_receipt(self, bid: Bid) -> Receipt:
        """The receipt of one logged copy of a bid (its rollup's), to ``sign``."""
        return self._receipt(
            rollup=bid.rollup, slot=bid.slot, event_id=bid.bid_id, kind=KIND_BID,
            request_hash=to_hex(keccak256(bid.evidence.body)), received_ms=bid.received_ms,
        )

    def sealed_bid_receipt(self, sealed: SealedBid) -> Receipt:
        """The receipt of a logged sealed bid, to ``sign`` (see ``for_sealed_bid``)."""
        return self._receipt(
            rollup=sealed.rollup, slot=sealed.slot, event_id=sealed.bid_id, kind=KIND_SEALED_BID,
            request_hash=to_hex(keccak256(sealed.evidence.body)), received_ms=sealed.received_ms,
        )

    def cancel_receipt(self, cancel: Cancel, slot: int) -> Receipt:
        """The receipt of a cancel logged in ``slot``, to ``sign``."""
        return self._receipt(
            rollup=cancel.rollup, slot=slot, event_id=compute_bid_id(cancel.evidence),
            kind=KIND_CANCEL, request_hash=to_hex(keccak256(cancel.evidence.body)),
            received_ms=cancel.received_ms,
        )

    def public_tx_receipt(self, ptx: PublicTx, slot: int) -> Receipt:
        """The receipt of a public tx logged in ``slot``, to ``sign``."""
        return self._receipt(
            rollup=ptx.rollup, slot=slot, event_id=ptx.tx.hash, kind=KIND_PUBLIC_TX,
            request_hash=ptx.tx.hash, received_ms=ptx.received_ms,
        )

    def for_bid(self, bid: Bid) -> dict[str, Any]:
        """One bid's receipt signed on its own (version 1, whatever ``batched`` says): what a
        receipt cost before batches (``python -m bench.receipts``)."""
        receipt = dataclasses.replace(self.bid_receipt(bid), version=RECEIPT_VERSION)
        return receipt_to_json(sign_receipt(receipt, self.key))


def compute_receipt_fields(receipts: list[dict[str, Any]]) -> dict[str, Any]:
    """What an answer carries beside ``result``: ``receipt`` (the first, or only, logged event's)
    and, when one request logged several events (a cross-rollup bundle's copies, a cancel in
    several slots), ``receipts`` with every one. Nothing when nothing was logged."""
    if not receipts:
        return {}
    if len(receipts) == 1:
        return {"receipt": receipts[0]}
    return {"receipt": receipts[0], "receipts": receipts}
