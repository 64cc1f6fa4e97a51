"""Auction history in Redis (mixed into ``RedisStore``); key layout in ``node/stores/keys.py``.

Writes:
- A slot's history goes in with its result in **one Lua script** (``_SAVE_RESULT_HISTORY``):
  ``SET NX`` of the result, then the summary, block, stats and span hashes, one stream entry per
  bid in ``history:bids`` (auto ids ``<ms>-<n>``: increasing in write order), a pointer entry with
  the *same id* in the bid's outcome stream and in its (searcher, outcome) stream, and the
  searcher counters. Whoever stores the result stores the history; there is no window in which a
  slot has one without the other.
- Refusals are buffered in the process and flushed in one pipeline per batch (``XADD`` to the
  slot's capped ``refusals`` stream, with a TTL); intake never waits for them.
- Trimming runs one script per slot, so other commands (intake) interleave between slots.

Reads never run scripts and take at most two pipelined round trips: pointer ids first, then the
entries (``XRANGE id id``).

Bid entries are compact: addresses and hashes as raw bytes, numbers as listpack integers, and
every entry has the same field names, so the stream stores them once per node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import NoScriptError, RedisError

from auction.errors import StoreUnavailable
from auction.history import (
    MAX_REFUSALS_PER_SLOT,
    OUTCOMES,
    STATS_BUCKET_SLOTS,
    STATS_TOTALS,
    BidRecord,
    SlotDetail,
    SlotHistory,
    StatsPart,
    StatsRow,
    clearing_price_of,
    compute_tallies,
    is_record_match,
)
from node.stores import keys
from node.stores.fencing import FENCE_LUA

log = logging.getLogger("blockspace.store")

# Field names of a bid entry, in order: slot, searcher, bundle hash, bid, gas, received ms,
# outcome, payment, log seq, code, replacement uuid, tx count, rollups spanned ("" unless the bid
# is a cross-rollup bundle's copy; entries written before shared sequencing lack it).
_FIELDS = (b"s", b"a", b"h", b"b", b"g", b"t", b"o", b"p", b"q", b"c", b"u", b"n", b"r")
# Sums of wei are kept as base-10^9 limbs (``<field>:<k>``): HINCRBY is 64-bit, a wei sum is not.
_LIMB = 10**9
# Refusals of an open slot live until it closes; an orphan (a slot never closed here) expires.
_REFUSAL_TTL_MS = 86_400_000
_MAX_BUFFERED_REFUSALS = 50_000
_REFUSAL_BATCH = 512

# KEYS: 1 result, 2 results zset, 3 history slots, 4 summaries, 5 blocks, 6 stats, 7 spans,
#       8 bids stream, 9 refusals, 10 fence; 11.. pointer streams and tally hashes.
# ARGV: 1 result json, 2 slot, 3 summary, 4 block, 5 stats row, 6 record count, 7 op count,
#       8 fencing token (0: unfenced); then per record its 13 field values, its outcome-stream,
#       searcher-stream and cross-stream key indexes (0: not a cross-rollup bundle's bid); then
#       per op: key index, field, increment.
# The first commands are _SAVE_RESULT's (node/stores/redis.py): keep them in step.
_SAVE_RESULT_HISTORY = FENCE_LUA + """
if not pass_fence(KEYS[10], ARGV[2], ARGV[8]) then
  return {-1, redis.call('HGET', KEYS[10], ARGV[2])}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
