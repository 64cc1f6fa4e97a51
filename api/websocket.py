"""The websocket transport: the JSON-RPC methods of ``api.rpc`` plus subscriptions.

Frames (text or binary) hold one JSON object each:
- a signed call: ``{"signature": "<address>:<sig>", "body": "<JSON-RPC request text>"}``; the
  signature covers the exact UTF-8 bytes of ``body`` (same scheme as X-Flashbots-Signature);
- an unsigned call: a bare JSON-RPC request (eth_chainId, eth_blockNumber, bs_subscribe).

Replies carry the request id and may arrive out of order (calls run concurrently, up to
``MAX_IN_FLIGHT`` per connection).

Bundle notifications (live bid amounts) go only to a connection that proved, freshly and on that
connection, that it holds the searcher's key: ``bs_nonce`` answers the connection's random nonce,
and a *signed* ``bs_subscribe ["bundles", {"nonce": <it>, "timestampMs": <now>}]`` subscribes
the connection to the signer's bundle events. A signed request copied from elsewhere (any
method, on any other connection) subscribes nothing: its body names another nonce or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.engine import Engine
from api.intake import TokenBucket
from api.rpc import count_refusal, dispatch, encode_message
from auction.constants import MAX_REQUEST_BYTES
from auction.errors import (
    BlockspaceError,
    InvalidParams,
    InvalidRequest,
    MissingSignature,
    ParseError,
    RateLimited,
    RequestTooLarge,
)
from auction.intake import check_request, load_request
from node import errors as wire
from node.notify import Subscriber

log = logging.getLogger("blockspace.ws")

MAX_IN_FLIGHT = 512
# Frames per second one connection may send before frames are refused (a flood guard that
# runs before any signature check, so it also covers unsigned garbage).
CONN_RATE_PER_S = 50_000
CONN_BURST = 50_000
# Refusals in a row after which the connection is closed.
MAX_CONSECUTIVE_FLOOD = 10_000
# A bundle subscription's timestampMs may differ from the server's clock by at most this much.
SUBSCRIBE_MAX_SKEW_MS = 30_000
NONCE_BYTES = 32
TOPICS = ("bundles", "slots", "blocks")


def _split_frame(frame: bytes) -> tuple[bytes, str | None]:
    """Return (JSON-RPC body, signature or None) of one frame."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise RequestTooLarge(f"frame is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ParseError("frame is not valid JSON") from None
    if isinstance(obj, dict) and "body" in obj and "jsonrpc" not in obj:
        body, sig = obj.get("body"), obj.get("signature")
        if not isinstance(body, str):
            raise InvalidRequest('"body" must be the JSON-RPC request as a string')
        if sig is not None and not isinstance(sig, str):
            raise InvalidRequest('"signature" must be a string')
        return body.encode(), sig
    return frame, None


def check_bundle_subscription(params: Any, *, nonce: str, now_ms: int) -> None:
    """Verify that signed ``bs_subscribe`` params name this connection's nonce and a recent time;
    raise InvalidParams naming the field otherwise."""
    options = params[1] if isinstance(params, list) and len(params) == 2 else None
    if not isinstance(options, dict):
        raise InvalidParams(
            'bs_subscribe ["bundles", {"nonce", "timestampMs"}] takes the connection\'s nonce '
            "(bs_nonce) and the time",
            field="params",
        )
    given = options.get("nonce")
    # Verify that the subscription was signed for this connection
    if not isinstance(given, str) or not hmac.compare_digest(
        given.lower().encode(), nonce.encode()
    ):
        raise InvalidParams("nonce is not this connection's (ask bs_nonce)", field="nonce")
    stamp = options.get("timestampMs")
    # Verify that the subscription was signed recently
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise InvalidParams("timestampMs must be the time in ms (an integer)", field="timestampMs")
    if abs(stamp - now_ms) > SUBSCRIBE_MAX_SKEW_MS:
        raise InvalidParams(
            f"timestampMs is more than {SUBSCRIBE_MAX_SKEW_MS} ms from the server's time",
            field="timestampMs",
            server_time_ms=now_ms,
        )


