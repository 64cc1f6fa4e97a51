"""The ledger over HTTP (issue 11, stage 2; docs/accountability.md): the operator API and reads.

Operator API (bearer token ``BLOCKSPACE_OPERATOR_TOKEN``; in a real deployment a bridge that
watches the escrow contract calls it; every call without the token is ``unauthorized``, 401):

- ``POST /v1/ledger/deposits`` ``{"address", "amount_wei", "ref"}``: credit a deposit once per
  ``ref`` (the bridge's deposit id, e.g. the L1 transaction hash and log index);
- ``POST /v1/ledger/withdrawals`` ``{"address", "amount_wei"}``: request a withdrawal,
  executable after the configured delay, up to the free balance;
- ``POST /v1/ledger/withdrawals/{id}/execute``: execute it (once; up to the free balance then);
- ``POST /v1/ledger/stakes`` ``{"member": i}`` or ``{"operator": true}``, ``amount_wei``,
  ``ref``: credit a committee member's stake or the operator's bond.

Reads (anyone): ``GET /v1/ledger/balances/{account}``, ``GET /v1/ledger/entries?account=
&before=&limit=`` (newest first, paged by id like the data API). Wei amounts are decimal strings.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.engine import Engine
from auction.errors import InvalidParams, Unauthorized
from auction.ledger import (
    BOND,
    OPERATOR_BOND,
    check_account,
    check_address,
    compute_member_account,
    entry_to_json,
    parse_amount,
    withdrawal_to_json,
)
from node.escrow import Escrow, StoreEscrow
from node.routing import ERRORS, BlocksRoute
from node.settings import Settings

router = APIRouter(tags=["ledger"], route_class=BlocksRoute, responses=ERRORS)

MAX_ENTRIES_PAGE = 500
MAX_REF_CHARS = 200


def _escrow(request: Request) -> Escrow:
    engine: Engine = request.app.state.engine
    return engine.escrow or StoreEscrow(engine.store)


def _authorize(request: Request) -> None:
    """Refuse (``unauthorized``) a call without the operator's bearer token; with no token
    configured the operator API is closed."""
    settings: Settings = request.app.state.settings
    token = settings.operator_token.get_secret_value() if settings.operator_token else ""
    given = request.headers.get("authorization", "")
    if not token or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise Unauthorized("the operator API needs the operator's bearer token")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidParams("the body is not JSON", field="body") from None
    if not isinstance(body, dict):
        raise InvalidParams("the body is not a JSON object", field="body")
    return body


def _ref(body: dict[str, Any]) -> str:
    ref = body.get("ref")
    if not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF_CHARS:
        raise InvalidParams("ref must be a string of 1..200 characters", field="ref")
    return ref


def _now_ms(request: Request) -> int:
    engine: Engine = request.app.state.engine
    return engine.now_ms()


@router.post("/v1/ledger/deposits", summary="Credit a searcher's deposit (operator)")
async def deposit(request: Request) -> Response:
    _authorize(request)
    body = await _body(request)
    address = check_address(body.get("address"))
    amount = parse_amount(body.get("amount_wei"))
    entry = await _escrow(request).credit_deposit(address, amount, _ref(body), _now_ms(request))
    return JSONResponse({"entry": entry_to_json(entry)})


@router.post("/v1/ledger/stakes", summary="Credit a member's stake or the operator's bond")
async def stake(request: Request) -> Response:
    _authorize(request)
    body = await _body(request)
    member = body.get("member")
    if body.get("operator") is True and member is None:
        account = OPERATOR_BOND
    elif isinstance(member, int) and not isinstance(member, bool) and 1 <= member <= 1000:
        account = compute_member_account(member)
    else:
        raise InvalidParams("name a member (1..1000) or the operator", field="member")
    amount = parse_amount(body.get("amount_wei"))
    entry = await _escrow(request).credit_deposit(
        account, amount, _ref(body), _now_ms(request), kind=BOND
    )
    return JSONResponse({"entry": entry_to_json(entry)})


@router.post("/v1/ledger/withdrawals", summary="Request a withdrawal (operator)")
async def request_withdrawal(request: Request) -> Response:
    _authorize(request)
    body = await _body(request)
    address = check_address(body.get("address"))
    amount = parse_amount(body.get("amount_wei"))
    settings: Settings = request.app.state.settings
    withdrawal = await _escrow(request).request_withdrawal(
        address, amount, _now_ms(request), settings.withdrawal_delay_ms
    )
    return JSONResponse({"withdrawal": withdrawal_to_json(withdrawal)})


@router.post(
    "/v1/ledger/withdrawals/{withdrawal_id}/execute", summary="Execute a withdrawal (operator)"
)
async def execute_withdrawal(
    request: Request,
    withdrawal_id: Annotated[str, Path(pattern=r"^w[0-9]{1,19}$")],
) -> Response:
    _authorize(request)
    entry = await _escrow(request).execute_withdrawal(withdrawal_id, _now_ms(request))
    return JSONResponse({"entry": entry_to_json(entry)})


@router.get("/v1/ledger/balances/{account}", summary="An account's balance, holds, free balance")
async def balance(request: Request, account: str) -> Response:
    account = check_account(account)
    balance_wei, held_wei = await _escrow(request).get_balance(account)
    return JSONResponse({
        "account": account,
        "balance_wei": str(balance_wei),
        "held_wei": str(held_wei),
        "free_wei": str(max(balance_wei - held_wei, 0)),
    })


@router.get("/v1/ledger/entries", summary="Ledger entries, newest first")
async def entries(
    request: Request,
    account: str | None = Query(None, description="one account's entries"),
    before: str | None = Query(
        None, pattern=r"^\d{1,19}-\d{1,19}$", description="page below this id"
    ),
    limit: int = Query(100, ge=1, le=MAX_ENTRIES_PAGE),
) -> Response:
    if account is not None:
        account = check_account(account)
    engine: Engine = request.app.state.engine
    page = await engine.store.list_ledger_entries(account, before=before, limit=limit)
    return JSONResponse({
        "entries": [entry_to_json(e) for e in page],
        "next": page[-1].entry_id if len(page) == limit else None,
    })
