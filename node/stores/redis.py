"""The Redis store: durable bid logs shared by any number of engine processes.

Intake writes are *group-committed*: concurrent ``append_bid`` calls are queued and flushed in
one pipeline of Lua calls, so the round trip is paid once per batch, not once per bid. A caller's
bid is acknowledged only when Redis has answered for it. Each Lua call checks the slot's closed
flag, the idempotency index and the searcher's limits, then appends: one atomic step.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, cast

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, RedisError, ResponseError

from auction import codec
from auction.bundles import compute_bid_id
from auction.errors import (
    BlockspaceError,
    CiphertextReplayed,
    EncapsulationLimit,
    SearcherLimitExceeded,
    SlotClosed,
    SlotFull,
    StoreUnavailable,
)
from auction.history import SlotHistory
from auction.types import Bid, Cancel, LoggedEvent, LoggedSealedBid, PublicTx, SealedBid, SlotResult
from node.stores import keys
from node.stores.base import (
    LOG_CURSORS_KEPT,
    ClosedLog,
    IntakeLimits,
    Store,
    check_log_start,
)
from node.stores.fencing import (
    CLAIM_CLOSE_LUA,
    FENCE_LUA,
    FENCED_REPLY,
    RAISE_FENCE_LUA,
    CloseLease,
    compute_fenced,
    token_of,
)
from node.stores.redis_committee import RedisCommittee
from node.stores.redis_history import RedisHistory
from node.stores.redis_ledger import RedisLedger

log = logging.getLogger("blockspace.store")

# A Redis Cluster store URL: ``redis+cluster://host:port,host:port,...`` (any reachable nodes;
# the client learns the rest of the cluster from them). docs/redis.md, "Redis Cluster".
CLUSTER_SCHEME = "redis+cluster://"


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def parse_cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The (host, port) seed nodes of a ``redis+cluster://`` URL; ValueError if malformed."""
    rest = url[len(CLUSTER_SCHEME) :].rstrip("/")
    nodes = []
    for part in rest.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bad cluster node {part!r} in {url!r}: expected host:port")
        nodes.append((host.strip("[]"), int(port)))
    return nodes

# How long a slot's encrypted-bid bounds (keys.sealed_slot) are kept: far longer than any slot
# takes bids (max_slots_ahead slots), so the bound holds while it matters.
SEALED_TTL_MS = 24 * 3600 * 1000

# Counting one event against a slot's limits (bids and cancels share it): per searcher
# (n:<searcher>, b:<searcher>) and for the whole slot (n:*, b:*). Returns an error code, or false
# after counting.
_TAKE = """
local function check(mk, who, size, maxn, maxb, slotn, slotb)
  local n = tonumber(redis.call('HGET', mk, 'n:' .. who) or '0')
  local b = tonumber(redis.call('HGET', mk, 'b:' .. who) or '0')
  if n + 1 > tonumber(maxn) or b + size > tonumber(maxb) then
    return '!searcher_limit_exceeded'
  end
  local sn = tonumber(redis.call('HGET', mk, 'n:*') or '0')
  local sb = tonumber(redis.call('HGET', mk, 'b:*') or '0')
  if sn + 1 > tonumber(slotn) or sb + size > tonumber(slotb) then
    return '!slot_full'
  end
  return false
end
local function count(mk, who, size)
  redis.call('HINCRBY', mk, 'n:' .. who, 1)
  redis.call('HINCRBY', mk, 'b:' .. who, size)
  redis.call('HINCRBY', mk, 'n:*', 1)
  redis.call('HINCRBY', mk, 'b:*', size)
end
local function take(mk, who, size, maxn, maxb, slotn, slotb)
  local refused = check(mk, who, size, maxn, maxb, slotn, slotb)
  if refused then return refused end
  count(mk, who, size)
  return false
end
"""

# A batch of bids in one call (group commit). Per bid i: KEYS[4i+1..4i+4] = log, closed, limits,
# index; ARGV[10i+1..10i+10] = event, searcher, size, max_bundles, max_bytes, bid id, owner key,
# max slot events, max slot bytes, uuid key ("" without a uuid). Each bid is checked and
# appended on its own (closed slot, idempotency, limits); the reply holds one entry per bid: its
# seq, or "!" followed by a stable error code.
_APPEND_BIDS = _TAKE + """
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local lk, ck, mk, ik = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  local a = 10*i
  local who, size, id = ARGV[a+2], tonumber(ARGV[a+3]), ARGV[a+6]
  if redis.call('EXISTS', ck) == 1 then
    out[i+1] = '!slot_closed'
  else
    local prev = redis.call('HGET', ik, id)
    if prev then
      -- Written again (same value) so that a WAIT after a resend covers the first write.
      redis.call('HSET', ik, id, prev)
      out[i+1] = prev
    else
      local refused = take(mk, who, size, ARGV[a+4], ARGV[a+5], ARGV[a+8], ARGV[a+9])
      if refused then
        out[i+1] = refused
      else
        local xid = redis.call('XADD', lk, '*', 'e', ARGV[a+1])
        redis.call('HSET', ik, id, xid)
        redis.call('HSETNX', ik, ARGV[a+7], xid)
        if ARGV[a+10] ~= '' then redis.call('HSET', ik, ARGV[a+10], '1') end
        out[i+1] = xid
      end
    end
  end
end
return out
"""

