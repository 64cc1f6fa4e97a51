"""The coordinator: at each slot close, get the slot signed by the committee and publish it.

A slot is one block per rollup the deployment serves, and the committee signs it once, over its
slot root (``auction.slotroot``, ``committee.signing``). The coordinator runs in the engine as
its signer (``attach``) and owns the signed chains' heads: with a committee the engine's parent
for a rollup's next block is its newest *signed* block (set through ``EngineHost.set_head``), so
a failed slot never becomes a parent (docs/committee.md).

Per slot: build one proposal with a part per rollup (block, log, parent certificate, carried
pool), serialize it once, send the same bytes to every member concurrently, and as soon as t
partials are in hand combine them (Lagrange at 0) and verify the result against the group key
(two pairings for the slot, not two per partial: a wrong partial makes the combination fail,
and only then is each partial verified against its member's key share, to drop the bad ones
and wait for others); then publish every rollup's signed block (each with its proof under the
slot root) in one store write. Every partial is still verified alone, after publication, so
invalid partials are recorded as evidence exactly as before (decision 151); late or missing
members are tolerated up to n - t; refusals are counted by code. If t valid partials cannot
arrive by the signing deadline (or can no longer arrive at all), the slot is published as
failed for every rollup together. Answers that arrive after publication are still verified
and recorded.

Several engine processes may share one store: the process that closes a slot signs it; every
other process follows (``follow_slot``): it waits for the outcome in the store, adopts the
signed blocks as its heads and tells its own block subscribers. If no outcome appears by the
signing deadline plus ``FOLLOW_GRACE_MS`` (the closer died mid-slot), or the slot is still not
proposed when the next slot's auction closes (its closer died after storing the results), the
slot is pending and whoever builds the next slot completes or fails it; the store keeps only
the first record, so a late signed slot is never overwritten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx
import orjson
from prometheus_client import Counter, Histogram

from auction.encoding import ZERO_HASH, compute_pending_root
from auction.errors import BlockspaceError, InsufficientDeposit
from auction.hashing import keccak256, to_hex
from auction.intake import Refused
from auction.presets import Preset, Rollup
from auction.receipts import OperatorKey
from auction.slots import SlotClock, compute_deadline_ms
from auction.types import Bid, LoggedEvent, LoggedSealedBid, PendingTx, PublicTx, SlotResult
from committee import bls, keyfiles, threshold
from committee.checks import compute_signing_deadline_ms
from committee.endorsement import Endorsement, sign_endorsement, wrap_proposal
from committee.errors import CommitteeError, InvalidPoint
from committee.feeder import STREAM_REFUSALS, Feeder, StreamAnswer
from committee.keyrelease import (
    KeyNotReleased,
    ReleaseAnswer,
    check_opening_record,
    collect_slot_key,
    release_in_process,
    release_over_http,
)
from committee.member import Member
from committee.opening import OpenedSlot, compute_openings, compute_sealed_record
from committee.proposal import (
    Proposal,
    SlotProposal,
    compute_parent_certificate,
    compute_slot_proposal,
    encode_proposal,
)
from committee.records import (
    EVIDENCE_INVALID_PARTIAL,
    FAILED_BLOCKED,
    FAILED_NOT_ENOUGH_PARTIALS,
    FAILED_NOT_PROPOSED,
    MAX_EVIDENCE_BYTES,
    STATUS_FAILED,
    STATUS_PENDING,
    STATUS_SIGNED,
    FailedSlot,
    MemberEvidence,
    PartialRecord,
    SignedBlock,
    compute_signed_slot,
    failed_slot_to_json,
    signed_block_to_json,
)
from committee.reopening import compute_opening_context
from committee.sealedset import OpeningRecord, SealedOpening
from committee.signing import compute_slot_signing_root
from committee.threshold import CommitteeInfo
from node.follower import FollowedSlot, OpenSlotFollower
from node.metrics import Metrics
from node.notify import Notifier
from node.stores.base import Store
from node.stores.fencing import CloseLease

if TYPE_CHECKING:
    from node.settings import Settings


class Requeue(Protocol):
    async def requeue_public_txs(self, arrivals: Sequence[PublicTx]) -> None: ...


class EngineHost(Protocol):
    """What a coordinator needs of the engine it signs for (``api.engine.Engine`` is one): its
    store and clock, its block subscribers and metrics, its chains' heads, its intake (to
    log a failed slot's public txs again) and its follower of the open slot's logs (to
    stream them). The engine depends on the committee, never the reverse."""

    @property
    def store(self) -> Store: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def clock(self) -> SlotClock: ...

    @property
    def rollups(self) -> Mapping[int, Rollup]: ...

    @property
    def intake(self) -> Requeue: ...

    def now_ms(self) -> int: ...

    @property
    def follower(self) -> OpenSlotFollower: ...

    def start_following(self) -> None: ...

    async def stop_following(self) -> None: ...

    def open_slot(self) -> int: ...

    def set_head(self, rollup_id: int, block_hash: str, pending: tuple[PendingTx, ...]) -> None: ...

    def use_signer(self, signer: Any, committee_id: bytes) -> None: ...

    @property
    def max_slots_ahead(self) -> int: ...

    @property
    def preset(self) -> Preset: ...

    @property
    def operator_key(self) -> OperatorKey: ...

log = logging.getLogger("blockspace.coordinator")

# A follower waits this long after a slot's signing deadline for its closer's outcome, then
# publishes the slot as failed (members refuse proposals after the deadline, so nothing valid
# can still be in flight by then; the margin covers combining and writing the record).
FOLLOW_GRACE_MS = 1_000
FOLLOW_POLL_S = 0.02

# Answers in flight at a slot's signing deadline are awaited this much longer (members' clocks
# may lag ours by up to their max_clock_skew_ms, 250 by default).
LATE_ANSWER_MS = 250
# Proposed slots after the signed head read at once when looking for a pending block (another
# process pinned it, or this one restarted); blocked slots are never proposed, so these are few.
PIN_SCAN_LIMIT = 64
# Refusals that say "not now" rather than "never": a member refusing so may still sign later.
TRANSIENT_REFUSALS: Final[frozenset[str]] = frozenset({"slot_not_closed", "slot_expired"})

# Released slot keys kept for proposals (a pending slot is completed within a few slots).
OPENINGS_KEPT = 64

# A member's answer is a few hundred bytes; a lying member must not make us read megabytes.
MAX_ANSWER_BYTES: Final[int] = 64 * 1024
# Slot timings kept for /metrics-free inspection (the benchmark reads them).
TIMINGS_KEPT: Final[int] = 1024


# --- members as the coordinator sees them -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberAnswer:
    """What one member answered: a partial (maybe bad), a refusal, or nothing usable."""

    index: int
    partial: bytes | None = None
    slot_root: str | None = None
    refusal: str | None = None  # the stable refusal code
    message: str = ""
    error: str | None = None  # unreachable, timeout, malformed answer
    timings_ms: dict[str, float] = field(default_factory=dict)


class MemberClient(Protocol):
    """A way to reach one member."""

    index: int

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer: ...

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
        """Send a batch of an open slot's log (only with streaming on)."""
        ...

    async def release(self, body: bytes, timeout_s: float) -> ReleaseAnswer:
        """Ask for the member's commitment and key share (``committee.keyrelease``)."""
        ...

    async def aclose(self) -> None: ...


