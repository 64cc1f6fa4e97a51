"""``blockspace signer``: one committee member as its own process.

HTTP on loopback or a private network:

- ``POST /v1/sign``: body = proposal bytes (``committee.proposal``); 200 with the partial
  (``MemberReply.to_json``) or 4xx with ``{"code", "message", "data"}`` naming the refusal;
- ``POST /v1/release``: body = a key-release request (``committee.sealing``): the member commits
  to the slot's ciphertext set and answers its commitment partial and key share
  (``KeyRelease.to_json``), or 4xx with the refusal (``deadline_not_passed`` before the slot's
  deadline by its own clock);
- ``GET /v1/blocks/{rollup}/{slot}/events``: the event ids (log order) of a block this member
  signed, kept for its newest ``signer_kept_slots`` slots: censorship evidence without asking
  the engine (docs/accountability.md);
- ``GET /v1/evidence``: the operator-equivocation documents this member built from two endorsed
  proposals for one slot;
- ``GET /healthz``: the member's index, committee id and how many partials it has released;
- ``GET /metrics``: Prometheus counters of signatures and refusals by code, check latency.

The member reads its rollups, policies and slot clock from its OWN settings (``BLOCKSPACE_*``,
the same variables as ``blockspace serve``), never from the coordinator. Proposals are checked
one at a time (slashing protection is serialized anyway), in a worker thread so health checks
still answer during a long check.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Final, TypeVar

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from auction.errors import BlockspaceError
from auction.slots import SlotClock
from committee import keyfiles
from committee.checks import MemberConfig
from committee.errors import BlockNotFound, MalformedProposal, MalformedReleaseRequest, Refusal
from committee.member import FAULTS, Member
from committee.protection import ProtectionStore
from committee.stream import MAX_STREAM_BYTES
from committee.threshold import CommitteeInfo
from node import errors as wire_errors
from node.routing import MAX_ROLLUP, MAX_SLOT, ErrorBody, StableErrorRoute
from node.server import server_options
from node.settings import Settings
from ordering import packer

log = logging.getLogger("blockspace.signer")

# Far above a 2,000-bid proposal (about 5 MB); stops a runaway body.
MAX_PROPOSAL_BYTES: Final[int] = 64 * 1024 * 1024
FAULT_ENV: Final[str] = "BLOCKSPACE_SIGNER_FAULT"
R = TypeVar("R")


def compute_member_config(settings: Settings, committee: CommitteeInfo, index: int) -> MemberConfig:
    """The member's own view of rollups, policies and time, from its settings."""
    preset = settings.base_preset()
    return MemberConfig(
        committee=committee,
        index=index,
        rollups=settings.rollup_configs(),
        clock=SlotClock(genesis_ms=settings.genesis_ms, slot_ms=settings.slot_ms),
        max_slots_ahead=(
            preset.max_slots_ahead if settings.max_slots_ahead is None else settings.max_slots_ahead
        ),
        signing_window_ms=settings.signing_window_ms or settings.slot_ms,
        max_clock_skew_ms=settings.max_clock_skew_ms,
        max_rollups_per_bundle=preset.max_rollups_per_bundle,
    )


def default_protection_path(share_path: str | os.PathLike[str], index: int) -> Path:
    """Next to the share file: ``member-<index>.protection.sqlite3``."""
    return Path(share_path).resolve().parent / f"member-{index}.protection.sqlite3"


class _SignerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.signed = Counter(
            "blockspace_signer_partials", "Partials released", ["repeated"], registry=self.registry
        )
        self.refused = Counter(
            "blockspace_signer_refusals",
            "Proposals refused, by stable code",
            ["code"],
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "blockspace_signer_check_seconds",
            "Time from a proposal's arrival to the answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.faults = Counter(
            "blockspace_signer_faults", "Internal errors", ["where"], registry=self.registry
        )
        self.streamed = Counter(
            "blockspace_signer_stream_bytes", "Stream batch bytes accepted", registry=self.registry
        )
        self.released = Counter(
            "blockspace_signer_key_shares",
            "Key shares released (after committing to the slot's ciphertext set)",
            ["repeated"],
            registry=self.registry,
        )
        self.abandoned = Counter(
            "blockspace_signer_abandoned",
            "Queued proposals skipped because the coordinator had disconnected",
            registry=self.registry,
        )


# The body of POST /v1/sign in OpenAPI: the proposal's bytes (committee/proposal.py).
_PROPOSAL_BODY = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