# The copies of one cross-rollup bundle (one per rollup it spans), all or none. Per copy i:
# KEYS[4i+1..4i+4] = its rollup's log, closed, limits, index; ARGV[1..5] = searcher, size,
# bid id, owner key, uuid key ("" without a uuid), then ARGV[5+5i+1..5+5i+5] = event, max
# bundles, max bytes, max slot events, max slot bytes (its rollup's limits). Every log is checked
# (closed, then each copy not yet logged against its limits) before anything is written. Reply:
# a JSON array of the copies' seqs, or "!<code>@<i>" naming the first copy refused.
_APPEND_COPIES = _TAKE + """
local who, size, id, owner, ukey = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local n = #KEYS / 4
for i = 0, n - 1 do
  if redis.call('EXISTS', KEYS[4*i+2]) == 1 then return '!slot_closed@' .. i end
end
local seqs, todo = {}, {}
for i = 0, n - 1 do
  local prev = redis.call('HGET', KEYS[4*i+4], id)
  if prev then
    redis.call('HSET', KEYS[4*i+4], id, prev) -- a WAIT after a resend covers the first write
    seqs[i+1] = prev
  else
    todo[#todo+1] = i
  end
end
for _, i in ipairs(todo) do
  local a = 5 + 5*i
  local r = check(KEYS[4*i+3], who, size, ARGV[a+2], ARGV[a+3], ARGV[a+4], ARGV[a+5])
  if r then return r .. '@' .. i end
end
for _, i in ipairs(todo) do
  local a = 5 + 5*i
  count(KEYS[4*i+3], who, size)
  local xid = redis.call('XADD', KEYS[4*i+1], '*', 'e', ARGV[a+1])
  redis.call('HSET', KEYS[4*i+4], id, xid)
  redis.call('HSETNX', KEYS[4*i+4], owner, xid)
  if ukey ~= '' then redis.call('HSET', KEYS[4*i+4], ukey, '1') end
  seqs[i+1] = xid
end
return cjson.encode(seqs)
"""

# One slot of a cancel's window (node/stores/redis.py append_cancel runs it per slot, since a
# window spans several slots and so several cluster hash slots). KEYS: the slot's log, closed,
# limits, index. ARGV: event, cancel id, searcher, size, max_bundles, max_bytes, max slot events,
# max slot bytes, uuid key, mode. Mode "log": log the cancel if the slot is open and the searcher
# logged a bid under the uuid here, counted against the limits; 1 if it is in this slot (also
# when an earlier try logged it: the cancel id is in the index), else 0. Mode "count": count it
# against the limits only (a cancel that went nowhere), 0. Or "!" and an error code.
_APPEND_CANCEL = _TAKE + """
local lk, ck, mk, ik = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local who, size = ARGV[3], tonumber(ARGV[4])
if ARGV[10] == 'count' then
  local r = take(mk, who, size, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
  if r then return r end
  return 0
end
if redis.call('HEXISTS', ik, ARGV[2]) == 1 then return 1 end
if redis.call('EXISTS', ck) == 1 or redis.call('HEXISTS', ik, ARGV[9]) == 0 then return 0 end
local r = take(mk, who, size, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
if r then return r end
local id = redis.call('XADD', lk, '*', 'e', ARGV[1])
redis.call('HSET', ik, ARGV[2], id)
return 1
"""

# A sealed bid. KEYS: log, closed, limits, index, sealed (the slot's, over every rollup). ARGV:
# event, searcher, size, max_bundles, max_bytes, bid id, max slot events, max slot bytes, uuid
# key ("" without a uuid), encapsulation hex, ciphertext hash, sealed key TTL ms. As a bid
# (closed, idempotent, limits) plus, in the same step, one encapsulation per searcher per slot
# and one logging per ciphertext. Reply: the seq, or "!" and an error code.
_APPEND_SEALED = _TAKE + """
if redis.call('EXISTS', KEYS[2]) == 1 then return '!slot_closed' end
local prev = redis.call('HGET', KEYS[4], ARGV[6])
if prev then return prev end
local first = redis.call('HGET', KEYS[5], 'e:' .. ARGV[2])
if first and first ~= ARGV[10] then return '!encapsulation_limit' end
local logged = redis.call('HGET', KEYS[5], 'c:' .. ARGV[11])
if logged and logged ~= ARGV[6] then return '!ciphertext_replayed' end
local r = take(KEYS[3], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[7], ARGV[8])
if r then return r end
local xid = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('HSET', KEYS[4], ARGV[6], xid)
if ARGV[9] ~= '' then redis.call('HSET', KEYS[4], ARGV[9], '1') end
redis.call('HSET', KEYS[5], 'e:' .. ARGV[2], ARGV[10], 'c:' .. ARGV[11], ARGV[6])
redis.call('PEXPIRE', KEYS[5], ARGV[12])
return xid
"""

# KEYS: log, closed, index. ARGV: event, tx hash. A public tx is logged once per slot.
_APPEND_PUBLIC_TX = """
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('slot_closed') end
local prev = redis.call('HGET', KEYS[3], ARGV[2])
if prev then return prev end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
redis.call('HSET', KEYS[3], ARGV[2], id)
return id
"""

# KEYS: log, closed. Marks closed and returns the whole log in the same atomic step.
_CLOSE = """
if ARGV[1] ~= '0' and tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[3]) or '0') then
  return {-1, redis.call('GET', KEYS[3])}
end
redis.call('SET', KEYS[2], '1')
return redis.call('XRANGE', KEYS[1], '-', '+')
"""

# KEYS: log, closed, the closer's token. ARGV: fencing token, the id of the last entry this
# process's offset reads handed out ("": none to vouch for), how many entries up to it, the
# SHA-1 of those entries framed as ``_frame_entry`` frames them. Marks closed; if the log up to
# that id is exactly those entries (count, last id, digest of every id, field and value), the
# entries after it {1, tail}, else the whole log {0, log}, in the same atomic step (decision 164).
_CLOSE_FROM = """
if ARGV[1] ~= '0' and tonumber(ARGV[1]) < tonumber(redis.call('GET', KEYS[3]) or '0') then
  return {-1, redis.call('GET', KEYS[3])}
end
redis.call('SET', KEYS[2], '1')
if ARGV[2] ~= '' then
  local head = redis.call('XRANGE', KEYS[1], '-', ARGV[2])
  local n = #head
  if n > 0 and n == tonumber(ARGV[3]) and head[n][1] == ARGV[2] then
    local parts, k = {}, 0
    for i = 1, n do
      local fl = head[i][2]
      parts[k + 1], parts[k + 2], parts[k + 3], parts[k + 4] = head[i][1], '\0', #fl / 2, '\0'
      k = k + 4
      for j = 1, #fl do
        parts[k + 1], parts[k + 2], parts[k + 3] = #fl[j], ':', redis.sha1hex(fl[j])
        k = k + 3
      end
    end
    if redis.sha1hex(table.concat(parts)) == ARGV[4] then
      return {1, redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+')}
    end
  end
end
return {0, redis.call('XRANGE', KEYS[1], '-', '+')}
"""

