"""Baseline servers: the cheapest servers that speak the same framing as blockspace's intake.

Each acknowledges every signed call with ``{"jsonrpc":"2.0","id":<id>,"result":true}``, taking the
id from the JSON-RPC body exactly as the engine must (outer frame JSON, then body JSON); nothing
else. The load test drives them with the very frames and client it uses against the engine, so
``blockspace / echo`` is the share of a bare server's ack rate that the engine keeps.

- ``ws``: a ``websockets`` (asyncio) server, one reply per frame: the issue's baseline.
- ``asgi-ws``: a raw ASGI websocket app under uvicorn, the server stack blockspace runs on
  (uvicorn + websockets-sansio), without FastAPI/Starlette or the engine: a diagnostic that splits
  the gap into "server stack" and "engine".
- ``http``: a raw ASGI app under uvicorn answering JSON-RPC POSTs (the HTTP baseline).
- ``verify-ws``: the ``ws`` echo that also does, per frame, the cryptography every bid needs
  before it can be acknowledged, with the engine's own functions: the searcher's signature
  (``auction.auth.recover_evidence``: EIP-191 digest, one ECDSA recovery) and every
  transaction's sender (``auction.transactions.decode_transaction``: strict RLP, signing hash,
  one recovery), then answers like an ack (``{"bundleHash": ...}``). It checks nothing else,
  logs nothing and signs no receipt: the floor a verifying intake cannot go under, so
  ``engine / verify-ws`` is what the engine costs above it.

Run: ``python -m loadtest.echo --kind ws --port 9001``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

from auction.auth import recover_evidence
from auction.errors import BlockspaceError
from auction.transactions import compute_bundle_hash, decode_transaction


def _ack(rid: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": True})


def _frame_id(frame: str | bytes) -> Any:
    outer = orjson.loads(frame)
    if "body" in outer:
        outer = orjson.loads(outer["body"])
    return outer.get("id")


def _verified_ack(frame: str | bytes) -> bytes:
    """The ack of one signed ``eth_sendBundle`` frame after its signature and every sender
    recovery (an error reply for anything that does not verify)."""
    outer = orjson.loads(frame)
    body = outer["body"].encode()
    req = orjson.loads(body)
    rid = req.get("id")
    try:
        recover_evidence(body, outer.get("signature"))
        txs = [decode_transaction(bytes.fromhex(t[2:])) for t in req["params"][0]["txs"]]
    except BlockspaceError as exc:
        return orjson.dumps({"jsonrpc": "2.0", "id": rid,
                             "error": {"code": -32602, "message": exc.message,
                                       "data": {"code": exc.code}}})  # fmt: skip
    result = {"bundleHash": compute_bundle_hash([t.hash for t in txs])}
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": result})


async def serve_ws(host: str, port: int, *, verify: bool = False) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            reply = _verified_ack(frame) if verify else _ack(_frame_id(frame))
            await ws.send(reply.decode())

    async with serve(handler, host, port, compression=None, max_size=2 * 1024 * 1024):
        await asyncio.Future()


async def _asgi_ws(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        frame = msg.get("text") or msg.get("bytes") or b""
        await send({"type": "websocket.send", "text": _ack(_frame_id(frame)).decode()})


async def _asgi_http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _asgi_ws(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            break
    body = _ack(_frame_id(b"".join(chunks)))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.echo", description=__doc__)
    parser.add_argument("--kind", choices=["ws", "verify-ws", "asgi-ws", "http"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind in ("ws", "verify-ws"):
        asyncio.run(serve_ws(args.host, args.port, verify=args.kind == "verify-ws"))
        return 0
    import uvicorn

    app = _asgi_ws if args.kind == "asgi-ws" else _asgi_http
    # The same uvicorn settings as ``blockspace serve`` (api/cli.py).
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", ws_max_size=2 * 1024 * 1024
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