def answer_from_json(index: int, status: int, data: bytes) -> MemberAnswer:
    """Interpret a member's HTTP answer (any bytes: the member may be lying)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return MemberAnswer(index, error=f"HTTP {status}: answer is not JSON")
    if not isinstance(doc, dict):
        return MemberAnswer(index, error=f"HTTP {status}: answer is not an object")
    if status == 200:
        partial = doc.get("partial")
        if not isinstance(partial, str) or not partial.startswith("0x"):
            return MemberAnswer(index, error="answer has no partial")
        try:
            raw = bytes.fromhex(partial[2:])
        except ValueError:
            return MemberAnswer(index, error="partial is not hex")
        slot_root = doc.get("slot_root")
        timings = doc.get("timings_ms")
        return MemberAnswer(
            index,
            partial=raw,
            slot_root=slot_root if isinstance(slot_root, str) else None,
            timings_ms=timings if isinstance(timings, dict) else {},
        )
    code = doc.get("code")
    message = doc.get("message")
    return MemberAnswer(
        index,
        refusal=code if isinstance(code, str) else "unknown",
        message=message if isinstance(message, str) else "",
    )


LATE = "no answer before the signing deadline"


def _digest_bytes(value: object) -> bytes | None:
    """A stream digest (``0x`` and 64 hex digits) as bytes, else None."""
    if not (isinstance(value, str) and len(value) == 66 and value.startswith("0x")):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def stream_answer_from_json(index: int, status: int, data: bytes) -> StreamAnswer:
    """Interpret a member's answer to a stream batch (any bytes: it may be lying)."""
    if len(data) > MAX_ANSWER_BYTES:
        return StreamAnswer(index, error="answer too large")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return StreamAnswer(index, error=f"HTTP {status}: answer is not JSON")
    if not isinstance(doc, dict):
        return StreamAnswer(index, error=f"HTTP {status}: answer is not an object")
    if status != 200:
        code, data_doc = doc.get("code"), doc.get("data")
        have = data_doc.get("have") if isinstance(data_doc, dict) else None
        held = data_doc.get("digest") if isinstance(data_doc, dict) else None
        return StreamAnswer(
            index,
            refusal=code if isinstance(code, str) else "unknown",
            have=have if isinstance(have, int) and not isinstance(have, bool) else None,
            digest=_digest_bytes(held),
        )
    count, digest = doc.get("count"), doc.get("digest")
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 0
            and isinstance(digest, str) and len(digest) == 66 and digest.startswith("0x")):
        return StreamAnswer(index, error="malformed acknowledgement")  # fmt: skip
    try:
        raw = bytes.fromhex(digest[2:])
    except ValueError:
        return StreamAnswer(index, error="malformed acknowledgement")
    return StreamAnswer(index, count=count, digest=raw)


class HttpMember:
    """A member behind ``blockspace signer`` (``POST <url>/v1/sign``)."""

    def __init__(self, index: int, url: str, client: httpx.AsyncClient) -> None:
        self.index = index
        self.url = url.rstrip("/") + "/v1/sign"
        self._client = client

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        """Ask the member; give up after ``timeout_s``. The request is never cancelled from
        outside (a cancelled httpx request can leave its pooled connection taken for good, and
        a starved pool reaches no member again): the coordinator stops waiting at its deadline
        and the request ends by itself, by httpx's timeouts or the check between chunks."""
        if timeout_s <= 0:
            return MemberAnswer(self.index, error="no time left before the signing deadline")
        give_up = time.monotonic() + timeout_s
        try:
            async with self._client.stream(
                "POST",
                self.url,
                content=body,
                headers={"content-type": "application/json"},
                timeout=timeout_s,
            ) as response:
                data = b""
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        return MemberAnswer(self.index, error="answer too large")
                    if time.monotonic() > give_up:  # a member trickling its answer
                        return MemberAnswer(self.index, error=LATE)
                return answer_from_json(self.index, response.status_code, data)
        except httpx.TimeoutException:
            return MemberAnswer(self.index, error=LATE)
        except httpx.HTTPError as exc:
            return MemberAnswer(self.index, error=f"unreachable: {type(exc).__name__}")

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
        """Send one batch of a slot's log (``POST <url>/v1/stream``)."""
        url = self.url[: -len("/v1/sign")] + "/v1/stream"
        try:
            response = await self._client.post(
                url, content=body, headers={"content-type": "application/json"},
                timeout=timeout_s,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            return StreamAnswer(self.index, error=f"unreachable: {type(exc).__name__}")
        return stream_answer_from_json(self.index, response.status_code, response.content)

    async def release(self, body: bytes, timeout_s: float) -> ReleaseAnswer:
        """Commit and release a slot key share (``POST <url>/v1/release``)."""
        base = self.url[: -len("/v1/sign")]
        return await release_over_http(self._client, base, self.index, body, timeout_s)

    async def aclose(self) -> None:
        """The shared client is closed by whoever made it."""


class LocalMember:
    """An in-process member (``blockspace demo``'s default committee): same checks, no socket."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.index = member.index

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer:
        try:
            async with asyncio.timeout(timeout_s):
                reply = await asyncio.to_thread(self.member.sign_proposal, body)
        except BlockspaceError as refusal:  # every check raises its stable code
            return MemberAnswer(self.index, refusal=refusal.code, message=refusal.message)
        except TimeoutError:
            return MemberAnswer(self.index, error=LATE)
        return MemberAnswer(
            self.index,
            partial=reply.partial,
            slot_root="0x" + reply.slot_root.hex(),
            timings_ms=reply.timings_ms,
        )

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer:
        try:
            async with asyncio.timeout(timeout_s):
                ack = await asyncio.to_thread(self.member.accept_stream, body)
        except BlockspaceError as refusal:
            have = refusal.data.get("have")
            return StreamAnswer(self.index, refusal=refusal.code,
                                have=have if isinstance(have, int) else None,
                                digest=_digest_bytes(refusal.data.get("digest")))  # fmt: skip
        except TimeoutError:
            return StreamAnswer(self.index, error=LATE)
        return stream_answer_from_json(self.index, 200, orjson.dumps(ack))

    async def release(self, body: bytes, timeout_s: float) -> ReleaseAnswer:
        return await release_in_process(self.member, body, timeout_s)

    async def aclose(self) -> None:
        self.member.protection.close()


# --- collecting partials ----------------------------------------------------------------------


# A slot's published outcome: every rollup's signed block, or every rollup's failure record
# (ascending rollup; written together).
Outcome = tuple[SignedBlock, ...] | tuple[FailedSlot, ...]


def _ordered(results: Sequence[SlotResult]) -> tuple[SlotResult, ...]:
    """A slot's results in leaf order (ascending rollup)."""
    return tuple(sorted(results, key=lambda r: r.rollup))


def _blocks_of(results: Sequence[SlotResult]) -> list[tuple[int, str]]:
    return [(r.rollup, r.block.block_hash) for r in results]


@dataclass(frozen=True, slots=True)
class Pin:
    """A pending slot: some members signed it (so they are locked to its blocks) but fewer
    than t by its signing deadline. It is completed late, or failed once it can never be,
    before any later slot is proposed."""

    results: tuple[SlotResult, ...]  # ascending rollup
    proposal: SlotProposal

    @property
    def slot(self) -> int:
        return self.proposal.slot


@dataclass
class Collection:
    """Everything the members answered for one proposal, as classified so far."""

    valid: dict[int, bytes] = field(default_factory=dict)  # in arrival order
    refused: dict[int, str] = field(default_factory=dict)
    invalid: dict[int, bytes] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)
    timings_ms: dict[int, dict[str, float]] = field(default_factory=dict)
    verify_ms: float = 0.0
    # Partials not verified yet (in arrival order): combined once t are in hand, else each
    # verified alone (``Coordinator._check_partials``).
    unverified: dict[int, bytes] = field(default_factory=dict)
    # The group signature of ``signers``' partials, verified under the group key; those of
    # ``combined`` are valid by that verification only and are verified alone off the critical
    # path (``_verify_each``), before they are kept or a bad one recorded.
    signature: bytes | None = None
    signers: tuple[tuple[int, bytes], ...] = ()  # (member, partial): what the signature is of
    combined: set[int] = field(default_factory=set)