# KEYS: result, results zset, fence. ARGV: json, slot, fencing token (0: unfenced).
_SAVE_RESULT = FENCE_LUA + """
if not pass_fence(KEYS[3], ARGV[2], ARGV[3]) then
  return {-1, redis.call('HGET', KEYS[3], ARGV[2])}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[2])
  return 1
end
return 0
"""

# Every script, by name; loaded at connect and again after a server restart (NOSCRIPT).
SCRIPTS = {
    "append_bids": _APPEND_BIDS,
    "append_copies": _APPEND_COPIES,
    "append_cancel": _APPEND_CANCEL,
    "append_sealed": _APPEND_SEALED,
    "append_public_tx": _APPEND_PUBLIC_TX,
    "close": _CLOSE,
    "close_from": _CLOSE_FROM,
    "save_result": _SAVE_RESULT,
    "claim_close": CLAIM_CLOSE_LUA,
    "raise_fence": RAISE_FENCE_LUA,
}


def _check_fenced(reply: Any, slot: int, token: int, where: str) -> None:
    """Raise CloseFenced for a guarded script's refusal ``[-1, newer token]``."""
    if isinstance(reply, list) and len(reply) == 2 and reply[0] == FENCED_REPLY:
        raise compute_fenced(slot, token, int(reply[1] or 0), where)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Map a Redis or socket failure to StoreUnavailable, the one error callers handle."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"the bid store failed: {exc}") from exc


# How a sealed bid's stored JSON starts (codec.sealed_bid_to_json writes "kind" first): the
# plaintext readers skip such entries without decoding them.
_SEALED_PREFIX = b'{"kind":"sealed_bid"'


def _raw_entries(entries: list[Any]) -> Iterator[tuple[str, bytes]]:
    for seq, fields in entries:
        raw = fields[b"e"] if b"e" in fields else fields["e"]
        yield (seq.decode() if isinstance(seq, bytes) else seq), raw


def _frame_entry(seq: bytes, fields: dict[bytes, bytes]) -> bytes:
    """One stream entry as ``_CLOSE_FROM`` digests it: its id, its field count, then each
    field and each value as its length and its SHA-1 (fixed-size parts, so the frames cannot
    run into each other; the script hashes each value where it lies instead of copying it)."""
    return b"%s\0%d\0" % (seq, len(fields)) + b"".join(
        b"%d:%s" % (len(x), hashlib.sha1(x).hexdigest().encode())
        for pair in fields.items()
        for x in pair
    )


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _flat_entries(reply: list[Any]) -> list[Any]:
    # A Lua XRANGE reply is [[id, [field, value, ...]], ...]
    return [(seq, dict(zip(flat[::2], flat[1::2], strict=True))) for seq, flat in reply]


def _decode_entries(entries: list[Any]) -> list[LoggedEvent]:
    """The plaintext events of a log (its sealed bids are read by ``_decode_sealed``)."""
    return [
        LoggedEvent(seq, codec.event_from_bytes(raw))
        for seq, raw in _raw_entries(entries)
        if not raw.startswith(_SEALED_PREFIX)
    ]


def _decode_sealed(entries: list[Any]) -> list[LoggedSealedBid]:
    return [
        LoggedSealedBid(seq, codec.sealed_bid_from_json(orjson.loads(raw)))
        for seq, raw in _raw_entries(entries)
        if raw.startswith(_SEALED_PREFIX)
    ]


def _entries_from_flat(reply: list[Any]) -> list[LoggedEvent]:
    return _decode_entries(_flat_entries(reply))


# A queued append: the bid, its limits, its encoded event and the caller's future.
_Pending = tuple[Bid, IntakeLimits, bytes, asyncio.Future[str]]


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _refusal(code: str, slot: int, limits: IntakeLimits) -> BlockspaceError:
    """The error a script's "!<code>" reply stands for."""
    if code == "!encapsulation_limit":
        return EncapsulationLimit(
            "a searcher's encrypted bids of a slot share one encapsulation", slot=slot
        )
    if code == "!ciphertext_replayed":
        return CiphertextReplayed("this ciphertext is already logged", slot=slot)
    if code == "!slot_closed":
        return SlotClosed(f"slot {slot} is closed", slot=slot)
    if code == "!slot_full":
        return SlotFull(
            "this slot holds as many bids as a slot may",
            max_events=limits.max_slot_events,
            max_bytes=limits.max_slot_bytes,
        )
    return SearcherLimitExceeded(
        "searcher limit for this slot reached",
        max_bundles=limits.max_bundles,
        max_bytes=limits.max_bytes,
    )


def _not_replicated() -> StoreUnavailable:
    """The answer to a bid the master logged but no replica confirmed in time: not an
    acknowledgement, since a failover now could lose it; the same signed request may be resent
    (idempotent: it answers the stored seq, once a replica has it)."""
    return StoreUnavailable(
        "the bid is logged on the store's master but no replica confirmed it in time; it is "
        "not acknowledged as durable: resend the same request"
    )


