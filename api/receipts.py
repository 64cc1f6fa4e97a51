"""Receipts as the engine hands them out: the operator signs one per logged event (shell side).

``Receipter`` signs with the operator key under the engine's current committee id (all zero
until a committee is attached) and returns the receipt's JSON (``auction.receipts``), which the
JSON-RPC and websocket answers carry beside the result (docs/protocol.md, "Receipts").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auction.bundles import compute_bid_id
from auction.hashing import keccak256, to_hex
from auction.receipts import (
    KIND_BID,
    KIND_CANCEL,
    KIND_PUBLIC_TX,
    KIND_SEALED_BID,
    OperatorKey,
    Receipt,
    receipt_to_json,
    sign_receipt,
)
from auction.types import Bid, Cancel, PublicTx, SealedBid


class Receipter:
    """Signs the receipts of one engine process."""

    def __init__(self, key: OperatorKey, committee_id: Callable[[], bytes]) -> None:
        self.key = key
        self._committee_id = committee_id

    @property
    def operator(self) -> str:
        return self.key.address

    def _sign(self, **fields: Any) -> dict[str, Any]:
        receipt = Receipt(committee_id=self._committee_id(), **fields)
        return receipt_to_json(sign_receipt(receipt, self.key))

    def for_bid(self, bid: Bid) -> dict[str, Any]:
        """The receipt of one logged copy of a bid (its rollup's)."""
        return self._sign(
            rollup=bid.rollup, slot=bid.slot, event_id=bid.bid_id, kind=KIND_BID,
            request_hash=to_hex(keccak256(bid.evidence.body)), received_ms=bid.received_ms,
        )

    def for_sealed_bid(self, sealed: SealedBid) -> dict[str, Any]:
        """The receipt of a logged sealed bid: its request hash is over the signed call, so it
        covers the ciphertext; the signed block's later commitment names the same bid id."""
        return self._sign(
            rollup=sealed.rollup, slot=sealed.slot, event_id=sealed.bid_id, kind=KIND_SEALED_BID,
            request_hash=to_hex(keccak256(sealed.evidence.body)), received_ms=sealed.received_ms,
        )

    def for_cancel(self, cancel: Cancel, slot: int) -> dict[str, Any]:
        """The receipt of a cancel logged in ``slot``."""
        return self._sign(
            rollup=cancel.rollup, slot=slot, event_id=compute_bid_id(cancel.evidence),
            kind=KIND_CANCEL, request_hash=to_hex(keccak256(cancel.evidence.body)),
            received_ms=cancel.received_ms,
        )

    def for_public_tx(self, ptx: PublicTx, slot: int) -> dict[str, Any]:
        """The receipt of a public tx logged in ``slot`` (its event id and request hash are both
        the tx hash: the signed tx is its own evidence)."""
        return self._sign(
            rollup=ptx.rollup, slot=slot, event_id=ptx.tx.hash, kind=KIND_PUBLIC_TX,
            request_hash=ptx.tx.hash, received_ms=ptx.received_ms,
        )


def compute_receipt_fields(receipts: list[dict[str, Any]]) -> dict[str, Any]:
    """What an answer carries beside ``result``: ``receipt`` (the first, or only, logged event's)
    and, when one request logged several events (a cross-rollup bundle's copies, a cancel in
    several slots), ``receipts`` with every one. Nothing when nothing was logged."""
    if not receipts:
        return {}
    if len(receipts) == 1:
        return {"receipt": receipts[0]}
    return {"receipt": receipts[0], "receipts": receipts}