class _CoordinatorMetrics:
    def __init__(self, registry: Any) -> None:
        self.slots = Counter(
            "blockspace_committee_slots",
            "Slots published, by status",
            ["status"],
            registry=registry,
        )
        self.answers = Counter(
            "blockspace_committee_answers",
            "Member answers: valid, invalid, refused (with code), missing",
            ["member", "kind", "code"],
            registry=registry,
        )
        self.evidence = Counter(
            "blockspace_committee_evidence",
            "Evidence recorded against members, by kind",
            ["kind"],
            registry=registry,
        )
        self.seconds = Histogram(
            "blockspace_committee_seconds",
            "From a slot's deadline to its publication, and its phases",
            ["phase"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )


class Coordinator:
    """Gets each closed slot (every rollup's block) signed by t of n members, once, over its
    slot root, and publishes the outcome for every rollup together."""

    def __init__(
        self,
        engine: EngineHost,
        committee: CommitteeInfo,
        members: Sequence[MemberClient],
        *,
        signing_window_ms: int,
        clock_ms: Callable[[], int] | None = None,
        owned_client: httpx.AsyncClient | None = None,
        late_answer_ms: int = LATE_ANSWER_MS,
        streaming: bool = True,
        operator_key: OperatorKey | None = None,
    ) -> None:
        threshold.check_signing_threshold(committee.n, committee.t)
        indices = sorted(m.index for m in members)
        if indices != list(range(1, committee.n + 1)):
            raise ValueError(f"need exactly one client per member 1..{committee.n}")
        self.engine = engine
        self.committee = committee
        self.members = sorted(members, key=lambda m: m.index)
        self.signing_window_ms = signing_window_ms
        self._clock_ms = clock_ms or engine.now_ms
        self._client = owned_client
        # The deployment's rollups, ascending: every slot has one block of each.
        self.rollups = tuple(sorted(engine.rollups))
        self._settled = -1  # the newest slot whose outcome this process knows
        # per rollup, the newest signed block this process knows and the pool it left pending
        # (so reading the head from the store does not re-read that slot's whole result)
        self._head_pending: dict[int, tuple[str, tuple[PendingTx, ...]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[MemberAnswer]] = set()  # requests no longer awaited
        # the pending slot: some members signed it, fewer than t by its deadline
        self._pinned: Pin | None = None
        # How long after a slot's signing deadline answers already in flight are awaited (a
        # member's clock may run this much behind ours; it still signs until its deadline).
        self.late_answer_ms = late_answer_ms
        self.metrics = _CoordinatorMetrics(engine.metrics.registry)
        self.timings: list[dict[str, Any]] = []
        # Streaming re-checks (committee.feeder): members follow the open slot's logs and the
        # proposal carries only what they have not acknowledged.
        self.feeder: Feeder | None = None
        if streaming:
            self.feeder = Feeder(committee.committee_id, self.rollups, self.members)
        self._streaming = False  # the feeder listens to the engine's follower
        # Slot keys released (with the sealed bids they open), for the slots' proposals
        self.openings: dict[int, SealedOpening] = {}
        # The operator key endorses every proposal (committee.endorsement); None sends them
        # unendorsed (only members that pin no operator sign those).
        self.operator_key = operator_key

    # --- lifecycle -----------------------------------------------------------------------------

    def attach(self) -> None:
        """Become the engine's signer: its close pipeline asks this coordinator to prepare each
        build, sign each slot it built, and follow each slot another process built; the
        engine's heads follow signed blocks only."""
        self.engine.use_signer(self, self.committee.committee_id)

    # --- the engine's signer (api.engine.SlotSigner) -------------------------------------------

    async def load_head(self, rollup: int) -> tuple[str, tuple[PendingTx, ...]]:
        """The newest signed block and the pool it left pending (where a restart takes up)."""
        self._start_streaming()
        head = await self._head(rollup)
        return (head[0].block.block_hash, head[1]) if head else (ZERO_HASH, ())

    async def prepare(self, slot: int) -> None:
        self._start_streaming()
        await self.settle_before(slot)

    # --- streaming (committee.feeder) ----------------------------------------------------------

    def _start_streaming(self) -> None:
        """Have the engine follow the open slot's logs (once; only with streaming on): every
        round of its follower shows the slot to the feeder (``_stream``)."""
        if self.feeder is not None and not self._streaming:
            self._streaming = True
            self.engine.follower.listeners.append(self._stream)
            self.engine.start_following()

    def _stream(self, slot: int, followed: FollowedSlot) -> None:
        """The open slot's logs as the follower holds them: what is new goes to every
        member."""
        assert self.feeder is not None
        self.feeder.observe(slot, followed.logs, followed.sealed)
        self.feeder.push(slot)

    async def stream_open_slot(self) -> None:
        """One round of streaming: the follower reads the open slot's new log entries and sealed
        calls, and the feeder sends them to every member."""
        self._start_streaming()
        await self.engine.follower.follow(self.engine.open_slot())

    async def sign(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]],
        lease: CloseLease | None = None,
    ) -> None:
        await self.sign_slot(results, entries, lease=lease)

    async def follow(self, results: Sequence[SlotResult]) -> None:
        await self.follow_slot(results)

    async def open_sealed(
        self,
        slot: int,
        entries: Sequence[LoggedSealedBid],
        hold: Callable[[Bid], Awaitable[None]] | None = None,
    ) -> OpenedSlot | KeyNotReleased:
        """The slot's sealed bids opened (``committee.opening``) with the key the committee
        released for them (``release_key``), in the context every member opens them in.

        ``hold`` (deposits enforced, decision 105) holds each opened bid, in log order, against
        its searcher's free balance; a bid it refuses (``insufficient_deposit``) becomes that
        refusal, and the proposal names it (``SealedOpening.unfunded``) for the members."""
        outcome = await self.release_key(slot, entries)
        if isinstance(outcome, KeyNotReleased):
            return outcome
        engine = self.engine
        ctx = compute_opening_context(
            engine.rollups, engine.clock, engine.max_slots_ahead,
            engine.preset.max_rollups_per_bundle, self.committee.committee_id, self.rollups[0],
        )  # fmt: skip
        opened = await asyncio.to_thread(compute_openings, self.committee, slot,
                                         outcome.slot_key, outcome.entries, ctx)  # fmt: skip
        if hold is not None:
            opened = await self._hold(slot, outcome, opened, hold)
        # Kept before anything of the slot is proposed: whoever builds its proposal later (this
        # process after a restart, another completing it) reopens it from the store
        await self.engine.store.save_slot_opening(slot, OpeningRecord.of(self.openings[slot]))
        return opened

    async def _hold(
        self,
        slot: int,
        outcome: SealedOpening,
        opened: OpenedSlot,
        hold: Callable[[Bid], Awaitable[None]],
    ) -> OpenedSlot:
        """Hold each opened bid in log order; one the ledger refuses becomes that refusal and
        is named in the slot's opening (``SealedOpening.unfunded``)."""
        openings = []
        unfunded = []
        for o in opened.openings:
            if o.bids:
                try:
                    await hold(o.bids[0])
                except InsufficientDeposit as exc:
                    record = compute_sealed_record(o.sealed, exc, o.seq)
                    o = dataclasses.replace(o, bids=(), refused=Refused(exc, record))
                    unfunded.append(o.sealed.bid_id)
            openings.append(o)
        if unfunded:
            self.openings[slot] = dataclasses.replace(outcome, unfunded=tuple(unfunded))
        return dataclasses.replace(opened, openings=tuple(openings))

    async def release_key(
        self, slot: int, entries: Sequence[LoggedSealedBid]
    ) -> SealedOpening | KeyNotReleased:
        """Have the committee commit to the slot's sealed bids and release its key, before the
        slot's signing deadline (``committee.keyrelease``); the opening travels with the slot's
        proposal, so members re-open it themselves."""
        timeout_s = max(0.0, (self._signing_deadline_ms(slot) - self._clock_ms()) / 1000)
        # Streaming: each member's request names the sealed calls it holds (decision 159)
        streamed = self.feeder.release_bodies if self.feeder is not None else None
        outcome = await collect_slot_key(self.committee, self.members, slot, entries, timeout_s,
                                         streamed)  # fmt: skip
        if isinstance(outcome, SealedOpening):
            self.openings[slot] = outcome
            for old in [s for s in self.openings if s < slot - OPENINGS_KEPT]:
                del self.openings[old]
        else:
            log.warning("slot %d: the key was not released: %s", slot, outcome.detail)
        return outcome

    async def _opening(self, slot: int) -> SealedOpening | None:
        """The opening a proposal of ``slot`` carries when this process did not open the slot
        itself (a restart, or a slot another process closed): rebuilt from the store's record
        and the slot's sealed bids, or, without a record (the closer died between the release
        and keeping it), collected again from the members, who answer a repeated release for
        the set they committed to at any time. None for a slot without sealed bids, or if
        fewer than t members answer: members then refuse the proposal (docs/encryption.md)."""
        store = self.engine.store
        entries = await store.read_sealed_bids(self.rollups, slot)
        if not entries:
            return None
        record = await store.get_slot_opening(slot)
        if record is not None:
            try:
                opening = await asyncio.to_thread(check_opening_record, self.committee, slot,
                                                  entries, record)  # fmt: skip
            except ValueError as exc:
                log.error("slot %d: the stored opening is not the slot's: %s", slot, exc)
                self.engine.metrics.system_faults.labels("slot_opening").inc()
            else:
                self.openings[slot] = opening
                return opening
        timeout_s = max(1.0, (self._signing_deadline_ms(slot) - self._clock_ms()) / 1000)
        outcome = await collect_slot_key(self.committee, self.members, slot, entries,
                                         min(timeout_s, self.signing_window_ms / 1000))  # fmt: skip
        if isinstance(outcome, KeyNotReleased):
            log.warning("slot %d: the key could not be collected again: %s", slot,
                        outcome.detail)  # fmt: skip
            return None
        self.openings[slot] = outcome
        await store.save_slot_opening(slot, OpeningRecord.of(outcome))
        return outcome

    async def recover(self) -> None:
        """After a restart: settle the newest slot every rollup closed, if it was never signed
        nor failed."""
        latest = [await self.engine.store.latest_result(r) for r in self.rollups]
        if any(x is None for x in latest):
            return
        slot = min(x.slot for x in latest if x is not None)
        results = await self._results_at(slot)
        if results is None or await self._published(slot):
            return
        within = self._clock_ms() <= self._signing_deadline_ms(slot)
        on_heads = True
        for result in results:
            head = await self._head(result.rollup)
            parent = head[0].block.block_hash if head else ZERO_HASH
            on_heads = on_heads and result.block.parent_hash == parent
        if within and on_heads:
            await self.sign_slot(results)  # another live process may be signing it too
        else:
            # Past its signing deadline (or on a stale parent): another process may still
            # be writing its outcome, so wait out the grace like any follower, then fail it.
            await self.follow_slot(results)

    def _abandon(self, requests: set[asyncio.Task[MemberAnswer]]) -> None:
        """Stop waiting for member requests still running, without cancelling them
        (``HttpMember.sign``): each ends by its own timeout, referenced until then."""
        for task in requests:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def aclose(self) -> None:
        listeners = self.engine.follower.listeners
        if self._streaming and self._stream in listeners:  # closing twice is closing once
            listeners.remove(self._stream)
            await self.engine.stop_following()
        if self.feeder is not None:
            await self.feeder.aclose()
        tasks = [*self._background, *self._in_flight]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a shutdown never waits on a task that lost its cancellation
            await asyncio.wait(tasks, timeout=5.0)
        for m in self.members:
            await m.aclose()
        if self._client is not None:
            await self._client.aclose()

    # --- the signed chains -----------------------------------------------------------------------

    async def _head(self, rollup: int) -> tuple[SignedBlock, tuple[PendingTx, ...]] | None:
        """The newest signed block of a rollup and the public pool it left pending, read from
        the store (the one truth when several engine processes sign in turn)."""
        signed = await self.engine.store.latest_signed_block(rollup)
        if signed is None:
            return None
        known = self._head_pending.get(rollup)
        if known is not None and known[0] == signed.block.block_hash:
            return signed, known[1]
        # A head this process neither signed nor followed: its pool is in its result.
        result = await self.engine.store.get_result(rollup, signed.block.slot)
        pending = result.pending if result is not None else ()
        self._head_pending[rollup] = (signed.block.block_hash, pending)
        return signed, pending

    async def _results_at(self, slot: int) -> tuple[SlotResult, ...] | None:
        """Every rollup's stored result of ``slot`` (ascending rollup), or None if one has none
        (the slot did not close, or its close failed)."""
        results = []
        for rollup in self.rollups:
            result = await self.engine.store.get_result(rollup, slot)
            if result is None:
                return None
            results.append(result)
        return tuple(results)

    async def settle_before(self, slot: int) -> None:
        """Before this process builds ``slot``: wait for (or fail) every earlier slot that could
        still be signed, then take the newest signed blocks as the engine's heads. A slot whose
        signing deadline (plus the grace) has passed can no longer be signed, so only the last
        few slots are looked at. Without this, a process whose follow hook failed, or that
        restarted while another was signing, would build on a stale head and fork a chain."""
        now = self._clock_ms()
        first = slot - 1
        while first > 0 and self._signing_deadline_ms(first - 1) + FOLLOW_GRACE_MS >= now:
            first -= 1
        for j in range(max(first, 0), slot):
            if self._settled >= j:
                continue
            earlier = await self._results_at(j)
            if earlier is not None:
                await self.follow_slot(earlier)
        # A pending slot is completed first: half of this slot's signing window at most.
        pin = await self._pinned_slot(slot)
        if pin is not None:
            # Half of this slot's signing window, and at least half a window from now (a
            # process catching up, or one that waited out a follow, still gives it a chance).
            half = self.signing_window_ms // 2
            until = max(compute_deadline_ms(self.engine.clock, slot), self._clock_ms()) + half
            await self._complete(pin, until)
        for rollup in self.rollups:
            head = await self._head(rollup)
            if head is not None:
                self.engine.set_head(rollup, head[0].block.block_hash, head[1])

    async def _published(self, slot: int) -> bool:
        return await self._await_outcome(slot, wait=False) is not None

    def _signing_deadline_ms(self, slot: int) -> int:
        return compute_signing_deadline_ms(self.engine.clock, slot, self.signing_window_ms)

    # --- one slot --------------------------------------------------------------------------------

    async def follow_slot(self, results: Sequence[SlotResult]) -> Outcome | None:
        """The outcome of a slot another engine process closed (and is signing): adopt its
        signed blocks as the heads and tell this process's block subscribers. None: the slot is
        pending (no outcome by its signing deadline plus FOLLOW_GRACE_MS, or one this process
        already pinned), or older than one whose outcome this process already knows."""
        slot = results[0].slot
        if self._settled >= slot:
            return await self._await_outcome(slot, wait=False)
        pin = self._pinned
        # A slot this process already found pending: nothing to wait for (whoever builds the
        # next slot completes it). Waiting out its deadline here would start that next build
        # after the next slot's own signing deadline, leaving it pending too, slot after slot.
        known_pending = pin is not None and pin.slot == slot
        # A slot nobody proposed by the next slot's deadline lost its closer between storing
        # the results and proposing them (a live closer proposes at once): waiting out its
        # signing window would delay the next slot's close past its own key release window
        # (a sealed slot then fails for good). It is pinned now and completed first.
        outcome = await self._await_outcome(
            slot, wait=not known_pending,
            unproposed_ms=compute_deadline_ms(self.engine.clock, slot + 1),
        )  # fmt: skip
        if outcome is None:
            # Its closer pinned it, or died while members may have signed it: it is pending,
            # and whoever builds the next slot completes it first (settle_before).
            if self._pinned is None:
                ordered = _ordered(results)
                self._pinned = Pin(ordered, await self.build_proposal(ordered))
            return None
        if known_pending:  # another process completed (or failed) it meanwhile
            self._pinned = None
        self._adopt(results, outcome)
        return outcome

    async def _await_outcome(
        self, slot: int, *, wait: bool, unproposed_ms: int | None = None
    ) -> Outcome | None:
        """The slot's signed blocks or failure records (every rollup's: they are written
        together), polling the store until the signing deadline plus FOLLOW_GRACE_MS (once
        only when ``wait`` is false), or until ``unproposed_ms`` if the slot is not proposed
        by then."""
        store = self.engine.store
        give_up_ms = self._signing_deadline_ms(slot) + FOLLOW_GRACE_MS
        if unproposed_ms is not None and unproposed_ms >= give_up_ms:
            unproposed_ms = None
        # Also bounded in real time, so a clock that stands still (tests) cannot hang it.
        give_up_s = time.monotonic() + max(0, give_up_ms - self._clock_ms()) / 1000 + 1.0
        first = self.rollups[0]
        while True:
            if await store.get_signed_block(first, slot) is not None:
                signed = [await store.get_signed_block(r, slot) for r in self.rollups]
                return tuple(s for s in signed if s is not None)
            if await store.get_failed_slot(first, slot) is not None:
                failed = [await store.get_failed_slot(r, slot) for r in self.rollups]
                return tuple(f for f in failed if f is not None)
            if not wait:
                return None
            if self._clock_ms() > give_up_ms or time.monotonic() > give_up_s:
                return None
            if unproposed_ms is not None and self._clock_ms() > unproposed_ms:
                if not await self._proposed(slot):
                    return None
                unproposed_ms = None  # proposed: its closer is signing it
            await asyncio.sleep(FOLLOW_POLL_S)

    async def _proposed(self, slot: int) -> bool:
        """Whether the slot's blocks were proposed (``claim_proposal``), by any process."""
        first = self.rollups[0]
        return any(j == slot for j, _ in await self.engine.store.list_proposed(first, slot, 1))

    def _adopt(self, results: Sequence[SlotResult], outcome: Outcome) -> None:
        """Take an outcome another process published: signed blocks become the heads."""
        slot = results[0].slot
        if slot <= self._settled:
            return
        self._settled = slot
        pending = {r.rollup: r.pending for r in results}
        for record in outcome:
            if isinstance(record, SignedBlock):
                rollup, block_hash = record.block.rollup, record.block.block_hash
                self._head_pending[rollup] = (block_hash, pending.get(rollup, ()))
                self.engine.set_head(rollup, block_hash, pending.get(rollup, ()))
                self.engine.notifier.to_block_watchers(signed_block_to_json(record))
            else:
                self.engine.notifier.to_block_watchers(failed_slot_to_json(record))

    async def build_proposal(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]] | None = None,
    ) -> SlotProposal:
        """The proposal for a closed slot: every rollup's block, its log (read from the store
        unless the close just held it), its signed parent and pool."""
        parts = []
        for result in results:
            rollup = result.rollup
            head = await self._head(rollup)
            held = entries.get(rollup) if entries is not None else None
            log_entries = held if held is not None else await self.engine.store.read_closed_log(
                self.rollups, result
            )
            parent = None
            if head is not None:
                signed = head[0]
                parent = compute_parent_certificate(
                    signed.block, signed.slot_proof, signed.signature
                )
            parts.append(
                Proposal(
                    committee_id=self.committee.committee_id,
                    rollup=rollup,
                    slot=result.slot,
                    block=result.block,
                    parent=parent,
                    carried=head[1] if head else (),
                    log=tuple(log_entries),
                )
            )
        slot = results[0].slot
        proposal = compute_slot_proposal(self.committee.committee_id, slot, parts)
        # The close that held the logs opened the slot (if it had sealed bids); otherwise the
        # opening comes from the store or the members
        sealed = self.openings.get(slot)
        if sealed is None and entries is None:
            sealed = await self._opening(slot)
        return dataclasses.replace(proposal, sealed=sealed)

    async def sign_slot(
        self,
        results: Sequence[SlotResult],
        entries: Mapping[int, Sequence[LoggedEvent]] | None = None,
        *,
        lease: CloseLease | None = None,
    ) -> Outcome | None:
        """Get the slot's blocks (``results``: one per rollup) signed under one slot root and
        publish them, or publish the slot as failed for every rollup. None: some members signed
        it but fewer than t by its deadline; it is *pending* (pinned) and completed before any
        later slot is proposed (``settle_before``). ``lease``: the slot's close lease, whose
        fencing token every record written here carries (``CloseFenced`` if another process
        took the close over)."""
        started_ms = self._clock_ms()
        results = _ordered(results)
        slot = results[0].slot
        pin = self._pinned
        if pin is not None and pin.slot < slot:
            # A block on a pinned block's parent would be its sibling: never propose it.
            return await self._publish_failed(
                results, Collection(), FAILED_BLOCKED,
                f"slot {pin.slot}'s blocks are still being signed", lease=lease,
            )  # fmt: skip
        t0 = time.perf_counter()
        proposal = await self.build_proposal(results, entries)
        # Verify every block extends its signed chain with the pool it left: else no member can
        # sign the slot (it would fork), so do not ask them.
        for part, result in zip(proposal.parts, results, strict=True):
            parent_hash = part.parent.header.block_hash if part.parent else ZERO_HASH
            if result.block.parent_hash != parent_hash or result.block.carried_root != (
                compute_pending_root(part.carried)
            ):
                # Another process signed (or failed) this very slot meanwhile (a restarted
                # one recovering it): the head is then the slot's own block. Not a fault.
                outcome = await self._await_outcome(slot, wait=False)
                if outcome is not None:
                    log.info("slot %d: already published by another process", slot)
                    self._adopt(results, outcome)
                    return outcome
                log.error("slot %d: rollup %d's block does not extend its signed head",
                          slot, result.rollup)
                return await self._publish_failed(
                    results, Collection(), FAILED_NOT_PROPOSED,
                    f"rollup {result.rollup}'s block does not extend its head", lease=lease,
                )  # fmt: skip
        # Record the proposal before any member can see it: a pending slot is found from this
        # record (however old, whichever process), and a slot proposed is never failed by
        # anyone who merely lost track of it.
        if not await self.engine.store.claim_proposal(slot, _blocks_of(results), lease):
            log.error("slot %d was failed, or other blocks proposed for it", slot)
            outcome = await self._await_outcome(slot, wait=False)
            if outcome is not None:
                self._adopt(results, outcome)
            return outcome
        bodies, whole = self._bodies(proposal)
        t1 = time.perf_counter()
        root = self._root(proposal)
        deadline_ms = self._signing_deadline_ms(slot)
        collection, pending = await self._collect(
            bodies, root, deadline_ms, stop_at_t=True, whole=whole
        )
        body = next(iter(bodies.values()))
        if len(collection.valid) < self.committee.t and pending:
            # Answers in flight at the deadline decide whether any member signed: wait them out.
            pending = await self._await_answers(pending, root, collection,
                                                deadline_ms + self.late_answer_ms)
        t2 = time.perf_counter()
        outcome = await self._conclude(results, proposal, root, collection, lease=lease)
        self._time_slot(results, started_ms, len(body), t1 - t0, t2 - t1, collection, outcome)
        # Late answers and the partials already in hand are recorded off the critical path.
        task = asyncio.create_task(
            self._record(proposal, root, collection, pending, deadline_ms),
            name="committee-record",
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return outcome

    def _bodies(
        self, proposal: SlotProposal
    ) -> tuple[dict[int, bytes], Callable[[], bytes] | None]:
        """Each member's proposal body, and (streaming) how to get the whole log's body for a
        member that does not hold what its body names (encoded once, when first needed)."""
        if self.feeder is None:
            body = self.endorse(proposal, encode_proposal(proposal))
            return {m.index: body for m in self.members}, None
        whole: list[bytes] = []

        def whole_body() -> bytes:
            if not whole:
                whole.append(self.endorse(proposal, encode_proposal(proposal)))
            return whole[0]

        bodies = self.feeder.proposal_bodies(proposal, [m.index for m in self.members])
        if self.operator_key is None:
            return bodies, whole_body
        endorsement = self._endorsement(proposal)  # one signature for every member's body
        return {i: wrap_proposal(b, endorsement) for i, b in bodies.items()}, whole_body

    def endorse(self, proposal: SlotProposal, body: bytes) -> bytes:
        """``body`` wrapped in the operator's endorsement of the proposal's slot root (the same
        signature for every member's body of the slot and for its completion)."""
        if self.operator_key is None:
            return body
        return wrap_proposal(body, self._endorsement(proposal))

    def _endorsement(self, proposal: SlotProposal) -> Endorsement:
        assert self.operator_key is not None
        return sign_endorsement(
            proposal.committee_id, proposal.slot, proposal.compute_slot_root(), self.operator_key
        )

    def _root(self, proposal: SlotProposal) -> bytes:
        """The slot signing root of a proposal (over its slot root)."""
        return compute_slot_signing_root(
            self.committee.committee_id, proposal.slot, proposal.compute_slot_root()
        )

    async def _conclude(
        self,
        results: tuple[SlotResult, ...],
        proposal: SlotProposal,
        root: bytes,
        collection: Collection,
        *,
        lease: CloseLease | None = None,
    ) -> Outcome | None:
        """Publish the slot signed (t valid partials), pin it (some, fewer than t: those
        members are locked to its blocks, so it must be completed, never replaced), or publish
        it as failed (none); under ``lease`` when the slot's closer does."""
        slot = proposal.slot
        if collection.signature is not None:  # combined and verified as the partials came
            self._pinned = None
            sealed = proposal.sealed
            return await self._publish_signed(
                results, collection.signature, sorted(collection.signers),
                sealed.ciphertext_root if sealed is not None else None, lease,
            )  # fmt: skip
        if len(collection.valid) >= self.committee.t:
            chosen = list(collection.valid.items())[: self.committee.t]
            signature = threshold.combine(chosen, self.committee.t, self.committee.n)
            # Verify the combination: each partial verified, so this fails only on a bug.
            if bls.verify(self.committee.group_public_key, root, signature):
                self._pinned = None
                sealed = proposal.sealed
                return await self._publish_signed(
                    results, signature, sorted(chosen),
                    sealed.ciphertext_root if sealed is not None else None, lease,
                )  # fmt: skip
            log.error("combined signature for slot %d does not verify", slot)
            return await self._publish_failed(
                results, collection, FAILED_NOT_ENOUGH_PARTIALS, "combination did not verify",
                proposed_ok=True, lease=lease,
            )
        if self._can_never_be_signed(collection):
            self._pinned = None
            return await self._publish_failed(
                results,
                collection,
                FAILED_NOT_ENOUGH_PARTIALS,
                f"{len(collection.valid)} valid partials of the {self.committee.t} needed, and "
                f"{self.committee.n - self.committee.t + 1} or more members refused it for good",
                proposed_ok=True, lease=lease,
            )
        # Some members may have signed it (a valid partial came, or an answer did not): they
        # are locked to its blocks, so it must be completed, never replaced by siblings.
        await self._keep_partials(proposal, root, collection)
        self._pinned = Pin(results, proposal)
        self.metrics.slots.labels(STATUS_PENDING).inc()
        log.warning(
            "slot %d is pending: %d valid partials of the %d needed (missing %s, refused %s); "
            "it is completed before any later slot is proposed",
            slot, len(collection.valid), self.committee.t, collection.missing, collection.refused,
        )  # fmt: skip
        return None

    def _can_never_be_signed(self, c: Collection) -> bool:
        """Whether more than n - t members refused the slot for good (a rule a block breaks, a
        lock on another block): then t valid partials can never exist. Invalid partials do not
        count: a lying member may still sign it."""
        final = {i for i, code in c.refused.items() if code not in TRANSIENT_REFUSALS}
        return len(final) > self.committee.n - self.committee.t

    def _time_slot(
        self,
        results: tuple[SlotResult, ...],
        started_ms: int,
        proposal_bytes: int,
        proposal_s: float,
        collect_s: float,
        collection: Collection,
        outcome: Outcome | None,
    ) -> None:
        """Keep the slot's timings (the benchmark reads them) and observe the histograms."""
        deadline_ms = results[0].deadline_ms
        timing: dict[str, Any] = {
            "rollups": [r.rollup for r in results],
            "slot": results[0].slot,
            "bids": sum(len(r.outcomes) for r in results),
            "proposal_bytes": proposal_bytes,
            "close_done_after_deadline_ms": started_ms - deadline_ms,
            "proposal_ms": proposal_s * 1e3,
            "collect_ms": collect_s * 1e3,
            "verify_ms": collection.verify_ms,
            "members": dict(collection.timings_ms),
        }
        if outcome is None:
            timing["status"] = STATUS_PENDING
        else:
            first = outcome[0]
            timing["status"] = STATUS_SIGNED if isinstance(first, SignedBlock) else STATUS_FAILED
            timing["published_after_deadline_ms"] = first.published_ms - deadline_ms
            self.metrics.seconds.labels("deadline_to_published").observe(
                max(0, first.published_ms - deadline_ms) / 1000
            )
        self.timings.append(timing)
        del self.timings[:-TIMINGS_KEPT]
        self.metrics.seconds.labels("collect").observe(collect_s)

    # --- pending slots: completed, never replaced ------------------------------------------------

    async def _pinned_slot(self, before_slot: int) -> Pin | None:
        """The pending slot older than ``before_slot``, if any: this process's own, or (another
        engine process pinned it, or this one restarted) one found in the store: the oldest
        slot after the signed heads that was proposed and has no outcome."""
        store = self.engine.store
        pin = self._pinned
        if pin is not None:
            outcome = await self._await_outcome(pin.slot, wait=False)
            if outcome is None:
                return pin
            # Another process completed (or failed) it: take its outcome as a follower would.
            self._pinned = None
            self._adopt(pin.results, outcome)
        # Every rollup's proposal is claimed in one step, so the first rollup's list is the
        # slot's.
        first = self.rollups[0]
        head = await self._head(first)
        start = head[0].block.slot + 1 if head else 0
        for j, block_hash in await store.list_proposed(first, start, PIN_SCAN_LIMIT):
            if j >= before_slot:
                break
            if await self._published(j):
                continue
            results = await self._results_at(j)
            if results is None or results[0].block.block_hash != block_hash:
                continue
            pin = self._pinned = Pin(results, await self.build_proposal(results))
            return pin
        return None

    async def _complete(self, pin: Pin, until_ms: int) -> Outcome | None:
        """Ask every member to sign the pending slot, late; publish it once t partials are
        valid, or fail it once it can never get them. None: still pending."""
        results, proposal = pin.results, pin.proposal
        root = self._root(proposal)
        if not await self.engine.store.claim_proposal(pin.slot, _blocks_of(results)):
            self._pinned = None  # failed, or other blocks: not ours to finish
            return await self._await_outcome(pin.slot, wait=False)
        body = self.endorse(proposal,
                            encode_proposal(dataclasses.replace(proposal, completion=True)))
        collection, pending = await self._collect(body, root, until_ms, stop_at_t=True)
        self._abandon(pending)
        for kept in await self.engine.store.list_partials(self.rollups[0], pin.slot):
            if kept.signing_root == root and kept.member not in collection.valid:
                collection.valid[kept.member] = kept.partial
        if len(collection.valid) >= self.committee.t:
            log.info("pending slot %d completed", pin.slot)
        return await self._conclude(results, proposal, root, collection)

    async def solicit(self, proposal: SlotProposal) -> Collection:
        """Send any proposal to every member, wait for every answer (or the slot's signing
        deadline), record valid partials (equivocation detection) and invalid ones (evidence).

        ``sign_slot`` does the same but stops waiting at t valid partials; this is for audits
        and for tests of proposals that break a rule.
        """
        root = self._root(proposal)
        deadline_ms = self._signing_deadline_ms(proposal.slot)
        body = self.endorse(proposal, encode_proposal(proposal))
        collection, pending = await self._collect(body, root, deadline_ms, stop_at_t=False)
        await self._record(proposal, root, collection, pending, deadline_ms)
        return collection

    async def _collect(
        self,
        body: bytes | Mapping[int, bytes],
        root: bytes,
        deadline_ms: int,
        *,
        stop_at_t: bool,
        whole: Callable[[], bytes] | None = None,
    ) -> tuple[Collection, set[asyncio.Task[MemberAnswer]]]:
        """Ask every member (``body``, or each its own); return once every member answered, or
        (``stop_at_t``) t partials are valid or t became impossible, or the deadline passed.
        Also returns the requests still running. ``whole``: the whole log's body, for a member
        that refuses its streamed one for holding less than it names."""
        c = Collection()
        timeout_s = max(0.0, (deadline_ms - self._clock_ms()) / 1000)
        bodies = body if isinstance(body, Mapping) else {m.index: body for m in self.members}
        pending = {
            asyncio.create_task(self._ask(m, bodies[m.index], timeout_s, deadline_ms, whole))
            for m in self.members
        }
        t = self.committee.t if stop_at_t else self.committee.n + 1
        while pending and len(c.valid) < t:
            remaining_s = (deadline_ms - self._clock_ms()) / 1000
            if remaining_s <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                self._classify(task.result(), root, c)
            self._check_partials(root, c)
            # Stop early once t valid partials can no longer arrive (e.g. members are down).
            if stop_at_t and len(c.valid) + len(c.unverified) + len(pending) < t:
                break
        if c.signature is None:
            # Fewer than t partials in hand: what is pending or failed is decided on each
            # partial verified alone.
            self._verify_each(root, c)
        return c, pending

    async def _ask(
        self,
        member: MemberClient,
        body: bytes,
        timeout_s: float,
        deadline_ms: int,
        whole: Callable[[], bytes] | None,
    ) -> MemberAnswer:
        """One member's answer; a member missing part of its stream gets the whole log."""
        answer = await member.sign(body, timeout_s)
        if whole is not None and answer.refusal in STREAM_REFUSALS:
            log.info("member %d holds less of the stream than named (%s): sending the whole "
                     "log", member.index, answer.refusal)  # fmt: skip
            remaining_s = max(0.0, (deadline_ms - self._clock_ms()) / 1000)
            answer = await member.sign(whole(), remaining_s)
        return answer

    def _classify(self, answer: MemberAnswer, root: bytes, c: Collection) -> None:
        i = answer.index
        if answer.timings_ms:
            c.timings_ms[i] = answer.timings_ms
        if answer.partial is not None:
            c.unverified[i] = answer.partial  # verified by _check_partials
        elif answer.refusal is not None:
            c.refused[i] = answer.refusal
            self.metrics.answers.labels(str(i), "refused", answer.refusal).inc()
            log.info("member %d refused: %s %s", i, answer.refusal, answer.message)
        else:
            c.missing[i] = answer.error or "no answer"
            self.metrics.answers.labels(str(i), "missing", "").inc()

    def _check_partials(self, root: bytes, c: Collection) -> None:
        """Once t partials are in hand (valid or not yet verified), combine the first t (in
        arrival order) and verify the combination under the group key: two pairings for all of
        them. When it verifies, the slot's signature is found; the partials it used are valid by
        it, and are verified alone later (``_verify_each``, off the critical path). When it does
        not (a wrong partial is among them; each member's Lagrange coefficient is non-zero, so a
        single wrong partial always breaks it), verify every unverified partial alone, so the
        bad ones are dropped and recorded and the next answers are combined with the good."""
        t = self.committee.t
        if c.signature is not None or len(c.valid) + len(c.unverified) < t:
            return
        t0 = time.perf_counter()
        chosen = [*c.valid.items(), *c.unverified.items()][:t]
        try:
            signature = threshold.combine(chosen, t, self.committee.n)
            ok = bls.verify(self.committee.group_public_key, root, signature)
        except InvalidPoint:  # a partial that is not a signature at all
            ok = False
        c.verify_ms += (time.perf_counter() - t0) * 1e3
        if not ok:
            self._verify_each(root, c)
            return
        c.signature, c.signers = signature, tuple(chosen)
        for i, partial in chosen:
            if c.unverified.pop(i, None) is not None:
                c.valid[i] = partial
                c.combined.add(i)
                self.metrics.answers.labels(str(i), "valid", "").inc()

    def _verify_each(self, root: bytes, c: Collection, *, combined: bool = False) -> None:
        """Verify each unverified partial (and, ``combined``, each that is valid only by the
        combination it was in) against its member's key share: valid, or invalid and kept as
        evidence. A partial found invalid after its combination verified takes a second such
        partial cancelling it (two members colluding): the slot's signature stands, the two
        are recorded like any other invalid partial, and neither is kept as valid."""
        t0 = time.perf_counter()
        checks = [(i, p, False) for i, p in c.unverified.items()]
        if combined:
            checks += [(i, c.valid[i], True) for i in sorted(c.combined)]
            c.combined.clear()
        c.unverified.clear()
        for i, partial, recheck in checks:
            if threshold.verify_partial(self.committee.member_public_key(i), root, partial):
                if not recheck:
                    c.valid[i] = partial
                    self.metrics.answers.labels(str(i), "valid", "").inc()
                continue
            c.valid.pop(i, None)
            c.invalid[i] = partial
            self.metrics.answers.labels(str(i), "invalid", "").inc()
            log.warning("member %d answered an invalid partial", i)
        c.verify_ms += (time.perf_counter() - t0) * 1e3

    async def _record(
        self,
        proposal: SlotProposal,
        root: bytes,
        c: Collection,
        pending: set[asyncio.Task[MemberAnswer]],
        deadline_ms: int,
    ) -> None:
        """Wait for late answers (until the deadline), then record partials and evidence (under
        every rollup of the slot)."""
        if pending:
            self._abandon(await self._await_answers(pending, root, c, deadline_ms))
        # Every partial verified alone before it is kept or recorded (the combination's too).
        self._verify_each(root, c, combined=True)
        store = self.engine.store
        now = self._clock_ms()
        try:
            await self._keep_partials(proposal, root, c)
            for i, partial in c.invalid.items():
                for part in proposal.parts:
                    await store.save_evidence(
                        MemberEvidence(
                            kind=EVIDENCE_INVALID_PARTIAL,
                            rollup=part.rollup,
                            slot=proposal.slot,
                            member=i,
                            committee_id=self.committee.committee_id,
                            detail=f"member {i}'s partial does not verify under its key share",
                            recorded_ms=now,
                            block_hash=part.block.block_hash,
                            signing_root=root,
                            partial=partial[:MAX_EVIDENCE_BYTES],
                        )
                    )
                self.metrics.evidence.labels(EVIDENCE_INVALID_PARTIAL).inc()
        except Exception:
            log.exception("recording partials and evidence failed")
            self.engine.metrics.system_faults.labels("committee_record").inc()

    async def _await_answers(
        self,
        pending: set[asyncio.Task[MemberAnswer]],
        root: bytes,
        c: Collection,
        until_ms: int,
    ) -> set[asyncio.Task[MemberAnswer]]:
        """Classify the answers that arrive before ``until_ms``; return the requests still
        running."""
        remaining_s = max(0.0, (until_ms - self._clock_ms()) / 1000)
        if not pending:
            return pending
        done, still = await asyncio.wait(pending, timeout=remaining_s)
        for task in done:
            self._classify(task.result(), root, c)
        self._check_partials(root, c)
        if c.signature is None:
            self._verify_each(root, c)
        return still

    async def _keep_partials(self, proposal: SlotProposal, root: bytes, c: Collection) -> None:
        """Store every valid partial in hand, under each rollup of the slot with its block
        (equivocation detection, and how another engine process learns that a slot is
        pending)."""
        now = self._clock_ms()
        for i, partial in c.valid.items():
            for part in proposal.parts:
                evidence = await self.engine.store.record_partial(
                    PartialRecord(
                        rollup=part.rollup,
                        slot=proposal.slot,
                        member=i,
                        committee_id=self.committee.committee_id,
                        block_hash=part.block.block_hash,
                        signing_root=root,
                        partial=partial,
                        received_ms=now,
                    )
                )
                if evidence is not None and part is proposal.parts[0]:
                    self.metrics.evidence.labels(evidence.kind).inc()
                    log.warning("equivocation by member %d in slot %d", i, proposal.slot)

    # --- publishing ------------------------------------------------------------------------------

    async def _publish_signed(
        self,
        results: tuple[SlotResult, ...],
        signature: bytes,
        partials: list[tuple[int, bytes]],
        ciphertext_root: bytes | None = None,
        lease: CloseLease | None = None,
    ) -> Outcome:
        blocks = compute_signed_slot(
            [r.block for r in results],
            self.committee.committee_id,
            signature,
            partials,
            deadline_ms=results[0].deadline_ms,
            published_ms=self._clock_ms(),
            ciphertext_root=ciphertext_root,
        )
        store = self.engine.store
        slot = results[0].slot
        if not await store.save_signed_blocks(blocks, lease):
            # Another engine process published this slot first: its record is the truth.
            existing = await self._await_outcome(slot, wait=False)
            if existing is None:
                raise RuntimeError("the store refused signed blocks but holds no record")
            self._adopt(results, existing)
            return existing
        self._settled = max(self._settled, slot)
        for result, signed in zip(results, blocks, strict=True):
            self._head_pending[result.rollup] = (signed.block.block_hash, result.pending)
            self.engine.set_head(result.rollup, signed.block.block_hash, result.pending)
            self.engine.notifier.to_block_watchers(signed_block_to_json(signed))
            await store.record_committee(
                result.rollup,
                slot,
                {
                    "status": STATUS_SIGNED,
                    "block_hash": signed.block.block_hash,
                    "slot_root": "0x" + signed.slot_root.hex(),
                    "committee_id": "0x" + signed.committee_id.hex(),
                    "signers": list(signed.signers),
                    "signature": "0x" + signed.signature.hex(),
                },
            )
        self.metrics.slots.labels(STATUS_SIGNED).inc()
        return tuple(blocks)

    async def _publish_failed(
        self,
        results: tuple[SlotResult, ...],
        c: Collection,
        reason: str,
        detail: str,
        *,
        proposed_ok: bool = False,
        lease: CloseLease | None = None,
    ) -> Outcome | None:
        """Publish the slot as failed for every rollup, or return the record that stands; None
        if its blocks were proposed (members may be locked to them: it is pending) unless
        ``proposed_ok`` (it can never be signed)."""
        slot = results[0].slot
        missing = set(range(1, self.committee.n + 1)) - set(c.valid) - set(c.refused)
        failed = [
            FailedSlot(
                rollup=result.rollup,
                slot=slot,
                committee_id=self.committee.committee_id,
                block_hash=result.block.block_hash,
                reason=reason,
                valid=tuple(sorted(c.valid)),
                refused=tuple(sorted(c.refused.items())),
                invalid=tuple(sorted(c.invalid)),
                missing=tuple(sorted(missing - set(c.invalid))),
                deadline_ms=self._signing_deadline_ms(slot),
                published_ms=self._clock_ms(),
            )
            for result in results
        ]
        store = self.engine.store
        if not await store.save_failed_slots(failed, proposed_ok=proposed_ok, lease=lease):
            # Already published (signed or failed, by this engine or another): that stands.
            existing = await self._await_outcome(slot, wait=False)
            if existing is None:
                log.warning("slot %d was proposed: pending, not failed", slot)
                return None
            self._adopt(results, existing)
            return existing
        self._settled = max(self._settled, slot)
        log.warning("slot %d failed: %s", slot, detail)
        self.metrics.slots.labels(STATUS_FAILED).inc()
        for result, record in zip(results, failed, strict=True):
            payload = failed_slot_to_json(record)
            self.engine.notifier.to_block_watchers(payload)
            try:
                await store.record_committee(result.rollup, slot, payload)
                # Its blocks never happened: the public txs that arrived in it wait in the open
                # slot (only the process that wrote the failure records gets here, so never
                # twice).
                await self.engine.intake.requeue_public_txs(
                    await self._unsettled_arrivals(result)
                )
            except BlockspaceError as exc:
                log.error("after failing slot %d of rollup %d: %s", slot, result.rollup,
                          exc.message)
        return tuple(failed)

    async def _unsettled_arrivals(self, result: SlotResult) -> list[PublicTx]:
        """The failed slot's public arrivals that no later slot has seen: not logged again since
        (a sender's resend) and not in a block signed since (a bundle may carry a public tx)."""
        store = self.engine.store
        entries = await store.read_log(result.rollup, result.slot)
        arrivals = [e.event for e in entries if isinstance(e.event, PublicTx)]
        if not arrivals:
            return []
        seen: set[str] = set()
        for j in range(result.slot + 1, self.engine.open_slot() + 1):
            for e in await store.read_log(result.rollup, j):
                if isinstance(e.event, PublicTx):
                    seen.add(e.event.tx.hash)
            signed = await store.get_signed_block(result.rollup, j)
            if signed is not None:
                seen.update(to_hex(keccak256(raw)) for raw in signed.block.txs)
        return [p for p in arrivals if p.tx.hash not in seen]


def build_coordinator(settings: Settings, engine: EngineHost) -> Coordinator:
    """The coordinator ``blockspace serve`` runs: the committee file, HTTP members, attached."""
    committee = keyfiles.read_committee_file(settings.committee or "")
    if len(settings.signers) != committee.n:
        raise ValueError(
            f"the committee has {committee.n} members; give one --signer URL each "
            f"(got {len(settings.signers)})"
        )
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=4 * committee.n, max_keepalive_connections=committee.n)
    )
    members = [HttpMember(i, url, client) for i, url in enumerate(settings.signers, start=1)]
    coordinator = Coordinator(
        engine,
        committee,
        members,
        signing_window_ms=settings.signing_window_ms or settings.slot_ms,
        owned_client=client,
        streaming=settings.committee_streaming,
        operator_key=engine.operator_key,
    )
    coordinator.attach()
    return coordinator


def check_committee_settings(settings: Settings) -> str | None:
    """What is wrong with ``serve``'s committee settings, or None (checked before starting)."""
    if not settings.committee:
        return None
    try:
        committee = keyfiles.read_committee_file(settings.committee)
    except (OSError, CommitteeError) as exc:
        return f"committee file {settings.committee}: {exc}"
    if len(settings.signers) != committee.n:
        return (
            f"the committee has {committee.n} members: give one --signer URL each, member 1 "
            f"first (got {len(settings.signers)})"
        )
    return None