async def serve_websocket(ws: WebSocket, engine: Engine, endpoint_rollup: int | None) -> None:
    await ws.accept()
    sub = Subscriber()
    nonce = "0x" + secrets.token_hex(NONCE_BYTES)
    engine.metrics.websocket_connections.inc()
    bucket = TokenBucket(CONN_RATE_PER_S, CONN_BURST, engine.now_ms())
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    floods = 0

    async def writer() -> None:
        # encode_message never raises; a send that fails means the connection is gone, and the
        # reader sees that too. Anything else closes the connection: never a silent dead writer.
        try:
            while True:
                msg = await sub.queue.get()
                await ws.send_text(encode_message(engine.metrics, msg).decode())
        except (asyncio.CancelledError, WebSocketDisconnect):
            raise
        except Exception:
            engine.metrics.system_faults.labels("websocket_writer").inc()
            log.exception("websocket writer fault; closing the connection")
            with contextlib.suppress(Exception):
                await ws.close(code=wire.WS_CLOSE_INTERNAL, reason="internal error")

    async def handle(frame: bytes) -> None:
        try:
            try:
                body, sig = _split_frame(frame)
            except BlockspaceError as exc:
                count_refusal(engine, "ws", exc)
                sub.offer(wire.jsonrpc_error(None, exc))
                return
            try:
                parsed: Any = load_request(body)
            except BlockspaceError:
                parsed = None  # dispatch answers it with its code
            if _subscription(parsed, body, sig, engine, sub, nonce):
                return
            # The body is parsed once: dispatch reads the same object
            response, _ = await dispatch(
                engine, body, sig, endpoint_rollup=endpoint_rollup, transport="ws", parsed=parsed
            )
            sub.offer(response)
        finally:
            in_flight.release()

    writer_task = asyncio.create_task(writer())
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("bytes") or (message.get("text") or "").encode()
            if not bucket.take(engine.now_ms()):
                floods += 1
                exc = RateLimited("too many frames on this connection; slow down")
                count_refusal(engine, "ws", exc)
                sub.offer(wire.jsonrpc_error(None, exc))
                if floods >= MAX_CONSECUTIVE_FLOOD:
                    await ws.close(code=wire.WS_CLOSE_FLOOD, reason="flood")
                    break
                continue
            floods = 0
            await in_flight.acquire()
            task = asyncio.create_task(handle(frame))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except WebSocketDisconnect:
        pass
    except Exception:
        engine.metrics.system_faults.labels("websocket").inc()
        log.exception("websocket connection fault")
    finally:
        engine.notifier.forget(sub)
        engine.metrics.websocket_connections.dec()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # Flush what is queued (replies to calls the client made), then stop the writer.
        with contextlib.suppress(Exception):
            while not sub.queue.empty():
                await ws.send_text(encode_message(engine.metrics, sub.queue.get_nowait()).decode())
        writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer_task


def _subscription(
    parsed: Any, body: bytes, sig: str | None, engine: Engine, sub: Subscriber, nonce: str
) -> bool:
    """Answer ``bs_nonce``, ``bs_subscribe`` and ``bs_unsubscribe`` (``parsed``: the body's
    JSON); False for any other call."""
    if not isinstance(parsed, dict) or parsed.get("method") not in (
        "bs_nonce", "bs_subscribe", "bs_unsubscribe"
    ):
        return False
    try:
        req = check_request(parsed)
    except BlockspaceError:
        return False
    method = req["method"]
    rid: Any = req.get("id")
    params = req.get("params") or []
    topic = params[0] if isinstance(params, list) and params else None
    try:
        if method == "bs_nonce":
            result: Any = nonce
        elif method == "bs_unsubscribe":
            engine.notifier.forget(sub)
            result = True
        elif topic == "slots":
            engine.notifier.watch_slots(sub)
            result = topic
        elif topic == "blocks":
            engine.notifier.watch_blocks(sub)
            result = topic
        elif topic == "bundles":
            if sig is None:
                raise MissingSignature(
                    'bs_subscribe ["bundles", ...] must be a signed frame: it proves the key'
                )
            searcher, _ = engine.intake.authenticate(body, sig)
            check_bundle_subscription(params, nonce=nonce, now_ms=engine.now_ms())
            engine.notifier.watch_searcher(searcher, sub)
            result = topic
        else:
            raise InvalidParams(f"bs_subscribe takes one of {', '.join(TOPICS)}", field="params")
    except BlockspaceError as exc:
        count_refusal(engine, "ws", exc)
        sub.offer(wire.jsonrpc_error(rid, exc))
        return True
    sub.offer({"jsonrpc": "2.0", "id": rid, "result": result})
    return True
