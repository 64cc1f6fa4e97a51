"""The close of encrypted bids, coordinator side: collect t commitments and key shares, combine
the slot key (docs/encryption.md, "Close").

``collect_slot_key`` sends one release request (``committee.sealing``: the slot's sealed bids
and their root) to every member concurrently and checks each answer as it arrives: the member's
commitment partial must verify under its public key share on the commitment signing root of
*this* root, and its key share on the slot identity (``encryption.verify_key_share``). As soon
as t members gave both, the key shares are combined and the key checked as the group's BLS
signature on the identity, and the commitment partials into the committee's certificate of the
set. Fewer than t by the deadline: ``KeyNotReleased``, and nobody, this process included, can
ever open the slot's sealed bids (members refuse to release after the slot's signing window).

The transport is the member client's ``release`` (``POST /v1/release`` or in process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import orjson

from auction.errors import BlockspaceError
from auction.types import LoggedSealedBid
from committee import bls, encryption, threshold, wire
from committee.encryption_errors import InvalidKeyShare
from committee.member import Member
from committee.sealedset import (
    OpeningRecord,
    SealedOpening,
    compute_commitment_signing_root,
    compute_sealed_order,
    compute_slot_ciphertext_root,
)
from committee.sealing import KeyRelease, ReleaseRequest, encode_release_request, release_from_json
from committee.threshold import CommitteeInfo

log = logging.getLogger("blockspace.keyrelease")

MAX_RELEASE_ANSWER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ReleaseAnswer:
    """One member's answer to a release request: its release (maybe bad), a refusal, or
    nothing usable."""

    index: int
    release: KeyRelease | None = None
    refusal: str | None = None
    message: str = ""
    error: str | None = None


class ReleasingMember(Protocol):
    index: int

    async def release(self, body: bytes, timeout_s: float) -> ReleaseAnswer: ...


def release_answer_from_json(index: int, status: int, data: bytes) -> ReleaseAnswer:
    """Interpret a member's HTTP answer (any bytes: the member may be lying)."""
    if len(data) > MAX_RELEASE_ANSWER_BYTES:
        return ReleaseAnswer(index, error="answer too large")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ReleaseAnswer(index, error=f"HTTP {status}: answer is not JSON")
    if not isinstance(doc, dict):
        return ReleaseAnswer(index, error=f"HTTP {status}: answer is not an object")
    if status != 200:
        code, message = doc.get("code"), doc.get("message")
        return ReleaseAnswer(index, refusal=code if isinstance(code, str) else "unknown",
                             message=message if isinstance(message, str) else "")  # fmt: skip
    try:
        return ReleaseAnswer(index, release=release_from_json(doc))
    except wire.FieldError as exc:
        return ReleaseAnswer(index, error=f"malformed release: {exc}")


async def release_over_http(
    client: httpx.AsyncClient, url: str, index: int, body: bytes, timeout_s: float
) -> ReleaseAnswer:
    """``POST <url>/v1/release`` (``url`` is the member's base URL)."""
    if timeout_s <= 0:
        return ReleaseAnswer(index, error="no time left before the signing deadline")
    try:
        response = await client.post(url.rstrip("/") + "/v1/release", content=body,
                                     headers={"content-type": "application/json"},
                                     timeout=timeout_s)  # fmt: skip
    except httpx.TimeoutException:
        return ReleaseAnswer(index, error="no answer before the signing deadline")
    except httpx.HTTPError as exc:
        return ReleaseAnswer(index, error=f"unreachable: {type(exc).__name__}")
    return release_answer_from_json(index, response.status_code, response.content)


async def release_in_process(member: Member, body: bytes, timeout_s: float) -> ReleaseAnswer:
    """The same request to an in-process member (``blockspace demo``)."""
    try:
        async with asyncio.timeout(max(timeout_s, 0.001)):
            release = await asyncio.to_thread(member.release_key_share, body)
    except BlockspaceError as refusal:
        return ReleaseAnswer(member.index, refusal=refusal.code, message=refusal.message)
    except TimeoutError:
        return ReleaseAnswer(member.index, error="no answer before the signing deadline")
    return ReleaseAnswer(member.index, release=release)


@dataclass(frozen=True, slots=True)
class KeyNotReleased:
    """Fewer than t members committed and released by the deadline: the slot stays sealed."""

    slot: int
    ciphertext_root: bytes
    valid: tuple[int, ...]
    refused: dict[int, str] = field(default_factory=dict)
    invalid: tuple[int, ...] = ()
    missing: dict[int, str] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        return (
            f"{len(self.valid)} members released their key shares; refused {self.refused}, "
            f"invalid {list(self.invalid)}, missing {self.missing}"
        )


@dataclass
class _Answers:
    valid: dict[int, KeyRelease] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)
    invalid: list[int] = field(default_factory=list)
    missing: dict[int, str] = field(default_factory=dict)


def _check_release(
    committee: CommitteeInfo, slot: int, root: bytes, answer: ReleaseAnswer, out: _Answers
) -> None:
    """File one answer: a release is valid only if it is that member's, for this slot and
    root, and both its partials verify under the member's key share."""
    i = answer.index
    r = answer.release
    if r is None:
        if answer.refusal is not None:
            out.refused[i] = answer.refusal
            log.info("member %d refused the key release: %s %s", i, answer.refusal,
                     answer.message)  # fmt: skip
        else:
            out.missing[i] = answer.error or "no answer"
        return
    message = compute_commitment_signing_root(committee.committee_id, slot, root)
    ok = (
        (r.index, r.slot, r.ciphertext_root) == (i, slot, root)
        and threshold.verify_partial(committee.member_public_key(i), message, r.commitment_partial)
        and encryption.verify_key_share(committee, i, slot, r.key_share)
    )
    if ok:
        out.valid[i] = r
    else:
        out.invalid.append(i)
        log.warning("member %d released a commitment or key share that does not verify", i)