local slot = ARGV[2]
redis.call('ZADD', KEYS[2], slot, slot)
redis.call('ZADD', KEYS[3], slot, slot)
redis.call('HSET', KEYS[4], slot, ARGV[3])
redis.call('HSET', KEYS[5], slot, ARGV[4])
redis.call('HSET', KEYS[6], slot, ARGV[5])
local n = tonumber(ARGV[6])
local ops = tonumber(ARGV[7])
local i = 9
local first, last = '', ''
for _ = 1, n do
  local id = redis.call('XADD', KEYS[8], '*',
    's', ARGV[i], 'a', ARGV[i+1], 'h', ARGV[i+2], 'b', ARGV[i+3], 'g', ARGV[i+4],
    't', ARGV[i+5], 'o', ARGV[i+6], 'p', ARGV[i+7], 'q', ARGV[i+8], 'c', ARGV[i+9],
    'u', ARGV[i+10], 'n', ARGV[i+11], 'r', ARGV[i+12])
  redis.call('XADD', KEYS[tonumber(ARGV[i+13])], id, 'p', '')
  redis.call('XADD', KEYS[tonumber(ARGV[i+14])], id, 'p', '')
  if ARGV[i+15] ~= '0' then redis.call('XADD', KEYS[tonumber(ARGV[i+15])], id, 'p', '') end
  if first == '' then first = id end
  last = id
  i = i + 16
end
redis.call('HSET', KEYS[7], slot, first .. ' ' .. last)
for _ = 1, ops do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2])
  i = i + 3
end
redis.call('DEL', KEYS[9])
return 1
"""

# KEYS: 1 results zset, 2 history slots, 3 summaries, 4 blocks, 5 stats, 6 spans, 7 committee,
#       8 failed, 9 bids stream, 10 result, 11 refusals, 12 trimming zset; 13.. pointer streams
#       and tally hashes. The slot's intake keys have another hash tag (the slot's): the script
#       files the slot under "trimming" and the caller drops them next (_finish_trims).
# ARGV: 1 slot, 2 record count, 3 op count; per record: id, outcome-stream, searcher-stream and
#       cross-stream key indexes (0: none); per op: key index, field, increment.
# Counters are taken back only if this call removed the slot from the history (ZREM == 1), so two
# processes trimming the same slot cannot take them back twice.
_TRIM_SLOT = """
local slot = ARGV[1]
local had_history = redis.call('ZREM', KEYS[2], slot)
local had_result = redis.call('ZREM', KEYS[1], slot)
redis.call('UNLINK', KEYS[10], KEYS[11])
redis.call('ZADD', KEYS[12], slot, slot)
if had_history == 0 then return had_result end
for k = 3, 7 do redis.call('HDEL', KEYS[k], slot) end
redis.call('ZREM', KEYS[8], slot)
local n = tonumber(ARGV[2])
local ops = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  redis.call('XDEL', KEYS[9], ARGV[i])
  redis.call('XDEL', KEYS[tonumber(ARGV[i+1])], ARGV[i])
  redis.call('XDEL', KEYS[tonumber(ARGV[i+2])], ARGV[i])
  if ARGV[i+3] ~= '0' then redis.call('XDEL', KEYS[tonumber(ARGV[i+3])], ARGV[i]) end
  i = i + 4
end
for _ = 1, ops do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i+1], ARGV[i+2])
  i = i + 3
end
for k = 13, #KEYS do
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t == 'stream' then
    if redis.call('XLEN', KEYS[k]) == 0 then redis.call('DEL', KEYS[k]) end
  elseif t == 'hash' then
    -- a bucket counts slots, a searcher tally counts bids: empty ones go
    local n = redis.call('HGET', KEYS[k], 'slots') or redis.call('HGET', KEYS[k], 'bids') or '0'
    if tonumber(n) <= 0 then redis.call('DEL', KEYS[k]) end
  end
end
return 1
"""

# KEYS: history slots, committee, failed. ARGV: slot, record json, 1 if failed else 0.
_RECORD_COMMITTEE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return 1
"""

# Read-only. KEYS: 1 bids stream, 2.. pointer streams. ARGV: 1 upper bound ("+", "<id>" or
# "(<id>"), 2 limit. The newest ``limit`` ids across the pointer streams, then their entries: one
# round trip instead of one XRANGE per id.
_PAGE = """#!lua flags=no-writes
local limit = tonumber(ARGV[2])
local ids = {}
for k = 2, #KEYS do
  for _, e in ipairs(redis.call('XREVRANGE', KEYS[k], ARGV[1], '-', 'COUNT', limit)) do
    local ms, n = string.match(e[1], '^(%d+)-(%d+)$')
    ids[#ids + 1] = {tonumber(ms), tonumber(n), e[1]}
  end
end
table.sort(ids, function(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  return a[2] > b[2]
end)
local out, last = {}, nil
for _, id in ipairs(ids) do
  if #out >= limit then break end
  if id[3] ~= last then
    last = id[3]
    local e = redis.call('XRANGE', KEYS[1], id[3], id[3])
    if e[1] then out[#out + 1] = e[1] end
  end
end
return out
"""

