"""Streaming re-checks: members follow each slot's log while it is open (docs/committee.md).

The coordinator pushes each rollup's newly logged events of the open slot to every member, in
log order, in batches over the member wire (``POST /v1/stream``); the member checks each event
once as it arrives (``committee.checks.check_streamed_event``) and keeps, per slot and rollup,
the events it accepted and a running digest of them. At the deadline the proposal (version 7,
``committee.proposal``) carries, per rollup, only how many leading log entries the member
already holds and their digest, plus the tail it has not seen (with sealed bids: how many
leading *plaintext* entries, the bids opened from sealed calls travelling in the tail at their
seqs, ``compute_stream_tail``); the member takes the prefix
from its own state (never from the proposal), checks the tail, re-runs the slot and signs.

Batch wire form (JSON)::

    {"kind": "blockspace-stream", "version": 1, "committee_id": "0x<32 bytes>",
     "slot": 123, "rollup": 10, "start": <index of the first entry in the rollup's log>,
     "entries": [{"seq": "<ms>-<n>", "event": <auction.codec.event_to_json>}, ...]}

answered with ``{"slot", "rollup", "count": <entries held>, "digest": "0x<32 bytes>"}``.

**Sealed calls** stream beside the plaintext events, as their own log per rollup (the stores
hand them out apart, ``read_sealed_log``): a batch with ``"log": "sealed"`` whose entries are
``{"seq", "event": <auction.codec.sealed_bid_to_json>}`` (``committee.sealedset.
compute_sealed_entry_bytes``, the bytes the release's entries digest hashes), ``start`` and the
digest counting that rollup's sealed entries only; the answer adds ``"log": "sealed"``. A member
re-derives each sealed call from its signed call as it arrives (``committee.reopening.
check_sealed_entry``, what the key release does) and checks the slot-wide rules against the
sealed calls it holds of the slot (``SealedSetRules``); it keeps only each entry's SHA-256 and
the rules' state (never a plaintext: there is none before the key exists). At the key release it
re-derives only the entries that are not byte for byte ones it checked (``committee.sealing``).

The digest after k entries is ``d_k = keccak(d_{k-1} || keccak(entry_k))`` from ``d_0`` = 32
zero bytes, where ``entry_k`` is the canonical JSON of ``{"seq", "event"}``
(``compute_entry_bytes``): coordinator and member compute it independently, so a proposal that
names a prefix the member holds differently is refused by its digest (``stream_mismatch``),
and one that names more entries than it holds by its count (``stream_gap``, with how many it
holds: the coordinator then sends that member the whole log, version 5).

What a lying coordinator can do, and what stops it: a batch that does not start where the
member's log ends (reordering, a dropped batch) is refused (``stream_gap``, with the count and
digest held, which the feeder believes only if its own digest of that many entries is the
same); a seq that is not
above the last one (reordering, a different event under an id already held) is refused and
nothing of the batch is kept; events of another committee, rollup or slot are refused; a slot
already closed by the member's clock, or too far ahead, is refused; memory is bounded
(``MAX_STREAM_EVENTS`` per rollup and slot, ``STREAM_SLOTS_KEPT`` slots, oldest dropped). And
whatever was streamed, the member signs only a block that its own re-run of the events it
checked gives. Pure but for a lock: no I/O, no clock (time comes in).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from auction import codec
from auction.columnar import SlotEncoder
from auction.hashing import keccak256
from auction.types import Bid, LoggedEvent, LoggedSealedBid
from committee import wire
from committee.errors import MalformedProposal, StreamGap
from committee.proposal import check_event_types
from committee.reopening import SealedSetRules
from committee.sealedset import sealed_entries_from_json

STREAM_KIND: Final[str] = "blockspace-stream"
STREAM_VERSION: Final[int] = 1
ZERO_DIGEST: Final[bytes] = bytes(32)
# Entries per batch the coordinator sends (and the most a member accepts in one): small enough
# that a batch checked in full (about 0.5 ms a bid) never holds a member long past a deadline.
MAX_STREAM_BATCH: Final[int] = 100
# Events one rollup's log of one slot may stream to a member (intake caps a slot's bundles far
# lower; this only bounds a member's memory against a flooding coordinator).
MAX_STREAM_EVENTS: Final[int] = 50_000
# Slots whose streams a member keeps at once (the open one, the one being signed, one spare).
STREAM_SLOTS_KEPT: Final[int] = 3
# A batch of MAX_STREAM_BATCH entries is well under this.
MAX_STREAM_BYTES: Final[int] = 16 * 1024 * 1024

_BATCH_KEYS = {"kind", "version", "committee_id", "slot", "rollup", "start", "entries"}
# ``"log"``: present on sealed batches only, with this value.
SEALED_LOG: Final[str] = "sealed"


def compute_entry_bytes(entry: LoggedEvent) -> bytes:
    """The canonical bytes of one log entry (what the stream digest hashes and a batch holds)."""
    return orjson.dumps({"seq": entry.seq, "event": codec.event_to_json(entry.event)})


def compute_next_digest(digest: bytes, entry_bytes: bytes) -> bytes:
    """The running digest after one more entry."""
    return keccak256(digest + keccak256(entry_bytes))


def compute_digests(entries: Iterable[bytes]) -> list[bytes]:
    """Digests after 0, 1, ... entries."""
    out = [ZERO_DIGEST]
    for e in entries:
        out.append(compute_next_digest(out[-1], e))
    return out


def parse_seq(seq: str) -> tuple[int, int]:
    """A log seq ``<ms>-<n>`` as a pair that orders like the log (ValueError if malformed)."""
    ms, _, n = seq.partition("-")
    if not (ms.isascii() and ms.isdigit() and n.isascii() and n.isdigit()):
        raise ValueError(f"bad seq {seq!r}")
    return int(ms), int(n)


def encode_stream_batch(
    committee_id: bytes,
    slot: int,
    rollup: int,
    start: int,
    entries: list[bytes],
    *,
    sealed: bool = False,
) -> bytes:
    """A batch's wire bytes from entries already in canonical form (``compute_entry_bytes``,
    or ``compute_sealed_entry_bytes`` for a ``sealed`` batch): one serialization per entry,
    shared by every member's batch."""
    head: dict[str, object] = {
        "kind": STREAM_KIND,
        "version": STREAM_VERSION,
        "committee_id": "0x" + committee_id.hex(),
        "slot": slot,
        "rollup": rollup,
        "start": start,
    }
    if sealed:
        head["log"] = SEALED_LOG
    return orjson.dumps(head)[:-1] + b',"entries":[' + b",".join(entries) + b"]}"