def _append_call(batch: list[_Pending]) -> tuple[list[str], list[Any]]:
    """The keys and arguments of one ``append_bids`` call over a batch of one slot's bids."""
    keys_: list[str] = []
    args: list[Any] = []
    slot_keys: dict[tuple[int, int], list[str]] = {}
    for bid, limits, payload, _ in batch:
        r, s = bid.rollup, bid.slot
        log_keys = slot_keys.get((r, s))
        if log_keys is None:
            log_keys = slot_keys[(r, s)] = [
                keys.slot_log(r, s),
                keys.slot_closed(r, s),
                keys.slot_limits(r, s),
                keys.slot_index(r, s),
            ]
        keys_ += log_keys
        uuid_key = (
            keys.index_uuid(bid.searcher, bid.replacement_uuid) if bid.replacement_uuid else ""
        )
        args += [
            payload,
            bid.searcher,
            bid.request_bytes,
            limits.max_bundles,
            limits.max_bytes,
            bid.bid_id,
            f"{bid.searcher}:{bid.bundle_hash}",
            limits.max_slot_events,
            limits.max_slot_bytes,
            uuid_key,
        ]
    return keys_, args


def _settle_appends(batch: list[_Pending], replies: Any, confirmed: bool) -> None:
    """Answer each bid of an ``append_bids`` call from its reply: its seq, or its refusal."""
    for (bid, limits, _, fut), reply in zip(batch, replies, strict=True):
        if fut.done():
            continue
        text = _text(reply)
        if text.startswith("!"):
            fut.set_exception(_refusal(text, bid.slot, limits))
        elif not confirmed:
            fut.set_exception(_not_replicated())
        else:
            fut.set_result(text)


def _cancel_keys(rollup: int, slot: int) -> list[str]:
    return [
        keys.slot_log(rollup, slot),
        keys.slot_closed(rollup, slot),
        keys.slot_limits(rollup, slot),
        keys.slot_index(rollup, slot),
    ]


def _cancel_answer(stored: bytes | str, rollup: int) -> list[int]:
    """What a cancel answered when first seen: its slots, for its first rollup only."""
    first_rollup, slots = orjson.loads(stored)
    return [int(x) for x in slots] if first_rollup == str(rollup) else []