_SCRIPTS = {
    "save_result_history": _SAVE_RESULT_HISTORY,
    "trim_slot": _TRIM_SLOT,
    "record_committee": _RECORD_COMMITTEE,
    "page": _PAGE,
}


# --- encoding ----------------------------------------------------------------------------------


def encode_record(r: BidRecord) -> list[bytes | str | int]:
    """A bid record as the 13 values of its stream entry (see ``_FIELDS``)."""
    return [
        r.slot,
        bytes.fromhex(r.searcher[2:]),
        bytes.fromhex(r.bundle_hash[2:]) if r.bundle_hash else b"",
        "" if r.bid_wei is None else str(r.bid_wei),
        "" if r.gas is None else r.gas,
        r.received_ms,
        r.outcome,
        str(r.payment_wei),
        r.seq or "",
        r.code or "",
        bytes.fromhex(r.replacement_uuid) if r.replacement_uuid else b"",
        "" if r.tx_count is None else r.tx_count,
        ",".join(map(str, r.rollups)),
    ]


def decode_record(rollup: int, fields: Mapping[bytes, bytes]) -> BidRecord:
    """The bid record of a stream entry."""

    def opt_int(name: bytes) -> int | None:
        v = fields[name]
        return int(v) if v else None

    def opt_hex(name: bytes) -> str | None:
        v = fields[name]
        return "0x" + v.hex() if v else None

    uuid = fields[b"u"]
    spanned = fields.get(b"r", b"")
    return BidRecord(
        rollup=rollup,
        slot=int(fields[b"s"]),
        searcher="0x" + fields[b"a"].hex(),
        bundle_hash=opt_hex(b"h"),
        bid_wei=opt_int(b"b"),
        gas=opt_int(b"g"),
        received_ms=int(fields[b"t"]),
        outcome=fields[b"o"].decode(),
        payment_wei=int(fields[b"p"]),
        code=fields[b"c"].decode() or None,
        seq=fields[b"q"].decode() or None,
        replacement_uuid=uuid.hex() if uuid else None,
        tx_count=opt_int(b"n"),
        rollups=tuple(int(x) for x in spanned.split(b",")) if spanned else (),
    )


def compute_counter_ops(
    key: str, increments: Mapping[str, int], sign: int = 1
) -> Iterator[tuple[str, str, int]]:
    """(key, field, increment) for HINCRBY. A field named ``*_wei`` is split into base-10^9
    limbs ``<field>#<k>`` (HINCRBY is 64-bit; a sum of wei is not)."""
    for name, value in increments.items():
        value *= sign
        if not name.endswith("_wei"):
            if value:
                yield key, name, value
            continue
        negative, magnitude, k = value < 0, abs(value), 0
        while magnitude:
            magnitude, limb = divmod(magnitude, _LIMB)
            if limb:
                yield key, f"{name}#{k}", -limb if negative else limb
            k += 1


def compute_tally_ops(
    rollup: int, tallies: Mapping[str, Mapping[str, int]], sign: int = 1
) -> Iterator[tuple[str, str, int]]:
    """Counter ops of the searchers' tallies."""
    for searcher, increments in tallies.items():
        yield from compute_counter_ops(keys.history_tally(rollup, searcher), increments, sign)