@dataclass(frozen=True, slots=True)
class StreamBatch:
    committee_id: bytes
    slot: int
    rollup: int
    start: int
    entries: tuple[LoggedEvent, ...]


@dataclass(frozen=True, slots=True)
class SealedStreamBatch:
    """A batch of a rollup's sealed calls of an open slot (``"log": "sealed"``)."""

    committee_id: bytes
    slot: int
    rollup: int
    start: int
    entries: tuple[LoggedSealedBid, ...]


def decode_stream_batch(data: bytes) -> StreamBatch | SealedStreamBatch:
    """Decode a batch; raise ``MalformedProposal`` on any shape or type error (the rules are
    the member's)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedProposal("the stream batch is not JSON") from None
    try:
        d = wire.obj(doc, "batch")
        sealed = "log" in d
        if sealed and d["log"] != SEALED_LOG:
            raise wire.FieldError("log", f"must be {SEALED_LOG!r} or absent")
        wire.exact_keys(d, _BATCH_KEYS | {"log"} if sealed else _BATCH_KEYS, "")
        if d.get("kind") != STREAM_KIND:
            raise wire.FieldError("kind", f"must be {STREAM_KIND!r}")
        if d.get("version") != STREAM_VERSION or isinstance(d.get("version"), bool):
            raise wire.FieldError("version", f"must be {STREAM_VERSION}")
        committee_id = wire.hex_bytes(wire.get(d, "committee_id"), "committee_id", 32)
        slot = wire.integer(wire.get(d, "slot"), "slot")
        rollup = wire.integer(wire.get(d, "rollup"), "rollup")
        start = wire.integer(wire.get(d, "start"), "start")
        docs = wire.array(wire.get(d, "entries"), "entries", lambda v, f: v, MAX_STREAM_BATCH)
        if sealed:
            return SealedStreamBatch(committee_id, slot, rollup, start,
                                     sealed_entries_from_json(docs, "entries"))  # fmt: skip
    except wire.FieldError as exc:
        raise MalformedProposal(f"bad stream batch: {exc}", field=exc.field) from None
    entries = []
    try:
        for entry in docs:
            if not isinstance(entry, dict) or set(entry) != {"seq", "event"}:
                raise ValueError("an entry is {seq, event}")
            seq = entry["seq"]
            if not isinstance(seq, str):
                raise ValueError("seq must be a string")
            parse_seq(seq)
            ev = codec.event_from_json(entry["event"])
            check_event_types(ev)
            entries.append(LoggedEvent(seq, ev))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise MalformedProposal("bad stream batch: an entry is malformed") from None
    return StreamBatch(committee_id, slot, rollup, start, tuple(entries))


@dataclass
class StreamLog:
    """What a member holds of one rollup's log of one slot: the entries it checked, in order,
    and the digest after each."""

    entries: list[LoggedEvent] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=lambda: [ZERO_DIGEST])
    last_seq: tuple[int, int] = (-1, -1)

    @property
    def count(self) -> int:
        return len(self.digests) - 1

    def check_next(self, batch: StreamBatch | SealedStreamBatch) -> None:
        """Refuse a batch that does not continue this log (``stream_gap``), or whose seqs do not
        ascend from its last one, or that would exceed ``MAX_STREAM_EVENTS``."""
        if batch.start != self.count:
            raise StreamGap(
                f"the batch starts at entry {batch.start}; this member holds {self.count}",
                have=self.count,
                digest="0x" + self.digests[-1].hex(),  # so a feed can take up its count
                rollup=batch.rollup,
                slot=batch.slot,
            )
        if self.count + len(batch.entries) > MAX_STREAM_EVENTS:
            raise MalformedProposal(
                "the stream exceeds the events a member holds per rollup and slot",
                limit=MAX_STREAM_EVENTS,
            )
        check_ascending(self.last_seq, [e.seq for e in batch.entries])

    def append(self, entry: LoggedEvent, entry_bytes: bytes) -> None:
        self.entries.append(entry)
        self.advance(entry.seq, entry_bytes)

    def advance(self, seq: str, entry_bytes: bytes) -> None:
        """Count one more entry (its digest and seq) without keeping it (sealed calls: only
        their hashes are kept, in ``SealedStream``)."""
        self.digests.append(compute_next_digest(self.digests[-1], entry_bytes))
        self.last_seq = parse_seq(seq)


def check_ascending(after: tuple[int, int], seqs: list[str]) -> None:
    """Refuse seqs that do not strictly ascend from ``after`` (log order; a seq held before
    names one event only)."""
    last = after
    for seq in seqs:
        try:
            key = parse_seq(seq)
        except ValueError:
            raise MalformedProposal(f"bad seq {seq!r}") from None
        if key <= last:
            raise MalformedProposal(
                f"seq {seq} is not after the previous entry: the log is in log order"
            )
        last = key


@dataclass
class SealedStream:
    """A member's sealed calls of one slot as they streamed in: per rollup the count, digests
    and last seq (``StreamLog`` without its entries), the slot-wide rules' state over every
    rollup's sealed calls, the SHA-256 of the canonical bytes of every entry it re-derived
    (``compute_sealed_entry_hash``), which is what the key release asks, and the entries
    themselves, which a streamed release request names by count and digest."""

    logs: dict[int, StreamLog] = field(default_factory=dict)
    rules: SealedSetRules = field(default_factory=SealedSetRules)
    checked: set[bytes] = field(default_factory=set)
    # per rollup, each checked entry with its canonical bytes, in log order: the prefix a
    # streamed release request names instead of carrying it (decision 159)
    entries: dict[int, list[tuple[LoggedSealedBid, bytes]]] = field(default_factory=dict)


@dataclass
class SlotStream:
    """A member's streams of one slot: a log per rollup, the bids re-derived in full (by id,
    for every rollup: a cross-rollup bundle is derived once), the slot's packing input kept
    as the checked entries arrive (``encoder``: ``auction.columnar``, so the deadline's re-run
    packs from arrays), and a lock (batches and the slot's proposal are checked in different
    threads; the encoder is used under it)."""

    slot: int
    logs: dict[int, StreamLog] = field(default_factory=dict)
    derived: dict[str, Bid] = field(default_factory=dict)
    encoder: SlotEncoder = field(default_factory=SlotEncoder)
    sealed: SealedStream = field(default_factory=SealedStream)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self, rollup: int, count: int) -> tuple[list[LoggedEvent], bytes] | None:
        """The first ``count`` entries of ``rollup``'s log and their digest; None if fewer are
        held."""
        with self.lock:
            log = self.logs.get(rollup)
            held = log.count if log is not None else 0
            if held < count:
                return None
            if log is None:
                return [], ZERO_DIGEST
            return log.entries[:count], log.digests[count]

    def held(self, rollup: int) -> int:
        with self.lock:
            log = self.logs.get(rollup)
            return log.count if log is not None else 0

    def sealed_prefix(
        self, rollup: int, count: int
    ) -> tuple[list[tuple[LoggedSealedBid, bytes]], bytes] | None:
        """The first ``count`` sealed calls of ``rollup`` this member checked as they streamed
        in (each with its canonical bytes) and the stream digest after them; None if fewer are
        held."""
        with self.lock:
            log = self.sealed.logs.get(rollup)
            held = log.count if log is not None else 0
            if log is None or held < count:
                return None
            return self.sealed.entries.get(rollup, [])[:count], log.digests[count]

    def sealed_checked(self, entry_hashes: Iterable[bytes]) -> list[bool]:
        """Whether each entry (by ``compute_sealed_entry_hash``) is one this member re-derived
        as it streamed in."""
        with self.lock:
            return [h in self.sealed.checked for h in entry_hashes]


class MemberStreams:
    """Every slot stream a member keeps: at most ``STREAM_SLOTS_KEPT``, the oldest dropped."""

    def __init__(self) -> None:
        self._slots: dict[int, SlotStream] = {}
        # Streams dropped at a signature, freed the next time a new slot's stream opens (the
        # next slot's, or the one after when the next one opened before this signature):
        # freeing thousands of entries and their columns costs about 2 ms, which the partial
        # need not wait for. Bounded: only streams once kept (at most STREAM_SLOTS_KEPT) wait.
        self._retired: list[SlotStream] = []
        self._lock = threading.Lock()

    def get(self, slot: int) -> SlotStream | None:
        with self._lock:
            return self._slots.get(slot)

    def open(self, slot: int) -> SlotStream:
        """The slot's stream, made if new (dropping the oldest beyond the bound; a slot older
        than every kept one is never reopened once dropped)."""
        with self._lock:
            stream = self._slots.get(slot)
            if stream is not None:
                return stream
            if len(self._slots) >= STREAM_SLOTS_KEPT and slot < min(self._slots):
                raise StreamGap(f"slot {slot}'s stream was dropped", have=0, slot=slot)
            retired, self._retired = self._retired, []
            stream = self._slots[slot] = SlotStream(slot)
            while len(self._slots) > STREAM_SLOTS_KEPT:
                del self._slots[min(self._slots)]
        del retired  # freed here, outside the lock and outside any deadline
        return stream

    def drop_through(self, slot: int) -> None:
        """Forget every stream of ``slot`` and earlier (signed, or past its deadline) at once;
        their memory is freed the next time a new slot's stream opens (``open``)."""
        with self._lock:
            for s in [s for s in self._slots if s <= slot]:
                self._retired.append(self._slots.pop(s))

    @property
    def slots(self) -> list[int]:
        with self._lock:
            return sorted(self._slots)

    def sealed_held(self, slot: int, rollup: int) -> int:
        """How many of ``rollup``'s sealed calls of ``slot`` this member checked as they
        streamed in."""
        stream = self.get(slot)
        if stream is None:
            return 0
        with stream.lock:
            log = stream.sealed.logs.get(rollup)
            return log.count if log is not None else 0

    def size(self) -> int:
        """Entries held over every slot and rollup, sealed calls included (for tests and
        metrics)."""
        with self._lock:
            streams = list(self._slots.values())
        total = 0
        for s in streams:
            with s.lock:
                total += sum(log.count for log in s.logs.values())
                total += sum(log.count for log in s.sealed.logs.values())
        return total


def stream_ack(
    slot: int, rollup: int, count: int, digest: bytes, *, sealed: bool = False
) -> dict[str, Any]:
    ack: dict[str, Any] = {"slot": slot, "rollup": rollup, "count": count,
                           "digest": "0x" + digest.hex()}  # fmt: skip
    if sealed:
        ack["log"] = SEALED_LOG
    return ack