class HiredisConnection(aioredis.Connection):
    """redis-py's asyncio connection with its commands packed by hiredis, in C.

    redis-py's asyncio ``Connection.pack_command`` encodes every argument in Python (its sync
    client already uses hiredis): a group commit's one ``EVALSHA`` carries 14 arguments a bid,
    and packing them cost ~9 us a bid under load, more than the rest of the append. hiredis
    encodes ``str`` as UTF-8 and ``int`` in decimal, as redis-py does. (Single server only:
    redis-py's cluster client fixes its own connection class.)
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        # A command name with spaces ("CONFIG SET") is several words on the wire
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from None


class RedisStore(RedisCommittee, RedisHistory, RedisLedger, Store):
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        appendfsync: str = "everysec",
        max_batch: int = 512,
        socket_timeout_s: float = 1.0,
        connect_timeout_s: float = 1.0,
        wait_replicas: int | None = None,
        wait_timeout_ms: int = 500,
    ) -> None:
        self.url = url
        self.cluster = is_cluster_url(url)
        # Replicas that must confirm a bid (WAIT) before it is acknowledged: by default one on
        # a cluster (every master has a replica to fail over to), none on a single server.
        self.wait_replicas = (1 if self.cluster else 0) if wait_replicas is None else wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        # Faults the client handled or reported, by kind (node/metrics.py exports them):
        # replica_timeout, slot_moved, write_failed.
        self.faults: Counter[str] = Counter()
        self.appendfsync = appendfsync
        self.max_batch = max_batch
        self.socket_timeout_s = socket_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._r: Any = None  # aioredis.Redis, or RedisCluster for a cluster URL
        self._queue: asyncio.Queue[_Pending] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._sha: dict[str, str] = {}
        # Where this process's last offset read of each slot log ended (``_read_from``):
        # (rollup, slot) -> (plaintext entries, sealed entries, the stream id of the last, the
        # SHA-1 of every entry handed out from index 0 by an unbroken chain of both-part reads,
        # else None): what ``close_slot_parts_from`` asks the close script to vouch for.
        self._log_cursors: dict[tuple[int, int], tuple[int, int, str, Any]] = {}

    @property
    def redis(self) -> aioredis.Redis:
        """The client: ``aioredis.Redis``, or ``RedisCluster`` (same command methods)."""
        if self._r is None:
            raise StoreUnavailable("store is not connected")
        r: aioredis.Redis = self._r
        return r

    def _client(self) -> Any:
        # A dead or stalled server must refuse the write (StoreUnavailable) within a bound,
        # never leave intake waiting; redis-py had no socket timeout by default before 8.0.
        # One quick retry on a broken connection (a pooled socket to a restarted server);
        # re-sending a batch is safe since append_bid is idempotent by bid id. A timeout
        # is not retried: a stalled server would only double the wait.
        options: dict[str, Any] = {
            "decode_responses": False,
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.connect_timeout_s,
            "retry": Retry(
                ExponentialBackoff(cap=0.1, base=0.01), 1, supported_errors=(RedisConnectionError,)
            ),
        }
        if not self.cluster:
            return aioredis.from_url(self.url, connection_class=HiredisConnection, **options)
        # The cluster client follows MOVED and ASK itself and re-reads the slot map when a
        # node fails; the seeds only need one live node.
        seeds = [ClusterNode(host, port) for host, port in parse_cluster_nodes(self.url)]
        return RedisCluster(startup_nodes=seeds, **options)

    async def connect(self) -> None:
        try:
            self._r = self._client()
        except ValueError as exc:
            raise StoreUnavailable(str(exc)) from exc
        try:
            if self.cluster:
                await self._r.initialize()
            await self._r.ping()
            if self.appendfsync in ("everysec", "always"):
                # Durability is part of our contract: make sure the AOF is on.
                await self._r.config_set("appendonly", "yes")
                await self._r.config_set("appendfsync", self.appendfsync)
            await self._reload_scripts()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach redis at {self.url}: {exc}") from exc
        self._queue = asyncio.Queue()
        self._flusher = asyncio.create_task(self._flush_forever(), name="redis-group-commit")

    async def aclose(self) -> None:
        await self._close_history()
        await self._close_ledger()
        # Appends still queued were never written: refuse them rather than leave callers waiting.
        while self._queue is not None and not self._queue.empty():
            *_, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(StoreUnavailable("store closing; the bid was not accepted"))
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except (asyncio.CancelledError, Exception):
                pass
        if self._r is not None:
            await self._r.aclose()
            self._r = None

    async def _evalsha(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        try:
            return await self.redis.evalsha(self._sha[name], len(keys_), *keys_, *args)
        except NoScriptError:  # the server restarted and lost its script cache
            await self._reload_scripts()
            return await self.redis.evalsha(self._sha[name], len(keys_), *keys_, *args)

    async def _evalsha_replicated(
        self, name: str, keys_: list[str], args: list[Any]
    ) -> tuple[Any, bool]:
        """Run a write script; with replica acks on, ``WAIT`` for them on the same connection.
        Returns the reply and whether it is confirmed: as many replicas as ``wait_replicas``
        took it within ``wait_timeout_ms`` (always True with acks off). A write the cluster
        client had to resend elsewhere (MOVED/ASK) is not confirmed: the WAIT ran on the old
        node's connection, so it says nothing about the write."""
        if self.wait_replicas <= 0:
            return await self._evalsha(name, keys_, args), True
        node = self._node_of(keys_[0])
        for attempt in (0, 1):
            pipe = self.redis.pipeline(transaction=False)
            # execute_command: redis-py's cluster pipeline blocks its evalsha method, not the
            # command (routed by its keys like any other)
            pipe.execute_command("EVALSHA", self._sha[name], len(keys_), *keys_, *args)
            wait = ("WAIT", self.wait_replicas, self.wait_timeout_ms)
            if node is None:
                pipe.execute_command(*wait)
            else:  # the node holding the keys: one connection carries the write and the WAIT
                pipe.execute_command(*wait, target_nodes=node)
            try:
                reply, acked = await pipe.execute()
                break
            except NoScriptError:  # the node restarted or failed over: its script cache is new
                if attempt:
                    raise
                await self._reload_scripts()
        moved_to = self._node_of(keys_[0])
        if node is not None and moved_to is not None and moved_to.name != node.name:
            self.faults["slot_moved"] += 1
            log.warning(
                "redis cluster: the hash slot of %s moved from %s to %s; the write is not "
                "confirmed on a replica and is refused (a resend is idempotent)",
                keys_[0],
                node.name,
                moved_to.name,
            )
            return reply, False
        if int(acked) < self.wait_replicas:
            self.faults["replica_timeout"] += 1
            log.warning(
                "redis: %d of %d replicas confirmed a write to %s within %d ms; refused as "
                "not durable (it is on the master; a resend is idempotent)",
                int(acked),
                self.wait_replicas,
                keys_[0],
                self.wait_timeout_ms,
            )
            return reply, False
        return reply, True

    def _node_of(self, key: str) -> Any:
        """The cluster node (master) holding ``key``; None on a single server."""
        if not self.cluster:
            return None
        return self._r.get_node_from_key(key)

    async def _reload_scripts(self) -> None:
        for name, script in SCRIPTS.items():
            self._sha[name] = await self.redis.script_load(script)

    # --- intake (group commit) -------------------------------------------------------------

    async def append_bid(self, bid: Bid, limits: IntakeLimits) -> str:
        if self._queue is None:
            raise StoreUnavailable("store is not connected")
        # Encode before queueing: a bid that cannot be encoded fails alone, not its whole batch
        payload = codec.event_to_bytes(bid)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((bid, limits, payload, fut))
        return await fut

    async def _flush_forever(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._flush(batch)
            except Exception as exc:  # the flusher must outlive any one batch
                log.error("redis group commit failed: %r", exc)
                err = StoreUnavailable("the bid store failed; the bid was not accepted")
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)

    async def _flush(self, batch: list[_Pending]) -> None:
        """One script call per slot in the batch (a slot's keys share one cluster hash tag;
        one script may not touch two), all sent at once: on one server in one pipeline (one
        write, one read, and with replica acks on one ``WAIT`` after them all); on a cluster
        each on its own, to the node of its slot."""
        by_slot: dict[int, list[_Pending]] = {}
        for pending in batch:
            by_slot.setdefault(pending[0].slot, []).append(pending)
        groups = list(by_slot.values())
        if self.cluster:
            await asyncio.gather(*(self._flush_slot(group) for group in groups))
            return
        calls = [_append_call(group) for group in groups]
        try:
            replies, confirmed = await self._evalsha_pipelined("append_bids", calls)
        except (RedisError, OSError) as exc:
            for group, (keys_, _) in zip(groups, calls, strict=True):
                self._fail_appends(group, keys_[0], exc)
            return
        for group, (keys_, _), reply in zip(groups, calls, replies, strict=True):
            if isinstance(reply, Exception):  # this slot's script failed; the others ran
                self._fail_appends(group, keys_[0], reply)
            else:
                _settle_appends(group, reply, confirmed)

    async def _flush_slot(self, batch: list[_Pending]) -> None:
        keys_, args = _append_call(batch)
        try:
            replies, confirmed = await self._evalsha_replicated("append_bids", keys_, args)
        except (RedisError, OSError) as exc:
            self._fail_appends(batch, keys_[0], exc)
            return
        _settle_appends(batch, replies, confirmed)

    def _fail_appends(self, batch: list[_Pending], key: str, exc: BaseException) -> None:
        """A write that failed: none of its bids is acknowledged."""
        self.faults["write_failed"] += 1
        log.error("redis write failed (%s): %s", key, exc)
        err = StoreUnavailable("the bid store is unavailable; the bid was not accepted")
        for *_, fut in batch:
            if not fut.done():
                fut.set_exception(err)

    async def _evalsha_pipelined(
        self, name: str, calls: list[tuple[list[str], list[Any]]]
    ) -> tuple[list[Any], bool]:
        """Run a write script once per call (keys, args) in one pipeline (one server only);
        with replica acks on, a ``WAIT`` after them on the same connection covers them all.
        Returns each call's reply, or the error of a call that failed alone, and whether the
        writes are confirmed (as ``_evalsha_replicated``). A script cache lost meanwhile
        (NOSCRIPT: that call did not run) is reloaded and only the refused calls are resent."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        least_acked: int | None = None
        for attempt in (0, 1):
            pipe = self.redis.pipeline(transaction=False)
            for i in todo:
                keys_, args = calls[i]
                pipe.execute_command("EVALSHA", self._sha[name], len(keys_), *keys_, *args)
            if self.wait_replicas > 0:
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            out = await pipe.execute(raise_on_error=False)
            if self.wait_replicas > 0:
                acked = out.pop()
                if isinstance(acked, Exception):
                    raise acked
                # A resend may go out on another connection: each WAIT covers its own writes
                least_acked = int(acked) if least_acked is None else min(least_acked, int(acked))
            lost = []
            for i, reply in zip(todo, out, strict=True):
                replies[i] = reply
                if isinstance(reply, NoScriptError):
                    lost.append(i)
            if not lost or attempt:
                break
            await self._reload_scripts()
            todo = lost
        if least_acked is not None and least_acked < self.wait_replicas:
            self.faults["replica_timeout"] += 1
            log.warning(
                "redis: %d of %d replicas confirmed a group commit within %d ms; refused as "
                "not durable (it is on the master; a resend is idempotent)",
                least_acked,
                self.wait_replicas,
                self.wait_timeout_ms,
            )
            return replies, False
        return replies, True

    async def append_bid_copies(
        self, copies: Sequence[Bid], limits: Sequence[IntakeLimits]
    ) -> list[str]:
        # One script over every spanned log's keys (not group-committed: cross-rollup bundles
        # are the fewer, and their keys differ per rollup). With Redis Cluster these keys must
        # share a hash slot (docs/redis.md).
        first = copies[0]
        keys_: list[str] = []
        args: list[Any] = [
            first.searcher,
            first.request_bytes,
            first.bid_id,
            f"{first.searcher}:{first.bundle_hash}",
            keys.index_uuid(first.searcher, first.replacement_uuid)
            if first.replacement_uuid
            else "",
        ]
        for bid, lim in zip(copies, limits, strict=True):
            r, s = bid.rollup, bid.slot
            keys_ += [
                keys.slot_log(r, s),
                keys.slot_closed(r, s),
                keys.slot_limits(r, s),
                keys.slot_index(r, s),
            ]
            args += [
                codec.event_to_bytes(bid),
                lim.max_bundles,
                lim.max_bytes,
                lim.max_slot_events,
                lim.max_slot_bytes,
            ]
        with _store_errors():
            raw, confirmed = await self._evalsha_replicated("append_copies", keys_, args)
        reply = _text(raw)
        if not reply.startswith("!") and not confirmed:
            raise _not_replicated()
        if reply.startswith("!"):
            code, at = reply.rsplit("@", 1)
            refused = copies[int(at)]
            error = _refusal(code, refused.slot, limits[int(at)])
            error.data["rollup"] = refused.rollup
            raise error
        return [str(seq) for seq in orjson.loads(reply)]

    async def append_sealed_bid(self, sealed: SealedBid, limits: IntakeLimits) -> str:
        # One script, not group-committed: its slot-wide key is outside the batch's shape.
        r, s = sealed.rollup, sealed.slot
        keys_ = [
            keys.slot_log(r, s),
            keys.slot_closed(r, s),
            keys.slot_limits(r, s),
            keys.slot_index(r, s),
            keys.sealed_slot(s),
        ]
        args = [
            codec.log_entry_to_bytes(sealed),
            sealed.searcher,
            sealed.request_bytes,
            limits.max_bundles,
            limits.max_bytes,
            sealed.bid_id,
            limits.max_slot_events,
            limits.max_slot_bytes,
            keys.index_uuid(sealed.searcher, sealed.replacement_uuid)
            if sealed.replacement_uuid
            else "",
            sealed.encapsulation.hex(),
            sealed.ciphertext_hash,
            SEALED_TTL_MS,
        ]
        with _store_errors():
            reply = _text(await self._evalsha("append_sealed", keys_, args))
        if reply.startswith("!"):
            raise _refusal(reply, s, limits)
        return reply

    async def read_sealed_log(self, rollup: int, slot: int) -> list[LoggedSealedBid]:
        with _store_errors():
            entries = await self.redis.xrange(keys.slot_log(rollup, slot))
        return _decode_sealed(entries or [])

    async def read_log_parts(
        self, rollup: int, slot: int
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        with _store_errors():
            entries = await self.redis.xrange(keys.slot_log(rollup, slot))
        return _decode_entries(entries or []), _decode_sealed(entries or [])

    async def append_public_tx(self, ptx: PublicTx, slot: int) -> str:
        payload = codec.event_to_bytes(ptx)
        try:
            return _text(
                await self._evalsha(
                    "append_public_tx",
                    [
                        keys.slot_log(ptx.rollup, slot),
                        keys.slot_closed(ptx.rollup, slot),
                        keys.slot_index(ptx.rollup, slot),
                    ],
                    [payload, ptx.tx.hash],
                )
            )
        except ResponseError as exc:
            if str(exc).startswith("slot_closed"):
                raise SlotClosed(f"slot {slot} is closed", slot=slot) from None
            raise StoreUnavailable(f"the bid store refused the write: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc

    async def append_cancel(
        self, cancel: Cancel, slots: list[int], limits: IntakeLimits, window_ms: int
    ) -> list[int]:
        # Slot by slot (each slot's keys are one hash tag), then the answer is remembered. A
        # retry or replay finds the answer; one that runs before it is stored finds the cancel
        # id in each slot's index, so it is logged at most once per slot either way.
        r = cancel.rollup
        cancel_id = compute_bid_id(cancel.evidence)
        answer_key = keys.cancel_answer(cancel_id)
        with _store_errors():
            seen = await self.redis.get(answer_key)
        if seen is not None:
            return _cancel_answer(seen, r)
        args = [
            codec.event_to_bytes(cancel),
            cancel_id,
            cancel.searcher,
            cancel.request_bytes,
            limits.max_bundles,
            limits.max_bytes,
            limits.max_slot_events,
            limits.max_slot_bytes,
            keys.index_uuid(cancel.searcher, cancel.replacement_uuid),
        ]
        done: list[int] = []
        refused = ""
        with _store_errors():
            for slot in slots:
                slot_keys = _cancel_keys(r, slot)
                reply = _text(await self._evalsha("append_cancel", slot_keys, [*args, "log"]))
                if reply.startswith("!"):
                    refused = reply
                elif reply == "1":
                    done.append(slot)
            if not done and refused:
                raise _refusal(refused, slots[0], limits)
            if not done and slots:
                # Remembered for the window like every cancel, so it counts like one: against
                # the sender's quota in the first slot of its window, though it went nowhere.
                first_keys = _cancel_keys(r, slots[0])
                reply = _text(await self._evalsha("append_cancel", first_keys, [*args, "count"]))
                if reply.startswith("!"):
                    raise _refusal(reply, slots[0], limits)
            stored = orjson.dumps([str(r), done])
            if not await self.redis.set(answer_key, stored, nx=True, px=window_ms):
                first = await self.redis.get(answer_key)  # a concurrent copy answered first
                return _cancel_answer(first, r) if first is not None else done
        return done

    async def claim_close(self, rollup: int, slot: int, owner: str, lease_ms: int) -> int:
        with _store_errors():
            reply = await self._evalsha(
                "claim_close",
                [keys.slot_closer(rollup, slot), keys.close_token(rollup, slot)],
                [owner, lease_ms],
            )
        return int(reply)

    async def raise_fences(self, lease: CloseLease, rollups: Sequence[int]) -> None:
        # One script per hash tag (a cluster runs each where its tag lives): every rollup's
        # results, then the committee records.
        for fence in [*(keys.result_fence(r) for r in rollups), keys.committee_fence()]:
            with _store_errors():
                reply = await self._evalsha("raise_fence", [fence], [lease.slot, lease.token])
            _check_fenced(reply, lease.slot, lease.token, "raise_fences")

    async def close_slot(
        self, rollup: int, slot: int, lease: CloseLease | None = None
    ) -> list[LoggedEvent]:
        closer = lease.rollup if lease is not None else rollup
        try:
            reply = await self._evalsha(
                "close",
                [
                    keys.slot_log(rollup, slot),
                    keys.slot_closed(rollup, slot),
                    keys.close_token(closer, slot),
                ],
                [token_of(lease)],
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        _check_fenced(reply, slot, token_of(lease), "close_log")
        return _entries_from_flat(reply)

    async def read_log(self, rollup: int, slot: int) -> list[LoggedEvent]:
        try:
            entries = await self.redis.xrange(keys.slot_log(rollup, slot))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        return _decode_entries(entries or [])  # redis-py types the reply as optional

    async def read_log_from(self, rollup: int, slot: int, start: int) -> list[LoggedEvent]:
        events, _ = await self._read_from(rollup, slot, start, None)
        return events

    async def read_log_parts_from(
        self, rollup: int, slot: int, start: int, sealed_start: int
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        check_log_start(sealed_start)
        return await self._read_from(rollup, slot, start, sealed_start)

    async def _read_from(
        self, rollup: int, slot: int, start: int, sealed_start: int | None
    ) -> tuple[list[LoggedEvent], list[LoggedSealedBid]]:
        """The log's plaintext events from index ``start`` on (and its sealed bids from
        ``sealed_start`` on, unless None). A stream is addressed by entry id, not index, so
        the read that ended where this one starts left a cursor (the counts it ended at and
        the id of its last entry): then only the entries from that id on are read (``XRANGE
        id +``, the id itself included as a check). A stream only grows (ids are assigned
        increasing, ``XADD *``), so those are exactly the entries after the first ``start``;
        if the id is gone (the log was trimmed or written anew) or there is no such cursor,
        the whole log is read and cut. Only what is returned is decoded. The cursor also keeps
        the digest of every entry a chain of both-part reads from index 0 handed out (a read
        of both parts from 0, then reads continuing it), which ``close_slot_parts_from`` has
        the close check; anything else breaks the chain (no digest)."""
        check_log_start(start)
        key = keys.slot_log(rollup, slot)
        cursor = self._log_cursors.pop((rollup, slot), None)
        got: list[Any] | None = None
        plain_base = sealed_base = 0
        digest: Any = None
        last = ""
        if cursor is not None and cursor[0] == start and sealed_start in (None, cursor[1]):
            with _store_errors():
                entries = await self.redis.xrange(key, cursor[2], "+")
            tail = entries or []
            if tail and _text(tail[0][0]) == cursor[2]:
                got, plain_base, sealed_base = tail[1:], cursor[0], cursor[1]
                last = cursor[2]
                digest = cursor[3] if sealed_start is not None else None
        if got is None:
            with _store_errors():
                entries = await self.redis.xrange(key)
            got = entries or []
            digest = hashlib.sha1() if (start, sealed_start) == (0, 0) else None
        if digest is not None:
            rows = cast(list[tuple[bytes, dict[bytes, bytes]]], got)  # decode_responses off
            for seq, fields in rows:
                digest.update(_frame_entry(_as_bytes(seq), fields))
        raw = list(_raw_entries(got))
        plain = [(seq, e) for seq, e in raw if not e.startswith(_SEALED_PREFIX)]
        sealed = [(seq, e) for seq, e in raw if e.startswith(_SEALED_PREFIX)]
        ends = (plain_base + len(plain), sealed_base + len(sealed))
        last = raw[-1][0] if raw else last
        if last and start <= ends[0] and (sealed_start or 0) <= ends[1]:
            self._log_cursors[rollup, slot] = (*ends, last, digest)
            while len(self._log_cursors) > LOG_CURSORS_KEPT:
                del self._log_cursors[next(iter(self._log_cursors))]  # the least recent
        events = [
            LoggedEvent(seq, codec.event_from_bytes(e)) for seq, e in plain[start - plain_base :]
        ]
        if sealed_start is None:
            return events, []
        return events, [
            LoggedSealedBid(seq, codec.sealed_bid_from_json(orjson.loads(e)))
            for seq, e in sealed[sealed_start - sealed_base :]
        ]

    async def close_slot_parts_from(
        self,
        rollup: int,
        slot: int,
        start: int,
        sealed_start: int,
        lease: CloseLease | None = None,
    ) -> ClosedLog:
        """One script (``_CLOSE_FROM``): the close, and the tail after this process's last
        offset read if the log up to its last entry is exactly what the chain of reads handed
        out (count, id and the digest of every entry's bytes), else the whole log."""
        check_log_start(start)
        check_log_start(sealed_start)
        cursor = self._log_cursors.pop((rollup, slot), None)
        vouch = cursor is not None and cursor[3] is not None and cursor[:2] == (start, sealed_start)
        prefix: list[Any] = (
            [cursor[2], cursor[0] + cursor[1], cursor[3].hexdigest()]
            if vouch and cursor is not None else ["", 0, ""]
        )  # fmt: skip
        closer = lease.rollup if lease is not None else rollup
        try:
            reply = await self._evalsha(
                "close_from",
                [
                    keys.slot_log(rollup, slot),
                    keys.slot_closed(rollup, slot),
                    keys.close_token(closer, slot),
                ],
                [token_of(lease), *prefix],
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the bid store failed: {exc}") from exc
        _check_fenced(reply, slot, token_of(lease), "close_log")
        entries = _flat_entries(reply[1])
        if int(reply[0]) == 1:
            return ClosedLog(start, sealed_start, _decode_entries(entries),
                             _decode_sealed(entries))  # fmt: skip
        return ClosedLog(0, 0, _decode_entries(entries), _decode_sealed(entries))

    async def find_bid_seq(self, rollup: int, slot: int, key: str) -> str | None:
        with _store_errors():
            seq = await self.redis.hget(keys.slot_index(rollup, slot), key)
        return _text(seq) if seq is not None else None

    async def save_result(
        self,
        result: SlotResult,
        history: SlotHistory | None = None,
        lease: CloseLease | None = None,
    ) -> bool:
        # Bids by log seq, not repeated, when the slot's log is here: it lives exactly as long as
        # the result (trim_slot removes both at once). A result built from a log kept elsewhere
        # (a replay, a benchmark) keeps its bids inline.
        with _store_errors():
            logged = bool(await self.redis.exists(keys.slot_log(result.rollup, result.slot)))
        data = orjson.dumps(codec.result_to_json(result, with_bids=not logged))
        if history is not None:  # the result and its history in one script (redis_history.py)
            with _store_errors():
                reply = await self._save_result_with_history(data, history, token_of(lease))
        else:
            with _store_errors():
                reply = await self._evalsha(
                    "save_result",
                    [
                        keys.slot_result(result.rollup, result.slot),
                        keys.result_slots(result.rollup),
                        keys.result_fence(result.rollup),
                    ],
                    [data, result.slot, token_of(lease)],
                )
        _check_fenced(reply, result.slot, token_of(lease), "save_result")
        return bool(reply)

    async def get_result(self, rollup: int, slot: int) -> SlotResult | None:
        with _store_errors():
            data = await self.redis.get(keys.slot_result(rollup, slot))
        if data is None:  # cheap: followers poll for a result that is not there yet
            return None
        doc = orjson.loads(data)
        if all("bid" in o for o in doc["outcomes"]):
            return codec.result_from_json(doc)
        # Bids by log seq. The log has another hash tag than the result (a cluster cannot read
        # both in one transaction), and trimming drops the result before the log: if a bid the
        # result names is missing from the log, the slot was trimmed meanwhile (result gone).
        with _store_errors():
            entries = await self.redis.xrange(keys.slot_log(rollup, slot))
        logged = {e.seq: e.event for e in _decode_entries(entries or [])}
        if any(o.get("seq") not in logged for o in doc["outcomes"] if "bid" not in o):
            with _store_errors():
                if await self.redis.get(keys.slot_result(rollup, slot)) is None:
                    return None
            raise StoreUnavailable(f"the log of slot {slot} lacks bids its result names")
        return codec.result_from_json(doc, logged)

    async def latest_result(self, rollup: int) -> SlotResult | None:
        with _store_errors():
            top = await self.redis.zrange(keys.result_slots(rollup), -1, -1)
        return await self.get_result(rollup, int(_text(top[0]))) if top else None

    async def list_result_slots(
        self, rollup: int, *, from_slot: int | None, to_slot: int | None, limit: int
    ) -> list[int]:
        hi = "+inf" if to_slot is None else to_slot
        lo = "-inf" if from_slot is None else from_slot
        with _store_errors():
            found = await self.redis.zrevrangebyscore(
                keys.result_slots(rollup), hi, lo, start=0, num=max(limit, 0)
            )
        return [int(_text(x)) for x in found]

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False
