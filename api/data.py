"""The data API: read-only auction history for analysts, in the manner of mev-boost-relay's.

snake_case fields, wei amounts as decimal strings, times in ms, newest first, cursor pagination
(``next_cursor`` of a page is the ``cursor`` of the next), ``limit`` up to 200. Every endpoint and
parameter is in the OpenAPI schema at ``/openapi.json``; docs/data-api.md has the details.

Bad input is a 400 with a stable ``code`` (``invalid_params``) and a message naming the
parameter; an unknown rollup or slot is a 404. ``node.routing.StableErrorRoute`` maps both, and
any ``BlockspaceError``, through ``node/errors.py``.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from auction.errors import (
    InvalidParams,
    SlotNotFound,
    UnknownRollup,
)
from auction.history import (
    OUTCOMES,
    BidRecord,
    bid_record_to_json,
    block_to_json,
    compute_searcher_summary,
    compute_stats,
)
from node.routing import ERRORS, MAX_ROLLUP, MAX_SLOT, NON_JSON_ERRORS, StableErrorRoute
from node.stores.base import HistoryRecords

log = logging.getLogger("blockspace.data")

MAX_LIMIT = 200
DEFAULT_LIMIT = 100
# The widest slot range one stats request or export may span (keeps each request bounded).
MAX_STATS_SPAN = 100_000
DEFAULT_STATS_SPAN = 10_000
MAX_EXPORT_SPAN = 100_000
_EXPORT_CHUNK = 50

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_SLOT_CURSOR = re.compile(r"^([0-9]{1,16})\.([0-9]{1,19})$")
_BID_CURSOR = re.compile(r"^([0-9]{1,19})-([0-9]{1,19})\.([0-9]{1,19})$")

# --- wire models (the OpenAPI schema; handlers return the JSON directly) ----------------------

Wei = Annotated[str, Field(pattern=r"^[0-9]+$", description="wei, decimal string")]
SignedWei = Annotated[str, Field(pattern=r"^-?[0-9]+$", description="wei, decimal string")]


class OutcomeCounts(BaseModel):
    won: int
    lost: int
    cancelled: int
    replaced: int
    rejected: int


class SlotSummary(BaseModel):
    rollup: int
    slot: int
    deadline_ms: int
    recorded_ms: int = Field(description="when the slot's history was written (at its close)")
    block_hash: str
    parent_hash: str
    bid_set_root: str
    gas_used: int
    gas_limit: int
    public_tx_count: int
    revenue_wei: Wei
    winning_bids_wei: Wei
    upper_bound_wei: Wei = Field(description="the solver's certified bound on the winning bids")
    unconstrained_bids_wei: Wei = Field(description="best block without the fairness rules")
    price_of_fairness_wei: SignedWei = Field(description="unconstrained minus winning bids")
    optimality_gap_wei: SignedWei = Field(description="upper bound minus winning bids")
    clearing_price_wei_per_gas: Wei | None = Field(
        description="lowest winning bid per gas (rounded down); null without winners"
    )
    bids: int = Field(description="every bid of the slot, refusals at intake included")
    winners: int
    searchers: int
    outcomes: OutcomeCounts
    wins_top1_share: float | None
    wins_hhi: float | None
    solver: str
    solve_ms: float
    committee: dict[str, Any] | None = Field(description="the committee's result, once known")
    cross_revenue_wei: Wei = Field(
        "0", description="this rollup's shares of the payments of its cross-rollup winners"
    )
    cross_winners: int = Field(0, description="block entries of cross-rollup bundles")


class BidOut(BaseModel):
    rollup: int
    slot: int
    searcher: str
    bundle_hash: str | None
    bid_wei: Wei | None
    gas: int | None
    received_ms: int
    outcome: Literal["won", "lost", "cancelled", "replaced", "rejected"]
    payment_wei: Wei
    code: str | None = Field(description="why a rejected bid was refused (stable error code)")
    seq: str | None = Field(description="position in the slot's intake log (the evidence)")
    replacement_uuid: str | None
    tx_count: int | None
    rollups: list[int] = Field(
        description="every rollup the bundle spans, ascending (just this one unless cross)"
    )
    cross: bool = Field(description="a cross-rollup bundle's copy (listed under each rollup)")


class BlockEntry(BidOut):
    position: int = Field(description="position of the bundle in the block")
    bid_index: int = Field(description="index of this bid in the slot's bids")


class SlotDetailOut(BaseModel):
    summary: SlotSummary
    block: list[BlockEntry] = Field(description="winning bundles in block order")
    bids: list[BidOut] = Field(description="every bid, in arrival order")


class SlotPage(BaseModel):
    data: list[SlotSummary]
    next_cursor: str | None


class BidPage(BaseModel):
    data: list[BidOut]
    next_cursor: str | None


class SearcherOut(BaseModel):
    searcher: str
    rollup: int | None
    bids: int
    outcomes: OutcomeCounts
    wins: int
    win_rate: float | None = Field(description="won / (won + lost)")
    total_paid_wei: Wei
    gas_won: int
    average_overpayment_wei: SignedWei | None = Field(
        description="mean over wins of payment minus clearing price x gas"
    )


class Share(BaseModel):
    searcher: str
    value: int
    share: float


class Concentration(BaseModel):
    total: int
    top1_share: float | None
    top2_share: float | None
    hhi: float | None = Field(description="Herfindahl index: sum of squared shares, 0..1")
    top: list[Share]


class StatsOut(BaseModel):
    rollup: int | None
    from_slot: int | None
    to_slot: int | None
    slots: int
    first_slot: int | None
    last_slot: int | None
    revenue_wei: Wei
    bids: int
    rejected: int
    winners: int
    winning_searchers: int
    gas_used: int
    wins_concentration: Concentration
    gas_concentration: Concentration
    winning_bids_wei: Wei
    unconstrained_bids_wei: Wei
    price_of_fairness_wei: SignedWei
    price_of_fairness_ratio: float | None
    optimality_gap_wei: SignedWei
    failed_slots: int = Field(description="slots whose committee signing failed")
    cross_revenue_wei: Wei = Field(
        description="revenue from cross-rollup bundles (each bundle's payment counted once)"
    )
    cross_revenue_share: float | None = Field(
        description="cross_revenue_wei / revenue_wei; null without revenue"
    )
    cross_winners: int = Field(description="block entries of cross-rollup bundles")


class RollupsOut(BaseModel):
    rollups: list[int]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


# --- parameters --------------------------------------------------------------------------------

RollupQ = Annotated[
    int | None, Query(ge=0, le=MAX_ROLLUP, description="chain id; all served rollups if omitted")
]
SlotQ = Annotated[int | None, Query(ge=0, le=MAX_SLOT)]
LimitQ = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size (at most 200)")]
SLOT_CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9]{1,19}$"
BID_CURSOR_PATTERN = r"^[0-9]{1,19}-[0-9]{1,19}\.[0-9]{1,19}$"
SlotCursorQ = Annotated[
    str | None,
    Query(pattern=SLOT_CURSOR_PATTERN, description="the next_cursor of the previous page"),
]
BidCursorQ = Annotated[
    str | None,
    Query(pattern=BID_CURSOR_PATTERN, description="the next_cursor of the previous page"),
]


def _store(request: Request) -> HistoryRecords:
    store: HistoryRecords = request.app.state.engine.store
    return store


def _rollups(request: Request, rollup: int | None) -> list[int]:
    served = sorted(request.app.state.engine.rollups)
    if rollup is None:
        return served
    if rollup not in served:
        raise UnknownRollup(f"rollup {rollup} is not served here; served: {served}")
    return [rollup]


def _check_range(from_slot: int | None, to_slot: int | None, max_span: int | None = None) -> None:
    if from_slot is not None and to_slot is not None:
        # Verify the range is not reversed
        if from_slot > to_slot:
            raise InvalidParams("from_slot is after to_slot", field="from_slot")
        # Verify the range is not wider than one request may read
        if max_span is not None and to_slot - from_slot + 1 > max_span:
            raise InvalidParams(
                f"from_slot..to_slot spans {to_slot - from_slot + 1} slots; at most {max_span} "
                "per request",
                field="to_slot",
            )


def _bad_cursor() -> InvalidParams:
    return InvalidParams(
        "cursor is malformed: pass the next_cursor of a previous page of this endpoint",
        field="cursor",
    )


def parse_slot_cursor(cursor: str) -> tuple[int, int]:
    m = _SLOT_CURSOR.match(cursor)
    if m is None:
        raise _bad_cursor()
    return int(m[1]), int(m[2])


def parse_bid_cursor(cursor: str) -> tuple[tuple[int, int], int]:
    m = _BID_CURSOR.match(cursor)
    if m is None:
        raise _bad_cursor()
    return (int(m[1]), int(m[2])), int(m[3])


# --- reading across rollups ----------------------------------------------------------------------


async def page_slots(
    store: HistoryRecords,
    rollups: Sequence[int],
    *,
    from_slot: int | None,
    to_slot: int | None,
    cursor: tuple[int, int] | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Slot summaries newest first by (slot, rollup), strictly after ``cursor``."""
    candidates: list[tuple[int, int]] = []
    for r in rollups:
        hi = to_slot
        if cursor is not None:
            cs, cr = cursor
            # After (cs, cr) in descending (slot, rollup) order: a lower slot, or slot cs of a
            # lower rollup.
            bound = cs if r < cr else cs - 1
            hi = bound if hi is None else min(hi, bound)
        if hi is not None and (hi < 0 or (from_slot is not None and hi < from_slot)):
            continue
        slots = await store.list_history_slots(r, from_slot=from_slot, to_slot=hi, limit=limit + 1)
        candidates.extend((s, r) for s in slots)
    candidates.sort(reverse=True)
    page = candidates[:limit]
    by_rollup: dict[int, list[int]] = {}
    for s, r in page:
        by_rollup.setdefault(r, []).append(s)
    found: dict[tuple[int, int], dict[str, Any]] = {}
    for r, slots in by_rollup.items():
        for s, summary in zip(slots, await store.get_slot_summaries(r, slots), strict=True):
            if summary is not None:  # trimmed between the two reads
                found[(s, r)] = summary
    items = [found[k] for k in page if k in found]
    next_cursor = f"{page[-1][0]}.{page[-1][1]}" if len(candidates) > limit else None
    return items, next_cursor