def _drop(task: asyncio.Task[ReleaseAnswer]) -> None:
    """Retrieve a no-longer-awaited request's outcome (so asyncio does not warn about it)."""
    if not task.cancelled():
        task.exception()


# Refusals of a streamed (version 2) release request that the whole set answers.
STREAMED_RELEASE_REFUSALS = frozenset({"stream_gap", "stream_mismatch"})


class ReleaseBodies(Protocol):
    """Each member's streamed release body (``Feeder.release_bodies``)."""

    def __call__(self, request: ReleaseRequest, indices: Sequence[int]) -> dict[int, bytes]: ...


async def _release(
    member: ReleasingMember, body: bytes, whole: bytes, give_up: float
) -> ReleaseAnswer:
    """Ask one member; a streamed body it cannot join with what it holds is sent again whole."""
    answer = await member.release(body, give_up - time.monotonic())
    if body is not whole and answer.refusal in STREAMED_RELEASE_REFUSALS:
        log.info("member %d: %s on the streamed release; sending every sealed bid",
                 member.index, answer.refusal)  # fmt: skip
        answer = await member.release(whole, give_up - time.monotonic())
    return answer


async def collect_slot_key(
    committee: CommitteeInfo,
    members: Sequence[ReleasingMember],
    slot: int,
    entries: Sequence[LoggedSealedBid],
    timeout_s: float,
    streamed: ReleaseBodies | None = None,
) -> SealedOpening | KeyNotReleased:
    """Ask every member to commit to ``entries`` (the slot's sealed bids) and release its key
    share; return the checked slot key with the commitment certificate once t members did, or
    ``KeyNotReleased``. Requests still running when t arrived are left to finish by
    themselves (their answers are no longer needed). ``streamed`` (streaming on): each
    member's body names the prefix it holds from the stream and carries the rest (version 2);
    a member that refuses it (``stream_gap``, ``stream_mismatch``) gets every sealed bid."""
    ordered = tuple(compute_sealed_order(entries))
    root = compute_slot_ciphertext_root(committee.committee_id, slot, ordered)
    request = ReleaseRequest(committee.committee_id, slot, root, ordered)
    whole = encode_release_request(request)
    bodies = streamed(request, [m.index for m in members]) if streamed is not None else {}
    give_up = time.monotonic() + timeout_s
    pending = {
        asyncio.create_task(_release(m, bodies.get(m.index, whole), whole, give_up))
        for m in members
    }
    out = _Answers()
    t = committee.t
    while pending and len(out.valid) < t:
        remaining = give_up - time.monotonic()
        if remaining <= 0 or len(out.valid) + len(pending) < t:
            break
        done, pending = await asyncio.wait(pending, timeout=remaining,
                                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        for task in done:
            _check_release(committee, slot, root, task.result(), out)
    for task in pending:  # no longer awaited: they end by their own timeouts
        task.add_done_callback(_drop)
    answered = {*out.valid, *out.refused, *out.invalid, *out.missing}
    for m in members:
        if m.index not in answered:
            out.missing[m.index] = "no answer"
    if len(out.valid) < t:
        return KeyNotReleased(slot, root, tuple(sorted(out.valid)), out.refused,
                              tuple(out.invalid), out.missing)  # fmt: skip
    chosen = dict(sorted(out.valid.items())[:t])
    try:
        shares = {i: r.key_share for i, r in chosen.items()}
        key = encryption.combine_key_shares(committee, slot, shares)
    except InvalidKeyShare:  # each share was verified: only a library fault gets here
        log.error("slot %d: verified key shares did not combine to the slot key", slot)
        return KeyNotReleased(slot, root, tuple(sorted(out.valid)), out.refused,
                              tuple(out.invalid), out.missing)  # fmt: skip
    signature = threshold.combine({i: r.commitment_partial for i, r in chosen.items()}, t,
                                  committee.n)  # fmt: skip
    return SealedOpening(root, key, signature, ordered)


def check_opening_record(
    committee: CommitteeInfo,
    slot: int,
    entries: Sequence[LoggedSealedBid],
    record: OpeningRecord,
) -> SealedOpening:
    """The slot's opening rebuilt from a stored record and the slot's sealed bids as the store
    has them now; ``ValueError`` if the record is not theirs: the root must be the root of
    ``entries``, the certificate the committee's signature of that root, the key the group's
    signature on the slot identity. Members check all of it again (and every entry); this
    keeps a process from proposing an opening it could have known to be refused."""
    ordered = tuple(compute_sealed_order(entries))
    root = compute_slot_ciphertext_root(committee.committee_id, slot, ordered)
    if root != record.ciphertext_root:
        raise ValueError("the stored ciphertext root is not the root of the slot's sealed bids")
    message = compute_commitment_signing_root(committee.committee_id, slot, root)
    if not bls.verify(committee.group_public_key, message, record.commitment_signature):
        raise ValueError("the stored commitment certificate does not verify")
    if not encryption.verify_slot_key(committee, slot, record.slot_key):
        raise ValueError("the stored slot key does not verify")
    return record.with_entries(ordered)
