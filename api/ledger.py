"""The ledger over HTTP (issue 11, stage 2; docs/accountability.md): the operator API and reads.

Operator API (bearer token ``BLOCKSPACE_OPERATOR_TOKEN``; in a real deployment a bridge that
watches the escrow contract calls it; every call without the token is ``unauthorized``, 401):

- ``POST /v1/ledger/deposits`` ``{"address", "amount_wei", "ref"}``: credit a deposit once per
  ``ref`` (the bridge's deposit id, e.g. the L1 transaction hash and log index);
- ``POST /v1/ledger/withdrawals`` ``{"address", "amount_wei"}``: request a withdrawal,
  executable after the configured delay, up to the free balance;
- ``POST /v1/ledger/withdrawals/{id}/execute``: execute it (once; up to the free balance then);
- ``POST /v1/ledger/bonds`` ``{"member": i}`` or ``{"operator": true}``, ``amount_wei``,
  ``ref``: credit a committee member's stake or the operator's bond (``GET /v1/ledger/stakes``
  reads them: one path per method keeps every route's ``Allow`` exact).

Evidence (anyone): ``POST /v1/evidence`` ``{"evidence": DOCUMENT, "reporter": ADDRESS}``: the
document is verified like ``blockspace evidence verify`` (against this engine's committee and
operator address); valid evidence slashes the offender's stake (a member's, or the operator's
bond) by the configured fraction, once per evidence id, and credits the reporter its share.

Reads (anyone): ``GET /v1/ledger/balances/{account}``, ``GET /v1/ledger/entries?account=
&before=&limit=`` (newest first, paged by id like the data API), ``GET /v1/ledger/stakes``,
``GET /v1/ledger/slashings?before=&limit=``. Wei amounts are decimal strings.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.engine import Engine
from auction.errors import InvalidParams, Unauthorized
from auction.ledger import (
    BOND,
    BURNED,
    OPERATOR_BOND,
    check_account,
    check_address,
    compute_member_account,
    compute_offender_account,
    entry_to_json,
    parse_amount,
    withdrawal_to_json,
)
from committee.encryption_errors import NoCommittee
from committee.evidence import verify_evidence
from committee.signer import compute_member_config
from committee.threshold import CommitteeInfo
from node.escrow import Escrow, StoreEscrow
from node.routing import ERRORS, BlocksRoute
from node.settings import Settings

router = APIRouter(tags=["ledger"], route_class=BlocksRoute, responses=ERRORS)

MAX_ENTRIES_PAGE = 500
# An account on the wire: a lowercase address or a reserved account (auction.ledger.is_account).
ACCOUNT_PATTERN = (
    r"^(0x[0-9a-f]{40}|operator:revenue|operator:bond|burned|member:[1-9][0-9]{0,4})$"
)
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


@router.post("/v1/ledger/bonds", summary="Credit a member's stake or the operator's bond")
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


@router.post("/v1/evidence", summary="Submit evidence: valid evidence slashes the offender")
async def submit_evidence(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    committee: CommitteeInfo | None = getattr(request.app.state, "committee", None)
    if committee is None:
        raise NoCommittee("this server signs no blocks: it has no committee")
    body = await _body(request)
    reporter = check_address(body.get("reporter"))
    settings: Settings = request.app.state.settings
    # A pairing check or two (rule-breaking evidence: a whole close): off the event loop. The
    # rules are this engine's own, as a member builds them from the same settings.
    verdict = await asyncio.to_thread(
        verify_evidence, body.get("evidence"), committee, operator=engine.operator_key.address,
        rules=compute_member_config(settings, committee, 1),
    )
    entries = await _escrow(request).slash(
        compute_offender_account(verdict.kind, verdict.offender),
        verdict.evidence_id,
        reporter,
        engine.now_ms(),
        fraction_bps=settings.slash_fraction_bps,
        reporter_share_bps=settings.reporter_share_bps,
    )
    return JSONResponse({
        "verdict": {
            "kind": verdict.kind,
            "offender": verdict.offender,
            "evidence_id": verdict.evidence_id,
            "committee_id": "0x" + verdict.committee_id.hex(),
            "slot": verdict.slot,
            "rollup": verdict.rollup,
            "detail": verdict.detail,
        },
        "entries": [entry_to_json(e) for e in entries],
    })


@router.get("/v1/ledger/stakes", summary="The operator's bond and every member's stake")
async def stakes(request: Request) -> Response:
    escrow = _escrow(request)
    committee: CommitteeInfo | None = getattr(request.app.state, "committee", None)
    members = []
    for i in range(1, (committee.n if committee is not None else 0) + 1):
        account = compute_member_account(i)
        members.append({"member": i, "account": account,
                        "stake_wei": str((await escrow.get_balance(account))[0])})
    return JSONResponse({
        "operator_bond_wei": str((await escrow.get_balance(OPERATOR_BOND))[0]),
        "members": members,
    })


@router.get("/v1/ledger/slashings", summary="Slashings, newest first")
async def slashings(
    request: Request,
    before: str | None = Query(
        None, pattern=r"^\d{1,19}-\d{1,19}$", description="page below this id"
    ),
    limit: int = Query(100, ge=1, le=MAX_ENTRIES_PAGE),
) -> Response:
    # Every slash writes exactly one entry to the burned account, naming the evidence and the
    # offender: paging that account pages the slashings.
    engine: Engine = request.app.state.engine
    page = await engine.store.list_ledger_entries(BURNED, before=before, limit=limit)
    return JSONResponse({
        "slashings": [
            {
                "id": e.entry_id,
                "evidence_id": e.cause.evidence_id,
                "offender": e.cause.ref,
                "burned_wei": str(e.amount_wei),
                "at_ms": e.at_ms,
            }
            for e in page
        ],
        "next": page[-1].entry_id if len(page) == limit else None,
    })


@router.get("/v1/ledger/balances/{account}", summary="An account's balance, holds, free balance")
async def balance(
    request: Request,
    account: Annotated[str, Path(pattern=ACCOUNT_PATTERN, description="an account")],
) -> Response:
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
    account: str | None = Query(None, pattern=ACCOUNT_PATTERN, description="one account's entries"),
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
