"""JSON-RPC dispatch shared by the HTTP and websocket transports (one code path)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from api.engine import Engine
from api.receipts import compute_receipt_fields
from auction.bundles import parse_quantity
from auction.errors import BlockspaceError, InvalidRequest, MethodNotFound
from auction.intake import check_request, load_request
from node.errors import internal_jsonrpc_error, jsonrpc_error
from node.metrics import Metrics

log = logging.getLogger("blockspace.rpc")

SIGNED_METHODS = frozenset(
    {"eth_sendBundle", "eth_cancelBundle", "flashbots_getBundleStatsV2", "flashbots_getBundleStats",
     "bs_sendEncryptedBundle"}
)
UNSIGNED_METHODS = frozenset(
    {"eth_chainId", "eth_blockNumber", "net_version", "web3_clientVersion"}
)

PUBLIC_METHODS = frozenset({"eth_sendRawTransaction", "eth_sendPrivateTransaction"})

MAX_BATCH = 100

# --- OpenAPI description of the JSON-RPC body (what schemathesis generates requests from) ------

_ID_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]
}
_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jsonrpc", "method"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": _ID_SCHEMA,
        "method": {
            "type": "string",
            "enum": sorted(SIGNED_METHODS | UNSIGNED_METHODS | PUBLIC_METHODS),
        },
        "params": {"type": "array"},
    },
}
_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jsonrpc", "id"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": _ID_SCHEMA,
        "result": {},
        "receipt": {"type": "object", "description": "the operator's signed receipt"},
        "receipts": {"type": "array", "items": {"type": "object"}},
        "error": {
            "type": "object",
            "required": ["code", "message", "data"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "data": {
                    "type": "object",
                    "required": ["code"],
                    "properties": {"code": {"type": "string", "description": "stable code"}},
                },
            },
        },
    },
}
OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "one JSON-RPC 2.0 request, or a batch of unsigned ones (docs/protocol.md)",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _REQUEST_SCHEMA,
                        {
                            "type": "array",
                            "items": _REQUEST_SCHEMA,
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                        },
                    ]
                }
            }
        },
    },
    "parameters": [
        {
            "name": "X-Flashbots-Signature",
            "in": "header",
            "required": False,
            "description": "<address>:<signature> for the signed methods",
            "schema": {"type": "string"},
        }
    ],
}
OPENAPI_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the answer (errors too: HTTP 200, as Flashbots clients expect)",
        "content": {
            "application/json": {
                "schema": {"oneOf": [_ANSWER_SCHEMA, {"type": "array", "items": _ANSWER_SCHEMA}]}
            }
        },
    },
    413: {
        "description": "a body over 1 MiB (a JSON-RPC error, code request_too_large)",
        "content": {"application/json": {"schema": _ANSWER_SCHEMA}},
    },
}


def compute_request_id(req: Any) -> Any:
    """The id an answer to ``req`` carries: its own when well formed, else null (JSON-RPC 2.0:
    an id that cannot be read is answered as null, never echoed)."""
    rid = req.get("id") if isinstance(req, dict) else None
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None
    return rid


async def dispatch(
    engine: Engine,
    body: bytes,
    signature: str | None,
    *,
    endpoint_rollup: int | None,
    transport: str,
    parsed: Any = None,
) -> tuple[Any, str | None]:
    """Answer one request (or a batch). Returns the response and the authenticated searcher.
    ``parsed``: ``body``'s JSON when the transport already read it (None: read it here).

    Batches (ethers' JsonRpcProvider sends them by default) may hold unsigned calls only: a
    signature covers a whole body, and a bid's evidence must be exactly one request.
    """
    if parsed is None:
        try:
            parsed = load_request(body)
        except BlockspaceError as exc:
            return _refuse(engine, transport, None, exc), None
    if isinstance(parsed, list):
        if not parsed:
            return _refuse(engine, transport, None, InvalidRequest("empty batch")), None
        if len(parsed) > MAX_BATCH:
            too_many = InvalidRequest(f"a batch may hold at most {MAX_BATCH} calls")
            return _refuse(engine, transport, None, too_many), None
        answers = []
        for item in parsed:
            rid = compute_request_id(item)
            try:
                req = check_request(item)
                if req["method"] in SIGNED_METHODS:
                    raise InvalidRequest(f"{req['method']} cannot be sent in a batch")
                answer, _ = await _answer(engine, req, body, signature, endpoint_rollup, transport)
                answers.append(answer)
            except BlockspaceError as exc:
                answers.append(_refuse(engine, transport, rid, exc))
        return answers, None
    rid = compute_request_id(parsed)
    try:
        req = check_request(parsed)
    except BlockspaceError as exc:
        return _refuse(engine, transport, rid, exc), None
    return await _answer(engine, req, body, signature, endpoint_rollup, transport)


def encode_message(metrics: Metrics, msg: Any) -> bytes:
    """The JSON bytes of one outgoing message (reply, batch or notification). One that cannot be
    encoded becomes an internal error with its id (counted, logged): never an exception, so a
    transport's writer never dies of a message."""
    try:
        return orjson.dumps(msg)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        metrics.system_faults.labels("encode").inc()
        log.exception("could not encode an outgoing message")
        rid = msg.get("id") if isinstance(msg, dict) else None
        try:
            return orjson.dumps(internal_jsonrpc_error(rid))
        except (orjson.JSONEncodeError, TypeError, ValueError):
            return orjson.dumps(internal_jsonrpc_error(None))


def compute_refusal_slot(engine: Engine, req: Any) -> int:
    """The slot whose close publishes a refusal's count (docs/metrics.md): a bundle's target slot
    when it names one in the intake window (a searcher's full quota there is a fact about that
    slot's pending bids), else the open slot."""
    open_slot = engine.open_slot()
    params = req.get("params") if isinstance(req, dict) else None
    first = params[0] if isinstance(params, list) and params else None
    bundle_methods = ("eth_sendBundle", "bs_sendEncryptedBundle")
    if isinstance(first, dict) and req.get("method") in bundle_methods:
        try:
            target = parse_quantity(first.get("blockNumber"), "blockNumber")
        except BlockspaceError:
            target = None
        if target is not None:
            return min(max(target, open_slot), open_slot + engine.max_slots_ahead)
    return open_slot


def count_refusal(engine: Engine, transport: str, exc: BlockspaceError, req: Any = None) -> None:
    """Count a refused request; the count is published when its slot closes."""
    engine.metrics.count_refusal(transport, exc.code, compute_refusal_slot(engine, req))


def _refuse(
    engine: Engine, transport: str, rid: Any, exc: BlockspaceError, req: Any = None
) -> dict[str, Any]:
    count_refusal(engine, transport, exc, req)
    log.info("rejected %s: %s", exc.code, exc.message)
    return jsonrpc_error(rid, exc)


async def _answer(
    engine: Engine,
    req: dict[str, Any],
    body: bytes,
    signature: str | None,
    endpoint_rollup: int | None,
    transport: str,
) -> tuple[dict[str, Any], str | None]:
    rid: Any = req.get("id")
    searcher: str | None = None
    receipts: list[dict[str, Any]] = []  # of the events the request logged
    try:
        method = req["method"]
        params = req.get("params", [])
        if method in SIGNED_METHODS:
            searcher, evidence = engine.intake.authenticate(body, signature)
            if method == "eth_sendBundle":
                result: Any = await engine.intake.submit_bundle(
                    params,
                    searcher=searcher,
                    evidence=evidence,
                    endpoint_rollup=endpoint_rollup,
                    transport=transport,
                    receipts=receipts,
                )
            elif method == "bs_sendEncryptedBundle":
                result = await engine.intake.submit_sealed_bundle(
                    params,
                    searcher=searcher,
                    evidence=evidence,
                    endpoint_rollup=endpoint_rollup,
                    transport=transport,
                    receipts=receipts,
                )
            elif method == "eth_cancelBundle":
                result = await engine.intake.cancel_bundle(
                    params, searcher=searcher, evidence=evidence, endpoint_rollup=endpoint_rollup,
                    receipts=receipts,
                )
            else:
                result = await engine.intake.bundle_stats(
                    params, searcher=searcher, endpoint_rollup=endpoint_rollup
                )
        elif method in PUBLIC_METHODS:
            result = await engine.intake.submit_public_tx(
                params,
                endpoint_rollup=endpoint_rollup,
                protected=method == "eth_sendPrivateTransaction",
                receipts=receipts,
            )
        elif method == "eth_chainId":
            result = hex(endpoint_rollup if endpoint_rollup is not None else engine.default_rollup)
        elif method == "net_version":
            result = str(endpoint_rollup if endpoint_rollup is not None else engine.default_rollup)
        elif method == "eth_blockNumber":
            result = hex(max(engine.head_slot(), 0))
        elif method == "web3_clientVersion":
            result = "blockspace/0.1.0"
        else:
            raise MethodNotFound(f"method {method!r} is not supported")
        # Receipts go beside "result", where Flashbots clients ignore them (docs/protocol.md)
        answer = {"jsonrpc": "2.0", "id": rid, "result": result}
        return answer | compute_receipt_fields(receipts), searcher
    except BlockspaceError as exc:
        return _refuse(engine, transport, rid, exc, req), searcher
    except Exception:
        engine.metrics.system_faults.labels("rpc").inc()
        log.exception("internal error answering a request")
        return internal_jsonrpc_error(rid), searcher
