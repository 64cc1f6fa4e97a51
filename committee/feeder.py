"""The coordinator's side of streaming re-checks: follow the open slot's logs, push them to
every member in log order, and at the deadline build each member's version-7 proposal.

Push, not pull (docs/decisions.md): the coordinator already reaches every member over the
member wire and knows the log first; a member pulling would need a route back to the engine
and a way to authenticate it. Every ``STREAM_INTERVAL_MS`` the engine's follower
(``node/follower.py``) reads what is new in each rollup's log of the open slot from the store
(from where it stopped: ``read_log_parts_from``, so several engine processes feed alike) and
shows the slot to the feeder, which appends what is new to the slot's *feed* (canonical entry
bytes and running digests, ``committee.stream``, computed once for every member) and sends each
member what it has not acknowledged yet, at most ``MAX_STREAM_BATCH`` entries a request, one
request in flight per member (a slow member falls behind alone). The follower, not the feeder,
keeps the slot's packing input for the engine's close (decision 160). A member's
acknowledgement names how many entries it holds and their digest; only a count whose digest is
the feed's is believed.

Sealed calls (encrypted bids) stream the same way, as each rollup's second log (a batch with
``"log": "sealed"``, ``committee.stream``): the follower reads them with the plaintext events
(``read_log_parts_from``); the feeder keeps their canonical bytes and digests (``SealedFeed``)
and sends them in the same rounds, sealed batches first (the key release at the deadline
comes before the proposal). Only ciphertexts and their public fields ever stream: nothing
readable before the slot key exists. A member that holds a slot's sealed calls re-derives at
the release only what did not stream in; a member that holds none re-derives all, as without
streaming.

At the deadline ``proposal_bodies`` gives each member the proposal naming, per rollup, the
prefix it acknowledged (cut to where the feed still equals the closed log) and carrying the
rest; members with the same prefixes share one serialization. A member that refuses it for
holding less (``stream_gap``, ``stream_mismatch``: it restarted, or dropped the stream) gets
the whole log (version 5) from the coordinator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from auction.types import LoggedEvent, LoggedSealedBid
from committee.proposal import (
    SlotProposal,
    compute_opened_ids,
    encode_proposal,
    is_opened_entry,
)
from committee.sealedset import compute_sealed_entry_bytes
from committee.sealing import ReleaseRequest, compute_streamed_tail, encode_release_request
from committee.stream import (
    MAX_STREAM_BATCH,
    ZERO_DIGEST,
    compute_entry_bytes,
    compute_next_digest,
    encode_stream_batch,
)

log = logging.getLogger("blockspace.feeder")

# How often the open slot's logs are read and pushed.
STREAM_INTERVAL_MS: Final[int] = 100
# A member that does not acknowledge a batch within this is not streamed to until the next
# slot (it gets that slot's log with the proposal).
STREAM_TIMEOUT_S: Final[float] = 2.0
# Feeds kept: the open slot and the one being signed.
FEEDS_KEPT: Final[int] = 2
# Refusals of a version-7 proposal that the whole log answers.
STREAM_REFUSALS: Final[frozenset[str]] = frozenset({"stream_gap", "stream_mismatch"})


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    """A member's answer to a batch: what it holds of that log, or why not."""

    index: int
    count: int | None = None
    digest: bytes | None = None
    refusal: str | None = None
    have: int | None = None  # with ``stream_gap``: the entries it holds
    error: str | None = None


class StreamClient(Protocol):
    index: int

    async def stream(self, body: bytes, timeout_s: float) -> StreamAnswer: ...


@dataclass
class Feed:
    """One rollup's log of one slot as the feeder has read it: the entries, their canonical
    bytes and the digest after each."""

    entries: list[LoggedEvent] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=lambda: [ZERO_DIGEST])

    def extend(self, entries: Sequence[LoggedEvent]) -> None:
        """Append the entries beyond what is held (the log only grows)."""
        for entry in entries[len(self.entries) :]:
            raw = compute_entry_bytes(entry)
            self.entries.append(entry)
            self.raw.append(raw)
            self.digests.append(compute_next_digest(self.digests[-1], raw))

    def agreeing_prefix(self, log: Sequence[LoggedEvent]) -> int:
        """How many leading entries the feed shares with the closed ``log``."""
        n = 0
        for mine, theirs in zip(self.entries, log, strict=False):
            if mine.seq != theirs.seq or mine.event != theirs.event:
                break
            n += 1
        return n


@dataclass
class SealedFeed:
    """One rollup's sealed calls of one slot as the feeder has read them: their canonical bytes
    (``compute_sealed_entry_bytes``) and the digest after each."""

    raw: list[bytes] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=lambda: [ZERO_DIGEST])

    def extend(self, entries: Sequence[LoggedSealedBid]) -> None:
        """Append the entries beyond what is held (the log only grows)."""
        for entry in entries[len(self.raw) :]:
            raw = compute_sealed_entry_bytes(entry)
            self.raw.append(raw)
            self.digests.append(compute_next_digest(self.digests[-1], raw))


