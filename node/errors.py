"""The one place where BlockspaceErrors become wire errors (JSON-RPC, HTTP, websocket)."""

from __future__ import annotations

from typing import Any

from auction import ciphertext as X
from auction import errors as E
from auction.hashing import to_hex

# JSON-RPC numeric codes. -32700..-32600 are JSON-RPC's own; -32000..-32099 are ours and stable.
# The stable string code is always in error.data.code.
_JSONRPC_CODES: dict[type[E.BlockspaceError], int] = {
    E.ParseError: -32700,
    E.InvalidRequest: -32600,
    E.MethodNotFound: -32601,
    E.InvalidParams: -32602,
    E.RequestTooLarge: -32600,
    E.MissingSignature: -32001,
    E.InvalidSignature: -32002,
    E.InvalidTransaction: -32010,
    E.UnprotectedTransaction: -32011,
    E.UnknownRollup: -32012,
    E.ChainIdMismatch: -32013,
    E.EmptyBundle: -32014,
    E.BundleTooLarge: -32015,
    E.DuplicateTransaction: -32016,
    E.BundleGasTooHigh: -32017,
    E.BidTooLow: -32018,
    E.ProtectedTransactionMisplaced: -32019,
    E.InvalidTimestampRange: -32020,
    E.BidTooHigh: -32021,
    E.CrossRollupNotAllowedHere: -32022,
    E.LegChainMismatch: -32023,
    E.EmptyLeg: -32024,
    E.TooManyRollups: -32025,
    E.SlotClosed: -32030,
    E.SlotTooFarAhead: -32031,
    E.SlotNotFound: -32032,
    E.SlotFull: -32033,
    E.SearcherLimitExceeded: -32040,
    E.RateLimited: -32041,
    E.BundleNotFound: -32042,
    E.PublicPoolFull: -32043,
    E.FeeTooLow: -32044,
    E.SenderLimitExceeded: -32045,
    E.TxGasTooHigh: -32046,
    E.InsufficientDeposit: -32047,
    E.InfeasibleInstance: -32050,
    E.StoreUnavailable: -32060,
    # Encrypted bids (docs/encryption.md, "Intake").
    E.EncryptionRequired: -32061,
    E.EncryptionNotServed: -32062,
    X.MalformedCiphertext: -32063,
    X.UnsupportedCiphertextVersion: -32064,
    X.CiphertextTooShort: -32065,
    X.CiphertextTooLarge: -32066,
    X.WrongCommittee: -32067,
    X.WrongSlot: -32068,
    E.PublicFieldsMismatch: -32069,
    E.CiphertextSearcherMismatch: -32070,
    E.EncapsulationLimit: -32071,
    E.CiphertextReplayed: -32072,
    # Refusals at opening (recorded against the searcher; never a reply to a call today).
    X.InvalidEncapsulation: -32073,
    X.PayloadAuthFailed: -32074,
    E.OpenedBidMismatch: -32075,
}

# HTTP status for the data and block APIs (JSON-RPC answers 200, as Flashbots clients expect).
_HTTP_STATUS: dict[str, int] = {
    "slot_not_found": 404,
    "bundle_not_found": 404,
    "block_not_found": 404,
    "slot_failed": 404,
    "no_committee": 404,
    "unknown_rollup": 404,
    "rate_limited": 429,
    "public_pool_full": 429,
    "sender_limit_exceeded": 429,
    "request_too_large": 413,
    "store_unavailable": 503,
    "unauthorized": 401,
    "withdrawal_not_found": 404,
    "already_applied": 409,
    "evidence_already_applied": 409,
    "stale_balance": 409,
    "internal_error": 500,
    # A member asked for its key share early: the request may be repeated after the deadline.
    "deadline_not_passed": 425,
    "already_committed_other_root": 409,
}


def jsonrpc_code(exc: E.BlockspaceError) -> int:
    for cls in type(exc).__mro__:
        if cls in _JSONRPC_CODES:
            return _JSONRPC_CODES[cls]  # type: ignore[index]
    return -32603


# orjson (and most JSON stacks) write integers in [-2**63, 2**64) only.
_MIN_WIRE_INT = -(2**63)
_MAX_WIRE_INT = 2**64 - 1


def compute_wire_value(value: Any) -> Any:
    """``value`` as plain JSON any encoder writes: integers beyond 64 bits (a chain id of 2**100
    in an error's data) become decimal strings, bytes 0x-hex, anything else unknown its str."""
    if value is None or isinstance(value, (str, bool, float)):
        return value
    if isinstance(value, int):
        return value if _MIN_WIRE_INT <= value <= _MAX_WIRE_INT else str(value)
    if isinstance(value, dict):
        return {str(k): compute_wire_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [compute_wire_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_hex(bytes(value))
    return str(value)


def jsonrpc_error(request_id: Any, exc: E.BlockspaceError) -> dict[str, Any]:
    """A JSON-RPC 2.0 error response for ``exc``; its data serialise whatever they hold."""
    data: dict[str, Any] = {"code": exc.code}
    data.update((k, v) for k, v in compute_wire_value(exc.data).items() if k != "code")
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": jsonrpc_code(exc), "message": str(exc.message), "data": data},
    }


def internal_jsonrpc_error(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": -32603, "message": "internal error", "data": {"code": "internal_error"}},
    }


def http_status(exc: E.BlockspaceError) -> int:
    return _HTTP_STATUS.get(exc.code, 400)


def http_error_body(exc: E.BlockspaceError) -> dict[str, Any]:
    """The ``{"code", "message", "data"?}`` body of an HTTP error; its data serialise anything."""
    data = compute_wire_value(exc.data)
    return {"code": exc.code, "message": str(exc.message), **({"data": data} if data else {})}


# Websocket close codes (RFC 6455 and the 4000-4999 private range).
WS_CLOSE_TOO_BIG = 1009
WS_CLOSE_POLICY = 1008
WS_CLOSE_INTERNAL = 1011
WS_CLOSE_FLOOD = 4029
