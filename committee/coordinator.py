"""The coordinator: at each slot close, get the block signed by the committee and publish it.

It runs in the engine as its first result hook (``attach``) and owns the signed chain's head:
with a committee the engine's parent for the next block is the newest *signed* block (set
through ``EngineHost.set_head``), so a failed slot never becomes a parent (docs/committee.md).

Per slot: build the proposal (block, log, parent certificate, carried pool), serialize it once,
send the same bytes to every member concurrently, verify each partial as it arrives against
that member's public key share, and as soon as t are valid combine them (Lagrange at 0), verify
the result against the group key and publish. Invalid partials are recorded as evidence; late
or missing members are tolerated up to n - t; refusals are counted by code. If t valid partials
cannot arrive by the signing deadline (or can no longer arrive at all), the slot is published
as failed. Answers that arrive after publication are still verified and recorded.

Several engine processes may share one store: the process that closes a slot signs it; every
other process follows (``follow_slot``): it waits for the outcome in the store, adopts a signed
block as its head and tells its own block subscribers. If no outcome appears by the signing
deadline plus ``FOLLOW_GRACE_MS`` (the closer died mid-slot), the follower publishes the slot
as failed; the store keeps only the first record, so a late signed block is never overwritten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx
import orjson
from prometheus_client import Counter, Histogram

from auction.encoding import ZERO_HASH, compute_pending_root
from auction.errors import BlockspaceError
from auction.hashing import keccak256, to_hex
from auction.presets import Rollup
from auction.slots import SlotClock, compute_deadline_ms
from auction.types import LoggedEvent, PendingTx, PublicTx, SlotResult
from committee import bls, keyfiles, threshold
from committee.checks import compute_signing_deadline_ms
from committee.errors import CommitteeError
from committee.member import Member
from committee.proposal import Proposal, compute_parent_certificate, encode_proposal
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
    failed_slot_to_json,
    signed_block_to_json,
)
from committee.signing import compute_signing_root
from committee.threshold import CommitteeInfo
from node.metrics import Metrics
from node.notify import Notifier
from node.stores.base import Store

if TYPE_CHECKING:
    from node.settings import Settings


class Requeue(Protocol):
    async def requeue_public_txs(self, arrivals: Sequence[PublicTx]) -> None: ...


class EngineHost(Protocol):
    """What a coordinator needs of the engine it signs for (``api.engine.Engine`` is one): its
    store and clock, its block subscribers and metrics, its chains' heads, and its intake (to
    log a failed slot's public txs again). The engine depends on the committee, never the
    reverse."""

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

    def open_slot(self) -> int: ...

    def set_head(self, rollup_id: int, block_hash: str, pending: tuple[PendingTx, ...]) -> None: ...

    def use_signer(self, signer: Any, committee_id: bytes) -> None: ...

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
    block_hash: str | None = None
    refusal: str | None = None  # the stable refusal code
    message: str = ""
    error: str | None = None  # unreachable, timeout, malformed answer
    timings_ms: dict[str, float] = field(default_factory=dict)


class MemberClient(Protocol):
    """A way to reach one member."""

    index: int

    async def sign(self, body: bytes, timeout_s: float) -> MemberAnswer: ...

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
        block_hash = doc.get("block_hash")
        timings = doc.get("timings_ms")
        return MemberAnswer(
            index,
            partial=raw,
            block_hash=block_hash if isinstance(block_hash, str) else None,
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
            block_hash=reply.block_hash,
            timings_ms=reply.timings_ms,
        )

    async def aclose(self) -> None:
        self.member.protection.close()


# --- collecting partials ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pin:
    """A pending block: some members signed it (so they are locked to it) but fewer than t
    by its signing deadline. It is completed late, or failed once it can never be, before any
    later block of its rollup is proposed."""

    result: SlotResult
    proposal: Proposal


@dataclass
class Collection:
    """Everything the members answered for one proposal, as classified so far."""

    valid: dict[int, bytes] = field(default_factory=dict)  # in arrival order
    refused: dict[int, str] = field(default_factory=dict)
    invalid: dict[int, bytes] = field(default_factory=dict)
    missing: dict[int, str] = field(default_factory=dict)
    timings_ms: dict[int, dict[str, float]] = field(default_factory=dict)
    verify_ms: float = 0.0


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
    """Gets each closed slot's block signed by t of n members and publishes the outcome."""

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
        self._settled: dict[int, int] = {}  # per rollup, the newest slot whose outcome we know
        # per rollup, the newest signed block this process knows and the pool it left pending
        # (so reading the head from the store does not re-read that slot's whole result)
        self._head_pending: dict[int, tuple[str, tuple[PendingTx, ...]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[MemberAnswer]] = set()  # requests no longer awaited
        # per rollup, the pending block: some members signed it, fewer than t by its deadline
        self._pinned: dict[int, Pin] = {}
        # How long after a slot's signing deadline answers already in flight are awaited (a
        # member's clock may run this much behind ours; it still signs until its deadline).
        self.late_answer_ms = late_answer_ms
        self.metrics = _CoordinatorMetrics(engine.metrics.registry)
        self.timings: list[dict[str, Any]] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def attach(self) -> None:
        """Become the engine's signer: its close pipeline asks this coordinator to prepare each
        build, sign each block it built, and follow each result another process built; the
        engine's head follows signed blocks only."""
        self.engine.use_signer(self, self.committee.committee_id)

    # --- the engine's signer (api.engine.SlotSigner) -------------------------------------------

    async def load_head(self, rollup: int) -> tuple[str, tuple[PendingTx, ...]]:
        """The newest signed block and the pool it left pending (where a restart takes up)."""
        head = await self._head(rollup)
        return (head[0].block.block_hash, head[1]) if head else (ZERO_HASH, ())

    async def prepare(self, rollup: int, slot: int) -> None:
        await self.settle_before(rollup, slot)

    async def sign(self, result: SlotResult, entries: Sequence[LoggedEvent]) -> None:
        await self.sign_slot(result, entries)

    async def follow(self, result: SlotResult) -> None:
        await self.follow_slot(result)

    async def recover(self) -> None:
        """After a restart: settle the newest closed slot if it was never signed nor failed."""
        for rollup in self.engine.rollups:
            result = await self.engine.store.latest_result(rollup)
            if result is None or await self._published(rollup, result.slot):
                continue
            head = await self._head(rollup)
            within = self._clock_ms() <= self._signing_deadline_ms(result.slot)
            parent = head[0].block.block_hash if head else ZERO_HASH
            if within and result.block.parent_hash == parent:
                await self.sign_slot(result)  # another live process may be signing it too
            else:
                # Past its signing deadline (or on a stale parent): another process may still
                # be writing its outcome, so wait out the grace like any follower, then fail it.
                await self.follow_slot(result)

    def _abandon(self, requests: set[asyncio.Task[MemberAnswer]]) -> None:
        """Stop waiting for member requests still running, without cancelling them
        (``HttpMember.sign``): each ends by its own timeout, referenced until then."""
        for task in requests:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def aclose(self) -> None:
        tasks = [*self._background, *self._in_flight]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a shutdown never waits on a task that lost its cancellation
            await asyncio.wait(tasks, timeout=5.0)
        for m in self.members:
            await m.aclose()
        if self._client is not None:
            await self._client.aclose()

    # --- the signed chain ----------------------------------------------------------------------

    async def _head(self, rollup: int) -> tuple[SignedBlock, tuple[PendingTx, ...]] | None:
        """The newest signed block and the public pool it left pending, read from the store
        (the one truth when several engine processes sign in turn)."""
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

    async def settle_before(self, rollup: int, slot: int) -> None:
        """Before this process builds ``slot``: wait for (or fail) every earlier slot that could
        still be signed, then take the newest signed block as the engine's head. A slot whose
        signing deadline (plus the grace) has passed can no longer be signed, so only the last
        few slots are looked at. Without this, a process whose follow hook failed, or that
        restarted while another was signing, would build on a stale head and fork the chain."""
        now = self._clock_ms()
        first = slot - 1
        while first > 0 and self._signing_deadline_ms(first - 1) + FOLLOW_GRACE_MS >= now:
            first -= 1
        for j in range(max(first, 0), slot):
            if self._settled.get(rollup, -1) >= j:
                continue
            earlier = await self.engine.store.get_result(rollup, j)
            if earlier is not None:
                await self.follow_slot(earlier)
        # A pending block is completed first: half of this slot's signing window at most.
        pin = await self._pinned_block(rollup, slot)
        if pin is not None:
            # Half of this slot's signing window, and at least half a window from now (a
            # process catching up, or one that waited out a follow, still gives it a chance).
            half = self.signing_window_ms // 2
            until = max(compute_deadline_ms(self.engine.clock, slot), self._clock_ms()) + half
            await self._complete(pin, until)
        head = await self._head(rollup)
        if head is not None:
            self.engine.set_head(rollup, head[0].block.block_hash, head[1])

    async def _published(self, rollup: int, slot: int) -> bool:
        store = self.engine.store
        return (await store.get_signed_block(rollup, slot)) is not None or (
            await store.get_failed_slot(rollup, slot)
        ) is not None

    def _signing_deadline_ms(self, slot: int) -> int:
        return compute_signing_deadline_ms(self.engine.clock, slot, self.signing_window_ms)

    # --- one slot --------------------------------------------------------------------------------

    async def follow_slot(self, result: SlotResult) -> SignedBlock | FailedSlot | None:
        """The outcome of a slot another engine process closed (and is signing): adopt a signed
        block as the head and tell this process's block subscribers. None: the slot is pending
        (no outcome by its signing deadline plus FOLLOW_GRACE_MS, or one this process already
        pinned), or older than one whose outcome this process already knows."""
        rollup, slot = result.rollup, result.slot
        if self._settled.get(rollup, -1) >= slot:
            return await self._await_outcome(rollup, slot, wait=False)
        pin = self._pinned.get(rollup)
        # A block this process already found pending: nothing to wait for (whoever builds the
        # next slot completes it). Waiting out its deadline here would start that next build
        # after the next slot's own signing deadline, leaving it pending too, slot after slot.
        known_pending = pin is not None and pin.result.slot == slot
        outcome = await self._await_outcome(rollup, slot, wait=not known_pending)
        if outcome is None:
            # Its closer pinned it, or died while members may have signed it: it is pending,
            # and whoever builds the next slot completes it first (settle_before).
            if rollup not in self._pinned:
                self._pinned[rollup] = Pin(result, await self.build_proposal(result))
            return None
        if known_pending:  # another process completed (or failed) it meanwhile
            self._pinned.pop(rollup, None)
        self._adopt(result, outcome)
        return outcome

    async def _await_outcome(
        self, rollup: int, slot: int, *, wait: bool
    ) -> SignedBlock | FailedSlot | None:
        """The slot's signed or failed record, polling the store until the signing deadline
        plus FOLLOW_GRACE_MS (once only when ``wait`` is false)."""
        store = self.engine.store
        give_up_ms = self._signing_deadline_ms(slot) + FOLLOW_GRACE_MS
        # Also bounded in real time, so a clock that stands still (tests) cannot hang it.
        give_up_s = time.monotonic() + max(0, give_up_ms - self._clock_ms()) / 1000 + 1.0
        while True:
            record = await store.get_signed_block(rollup, slot) or await store.get_failed_slot(
                rollup, slot
            )
            if record is not None or not wait:
                return record
            if self._clock_ms() > give_up_ms or time.monotonic() > give_up_s:
                return None
            await asyncio.sleep(FOLLOW_POLL_S)

    def _adopt(self, result: SlotResult, outcome: SignedBlock | FailedSlot) -> None:
        """Take an outcome another process published: a signed block becomes the head."""
        if result.slot <= self._settled.get(result.rollup, -1):
            return
        self._settled[result.rollup] = result.slot
        if isinstance(outcome, SignedBlock):
            self._head_pending[result.rollup] = (outcome.block.block_hash, result.pending)
            self.engine.set_head(result.rollup, outcome.block.block_hash, result.pending)
            self.engine.notifier.to_block_watchers(signed_block_to_json(outcome))
        else:
            self.engine.notifier.to_block_watchers(failed_slot_to_json(outcome))

    async def build_proposal(
        self, result: SlotResult, entries: Sequence[LoggedEvent] | None = None
    ) -> Proposal:
        """The proposal for a closed slot: its block, its log (read from the store unless the
        close just held it), the signed parent and pool."""
        rollup = result.rollup
        head = await self._head(rollup)
        log_entries = entries if entries is not None else await self.engine.store.read_log(
            rollup, result.slot
        )
        return Proposal(
            committee_id=self.committee.committee_id,
            rollup=rollup,
            slot=result.slot,
            block=result.block,
            parent=compute_parent_certificate(head[0].block, head[0].signature) if head else None,
            carried=head[1] if head else (),
            log=tuple(log_entries),
        )

    async def sign_slot(
        self, result: SlotResult, entries: Sequence[LoggedEvent] | None = None
    ) -> SignedBlock | FailedSlot | None:
        """Get ``result``'s block signed and publish it, or publish the slot as failed. None:
        some members signed it but fewer than t by its deadline; it is *pending* (pinned) and
        completed before any later block is proposed (``settle_before``)."""
        started_ms = self._clock_ms()
        pin = self._pinned.get(result.rollup)
        if pin is not None and pin.result.slot < result.slot:
            # A block on the pinned block's parent would be its sibling: never propose it.
            return await self._publish_failed(
                result, Collection(), FAILED_BLOCKED,
                f"slot {pin.result.slot}'s block is still being signed",
            )  # fmt: skip
        t0 = time.perf_counter()
        proposal = await self.build_proposal(result, entries)
        # the head the proposal was built on (read from the store once, in build_proposal)
        parent_hash = proposal.parent.header.block_hash if proposal.parent else ZERO_HASH
        # Verify the block extends the signed chain with the pool it left: else no member can
        # sign it (it would fork), so do not ask them.
        if result.block.parent_hash != parent_hash or result.block.carried_root != (
            compute_pending_root(proposal.carried)
        ):
            log.error("slot %d's block does not extend the signed head", result.slot)
            return await self._publish_failed(
                result, Collection(), FAILED_NOT_PROPOSED, "the block does not extend the head"
            )
        # Record the proposal before any member can see it: a pending block is found from this
        # record (however old, whichever process), and a slot proposed is never failed by
        # anyone who merely lost track of it.
        if not await self.engine.store.claim_proposal(
            result.rollup, result.slot, result.block.block_hash
        ):
            log.error("slot %d of rollup %d was failed, or another block proposed for it",
                      result.slot, result.rollup)
            outcome = await self._await_outcome(result.rollup, result.slot, wait=False)
            if outcome is not None:
                self._adopt(result, outcome)
            return outcome
        body = encode_proposal(proposal)
        t1 = time.perf_counter()
        root = self._root(result)
        deadline_ms = self._signing_deadline_ms(result.slot)
        collection, pending = await self._collect(body, root, deadline_ms, stop_at_t=True)
        if len(collection.valid) < self.committee.t and pending:
            # Answers in flight at the deadline decide whether any member signed: wait them out.
            pending = await self._await_answers(pending, root, collection,
                                                deadline_ms + self.late_answer_ms)
        t2 = time.perf_counter()
        outcome = await self._conclude(result, proposal, root, collection)
        self._time_slot(result, started_ms, len(body), t1 - t0, t2 - t1, collection, outcome)
        # Late answers and the partials already in hand are recorded off the critical path.
        task = asyncio.create_task(
            self._record(proposal, root, collection, pending, deadline_ms),
            name="committee-record",
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return outcome

    def _root(self, result: SlotResult) -> bytes:
        return compute_signing_root(
            self.committee.committee_id, result.rollup, result.slot, result.block.block_hash
        )

    async def _conclude(
        self, result: SlotResult, proposal: Proposal, root: bytes, collection: Collection
    ) -> SignedBlock | FailedSlot | None:
        """Publish the block signed (t valid partials), pin it (some, fewer than t: those
        members are locked to it, so it must be completed, never replaced), or publish the slot
        as failed (none)."""
        if len(collection.valid) >= self.committee.t:
            chosen = list(collection.valid.items())[: self.committee.t]
            signature = threshold.combine(chosen, self.committee.t, self.committee.n)
            # Verify the combination: each partial verified, so this fails only on a bug.
            if bls.verify(self.committee.group_public_key, root, signature):
                self._pinned.pop(result.rollup, None)
                return await self._publish_signed(result, signature, sorted(chosen))
            log.error("combined signature for slot %d does not verify", result.slot)
            return await self._publish_failed(
                result, collection, FAILED_NOT_ENOUGH_PARTIALS, "combination did not verify",
                proposed_ok=True,
            )
        if self._can_never_be_signed(collection):
            self._pinned.pop(result.rollup, None)
            return await self._publish_failed(
                result,
                collection,
                FAILED_NOT_ENOUGH_PARTIALS,
                f"{len(collection.valid)} valid partials of the {self.committee.t} needed, and "
                f"{self.committee.n - self.committee.t + 1} or more members refused it for good",
                proposed_ok=True,
            )
        # Some members may have signed it (a valid partial came, or an answer did not): they
        # are locked to it, so it must be completed, never replaced by a sibling.
        await self._keep_partials(proposal, root, collection)
        self._pinned[result.rollup] = Pin(result, proposal)
        self.metrics.slots.labels(STATUS_PENDING).inc()
        log.warning(
            "slot %d of rollup %d is pending: %d valid partials of the %d needed (missing %s, "
            "refused %s); it is completed before any later block is proposed",
            result.slot, result.rollup, len(collection.valid), self.committee.t,
            collection.missing, collection.refused,
        )  # fmt: skip
        return None

    def _can_never_be_signed(self, c: Collection) -> bool:
        """Whether more than n - t members refused the block for good (a rule it breaks, a
        lock on another block): then t valid partials can never exist. Invalid partials do not
        count: a lying member may still sign it."""
        final = {i for i, code in c.refused.items() if code not in TRANSIENT_REFUSALS}
        return len(final) > self.committee.n - self.committee.t

    def _time_slot(
        self,
        result: SlotResult,
        started_ms: int,
        proposal_bytes: int,
        proposal_s: float,
        collect_s: float,
        collection: Collection,
        outcome: SignedBlock | FailedSlot | None,
    ) -> None:
        """Keep the slot's timings (the benchmark reads them) and observe the histograms."""
        timing: dict[str, Any] = {
            "rollup": result.rollup,
            "slot": result.slot,
            "bids": len(result.outcomes),
            "proposal_bytes": proposal_bytes,
            "close_done_after_deadline_ms": started_ms - result.deadline_ms,
            "proposal_ms": proposal_s * 1e3,
            "collect_ms": collect_s * 1e3,
            "verify_ms": collection.verify_ms,
            "members": dict(collection.timings_ms),
        }
        if outcome is None:
            timing["status"] = STATUS_PENDING
        else:
            timing["status"] = (
                STATUS_SIGNED if isinstance(outcome, SignedBlock) else STATUS_FAILED
            )
            timing["published_after_deadline_ms"] = outcome.published_ms - result.deadline_ms
            self.metrics.seconds.labels("deadline_to_published").observe(
                max(0, outcome.published_ms - result.deadline_ms) / 1000
            )
        self.timings.append(timing)
        del self.timings[:-TIMINGS_KEPT]
        self.metrics.seconds.labels("collect").observe(collect_s)

    # --- pending blocks: completed, never replaced ----------------------------------------------

    async def _pinned_block(self, rollup: int, before_slot: int) -> Pin | None:
        """The pending block of ``rollup`` older than ``before_slot``, if any: this process's
        own, or (another engine process pinned it, or this one restarted) one found in the
        store: the oldest slot after the signed head that was proposed and has no outcome."""
        store = self.engine.store
        pin = self._pinned.get(rollup)
        if pin is not None:
            outcome = await self._await_outcome(rollup, pin.result.slot, wait=False)
            if outcome is None:
                return pin
            # Another process completed (or failed) it: take its outcome as a follower would.
            self._pinned.pop(rollup, None)
            self._adopt(pin.result, outcome)
        head = await self._head(rollup)
        first = head[0].block.slot + 1 if head else 0
        for j, block_hash in await store.list_proposed(rollup, first, PIN_SCAN_LIMIT):
            if j >= before_slot:
                break
            if await self._published(rollup, j):
                continue
            result = await store.get_result(rollup, j)
            if result is None or result.block.block_hash != block_hash:
                continue
            pin = self._pinned[rollup] = Pin(result, await self.build_proposal(result))
            return pin
        return None

    async def _complete(self, pin: Pin, until_ms: int) -> SignedBlock | FailedSlot | None:
        """Ask every member to sign the pending block, late; publish it once t partials are
        valid, or fail it once it can never get them. None: still pending."""
        result, proposal = pin.result, pin.proposal
        root = self._root(result)
        if not await self.engine.store.claim_proposal(
            result.rollup, result.slot, result.block.block_hash
        ):
            self._pinned.pop(result.rollup, None)  # failed, or another block: not ours to finish
            return await self._await_outcome(result.rollup, result.slot, wait=False)
        body = encode_proposal(dataclasses.replace(proposal, completion=True))
        collection, pending = await self._collect(body, root, until_ms, stop_at_t=True)
        self._abandon(pending)
        for kept in await self.engine.store.list_partials(result.rollup, result.slot):
            if kept.signing_root == root and kept.member not in collection.valid:
                collection.valid[kept.member] = kept.partial
        if len(collection.valid) >= self.committee.t:
            log.info("pending slot %d of rollup %d completed", result.slot, result.rollup)
        return await self._conclude(result, proposal, root, collection)

    async def solicit(self, proposal: Proposal) -> Collection:
        """Send any proposal to every member, wait for every answer (or the slot's signing
        deadline), record valid partials (equivocation detection) and invalid ones (evidence).

        ``sign_slot`` does the same but stops waiting at t valid partials; this is for audits
        and for tests of proposals that break a rule.
        """
        root = compute_signing_root(
            self.committee.committee_id,
            proposal.rollup,
            proposal.slot,
            proposal.block.block_hash,
        )
        deadline_ms = self._signing_deadline_ms(proposal.slot)
        body = encode_proposal(proposal)
        collection, pending = await self._collect(body, root, deadline_ms, stop_at_t=False)
        await self._record(proposal, root, collection, pending, deadline_ms)
        return collection

    async def _collect(
        self, body: bytes, root: bytes, deadline_ms: int, *, stop_at_t: bool
    ) -> tuple[Collection, set[asyncio.Task[MemberAnswer]]]:
        """Ask every member; return once every member answered, or (``stop_at_t``) t partials
        are valid or t became impossible, or the deadline passed. Also returns the requests
        still running."""
        c = Collection()
        timeout_s = max(0.0, (deadline_ms - self._clock_ms()) / 1000)
        pending = {asyncio.create_task(m.sign(body, timeout_s)) for m in self.members}
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
            # Stop early once t valid partials can no longer arrive (e.g. members are down).
            if stop_at_t and len(c.valid) + len(pending) < t:
                break
        return c, pending

    def _classify(self, answer: MemberAnswer, root: bytes, c: Collection) -> None:
        i = answer.index
        if answer.timings_ms:
            c.timings_ms[i] = answer.timings_ms
        if answer.partial is not None:
            t0 = time.perf_counter()
            ok = threshold.verify_partial(self.committee.member_public_key(i), root, answer.partial)
            c.verify_ms += (time.perf_counter() - t0) * 1e3
            if ok:
                c.valid[i] = answer.partial
                self.metrics.answers.labels(str(i), "valid", "").inc()
            else:
                c.invalid[i] = answer.partial
                self.metrics.answers.labels(str(i), "invalid", "").inc()
                log.warning("member %d answered an invalid partial", i)
        elif answer.refusal is not None:
            c.refused[i] = answer.refusal
            self.metrics.answers.labels(str(i), "refused", answer.refusal).inc()
            log.info("member %d refused: %s %s", i, answer.refusal, answer.message)
        else:
            c.missing[i] = answer.error or "no answer"
            self.metrics.answers.labels(str(i), "missing", "").inc()

    async def _record(
        self,
        proposal: Proposal,
        root: bytes,
        c: Collection,
        pending: set[asyncio.Task[MemberAnswer]],
        deadline_ms: int,
    ) -> None:
        """Wait for late answers (until the deadline), then record partials and evidence."""
        if pending:
            self._abandon(await self._await_answers(pending, root, c, deadline_ms))
        store = self.engine.store
        now = self._clock_ms()
        try:
            await self._keep_partials(proposal, root, c)
            for i, partial in c.invalid.items():
                await store.save_evidence(
                    MemberEvidence(
                        kind=EVIDENCE_INVALID_PARTIAL,
                        rollup=proposal.rollup,
                        slot=proposal.slot,
                        member=i,
                        committee_id=self.committee.committee_id,
                        detail=f"member {i}'s partial does not verify under its key share",
                        recorded_ms=now,
                        block_hash=proposal.block.block_hash,
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
        return still

    async def _keep_partials(self, proposal: Proposal, root: bytes, c: Collection) -> None:
        """Store every valid partial in hand (equivocation detection, and how another engine
        process learns that a block is pending)."""
        now = self._clock_ms()
        for i, partial in c.valid.items():
            evidence = await self.engine.store.record_partial(
                PartialRecord(
                    rollup=proposal.rollup,
                    slot=proposal.slot,
                    member=i,
                    committee_id=self.committee.committee_id,
                    block_hash=proposal.block.block_hash,
                    signing_root=root,
                    partial=partial,
                    received_ms=now,
                )
            )
            if evidence is not None:
                self.metrics.evidence.labels(evidence.kind).inc()
                log.warning("equivocation by member %d in slot %d", i, proposal.slot)

    # --- publishing ------------------------------------------------------------------------------

    async def _publish_signed(
        self, result: SlotResult, signature: bytes, partials: list[tuple[int, bytes]]
    ) -> SignedBlock | FailedSlot:
        signed = SignedBlock(
            block=result.block,
            committee_id=self.committee.committee_id,
            signature=signature,
            partials=tuple(partials),
            deadline_ms=result.deadline_ms,
            published_ms=self._clock_ms(),
        )
        store = self.engine.store
        if not await store.save_signed_block(signed):
            # Another engine process published this slot first: its record is the truth.
            existing = await store.get_signed_block(
                result.rollup, result.slot
            ) or await store.get_failed_slot(result.rollup, result.slot)
            if existing is None:
                raise RuntimeError("the store refused a signed block but holds no record")
            self._adopt(result, existing)
            return existing
        self._settled[result.rollup] = max(self._settled.get(result.rollup, -1), result.slot)
        self._head_pending[result.rollup] = (signed.block.block_hash, result.pending)
        self.engine.set_head(result.rollup, signed.block.block_hash, result.pending)
        self.engine.notifier.to_block_watchers(signed_block_to_json(signed))
        await store.record_committee(
            result.rollup,
            result.slot,
            {
                "status": STATUS_SIGNED,
                "block_hash": signed.block.block_hash,
                "committee_id": "0x" + signed.committee_id.hex(),
                "signers": list(signed.signers),
                "signature": "0x" + signed.signature.hex(),
            },
        )
        self.metrics.slots.labels(STATUS_SIGNED).inc()
        return signed

    async def _publish_failed(
        self,
        result: SlotResult,
        c: Collection,
        reason: str,
        detail: str,
        *,
        proposed_ok: bool = False,
    ) -> SignedBlock | FailedSlot | None:
        """Publish the slot as failed, or return the record that stands; None if a block was
        proposed for it (members may be locked to it: it is pending) unless ``proposed_ok``
        (it can never be signed)."""
        failed = FailedSlot(
            rollup=result.rollup,
            slot=result.slot,
            committee_id=self.committee.committee_id,
            block_hash=result.block.block_hash,
            reason=reason,
            valid=tuple(sorted(c.valid)),
            refused=tuple(sorted(c.refused.items())),
            invalid=tuple(sorted(c.invalid)),
            missing=tuple(
                sorted(
                    set(range(1, self.committee.n + 1))
                    - set(c.valid)
                    - set(c.refused)
                    - set(c.invalid)
                )
            ),
            deadline_ms=self._signing_deadline_ms(result.slot),
            published_ms=self._clock_ms(),
        )
        store = self.engine.store
        if not await store.save_failed_slot(failed, proposed_ok=proposed_ok):
            # Already published (signed or failed, by this engine or another): that stands.
            existing = await self._await_outcome(result.rollup, result.slot, wait=False)
            if existing is None:
                log.warning("slot %d of rollup %d was proposed: pending, not failed",
                            result.slot, result.rollup)
                return None
            self._adopt(result, existing)
            return existing
        self._settled[result.rollup] = max(self._settled.get(result.rollup, -1), result.slot)
        log.warning("slot %d of rollup %d failed: %s", result.slot, result.rollup, detail)
        payload = failed_slot_to_json(failed)
        self.engine.notifier.to_block_watchers(payload)
        self.metrics.slots.labels(STATUS_FAILED).inc()
        try:
            await store.record_committee(result.rollup, result.slot, payload)
            # Its block never happened: the public txs that arrived in it wait in the open slot
            # (only the process that wrote the failure record gets here, so never twice).
            await self.engine.intake.requeue_public_txs(await self._unsettled_arrivals(result))
        except BlockspaceError as exc:
            log.error("after failing slot %d: %s", result.slot, exc.message)
        return failed

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