class Feeder:
    """Streams each open slot's logs to the members (see the module docstring)."""

    def __init__(
        self,
        committee_id: bytes,
        rollups: Sequence[int],
        members: Sequence[StreamClient],
        *,
        interval_ms: int = STREAM_INTERVAL_MS,
    ) -> None:
        self.committee_id = committee_id
        self.rollups = tuple(rollups)
        self.members = list(members)
        self.interval_ms = interval_ms
        self.feeds: dict[tuple[int, int], Feed] = {}  # (slot, rollup)
        self.acked: dict[tuple[int, int, int], int] = {}  # (member, slot, rollup)
        # The sealed calls, as a second log per rollup (their own counts and digests)
        self.sealed_feeds: dict[tuple[int, int], SealedFeed] = {}  # (slot, rollup)
        self.sealed_acked: dict[tuple[int, int, int], int] = {}  # (member, slot, rollup)
        self._stopped: set[tuple[int, int]] = set()  # (member, slot): not streamed to
        self._pushes: dict[int, asyncio.Task[None]] = {}
        self.batches = 0  # batches acknowledged (tests, benchmark)

    def observe(
        self,
        slot: int,
        logs: Mapping[int, Sequence[LoggedEvent]],
        sealed: Mapping[int, Sequence[LoggedSealedBid]] | None = None,
    ) -> None:
        """Take the open slot's logs (and sealed calls) as read so far (the follower's lists,
        which only grow: only what is beyond the feed is looked at); forget slots older than
        ``FEEDS_KEPT``."""
        for rollup, entries in logs.items():
            self.feeds.setdefault((slot, rollup), Feed()).extend(entries)
        for rollup, calls in (sealed or {}).items():
            self.sealed_feeds.setdefault((slot, rollup), SealedFeed()).extend(calls)
        oldest = slot - FEEDS_KEPT + 1
        for feeds in (self.feeds, self.sealed_feeds):
            for key in [k for k in feeds if k[0] < oldest]:
                del feeds[key]
        for acked in (self.acked, self.sealed_acked):
            for key3 in [k for k in acked if k[1] < oldest]:
                del acked[key3]
        self._stopped = {k for k in self._stopped if k[1] >= oldest}

    def push(self, slot: int) -> None:
        """Start sending ``slot``'s new entries to every member not already being sent to."""
        for m in self.members:
            task = self._pushes.get(m.index)
            if task is None or task.done():
                self._pushes[m.index] = asyncio.create_task(
                    self._push(m, slot), name=f"stream-{m.index}"
                )

    async def _push(self, member: StreamClient, slot: int) -> None:
        """Send ``member`` what it has not acknowledged of ``slot``'s logs; a failure stops
        streaming to it for the slot (it gets the rest with the proposal), never the feeder."""
        try:
            await self._push_logs(member, slot)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._stopped.add((member.index, slot))
            log.exception("member %d: streaming slot %d failed", member.index, slot)

    async def _push_logs(self, member: StreamClient, slot: int) -> None:
        """Rounds of one batch per log (each rollup's sealed calls, then its events) until
        the member holds everything read, so no log waits for another to be drained."""
        stopped = (member.index, slot)
        while stopped not in self._stopped:
            sent = False
            for rollup in self.rollups:
                key = (member.index, slot, rollup)
                sealed_feed = self.sealed_feeds.get((slot, rollup))
                feed = self.feeds.get((slot, rollup))
                for sealed, raws, digests, acked in (
                    (True, sealed_feed.raw if sealed_feed else [],
                     sealed_feed.digests if sealed_feed else [], self.sealed_acked),
                    (False, feed.raw if feed else [], feed.digests if feed else [],
                     self.acked),
                ):  # fmt: skip
                    start = acked.get(key, 0)
                    if start >= len(raws) or stopped in self._stopped:
                        continue
                    batch = raws[start : start + MAX_STREAM_BATCH]
                    body = encode_stream_batch(self.committee_id, slot, rollup, start, batch,
                                               sealed=sealed)  # fmt: skip
                    answer = await member.stream(body, STREAM_TIMEOUT_S)
                    if _is_ahead(answer, len(raws)):
                        # It holds more than this feed has read (another engine process
                        # streams to it too): the next round, with more read, takes it up.
                        return
                    if not self._take(answer, len(raws), digests, acked, key):
                        self._stopped.add(stopped)
                        log.info("member %d: streaming slot %d stopped (%s)", member.index,
                                 slot, answer.refusal or answer.error or "its digest differs")
                    sent = True
            if not sent:
                return

    def _take(
        self,
        answer: StreamAnswer,
        length: int,
        digests: Sequence[bytes],
        acked: dict[tuple[int, int, int], int],
        key: tuple[int, int, int],
    ) -> bool:
        """Record a member's acknowledgement of a log of ``length`` entries read so far;
        False if streaming to it should stop (a refusal, a digest that is not the feed's, no
        progress)."""
        held = acked.get(key, 0)
        count, digest = answer.count, answer.digest
        if count is not None and digest is not None:
            if held < count <= length and digests[count] == digest:
                acked[key] = count
                self.batches += 1
                return True
            return False
        have = answer.have
        if answer.refusal != "stream_gap" or have is None:
            return False
        # A member that holds less than it acknowledged (it restarted): start it over.
        if have < held:
            acked[key] = 0
            return True
        # A member that holds more than this feed knows (this process restarted mid-slot, or
        # another engine process on the store streams to it too): its count is believed only
        # with the feed's digest of that many entries, like an acknowledgement.
        if held < have <= length and answer.digest is not None and digests[have] == answer.digest:
            acked[key] = have
            return True
        return False

    def proposal_bodies(
        self, proposal: SlotProposal, indices: Sequence[int]
    ) -> dict[int, bytes]:
        """Each member's version-7 proposal body: per rollup, the prefix it acknowledged that
        the closed log's plaintext entries (all but the opened bids) still agree with. One
        serialization per distinct set of prefixes."""
        slot = proposal.slot
        opened = compute_opened_ids(proposal)  # opened bids never stream
        agreeing = {}
        for part in proposal.parts:
            feed = self.feeds.get((slot, part.rollup))
            plain = [e for e in part.log if not is_opened_entry(e, opened)] if opened else part.log
            agreeing[part.rollup] = (feed, feed.agreeing_prefix(plain) if feed else 0)
        bodies: dict[tuple[int, ...], bytes] = {}
        out = {}
        for i in indices:
            counts = tuple(
                min(self.acked.get((i, slot, part.rollup), 0), agreeing[part.rollup][1])
                for part in proposal.parts
            )
            body = bodies.get(counts)
            if body is None:
                streamed = {}
                for part, n in zip(proposal.parts, counts, strict=True):
                    feed = agreeing[part.rollup][0]
                    streamed[part.rollup] = (n, feed.digests[n] if feed else ZERO_DIGEST)
                body = bodies[counts] = encode_proposal(proposal, streamed)
            out[i] = body
        return out

    def release_bodies(
        self, request: ReleaseRequest, indices: Sequence[int]
    ) -> dict[int, bytes]:
        """Each member's key-release body (decision 159): version 2 naming, per rollup, the
        prefix of its sealed calls the member acknowledged that the request's set still
        agrees with, byte for byte (a failover may have lost one the feeder read, decision
        144), and carrying the rest; version 1 (every sealed bid) for a member that holds
        none. One serialization per distinct set of prefixes."""
        slot = request.slot
        by_rollup: dict[int, list[bytes]] = {}
        for entry in request.entries:
            by_rollup.setdefault(entry.event.rollup, []).append(compute_sealed_entry_bytes(entry))
        agreeing: dict[int, int] = {}
        for rollup, raws in by_rollup.items():
            feed = self.sealed_feeds.get((slot, rollup))
            n = 0
            if feed is not None:
                for mine, theirs in zip(feed.raw, raws, strict=False):
                    if mine != theirs:
                        break
                    n += 1
            agreeing[rollup] = n
        bodies: dict[tuple[tuple[int, int], ...], bytes] = {}
        out = {}
        for i in indices:
            counts = tuple(
                (r, n) for r in sorted(agreeing)
                if (n := min(self.sealed_acked.get((i, slot, r), 0), agreeing[r])) > 0
            )  # fmt: skip
            body = bodies.get(counts)
            if body is None:
                if not counts:
                    body = encode_release_request(request)
                else:
                    streamed = tuple((r, n, self.sealed_feeds[(slot, r)].digests[n])
                                     for r, n in counts)  # fmt: skip
                    tail = compute_streamed_tail(request.entries, dict(counts))
                    body = encode_release_request(dataclasses.replace(
                        request, entries=tail, streamed=streamed))  # fmt: skip
                bodies[counts] = body
            out[i] = body
        return out

    async def aclose(self) -> None:
        tasks = [t for t in self._pushes.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)


def _is_ahead(answer: StreamAnswer, length: int) -> bool:
    """Whether ``answer`` is a gap refusal from a member holding more entries of the log than
    the ``length`` read so far (its digest can be checked only once that many are read)."""
    return answer.refusal == "stream_gap" and answer.have is not None and answer.have > length