async def page_bids(
    store: HistoryRecords,
    rollups: Sequence[int],
    *,
    slot: int | None,
    searcher: str | None,
    outcome: str | None,
    cursor: tuple[tuple[int, int], int] | None,
    limit: int,
    cross: bool | None = None,
    spans: int | None = None,
) -> tuple[list[BidRecord], str | None]:
    """Bids newest first by (history id, rollup), strictly after ``cursor``."""
    candidates: list[tuple[tuple[int, int], int, BidRecord]] = []
    for r in rollups:
        before: str | None = None
        inclusive = False
        if cursor is not None:
            (ms, n), cr = cursor
            before = f"{ms}-{n}"
            inclusive = r < cr  # the same id in a lower rollup comes after the cursor
        got = await store.list_history_bids(
            r,
            searcher=searcher,
            outcome=outcome,
            slot=slot,
            before=before,
            inclusive=inclusive,
            limit=limit + 1,
            cross=cross,
            spans=spans,
        )
        for hid, record in got:
            ms_text, _, n_text = hid.partition("-")
            candidates.append(((int(ms_text), int(n_text)), r, record))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    page = candidates[:limit]
    next_cursor = None
    if len(candidates) > limit:
        (ms, n), r, _ = page[-1]
        next_cursor = f"{ms}-{n}.{r}"
    return [c[2] for c in page], next_cursor