def compute_bucket_ops(rollup: int, row: StatsRow, sign: int = 1) -> Iterator[tuple[str, str, int]]:
    """Counter ops adding one slot's stats row to its bucket (``w:``/``g:`` per searcher)."""
    part = StatsPart.of_row(row)
    increments = dict(part.totals)
    increments.update({f"w:{s}": v for s, v in part.wins.items()})
    increments.update({f"g:{s}": v for s, v in part.gas.items()})
    key = keys.history_bucket(rollup, row.slot // STATS_BUCKET_SLOTS)
    yield from compute_counter_ops(key, increments, sign)


def decode_counters(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    """A counter hash, limbs summed back; zero counts read as absent."""
    out: dict[str, int] = {}
    for name, value in raw.items():
        field, _, limb = name.decode().partition("#")
        out[field] = out.get(field, 0) + int(value) * (_LIMB ** int(limb) if limb else 1)
    return {k: v for k, v in out.items() if v}


def decode_bucket(raw: Mapping[bytes, bytes]) -> StatsPart:
    """A stats bucket; one pass, since a 10,000-slot range reads ~100 of them."""
    wins: dict[str, int] = {}
    gas: dict[str, int] = {}
    other: dict[bytes, bytes] = {}
    for name, value in raw.items():
        prefix = name[:2]
        if prefix == b"w:":
            wins[name[2:].decode()] = int(value)
        elif prefix == b"g:":
            gas[name[2:].decode()] = int(value)
        else:
            other[name] = value
    counters = decode_counters(other)
    totals = {name: counters.get(name, 0) for name in STATS_TOTALS}
    return StatsPart(
        totals, {k: v for k, v in wins.items() if v}, {k: v for k, v in gas.items() if v}
    )


def _id_key(hid: bytes | str) -> tuple[int, int]:
    text = hid.decode() if isinstance(hid, bytes) else hid
    ms, n = text.split("-")
    return int(ms), int(n)


class _KeyList:
    """KEYS of a script: fixed ones first, then each dynamic key once, by 1-based index."""

    def __init__(self, fixed: Iterable[str]) -> None:
        self.keys = list(fixed)
        self._index = {k: i + 1 for i, k in enumerate(self.keys)}

    def index(self, key: str) -> int:
        i = self._index.get(key)
        if i is None:
            self.keys.append(key)
            i = self._index[key] = len(self.keys)
        return i


class RedisHistory:
    """The history methods of ``RedisStore``; see ``node.stores.base.Store`` for the contract."""

    # Provided by RedisStore.
    _r: Any
    if TYPE_CHECKING:
        # RedisStore.redis; loosely typed because redis-py's stubs give async replies as
        # sync-or-async unions.
        @property
        def redis(self) -> Any: ...

    # Created on first use so RedisStore.__init__ needs no change.
    _history_sha: dict[str, str] | None = None
    _refusal_buffer: list[BidRecord] | None = None
    _refusal_task: asyncio.Task[None] | None = None
    refusals_dropped: int = 0

    async def _history_eval(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        if self._history_sha is None:
            self._history_sha = {}
        sha = self._history_sha.get(name)
        if sha is None:
            sha = self._history_sha[name] = await self.redis.script_load(_SCRIPTS[name])
        try:
            return await self.redis.evalsha(sha, len(keys_), *keys_, *args)
        except NoScriptError:  # a restarted server lost its script cache: load, retry once
            sha = self._history_sha[name] = await self.redis.script_load(_SCRIPTS[name])
            return await self.redis.evalsha(sha, len(keys_), *keys_, *args)

    async def _close_history(self) -> None:
        """Stop the refusal flusher (RedisStore.aclose); refusals still buffered are dropped."""
        task, self._refusal_task = self._refusal_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    # --- writes --------------------------------------------------------------------------------

    async def _save_result_with_history(
        self, result_json: bytes, history: SlotHistory, token: int
    ) -> Any:
        """Run _SAVE_RESULT_HISTORY: the result and its slot's history in one atomic step, if
        ``token`` passes the results' fence (the script's reply: 1, 0, or fenced)."""
        r, slot = history.rollup, history.slot
        kl = _KeyList(
            [
                keys.slot_result(r, slot),
                keys.result_slots(r),
                keys.history_slots(r),
                keys.history_summaries(r),
                keys.history_blocks(r),
                keys.history_stats(r),
                keys.history_spans(r),
                keys.history_bids(r),
                keys.slot_refusals(r, slot),
                keys.result_fence(r),
            ]
        )
        args: list[Any] = [
            result_json,
            slot,
            orjson.dumps(history.summary),
            orjson.dumps(history.block),
            orjson.dumps(history.stats.to_json()),
            len(history.bids),
            0,
            token,
        ]
        for record in history.bids:
            args.extend(encode_record(record))
            args.append(kl.index(keys.history_by_outcome(r, record.outcome)))
            args.append(kl.index(keys.history_by_searcher(r, record.searcher, record.outcome)))
            args.append(kl.index(keys.history_cross(r)) if record.is_cross else 0)
        ops = [*compute_tally_ops(r, history.tallies), *compute_bucket_ops(r, history.stats)]
        for key, name, value in ops:
            args.extend((kl.index(key), name, value))
        args[6] = len(ops)
        return await self._history_eval("save_result_history", kl.keys, args)

    def record_refusal(self, record: BidRecord) -> None:
        if self._r is None:
            return
        if self._refusal_buffer is None:
            self._refusal_buffer = []
        if len(self._refusal_buffer) >= _MAX_BUFFERED_REFUSALS:
            self.refusals_dropped += 1
            return
        self._refusal_buffer.append(record)
        if self._refusal_task is None or self._refusal_task.done():
            self._refusal_task = asyncio.get_running_loop().create_task(
                self._flush_refusals(), name="redis-refusals"
            )

    async def _flush_refusals(self) -> None:
        buffer = self._refusal_buffer
        while buffer:
            batch = buffer[:_REFUSAL_BATCH]
            del buffer[:_REFUSAL_BATCH]
            try:
                pipe = self.redis.pipeline(transaction=False)
                for record in batch:
                    key = keys.slot_refusals(record.rollup, record.slot)
                    pipe.xadd(
                        key,
                        dict(zip(_FIELDS, encode_record(record), strict=True)),
                        maxlen=MAX_REFUSALS_PER_SLOT,  # keeps the newest, as MemoryStore does
                        approximate=False,
                    )
                    pipe.pexpire(key, _REFUSAL_TTL_MS)
                await pipe.execute()
            except (RedisError, OSError, ValueError, StoreUnavailable) as exc:
                # Refusals are best effort: losing some never affects intake or results.
                self.refusals_dropped += len(batch)
                log.warning("dropped %d refusal records: %s", len(batch), exc)

    async def list_refusals(self, rollup: int, slot: int) -> list[BidRecord]:
        task = self._refusal_task
        if task is not None and not task.done():
            # Refusals this process filed just before the close are still being flushed.
            await asyncio.wait({task}, timeout=1.0)
        try:
            entries = await self.redis.xrange(keys.slot_refusals(rollup, slot))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return [decode_record(rollup, fields) for _, fields in entries]

    async def record_committee(self, rollup: int, slot: int, record: Mapping[str, Any]) -> bool:
        failed = "1" if record.get("status") == "failed" else "0"
        try:
            reply = await self._history_eval(
                "record_committee",
                [
                    keys.history_slots(rollup),
                    keys.history_committee(rollup),
                    keys.history_failed(rollup),
                ],
                [slot, orjson.dumps(dict(record)), failed],
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return bool(reply)

    async def trim_history(self, rollup: int, before_slot: int, max_slots: int) -> list[int]:
        if max_slots <= 0:
            return []
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in (keys.result_slots(rollup), keys.history_slots(rollup)):
                pipe.zrangebyscore(key, "-inf", f"({before_slot}", start=0, num=max_slots)
            with_result, with_history = await pipe.execute()
            slots = sorted({int(s) for s in [*with_result, *with_history]})[:max_slots]
            await self._finish_trims(rollup)  # any a crash left half done
            for slot in slots:
                await self._trim_slot(rollup, slot)
            await self._finish_trims(rollup)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return slots

    async def _finish_trims(self, rollup: int) -> None:
        """Drop the intake keys of slots whose result and history are already trimmed. The
        result goes first, so a reader never finds a result whose log is gone."""
        for raw in await self.redis.zrange(keys.trimming_slots(rollup), 0, -1):
            slot = int(raw)
            await self.redis.unlink(
                keys.slot_log(rollup, slot),
                keys.slot_closed(rollup, slot),
                keys.slot_limits(rollup, slot),
                keys.slot_index(rollup, slot),
                keys.slot_closer(rollup, slot),
                keys.close_token(rollup, slot),
            )
            await self.redis.hdel(keys.result_fence(rollup), str(slot))
            await self.redis.zrem(keys.trimming_slots(rollup), raw)

    async def _trim_slot(self, rollup: int, slot: int) -> None:
        r = rollup
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.history_summaries(r), slot)
        pipe.hget(keys.history_spans(r), slot)
        pipe.hget(keys.history_stats(r), slot)
        summary_raw, span, stats_raw = await pipe.execute()
        first, _, last = (span or b"").decode().partition(" ")
        entries = await self.redis.xrange(keys.history_bids(r), first, last) if first else []
        kl = _KeyList(
            [
                keys.result_slots(r),
                keys.history_slots(r),
                keys.history_summaries(r),
                keys.history_blocks(r),
                keys.history_stats(r),
                keys.history_spans(r),
                keys.history_committee(r),
                keys.history_failed(r),
                keys.history_bids(r),
                keys.slot_result(r, slot),
                keys.slot_refusals(r, slot),
                keys.trimming_slots(r),
            ]
        )
        args: list[Any] = [slot, len(entries), 0]
        records = []
        for hid, fields in entries:
            record = decode_record(r, fields)
            records.append(record)
            args.append(hid)
            args.append(kl.index(keys.history_by_outcome(r, record.outcome)))
            args.append(kl.index(keys.history_by_searcher(r, record.searcher, record.outcome)))
            args.append(kl.index(keys.history_cross(r)) if record.is_cross else 0)
        clearing = clearing_price_of(orjson.loads(summary_raw)) if summary_raw else None
        ops = list(compute_tally_ops(r, compute_tallies(records, clearing), sign=-1))
        if stats_raw:
            ops.extend(compute_bucket_ops(r, StatsRow.from_json(orjson.loads(stats_raw)), -1))
        for key, name, value in ops:
            args.extend((kl.index(key), name, value))
        args[2] = len(ops)
        await self._history_eval("trim_slot", kl.keys, args)

    # --- reads ---------------------------------------------------------------------------------

    async def list_history_slots(
        self,
        rollup: int,
        *,
        from_slot: int | None,
        to_slot: int | None,
        limit: int,
        descending: bool = True,
    ) -> list[int]:
        lo = "-inf" if from_slot is None else from_slot
        hi = "+inf" if to_slot is None else to_slot
        key = keys.history_slots(rollup)
        try:
            if descending:
                found = await self.redis.zrevrangebyscore(key, hi, lo, start=0, num=max(limit, 0))
            else:
                found = await self.redis.zrangebyscore(key, lo, hi, start=0, num=max(limit, 0))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return [int(x) for x in found]

    async def get_slot_summaries(
        self, rollup: int, slots: Sequence[int]
    ) -> list[dict[str, Any] | None]:
        if not slots:
            return []
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hmget(keys.history_summaries(rollup), list(slots))
            pipe.hmget(keys.history_committee(rollup), list(slots))
            summaries, committee = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return [_summary(s, c) for s, c in zip(summaries, committee, strict=True)]

    async def get_slot_details(self, rollup: int, slots: Sequence[int]) -> list[SlotDetail | None]:
        if not slots:
            return []
        fields = list(slots)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in (
                keys.history_summaries(rollup),
                keys.history_committee(rollup),
                keys.history_blocks(rollup),
                keys.history_spans(rollup),
            ):
                pipe.hmget(key, fields)
            summaries, committee, blocks, spans = await pipe.execute()
            pipe = self.redis.pipeline(transaction=False)
            wanted = []
            for i, span in enumerate(spans):
                first, _, last = (span or b"").decode().partition(" ")
                if summaries[i] is not None and first:
                    pipe.xrange(keys.history_bids(rollup), first, last)
                    wanted.append(i)
            ranges = await pipe.execute() if wanted else []
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        bids_of = {
            i: tuple(decode_record(rollup, f) for _, f in entries)
            for i, entries in zip(wanted, ranges, strict=True)
        }
        out: list[SlotDetail | None] = []
        for i in range(len(fields)):
            summary = _summary(summaries[i], committee[i])
            if summary is None:
                out.append(None)
                continue
            block = orjson.loads(blocks[i]) if blocks[i] else []
            out.append(SlotDetail(summary, block, bids_of.get(i, ())))
        return out

    async def list_history_bids(
        self,
        rollup: int,
        *,
        searcher: str | None,
        outcome: str | None,
        slot: int | None,
        before: str | None,
        inclusive: bool,
        limit: int,
        cross: bool | None = None,
        spans: int | None = None,
    ) -> list[tuple[str, BidRecord]]:
        if limit <= 0:
            return []
        if spans is not None:
            if spans == rollup:
                spans = None  # every bid of this rollup spans it
            elif cross is False:
                return []  # only a cross-rollup bundle's copy spans another rollup
            else:
                cross = True
        main = keys.history_bids(rollup)
        top = "+" if before is None else (before if inclusive else "(" + before)

        def match(record: BidRecord) -> bool:
            return (
                (searcher is None or record.searcher == searcher)
                and (outcome is None or record.outcome == outcome)
                and is_record_match(record, cross=cross, spans=spans)
            )

        try:
            if slot is not None:
                return await self._scan_slot(rollup, slot, match, before, inclusive, limit)
            if cross is True:
                # The cross pointer stream holds only cross-rollup bundles' bids; the other
                # filters are applied to them.
                indexes = [keys.history_cross(rollup)]
            elif searcher is not None:
                outcomes = [outcome] if outcome is not None else list(OUTCOMES)
                indexes = [keys.history_by_searcher(rollup, searcher, o) for o in outcomes]
            elif outcome is not None:
                indexes = [keys.history_by_outcome(rollup, outcome)]
            else:
                indexes = []
            if indexes:
                return await self._scan_pointers(rollup, [main, *indexes], match, top, limit)
            if cross is None:
                entries = await self.redis.xrevrange(main, top, "-", count=limit)
                return [(_text(hid), decode_record(rollup, f)) for hid, f in entries]
            return await self._scan_main(rollup, match, top, limit)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc

    async def _scan_pointers(
        self,
        rollup: int,
        keys_: list[str],
        match: Callable[[BidRecord], bool],
        top: str,
        limit: int,
    ) -> list[tuple[str, BidRecord]]:
        """Entries found through pointer streams (the ``page`` script), newest first, filtered;
        batch after batch until ``limit`` match or the pointers run out."""

        async def fetch(top: str, batch: int) -> list[tuple[Any, Mapping[bytes, bytes]]]:
            entries = await self._history_eval("page", keys_, [top, batch])
            return [(hid, dict(zip(flat[::2], flat[1::2], strict=True))) for hid, flat in entries]

        return await _scan_batches(rollup, fetch, match, top, limit)

    async def _scan_main(
        self, rollup: int, match: Callable[[BidRecord], bool], top: str, limit: int
    ) -> list[tuple[str, BidRecord]]:
        """The rollup's bids newest first, filtered, batch after batch (``cross=false``)."""

        async def fetch(top: str, batch: int) -> list[tuple[Any, Mapping[bytes, bytes]]]:
            stream = keys.history_bids(rollup)
            return list(await self.redis.xrevrange(stream, top, "-", count=batch))

        return await _scan_batches(rollup, fetch, match, top, limit)

    async def _scan_slot(
        self,
        rollup: int,
        slot: int,
        match: Callable[[BidRecord], bool],
        before: str | None,
        inclusive: bool,
        limit: int,
    ) -> list[tuple[str, BidRecord]]:
        """A slot's bids newest first, filtered; a slot's bids are one contiguous id range."""
        span = await self.redis.hget(keys.history_spans(rollup), slot)
        first, _, last = (span or b"").decode().partition(" ")
        if not first:
            return []
        top = last
        if before is not None and _id_key(before) <= _id_key(last):
            top = before if inclusive else "(" + before

        async def fetch(top: str, batch: int) -> list[tuple[Any, Mapping[bytes, bytes]]]:
            stream = keys.history_bids(rollup)
            return list(await self.redis.xrevrange(stream, top, first, count=batch))

        return await _scan_batches(rollup, fetch, match, top, limit)

    async def get_searcher_tally(self, rollup: int, searcher: str) -> dict[str, int]:
        try:
            raw = await self.redis.hgetall(keys.history_tally(rollup, searcher))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return decode_counters(raw)

    async def list_stats_parts(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None
    ) -> list[StatsPart]:
        """Whole buckets inside the range, single-slot rows at its edges."""
        lo = "-inf" if from_slot is None else from_slot
        hi = "+inf" if to_slot is None else to_slot
        slots_key = keys.history_slots(rollup)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrangebyscore(slots_key, lo, hi, start=0, num=1)
            pipe.zrevrangebyscore(slots_key, hi, lo, start=0, num=1)
            first, last = await pipe.execute()
            if not first:
                return []
            a, b = int(first[0]), int(last[0])
            full = range(-(-a // STATS_BUCKET_SLOTS), (b + 1) // STATS_BUCKET_SLOTS)
            if full:
                edges = [
                    (a, full.start * STATS_BUCKET_SLOTS - 1),
                    (full.stop * STATS_BUCKET_SLOTS, b),
                ]
            else:
                edges = [(a, b)]
            pipe = self.redis.pipeline(transaction=False)
            for bucket in full:
                pipe.hgetall(keys.history_bucket(rollup, bucket))
            for x, y in edges:
                pipe.zrangebyscore(slots_key, x, y)
            replies = await pipe.execute()
            buckets, edge_slots = replies[: len(full)], replies[len(full) :]
            wanted = [s for found in edge_slots for s in found]
            rows = await self.redis.hmget(keys.history_stats(rollup), wanted) if wanted else []
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        parts = [decode_bucket(raw) for raw in buckets if raw]
        parts.extend(StatsPart.of_row(StatsRow.from_json(orjson.loads(r))) for r in rows if r)
        return parts

    async def count_failed_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None
    ) -> int:
        lo = "-inf" if from_slot is None else from_slot
        hi = "+inf" if to_slot is None else to_slot
        try:
            return int(await self.redis.zcount(keys.history_failed(rollup), lo, hi))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc


def _summary(raw: bytes | None, committee: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    summary: dict[str, Any] = orjson.loads(raw)
    summary["committee"] = orjson.loads(committee) if committee else None
    return summary


def _text(hid: bytes | str) -> str:
    return hid.decode() if isinstance(hid, bytes) else hid


async def _scan_batches(
    rollup: int,
    fetch: Callable[[str, int], Awaitable[list[tuple[Any, Mapping[bytes, bytes]]]]],
    match: Callable[[BidRecord], bool],
    top: str,
    limit: int,
) -> list[tuple[str, BidRecord]]:
    """Entries ``fetch(top, batch)`` returns newest first, filtered by ``match``, batch after
    batch until ``limit`` match or a short batch says the source ran out."""
    out: list[tuple[str, BidRecord]] = []
    batch = max(limit, 256)
    while True:
        entries = await fetch(top, batch)
        for hid, fields in entries:
            record = decode_record(rollup, fields)
            if match(record):
                out.append((_text(hid), record))
                if len(out) >= limit:
                    return out
        if len(entries) < batch:
            return out
        top = "(" + _text(entries[-1][0])
