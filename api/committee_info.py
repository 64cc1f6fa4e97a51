"""``GET /v1/committee``: the committee's public record, and what encrypting a bid to it needs.

The answer is the public committee file (``committee.keyfiles.encode_committee_file``: id, n, t,
the 48-byte compressed G1 group key, member keys, Feldman commitments), so a searcher checks it
with ``keyfiles.decode_committee_file`` exactly as a rollup checks the file, plus an
``encryption`` object naming the scheme and its bounds (docs/encryption.md). The group key is
already in the form encryption needs: encryption to slot s is to the identity
(committee_id, s) under that key. A server without a committee answers 404 ``no_committee``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from committee import encryption
from committee.encryption_errors import NoCommittee
from committee.keyfiles import encode_committee_file
from committee.threshold import CommitteeInfo
from node.routing import ERRORS, BlocksRoute

router = APIRouter(tags=["blocks"], route_class=BlocksRoute, responses=ERRORS)


def encryption_parameters() -> dict[str, Any]:
    """The ``encryption`` object of the answer: scheme, version, tags and bounds."""
    return {
        "scheme": "blockspace-ibe",
        "version": encryption.VERSION,
        "identity_tag": "0x" + encryption.ID_TAG.hex(),
        "identity_dst": encryption.IBE_DST.decode("ascii"),
        "max_payload_bytes": encryption.MAX_PAYLOAD_BYTES,
        "max_public_bytes": encryption.MAX_PUBLIC_BYTES,
    }


def committee_document(committee: CommitteeInfo) -> dict[str, Any]:
    """The whole answer of ``GET /v1/committee`` for ``committee``."""
    document: dict[str, Any] = orjson.loads(encode_committee_file(committee))
    document["encryption"] = encryption_parameters()
    return document


@router.get("/v1/committee", summary="The committee's public keys and encryption parameters")
async def committee_info(request: Request) -> Response:
    committee: CommitteeInfo | None = getattr(request.app.state, "committee", None)
    if committee is None:
        raise NoCommittee("this server signs no blocks: it has no committee")
    return Response(orjson.dumps(committee_document(committee)), media_type="application/json")