async def _newest_slot(store: HistoryRecords, rollups: Sequence[int]) -> int | None:
    newest = [
        s
        for r in rollups
        for s in await store.list_history_slots(r, from_slot=None, to_slot=None, limit=1)
    ]
    return max(newest) if newest else None


# --- CSV exports ------------------------------------------------------------------------------

SLOT_COLUMNS = (
    "rollup", "slot", "deadline_ms", "recorded_ms", "block_hash", "parent_hash", "gas_used",
    "gas_limit", "public_tx_count", "revenue_wei", "winning_bids_wei", "upper_bound_wei",
    "unconstrained_bids_wei", "price_of_fairness_wei", "optimality_gap_wei",
    "clearing_price_wei_per_gas", "bids", "winners", "searchers", "won", "lost", "cancelled",
    "replaced", "rejected", "wins_top1_share", "wins_hhi", "solver", "solve_ms",
    "committee_status", "cross_revenue_wei", "cross_winners",
)  # fmt: skip
BID_COLUMNS = (
    "rollup", "slot", "seq", "received_ms", "searcher", "bundle_hash", "bid_wei", "gas",
    "tx_count", "outcome", "payment_wei", "code", "replacement_uuid", "rollups",
)  # fmt: skip


def _csv_text(rows: list[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _slot_row(s: dict[str, Any]) -> list[Any]:
    committee = s.get("committee") or {}
    outcomes = s["outcomes"]
    row = [s.get(c) for c in SLOT_COLUMNS[:19]]
    row += [outcomes[o] for o in OUTCOMES]
    row += [s["wins_top1_share"], s["wins_hhi"], s["solver"], s["solve_ms"]]
    row.append(committee.get("status", ""))
    row += [s.get("cross_revenue_wei", "0"), s.get("cross_winners", 0)]
    return ["" if v is None else v for v in row]


def _bid_row(b: BidRecord) -> list[Any]:
    d = bid_record_to_json(b)
    d["rollups"] = " ".join(map(str, b.spanned))
    return ["" if d[c] is None else d[c] for c in BID_COLUMNS]


async def _export(
    store: HistoryRecords,
    rollups: Sequence[int],
    from_slot: int,
    to_slot: int,
    kind: Literal["slots", "bids"],
) -> AsyncIterator[str]:
    """Rows a chunk of slots at a time (ascending slot, one rollup after another)."""
    yield _csv_text([SLOT_COLUMNS if kind == "slots" else BID_COLUMNS])
    for r in rollups:
        lo = from_slot
        while lo <= to_slot:
            slots = await store.list_history_slots(
                r, from_slot=lo, to_slot=to_slot, limit=_EXPORT_CHUNK, descending=False
            )
            if not slots:
                break
            if kind == "slots":
                summaries = await store.get_slot_summaries(r, slots)
                yield _csv_text([_slot_row(s) for s in summaries if s is not None])
            else:
                details = await store.get_slot_details(r, slots)
                yield _csv_text([_bid_row(b) for d in details if d is not None for b in d.bids])
            lo = slots[-1] + 1


# --- routes ------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1/data", tags=["data"], route_class=StableErrorRoute, responses=ERRORS)


@router.get(
    "/rollups",
    summary="Rollups served here",
    responses={200: {"model": RollupsOut}},
)
async def get_rollups(request: Request) -> Response:
    return _json({"rollups": sorted(request.app.state.engine.rollups)})


@router.get(
    "/slots",
    summary="Closed slots, newest first",
    responses={200: {"model": SlotPage}},
)
async def list_slots(
    request: Request,
    rollup: RollupQ = None,
    from_slot: SlotQ = None,
    to_slot: SlotQ = None,
    cursor: SlotCursorQ = None,
    limit: LimitQ = DEFAULT_LIMIT,
) -> Response:
    """One summary per closed slot: block, revenue, bids by outcome, clearing price, fairness."""
    _check_range(from_slot, to_slot)
    rollups = _rollups(request, rollup)
    parsed = parse_slot_cursor(cursor) if cursor is not None else None
    items, next_cursor = await page_slots(
        _store(request),
        rollups,
        from_slot=from_slot,
        to_slot=to_slot,
        cursor=parsed,
        limit=limit,
    )
    return _json({"data": items, "next_cursor": next_cursor})


@router.get(
    "/slots/{rollup}/{slot}",
    summary="One closed slot: its block order and every bid",
    responses={200: {"model": SlotDetailOut}},
)
async def get_slot(
    request: Request,
    rollup: Annotated[int, Path(ge=0, le=MAX_ROLLUP)],
    slot: Annotated[int, Path(ge=0, le=MAX_SLOT)],
) -> Response:
    """Everything recorded about a slot; 404 until it has closed."""
    (r,) = _rollups(request, rollup)
    (detail,) = await _store(request).get_slot_details(r, [slot])
    if detail is None:
        raise SlotNotFound(
            f"slot {slot} of rollup {r} has no history: not closed yet, trimmed, or never run",
            slot=slot,
        )
    return _json(
        {
            "summary": detail.summary,
            "block": block_to_json(detail),
            "bids": [bid_record_to_json(b) for b in detail.bids],
        }
    )


@router.get(
    "/bids",
    summary="Bids of closed slots, newest first (at least one filter)",
    responses={200: {"model": BidPage}},
)
async def list_bids(
    request: Request,
    rollup: RollupQ = None,
    slot: SlotQ = None,
    searcher: Annotated[str | None, Query(pattern=ADDRESS_PATTERN)] = None,
    outcome: Annotated[
        Literal["won", "lost", "cancelled", "replaced", "rejected"] | None, Query()
    ] = None,
    cross: Annotated[
        bool | None,
        Query(description="true: only cross-rollup bundles' bids; false: only single-rollup ones"),
    ] = None,
    spans: Annotated[
        int | None,
        Query(ge=0, le=MAX_ROLLUP, description="only bids of bundles spanning this rollup"),
    ] = None,
    cursor: BidCursorQ = None,
    limit: LimitQ = DEFAULT_LIMIT,
) -> Response:
    """Every bid revealed after its slot closed, with its outcome, payment and refusal code.

    A cross-rollup bundle appears under each rollup it spans (its copy there: that rollup's leg
    and share of the payment), naming every rollup it spans in ``rollups``."""
    # Verify the query names at least one filter (a full scan is what the exports are for)
    if rollup is None and slot is None and searcher is None and outcome is None:
        raise InvalidParams("give at least one of rollup, slot, searcher, outcome", field="rollup")
    # Verify a spanned rollup is one served here
    if spans is not None:
        _rollups(request, spans)
    rollups = _rollups(request, rollup)
    parsed = parse_bid_cursor(cursor) if cursor is not None else None
    records, next_cursor = await page_bids(
        _store(request),
        rollups,
        slot=slot,
        searcher=searcher.lower() if searcher else None,
        outcome=outcome,
        cursor=parsed,
        limit=limit,
        cross=cross,
        spans=spans,
    )
    return _json({"data": [bid_record_to_json(b) for b in records], "next_cursor": next_cursor})


@router.get(
    "/searchers/{address}",
    summary="A searcher's record: bids, wins, win rate, total paid, overpayment",
    responses={200: {"model": SearcherOut}},
)
async def get_searcher(
    request: Request,
    address: Annotated[str, Path(pattern=ADDRESS_PATTERN)],
    rollup: RollupQ = None,
) -> Response:
    """Counters over the retained history; zeros for an address that never bid."""
    rollups = _rollups(request, rollup)
    searcher = address.lower()
    total: dict[str, int] = {}
    for r in rollups:
        for name, value in (await _store(request).get_searcher_tally(r, searcher)).items():
            total[name] = total.get(name, 0) + value
    return _json(compute_searcher_summary(searcher, rollup, total))


@router.get(
    "/stats",
    summary="Revenue, bids, concentration, price of fairness over a slot range",
    responses={200: {"model": StatsOut}},
)
async def get_stats(
    request: Request,
    rollup: RollupQ = None,
    from_slot: Annotated[
        int | None, Query(ge=0, le=MAX_SLOT, description="default: to_slot - 9,999")
    ] = None,
    to_slot: Annotated[
        int | None, Query(ge=0, le=MAX_SLOT, description="default: the newest closed slot")
    ] = None,
) -> Response:
    """Roll-up of a range of at most 100,000 slots (default: the newest 10,000)."""
    _check_range(from_slot, to_slot, MAX_STATS_SPAN)
    rollups = _rollups(request, rollup)
    store = _store(request)
    if to_slot is None:
        newest = await _newest_slot(store, rollups)
        to_slot = newest if newest is not None else 0
        if from_slot is not None:
            to_slot = min(max(to_slot, from_slot), from_slot + MAX_STATS_SPAN - 1)
    if from_slot is None:
        from_slot = max(0, to_slot - DEFAULT_STATS_SPAN + 1)
    _check_range(from_slot, to_slot, MAX_STATS_SPAN)
    parts = []
    failed = 0
    ends: list[int] = []
    for r in rollups:
        parts.extend(await store.list_stats_parts(r, from_slot=from_slot, to_slot=to_slot))
        failed += await store.count_failed_slots(r, from_slot=from_slot, to_slot=to_slot)
        for descending in (False, True):
            ends.extend(
                await store.list_history_slots(
                    r, from_slot=from_slot, to_slot=to_slot, limit=1, descending=descending
                )
            )
    body = {"rollup": rollup, "from_slot": from_slot, "to_slot": to_slot}
    body.update(
        compute_stats(
            parts,
            failed_slots=failed,
            first_slot=min(ends) if ends else None,
            last_slot=max(ends) if ends else None,
        )
    )
    return _json(body)


def _export_route(kind: Literal["slots", "bids"]) -> Callable[..., Awaitable[Response]]:
    async def export(
        request: Request,
        from_slot: Annotated[int, Query(ge=0, le=MAX_SLOT)],
        to_slot: Annotated[int, Query(ge=0, le=MAX_SLOT)],
        rollup: RollupQ = None,
    ) -> Response:
        _check_range(from_slot, to_slot, MAX_EXPORT_SPAN)
        rollups = _rollups(request, rollup)
        name = f"{kind}-{rollup if rollup is not None else 'all'}-{from_slot}-{to_slot}.csv"
        return CSVResponse(
            _export(_store(request), rollups, from_slot, to_slot, kind),
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    export.__doc__ = (
        f"CSV of the {kind} of a slot range (at most {MAX_EXPORT_SPAN:,} slots), streamed a few "
        "slots at a time; columns in docs/data-api.md."
    )
    return export


for _kind in ("slots", "bids"):
    router.add_api_route(
        f"/export/{_kind}.csv",
        _export_route(_kind),  # type: ignore[arg-type]
        methods=["GET"],
        summary=f"CSV export of {_kind} for a slot range",
        response_class=CSVResponse,
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
            **NON_JSON_ERRORS,
        },
    )


# --- dashboard ---------------------------------------------------------------------------------

dashboard = APIRouter(tags=["dashboard"], route_class=StableErrorRoute, responses=NON_JSON_ERRORS)
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("api").joinpath("static", name).read_bytes()


@dashboard.get(
    "/dashboard",
    summary="Dashboard: revenue, bids, prices, concentration, fairness, latest blocks",
    response_class=Response,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def get_dashboard() -> Response:
    """A page that draws the data API's figures (plain SVG; no internet needed)."""
    return Response(_asset("dashboard.html"), media_type="text/html; charset=utf-8")


@dashboard.get(
    "/dashboard/assets/{name}",
    summary="Dashboard script and style",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}},
            }
        }
    },
)
async def get_dashboard_asset(
    name: Annotated[Literal["dashboard.js", "dashboard.css"], Path()],
) -> Response:
    return Response(_asset(name), media_type=_ASSETS[name])
