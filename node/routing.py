"""HTTP routes whose every refusal has the stable-code shape ``{"code", "message", "data"?}``.

FastAPI answers a bad path or query parameter with its own 422 body; ``StableErrorRoute`` turns
it (and any ``BlockspaceError`` a handler raises) into an ``invalid_params`` 400, or the error's
own status, through ``node/errors.py``. Every HTTP router of the engine uses it (data, dashboard,
blocks, JSON-RPC); ``ERRORS`` and ``NON_JSON_ERRORS`` document those answers in OpenAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from auction.errors import BlockspaceError, InvalidParams, StoreUnavailable
from auction.history import OUTCOMES
from node import errors as wire

log = logging.getLogger("blockspace.routing")

# Path and query bounds shared by every route: a chain id is a uint64 in practice (and a Redis
# key part), slot numbers are exact in a Redis sorted-set score (a double) up to 2**53.
MAX_ROLLUP = 2**63 - 1
MAX_SLOT = 2**53 - 1

# Friendlier messages than pydantic's for the checks people get wrong most.
FIELD_HINTS = {
    "searcher": "must be a 0x-prefixed 20-byte hex address",
    "address": "must be a 0x-prefixed 20-byte hex address",
    "outcome": f"must be one of {', '.join(OUTCOMES)}",
    "cursor": "is malformed: pass the next_cursor of a previous page of this endpoint",
}


class ErrorBody(BaseModel):
    code: str = Field(description="stable error code, e.g. invalid_params, slot_not_found")
    message: str
    data: dict[str, Any] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    # "4XX" also keeps FastAPI from documenting its 422, which these routes never send.
    "4XX": {"model": ErrorBody, "description": "bad parameter (400) or unknown rollup/slot (404)"},
    503: {"model": ErrorBody, "description": "the store is unavailable"},
}
# Routes whose success is not JSON still fail in JSON: name the media type explicitly (FastAPI
# would otherwise document an error model under the route's own media type).
ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
NON_JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "bad parameter (400) or unknown rollup (404)", "content": ERROR_JSON},
    503: {"description": "the store is unavailable", "content": ERROR_JSON},
}


def error_response(exc: BlockspaceError) -> Response:
    """The HTTP answer to ``exc``: its status and the stable-code body."""
    return Response(
        orjson.dumps(wire.http_error_body(exc)),
        status_code=wire.http_status(exc),
        media_type="application/json",
    )


def compute_validation_error(exc: RequestValidationError) -> InvalidParams:
    """The first failed check as an InvalidParams naming the parameter."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "path")]
    field = loc[0] if loc else "request"
    hint = FIELD_HINTS.get(field)
    message = f"{field} {hint}" if hint else f"{field}: {first.get('msg', 'invalid value')}"
    return InvalidParams(message, field=field)


class StableErrorRoute(APIRoute):
    """Maps bad parameters and BlockspaceErrors to stable-code 4xx/503 bodies; refusals are
    counted under ``transport`` (a subclass per API names its own)."""

    transport = "data"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        transport = self.transport

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return refused(request, compute_validation_error(exc), transport)
            except BlockspaceError as exc:
                return refused(request, exc, transport)

        return route


class BlocksRoute(StableErrorRoute):
    transport = "blocks"


class RpcRoute(StableErrorRoute):
    transport = "http"


def refused(request: Request, exc: BlockspaceError, transport: str) -> Response:
    """Refused input is logged at info with its code and counted (a store outage is a fault).
    Counted at once: these routes read closed slots only, or (JSON-RPC) refuse a path before any
    request is read."""
    engine = getattr(request.app.state, "engine", None)
    if engine is not None:
        if isinstance(exc, StoreUnavailable):
            engine.metrics.system_faults.labels(f"{transport}_api").inc()
        else:
            engine.metrics.count_refusal(transport, exc.code, None)
    log.info("refused %s %s: %s", request.url.path, exc.code, exc.message)
    return error_response(exc)
