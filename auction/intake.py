"""From signed evidence to an intake event: the one path every reader of a request takes.

``compute_intake_event`` turns what arrived (the exact request bytes, the signature header, the
receive time) and the slot context into a ``Bid``, a ``Cancel``, a ``PublicTx`` or a ``Refused``
with its stable code. The engine's intake calls it for every request; the slot's history files a
refused bundle from the ``Refused`` it returns; every committee member calls it to re-derive the
events of a proposed log. "Replaying the log" is this function, run again on the evidence.

The per-method rules themselves are in ``auction.bundles`` (``compute_bid``, ``compute_cancel``,
``compute_public_tx``), in the order they are checked. Pure: time is ``received_ms``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from auction import constants as C
from auction.auth import recover_evidence
from auction.bundles import TxDecoder, compute_bid, compute_cancel, compute_public_tx
from auction.errors import (
    BlockspaceError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    OpenedBidMismatch,
    ParseError,
    RequestTooLarge,
)
from auction.history import BidRecord, compute_rejection
from auction.legs import DEFAULT_MAX_ROLLUPS_PER_BUNDLE
from auction.presets import Rollup
from auction.sealed import (
    SEND_ENCRYPTED_BUNDLE,
    check_encryption_policy,
    check_opened_bid,
    compute_sealed_bid,
)
from auction.slots import SlotClock
from auction.transactions import decode_transaction
from auction.types import Bid, Evidence, IntakeEvent, SealedBid

SEND_BUNDLE: Final = "eth_sendBundle"
CANCEL_BUNDLE: Final = "eth_cancelBundle"
SEND_RAW_TX: Final = "eth_sendRawTransaction"
SEND_PRIVATE_TX: Final = "eth_sendPrivateTransaction"
# Methods whose request becomes an event in a slot's log.
EVENT_METHODS: Final = frozenset(
    {SEND_BUNDLE, CANCEL_BUNDLE, SEND_RAW_TX, SEND_PRIVATE_TX, SEND_ENCRYPTED_BUNDLE}
)
# Methods that must be signed: their evidence is the signed request.
SIGNED_EVENT_METHODS: Final = frozenset({SEND_BUNDLE, CANCEL_BUNDLE, SEND_ENCRYPTED_BUNDLE})


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What a request is judged against besides itself: the rollups served, the slot clock, how
    far ahead a bid may target, and the endpoint it came to.

    ``rollup`` is the rollup a request is read for: its endpoint's, else ``default_rollup`` (a
    member sets it to the rollup of the log it re-derives). A cross-rollup bundle's event is
    its copy for that rollup when the bundle spans it, else for its lowest rollup;
    ``auction.legs.compute_bid_copies`` gives every copy.
    """

    rollups: Mapping[int, Rollup]
    clock: SlotClock
    max_slots_ahead: int
    default_rollup: int
    endpoint_rollup: int | None = None  # POST /rollup/{id}: bundles must be for it
    protected_hashes: frozenset[str] = frozenset()  # known protected txs (a leg's first only)
    max_rollups_per_bundle: int = DEFAULT_MAX_ROLLUPS_PER_BUNDLE  # Preset's
    # How a bundle's transactions are decoded: a member passes one memo per proposal, so a
    # transaction in several bundles of a slot is decoded (ECDSA) once.
    decode: TxDecoder = decode_transaction
    committee_id: bytes | None = None  # whose slot keys encrypted bids are for (None: none)

    @property
    def rollup(self) -> int:
        """The rollup a request is read for: its endpoint's, else ``default_rollup``."""
        return self.endpoint_rollup if self.endpoint_rollup is not None else self.default_rollup


@dataclass(frozen=True, slots=True)
class Refused:
    """A request intake refused: the error (its ``code`` is stable) and, for a bundle whose
    target slot could be read, its record for that slot's history."""

    error: BlockspaceError
    record: BidRecord | None = None


# --- the request -----------------------------------------------------------------------------