def create_signer_app(member: Member) -> FastAPI:
    """The member's HTTP app."""
    app = FastAPI(title="blockspace signer", version="0.1.0")
    app.router.route_class = StableErrorRoute  # any refusal has the stable-code shape
    metrics = _SignerMetrics()
    lock = asyncio.Lock()

    async def read_body(request: Request, limit: int, too_large: Refusal) -> bytes | Response:
        """The request's body, or a 413 refusal as soon as it passes ``limit`` bytes."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return refused(too_large, "a request", status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    def refused(refusal: BlockspaceError, what: str, status: int | None = None) -> Response:
        """One refusal: counted by its stable code, logged, answered in the stable shape."""
        metrics.refused.labels(refusal.code).inc()
        log.info("refused %s %s: %s", what, refusal.code, refusal.message)
        return JSONResponse(
            wire_errors.http_error_body(refusal),
            status_code=status or wire_errors.http_status(refusal),
        )

    async def checked(
        check: Callable[[bytes], R], body: bytes, where: str, what: str, crashed: Refusal
    ) -> R | Response:
        """``check(body)`` in a worker thread; a refusal answers its code, and a check that
        crashes is still refused (``crashed``), never answered: the traceback goes to the log
        because it may also be a bug of ours."""
        try:
            return await asyncio.to_thread(check, body)
        except BlockspaceError as refusal:  # every check raises its stable code
            return refused(refusal, what)
        except Exception:
            metrics.faults.labels(where).inc()
            log.exception("%s check failed unexpectedly", what)
            return refused(crashed, what, status=400)

    @app.post(
        "/v1/sign",
        summary="Check a proposal and answer a partial signature or a refusal",
        openapi_extra={"requestBody": _PROPOSAL_BODY},
        responses={"4XX": {"model": ErrorBody, "description": "the refusal, by stable code"}},
    )
    async def sign(request: Request) -> Response:
        too_large = MalformedProposal("proposal too large", limit=MAX_PROPOSAL_BYTES)
        body = await read_body(request, MAX_PROPOSAL_BYTES, too_large)
        if isinstance(body, Response):
            return body
        with metrics.check_seconds.time():
            async with lock:
                # A coordinator that gave up (its deadline passed while this proposal waited
                # behind another) is gone: checking for nobody would only delay the next slot.
                if await request.is_disconnected():
                    metrics.abandoned.inc()
                    log.info("skipped a proposal whose coordinator disconnected")
                    return Response(status_code=499)
                crashed = MalformedProposal("the proposal could not be checked")
                reply = await checked(member.sign_proposal, body, "sign", "a proposal", crashed)
        if isinstance(reply, Response):
            return reply
        metrics.signed.labels(str(reply.repeated).lower()).inc()
        return JSONResponse(reply.to_json())

    @app.post(
        "/v1/stream",
        summary="Check a batch of an open slot's log as it streams in (committee/stream.py)",
        openapi_extra={"requestBody": _PROPOSAL_BODY},
        responses={"4XX": {"model": ErrorBody, "description": "the refusal, by stable code"}},
    )
    async def stream(request: Request) -> Response:
        too_large = MalformedProposal("stream batch too large", limit=MAX_STREAM_BYTES)
        body = await read_body(request, MAX_STREAM_BYTES, too_large)
        if isinstance(body, Response):
            return body
        # Not behind the proposal lock: the next slot streams in while this one is signed
        # (each slot's stream has its own lock in the member).
        crashed = MalformedProposal("the stream batch could not be checked")
        ack = await checked(member.accept_stream, body, "stream", "a stream batch", crashed)
        if isinstance(ack, Response):
            return ack
        metrics.streamed.inc(len(body))
        return JSONResponse(ack)

    @app.post(
        "/v1/release",
        summary="Commit to a slot's ciphertext set, then release the key share (sealing.py)",
        openapi_extra={"requestBody": _PROPOSAL_BODY},
        responses={"4XX": {"model": ErrorBody, "description": "the refusal, by stable code"}},
    )
    async def release(request: Request) -> Response:
        too_large = MalformedReleaseRequest("release request too large", limit=MAX_PROPOSAL_BYTES)
        body = await read_body(request, MAX_PROPOSAL_BYTES, too_large)
        if isinstance(body, Response):
            return body
        # Behind the proposal lock: commitments, like signatures, are recorded one at a time.
        async with lock:
            crashed = MalformedReleaseRequest("the release request could not be checked")
            answer = await checked(
                member.release_key_share, body, "release", "a key release", crashed
            )
        if isinstance(answer, Response):
            return answer
        metrics.released.labels(str(answer.repeated).lower()).inc()
        return JSONResponse(answer.to_json())

    @app.get(
        "/v1/blocks/{rollup}/{slot}/events",
        summary="The event ids of a block this member signed, in log order",
        responses={"4XX": {"model": ErrorBody, "description": "not kept here"}},
    )
    async def signed_events(
        rollup: Annotated[int, PathParam(ge=0, le=MAX_ROLLUP)],
        slot: Annotated[int, PathParam(ge=0, le=MAX_SLOT)],
    ) -> Response:
        kept = member.keeping.get_log(rollup, slot)
        if kept is None:
            exc = BlockNotFound(f"this member keeps no block of slot {slot} of rollup {rollup}",
                                rollup=rollup, slot=slot)  # fmt: skip
            return JSONResponse(wire_errors.http_error_body(exc),
                                status_code=wire_errors.http_status(exc))  # fmt: skip
        return JSONResponse(
            {
                "rollup": kept.rollup,
                "slot": kept.slot,
                "block_hash": kept.block_hash,
                "bid_set_root": kept.bid_set_root,
                "event_ids": list(kept.event_ids),
                "member": member.index,
            }
        )

    @app.get("/v1/evidence", summary="Operator-equivocation evidence this member holds")
    async def operator_evidence() -> Response:
        return JSONResponse({"member": member.index, "evidence": member.keeping.list_evidence()})

    @app.get("/healthz", summary="Member identity and liveness")
    async def healthz() -> Response:
        cid = member.config.committee.committee_id
        return JSONResponse(
            {
                "status": "ok",
                "member": member.index,
                "committee_id": "0x" + cid.hex(),
                "rollups": sorted(member.config.rollups),
                "signed": await asyncio.to_thread(member.protection.count_signed, cid),
                "fault": member.fault,
            }
        )

    @app.get(
        "/metrics",
        summary="Prometheus metrics (docs/metrics.md)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def build_member(
    share_path: str | os.PathLike[str],
    settings: Settings,
    *,
    db_path: str | os.PathLike[str] | None = None,
    fault: str | None = None,
) -> Member:
    """Load (and fully check) the share file, open the protection store, build the member."""
    share, committee = keyfiles.read_share_file(share_path)
    path = db_path or default_protection_path(share_path, share.index)
    return Member(
        share,
        compute_member_config(settings, committee, share.index),
        ProtectionStore(path),
        evidence_sample=settings.signer_evidence_sample,
        fault=fault,
        stream_check=settings.signer_stream_check,
        operator=settings.signer_operator,
        kept_slots=settings.signer_kept_slots,
    )


def run_signer(
    share_path: str,
    settings: Settings,
    *,
    host: str,
    port: int,
    db_path: str | None,
    port_file: str | None = None,
) -> int:
    """Run one member until interrupted.

    ``port`` 0 binds a free port; ``port_file`` receives the bound port (written atomically once
    the member is ready to listen), so a supervisor never races another process for a port.
    """
    import uvicorn

    fault = os.environ.get(FAULT_ENV) or None
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"{FAULT_ENV} must be one of {', '.join(FAULTS)}")
    member = build_member(share_path, settings, db_path=db_path, fault=fault)
    # Compile (or load from cache) the packer before answering anything: never in a deadline.
    packer.warm_up({r.policy.payment_rule for r in member.config.rollups.values()})
    # Everything loaded so far lives as long as the process: keep collections from rescanning it.
    gc.collect()
    gc.freeze()
    if fault:
        log.warning("TEST FAULT INJECTION ACTIVE: %s (never use in production)", fault)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = int(sock.getsockname()[1])
    log.info(
        "member %d of committee 0x%s on %s:%d",
        member.index,
        member.config.committee.committee_id.hex(),
        host,
        bound,
    )
    if port_file:
        tmp = f"{port_file}.tmp"
        Path(tmp).write_text(str(bound))
        os.replace(tmp, port_file)
    # The same HTTP read timeout and connection caps as the engine (a coordinator is one client;
    # anything else reaching a member's port must not be able to hold it).
    server = uvicorn.Server(
        uvicorn.Config(create_signer_app(member), log_level="warning", **server_options(settings))
    )
    try:
        server.run(sockets=[sock])
    finally:
        member.protection.close()
    return 0
