"""The FastAPI application: JSON-RPC over HTTP, the websocket, health and metrics."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.blocks import router as blocks_router
from api.committee_info import router as committee_router
from api.data import dashboard as dashboard_router
from api.data import router as data_router
from api.engine import Engine
from api.history import HistoryRetention
from api.ledger import router as ledger_router
from api.rpc import OPENAPI_ANSWERS, OPENAPI_BODY, count_refusal, dispatch, encode_message
from api.websocket import serve_websocket
from auction.constants import MAX_REQUEST_BYTES
from auction.errors import RequestTooLarge
from committee.coordinator import Coordinator, build_coordinator
from committee.keyfiles import read_committee_file
from committee.threshold import CommitteeInfo
from node import errors as wire
from node.collector import freeze_for_serving
from node.escrow import StoreEscrow
from node.metrics import Metrics
from node.operator import load_operator_key
from node.routing import ERRORS, MAX_ROLLUP, RpcRoute
from node.settings import SETTINGS_ENV, Settings
from node.stores import open_store

log = logging.getLogger("blockspace.app")


def build_engine(settings: Settings, store, *, clock_ms=None) -> Engine:  # type: ignore[no-untyped-def]
    return Engine(
        store=store,
        rollups=settings.rollup_configs(),
        preset=settings.base_preset(),
        slot_ms=settings.slot_ms,
        genesis_ms=settings.genesis_ms,
        max_slots_ahead=settings.max_slots_ahead,
        clock_ms=clock_ms,
        metrics=Metrics(),
        decode_offload_bytes=settings.decode_offload_bytes,
        # Loaded whether or not receipts are on: it also endorses the committee's proposals.
        operator_key=load_operator_key(settings),
        receipts=settings.receipts,
        receipt_batches=settings.receipt_batches,
        escrow=StoreEscrow(store) if settings.deposits else None,
    )


def create_app_from_env() -> FastAPI:
    """App factory for worker processes (``serve --workers``): settings from the environment."""
    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]), serving=True)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    committee: CommitteeInfo | None = None,
    serving: bool = False,
) -> FastAPI:
    """The app for ``settings``; pass ``engine`` to serve an engine the caller owns, and
    ``committee`` to publish its record at ``GET /v1/committee`` (else the settings' file).
    ``serving``: the app is this process's one server (``blockspace serve``), so what it loaded
    at start is frozen out of the cyclic collector's scans once it runs."""
    app = FastAPI(
        title="blockspace",
        version="0.1.0",
        summary="Sealed-bid block-space auctions for rollups",
        lifespan=_lifespan(settings or Settings(), engine, serving=serving),
    )
    app.include_router(data_router)
    app.include_router(blocks_router)
    app.include_router(committee_router)
    app.include_router(ledger_router)
    app.state.settings = settings or Settings()
    if committee is None and settings is not None and settings.committee:
        committee = read_committee_file(settings.committee)
    app.state.committee = committee
    app.include_router(dashboard_router)
    app.include_router(shell)
    app.add_api_websocket_route("/ws", ws_default)
    app.add_api_websocket_route("/rollup/{chain_id}/ws", ws_rollup)
    return app


def _lifespan(  # type: ignore[no-untyped-def]
    settings: Settings, engine: Engine | None, *, serving: bool = False
):
    """Open the store, build the engine (and the committee's coordinator), recover, start the
    clock; and the reverse on shutdown. With ``engine``, serve that one and own nothing."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        coordinator: Coordinator | None = None
        if owned:
            store = (
                await open_store(
                    settings.store,
                    appendfsync=settings.redis_appendfsync,
                    wait_replicas=settings.redis_wait_replicas,
                    wait_timeout_ms=settings.redis_wait_timeout_ms,
                )
                if settings.store != "memory"
                else await open_store("memory")
            )
            app.state.engine = build_engine(settings, store)
            if settings.committee:  # sign blocks with the committee (docs/committee.md)
                coordinator = build_coordinator(settings, app.state.engine)
            # The clock starts after recovery: a slot still unsettled from before a restart is
            # signed or failed before any later slot is built on the head.
            await app.state.engine.start(run_clock=False)
            if coordinator is not None:
                await coordinator.recover()
            app.state.engine.start_clock()
            if serving:
                # What the start loaded lives as long as the process: without this, every full
                # collection under load rescans it (~70 ms each). committee/signer.py freezes too.
                freeze_for_serving()
        else:
            app.state.engine = engine
        if app.state.committee is not None:  # encrypted bids are for the published committee
            app.state.engine.encryption_committee_id = app.state.committee.committee_id
        retention = app.state.retention = HistoryRetention.install(
            app.state.engine,
            keep_slots=settings.history_retention_slots,
            keep_days=settings.history_retention_days,
        )
        try:
            yield
        finally:
            if retention is not None:
                retention.uninstall(app.state.engine)
                await retention.close()
            if owned:
                await app.state.engine.stop()
                if coordinator is not None:
                    await coordinator.aclose()
                await app.state.engine.store.aclose()

    return lifespan


# JSON-RPC, health and metrics; a bad path (a chain id that is no number) answers the
# stable-code shape like every HTTP route (node/routing.py).
shell = APIRouter(route_class=RpcRoute)


async def rpc(request: Request, endpoint_rollup: int | None) -> Response:
    """One JSON-RPC request over HTTP: the body (refused past MAX_REQUEST_BYTES, before it is
    all read), dispatched like every transport's (api/rpc.py)."""
    eng: Engine = request.app.state.engine
    body = await _read_body(request)
    if body is None:
        exc = RequestTooLarge(f"request is larger than {MAX_REQUEST_BYTES} bytes")
        count_refusal(eng, "http", exc)
        return JSONResponse(wire.jsonrpc_error(None, exc), status_code=413)
    response, _ = await dispatch(
        eng,
        body,
        request.headers.get("x-flashbots-signature"),
        endpoint_rollup=endpoint_rollup,
        transport="http",
    )
    return Response(encode_message(eng.metrics, response), media_type="application/json")


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None once it is (or says it is) over MAX_REQUEST_BYTES."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@shell.post(
    "/",
    summary="JSON-RPC (Flashbots-compatible) for the default rollup",
    openapi_extra=OPENAPI_BODY,
    responses=OPENAPI_ANSWERS,
)
async def rpc_default(request: Request) -> Response:
    return await rpc(request, None)


@shell.post(
    "/rollup/{chain_id}",
    summary="JSON-RPC for one rollup",
    openapi_extra=OPENAPI_BODY,
    responses={**ERRORS, **OPENAPI_ANSWERS},
)
async def rpc_rollup(
    chain_id: Annotated[int, Path(ge=0, le=MAX_ROLLUP)], request: Request
) -> Response:
    return await rpc(request, chain_id)


async def ws_default(ws: WebSocket) -> None:
    await serve_websocket(ws, ws.app.state.engine, None)


async def ws_rollup(ws: WebSocket, chain_id: int) -> None:
    await serve_websocket(ws, ws.app.state.engine, chain_id)


@shell.get("/healthz", summary="Liveness and store health")
async def healthz(request: Request) -> Response:
    eng: Engine = request.app.state.engine
    ok = await eng.store.ping()
    body = {
        "status": "ok" if ok else "degraded",
        "store": eng.store.name,
        "store_ok": ok,
        "open_slot": eng.open_slot(),
        "rollups": sorted(eng.rollups),
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@shell.get(
    "/metrics",
    summary="Prometheus metrics (docs/metrics.md)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    eng: Engine = request.app.state.engine
    return Response(generate_latest(eng.metrics.registry), media_type=CONTENT_TYPE_LATEST)