def load_request(body: bytes) -> Any:
    """The JSON of a request body (an object, or a batch); ``ParseError`` / too large."""
    if len(body) > C.MAX_REQUEST_BYTES:
        raise RequestTooLarge(f"request is larger than {C.MAX_REQUEST_BYTES} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParseError("request body is not valid JSON") from None


def check_request(req: Any) -> dict[str, Any]:
    """Check one parsed JSON-RPC 2.0 request object; raise InvalidRequest."""
    if not isinstance(req, dict):
        raise InvalidRequest("request must be a JSON object")
    if req.get("jsonrpc") != "2.0":
        raise InvalidRequest('"jsonrpc" must be "2.0"')
    if not isinstance(req.get("method"), str):
        raise InvalidRequest('"method" must be a string')
    rid = req.get("id")
    if isinstance(rid, bool) or (rid is not None and not isinstance(rid, (str, int))):
        raise InvalidRequest('"id" must be a string, a number or null')
    return req


def parse_request(body: bytes) -> dict[str, Any]:
    """Parse one JSON-RPC 2.0 request object (not a batch); raise ParseError / InvalidRequest."""
    req = load_request(body)
    if isinstance(req, list):
        raise InvalidRequest("a batch is not allowed here")
    return check_request(req)


def parse_params_object(body: bytes, method: str) -> Mapping[str, Any]:
    """The parameter object of the signed request ``body``, which must call ``method`` (what a
    member's cheap binding check reads, parsed exactly as intake parses it)."""
    req = parse_request(body)
    if req["method"] != method:
        raise InvalidParams(f"the signed request is not an {method} request")
    params = req.get("params")
    if isinstance(params, list) and len(params) == 1:
        params = params[0]
    if not isinstance(params, Mapping):
        raise InvalidParams(f"{method} parameter must be an object")
    return params


# --- the event --------------------------------------------------------------------------------


def compute_intake_event(
    body: bytes,
    signature: str | None,
    received_ms: int,
    ctx: IntakeContext,
    *,
    request: Mapping[str, Any] | None = None,
    signer: tuple[str, Evidence] | None = None,
    opened_from: SealedBid | None = None,
) -> IntakeEvent | SealedBid | Refused:
    """The event a request makes, or its refusal. Deterministic in its arguments.

    ``request`` is ``body`` already parsed (a transport that parsed it to route it passes it, so
    it is read once); ``signer`` the searcher and canonical evidence already recovered from
    ``signature`` (a shell that rate-limits per searcher recovers it first). Both default to
    being computed here from ``body`` and ``signature``, which is what a member does.

    ``opened_from`` reads ``body`` as the opened payload of that sealed bid (docs/encryption.md,
    "Opening"): it must be an ``eth_sendBundle`` request, checked by the plaintext rules with
    ``received_ms`` the sealed bid's, and must keep its public fields; the bid keeps the sealed
    bid's id and evidence (the signed call that carried the ciphertext).
    """
    method = ""
    searcher: str | None = None
    params: Any = None
    try:
        req = request if request is not None else parse_request(body)
        method = str(req["method"])
        params = req.get("params", [])
        if method not in EVENT_METHODS:
            raise MethodNotFound(f"method {method!r} makes no intake event")
        if opened_from is not None:
            searcher = opened_from.searcher
            return compute_opened_bid(body, method, params, opened_from, ctx)
        if method in SIGNED_EVENT_METHODS:
            searcher, evidence = signer or recover_evidence(body, signature)
            if method == SEND_BUNDLE:
                bid = _compute_bid(params, searcher, evidence, received_ms, ctx)
                check_encryption_policy(bid, ctx.rollups)
                return bid
            if method == SEND_ENCRYPTED_BUNDLE:
                return compute_sealed_bid(
                    params,
                    searcher=searcher,
                    evidence=evidence,
                    committee_id=ctx.committee_id,
                    rollups=ctx.rollups,
                    clock=ctx.clock,
                    now_ms=received_ms,
                    max_slots_ahead=ctx.max_slots_ahead,
                    rollup=ctx.rollup,
                    endpoint_rollup=ctx.endpoint_rollup,
                    max_rollups_per_bundle=ctx.max_rollups_per_bundle,
                )
            return compute_cancel(
                params,
                searcher=searcher,
                evidence=evidence,
                rollup=ctx.rollup,
                clock=ctx.clock,
                now_ms=received_ms,
                max_slots_ahead=ctx.max_slots_ahead,
            )
        return compute_public_tx(
            params,
            rollups=ctx.rollups,
            now_ms=received_ms,
            endpoint_rollup=ctx.endpoint_rollup,
            protected=method == SEND_PRIVATE_TX,
        )
    except BlockspaceError as exc:
        return compute_refused(exc, method, params, searcher, received_ms, ctx)


def _compute_bid(
    params: Any, searcher: str, evidence: Evidence, received_ms: int, ctx: IntakeContext
) -> Bid:
    """The plaintext rules of ``eth_sendBundle`` (``auction.bundles.compute_bid``)."""
    return compute_bid(
        params,
        searcher=searcher,
        evidence=evidence,
        rollups=ctx.rollups,
        clock=ctx.clock,
        now_ms=received_ms,
        max_slots_ahead=ctx.max_slots_ahead,
        endpoint_rollup=ctx.endpoint_rollup,
        protected_hashes=ctx.protected_hashes,
        rollup=ctx.rollup,
        max_rollups_per_bundle=ctx.max_rollups_per_bundle,
        decode=ctx.decode,
    )


def compute_opened_bid(
    payload: bytes, method: str, params: Any, sealed: SealedBid, ctx: IntakeContext
) -> Bid:
    """The bid an opened payload makes: the plaintext rules, judged at the sealed bid's arrival
    (its padding allowance over the payload, the request it is), then its public fields."""
    # Verify the payload is a bundle (a sealed cancel or tx is no bid)
    if method != SEND_BUNDLE:
        raise OpenedBidMismatch(
            f"the opened payload is an {method} request", field="method", bid_id=sealed.bid_id
        )
    payload_evidence = Evidence(payload, sealed.evidence.signature)
    bid = _compute_bid(params, sealed.searcher, payload_evidence, sealed.received_ms, ctx)
    check_opened_bid(bid, sealed)
    return dataclasses.replace(bid, bid_id=sealed.bid_id, evidence=sealed.evidence)


def compute_refused(
    error: BlockspaceError,
    method: str,
    params: Any,
    searcher: str | None,
    received_ms: int,
    ctx: IntakeContext,
) -> Refused:
    """A refusal, with the history record of a refused bundle whose signer is known (one that
    fails its signature check names nobody, so it is filed nowhere)."""
    if method != SEND_BUNDLE or searcher is None:
        return Refused(error)
    record = compute_rejection(
        params,
        searcher=searcher,
        code=error.code,
        received_ms=received_ms,
        default_rollup=ctx.default_rollup,
        endpoint_rollup=ctx.endpoint_rollup,
        served=ctx.rollups,
    )
    return Refused(error, record)
