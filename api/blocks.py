"""Block delivery to rollups: signed blocks over HTTP, and the committee's evidence record.

- ``GET /v1/blocks/{rollup}/latest``: the newest signed block (the head of the signed chain);
- ``GET /v1/blocks/{rollup}/{slot}``: that slot's signed block; a failed slot answers 404 with
  code ``slot_failed`` and the failure record in ``data``; an unknown or undecided one 404 with
  ``block_not_found``;
- ``GET /v1/blocks/{rollup}/{slot}/events``: the ids of every event of the slot's closed log,
  in log order (their Merkle root is the block's ``bid_set_root``), and the slot's committed
  ciphertext set (``ciphertexts``: each encrypted bid's id and SHA-256 of its ciphertext, whose
  root the signed slot root binds; empty if it binds none): what a searcher needs to show its
  receipted event is missing (docs/accountability.md);
- ``GET /v1/operator``: the operator address that signs receipts and the committee id;
- ``GET /v1/committee/evidence/{rollup}?before=&limit=``: evidence against members (invalid
  partials, equivocations), newest first, paged by id.

Signed blocks also go to websocket subscribers of ``bs_subscribe ["blocks"]``. The JSON is
``committee.records.signed_block_to_json`` (snake_case, wei as decimal strings); verify it with
``blockspace verify`` or any Ethereum BLS library (docs/committee.md).
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from api.engine import Engine
from auction.encoding import compute_bid_set_root
from auction.errors import UnknownRollup
from auction.receipts import BATCH_RECEIPT_VERSION, RECEIPT_VERSION
from auction.results import compute_event_id
from committee.errors import BlockNotFound, SlotFailed
from committee.records import evidence_to_json, failed_slot_to_json, signed_block_to_json
from committee.sealedset import compute_slot_ciphertext_root
from node.routing import ERRORS, MAX_ROLLUP, MAX_SLOT, BlocksRoute

# Refusals (and bad parameters) answer {"code", "message", "data"?} through node/routing.py.
router = APIRouter(tags=["blocks"], route_class=BlocksRoute, responses=ERRORS)

MAX_EVIDENCE_PAGE = 500


def _engine(request: Request, rollup: int) -> Engine:
    engine: Engine = request.app.state.engine
    if rollup not in engine.rollups:
        raise UnknownRollup(f"rollup {rollup} is not served here", rollup=rollup)
    return engine


RollupP = Annotated[int, Path(ge=0, le=MAX_ROLLUP, description="chain id")]
SlotP = Annotated[int, Path(ge=0, le=MAX_SLOT)]


@router.get("/v1/blocks/{rollup}/latest", summary="The newest signed block of a rollup")
async def latest_block(request: Request, rollup: RollupP) -> Response:
    signed = await _engine(request, rollup).store.latest_signed_block(rollup)
    if signed is None:
        raise BlockNotFound(f"rollup {rollup} has no signed block yet", rollup=rollup)
    return JSONResponse(signed_block_to_json(signed))


@router.get("/v1/blocks/{rollup}/{slot}", summary="A slot's signed block")
async def block_at(request: Request, rollup: RollupP, slot: SlotP) -> Response:
    engine = _engine(request, rollup)
    signed = await engine.store.get_signed_block(rollup, slot)
    if signed is None:
        failed = await engine.store.get_failed_slot(rollup, slot)
        if failed is not None:
            raise SlotFailed(f"slot {slot} failed: {failed.reason}", **failed_slot_to_json(failed))
        raise BlockNotFound(f"no signed block for slot {slot}", rollup=rollup, slot=slot)
    return JSONResponse(signed_block_to_json(signed))


@router.get("/v1/blocks/{rollup}/{slot}/events", summary="A closed slot's event ids, in log order")
async def slot_events(request: Request, rollup: RollupP, slot: SlotP) -> Response:
    engine = _engine(request, rollup)
    result = await engine.store.get_result(rollup, slot)
    if result is None:
        raise BlockNotFound(f"slot {slot} has not closed here", rollup=rollup, slot=slot)
    closed = await engine.store.read_closed_log(sorted(engine.rollups), result)
    event_ids = [compute_event_id(e) for e in closed]
    # Verify the kept log is the one the block committed to (history retention trims logs)
    if compute_bid_set_root(event_ids) != result.block.bid_set_root:
        raise BlockNotFound(f"the log of slot {slot} is no longer kept", rollup=rollup, slot=slot)
    # The slot's encrypted bids (every rollup's): the ciphertext set its signed slot root binds,
    # for a censored encrypted bid's evidence (docs/accountability.md)
    ciphertexts: list[dict[str, str]] = []
    signed = await engine.store.get_signed_block(rollup, slot)
    bound = signed.slot_proof.ciphertext_root if signed is not None else None
    if signed is not None and bound is not None:
        sealed = await engine.store.read_sealed_bids(sorted(engine.rollups), slot)
        # Verify the kept sealed bids are the set the signed slot root binds
        if compute_slot_ciphertext_root(signed.committee_id, slot, sealed) != bound:
            raise BlockNotFound(f"the ciphertext set of slot {slot} is no longer kept",
                                rollup=rollup, slot=slot)  # fmt: skip
        ciphertexts = [
            {"bid_id": e.event.bid_id,
             "ciphertext_sha256": "0x" + hashlib.sha256(e.event.ciphertext).hexdigest()}
            for e in sealed
        ]  # fmt: skip
    return JSONResponse({
        "rollup": rollup,
        "slot": slot,
        "bid_set_root": result.block.bid_set_root,
        "event_ids": event_ids,
        "ciphertexts": ciphertexts,
    })


@router.get("/v1/operator", summary="The operator address that signs receipts")
async def operator_info(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    receipter = engine.intake.receipter
    return JSONResponse({
        "operator": receipter.operator if receipter is not None else None,
        "committee_id": "0x" + engine.committee_id.hex(),
        "receipt_version": (BATCH_RECEIPT_VERSION if receipter is not None and receipter.batched
                            else RECEIPT_VERSION),
    })


@router.get("/v1/committee/evidence/{rollup}", summary="Evidence against committee members")
async def member_evidence(
    request: Request,
    rollup: RollupP,
    before: str | None = Query(
        None, pattern=r"^\d{1,19}-\d{1,19}$", description="page below this id"
    ),
    limit: int = Query(100, ge=1, le=MAX_EVIDENCE_PAGE),
) -> Response:
    page = await _engine(request, rollup).store.list_evidence(rollup, before=before, limit=limit)
    return JSONResponse(
        {
            "evidence": [{"id": eid, **evidence_to_json(e)} for eid, e in page],
            "next": page[-1][0] if len(page) == limit else None,
        }
    )
