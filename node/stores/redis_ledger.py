"""The escrow ledger in Redis (mixed into ``RedisStore``); keys in ``keys.py``.

Every ledger change is one Lua script: it checks the once key and every balance, then appends
the entries and updates the balances, or returns a refusal having written nothing. Wei amounts
pass 2**53, where Lua's numbers stop being exact, so balances are decimal strings and the
scripts add, subtract and compare them digit-wise (seven digits at a time). Durability is the
store's: the AOF with the configured fsync policy (docs/redis.md), like the bid logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from auction.errors import (
    AlreadyApplied,
    InsufficientBalance,
    InsufficientDeposit,
    StaleBalance,
    StoreUnavailable,
    WithdrawalExceedsFreeBalance,
)
from auction.ledger import (
    Change,
    LedgerEntry,
    Withdrawal,
    cause_from_json,
    cause_to_json,
    withdrawal_from_json,
    withdrawal_to_json,
)
from node.stores import keys

# Non-negative integers as canonical decimal strings ("0", no leading zeros).
_BIGNUM = """
local function strip(s)
  local r = string.gsub(s, '^0+', '')
  if r == '' then return '0' end
  return r
end
local function cmp(a, b)
  if #a ~= #b then if #a < #b then return -1 else return 1 end end
  if a == b then return 0 end
  if a < b then return -1 else return 1 end
end
local function limb(s, i)
  if i < 1 then return 0 end
  return tonumber(string.sub(s, math.max(1, i - 6), i))
end
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = limb(a, i) + limb(b, j) + carry
    if s >= 10000000 then carry = 1; s = s - 10000000 else carry = 0 end
    table.insert(out, 1, string.format('%07d', s))
    i = i - 7; j = j - 7
  end
  return strip(table.concat(out))
end
local function sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local d = limb(a, i) - limb(b, j) - borrow
    if d < 0 then d = d + 10000000; borrow = 1 else borrow = 0 end
    table.insert(out, 1, string.format('%07d', d))
    i = i - 7; j = j - 7
  end
  return strip(table.concat(out))
end
"""

# KEYS: balances, held, applied, entries, then each change's account stream. ARGV: once key,
# at_ms, the account whose balance is expected ('' for none) and that balance, then per
# change: account, kind, signed amount, cause JSON, keep_free ("1"/"0").
# Reply: {"ok", id, balance after, …}, {"!stale_balance", balance} or
# {"!code", index, balance before, floor}.
_APPLY = _BIGNUM + """
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {'!already_applied'} end
if ARGV[3] ~= '' then
  local current = redis.call('HGET', KEYS[1], ARGV[3]) or '0'
  if cmp(current, ARGV[4]) ~= 0 then return {'!stale_balance', current} end
end
local n = #KEYS - 4
local bal, after = {}, {}
for i = 0, n - 1 do
  local a = 5 + 5 * i
  local acct, amt, keep = ARGV[a], ARGV[a + 2], ARGV[a + 4]
  local before = bal[acct] or redis.call('HGET', KEYS[1], acct) or '0'
  local new = nil
  if string.sub(amt, 1, 1) == '-' then
    local mag = string.sub(amt, 2)
    if cmp(before, mag) >= 0 then new = sub(before, mag) end
  else
    new = add(before, amt)
  end
  local floor = '0'
  if keep == '1' then floor = redis.call('HGET', KEYS[2], acct) or '0' end
  if new == nil or cmp(new, floor) < 0 then
    local code = '!insufficient_balance'
    if keep == '1' then code = '!withdrawal_exceeds_free_balance' end
    return {code, tostring(i), before, floor}
  end
  bal[acct] = new
  after[i + 1] = new
end
local ids = {'ok'}
for i = 0, n - 1 do
  local a = 5 + 5 * i
  redis.call('HSET', KEYS[1], ARGV[a], after[i + 1])
  local fields = {'a', ARGV[a], 'k', ARGV[a + 1], 'v', ARGV[a + 2], 'b', after[i + 1],
                  'c', ARGV[a + 3], 't', ARGV[2]}
  local id = redis.call('XADD', KEYS[4], '*', unpack(fields))
  redis.call('XADD', KEYS[5 + i], id, unpack(fields))
  ids[2 * i + 2] = id
  ids[2 * i + 3] = after[i + 1]
end
redis.call('SADD', KEYS[3], ARGV[1])
return ids
"""

# A batch of holds in one call (group commit, like the bids' appends). Per hold i:
# KEYS[3i+1..3i+3] = balances, held, holds:<slot>; ARGV[3i+1..3i+3] = searcher, chain, bid_wei.
# Each hold is checked and applied on its own, in order; the reply holds one entry per hold:
# "ok", or {"!insufficient_deposit", balance, held}.
_HOLD = _BIGNUM + """
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local bk, hk, sk = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local who, chain, wei = ARGV[3 * i + 1], ARGV[3 * i + 2], ARGV[3 * i + 3]
  local cur = redis.call('HGET', sk, chain) or '0'
  out[i + 1] = 'ok'
  if cmp(wei, cur) > 0 then
    local held = redis.call('HGET', hk, who) or '0'
    local bal = redis.call('HGET', bk, who) or '0'
    local newheld = add(held, sub(wei, cur))
    if cmp(newheld, bal) > 0 then
      out[i + 1] = {'!insufficient_deposit', bal, held}
    else
      redis.call('HSET', sk, chain, wei)
      redis.call('HSET', hk, who, newheld)
    end
  end
end
return out
"""

# Holds per batch (one script call); more wait for the next.
MAX_HOLD_BATCH = 512

# KEYS: held, holds:<slot>. Each chain's field starts with its searcher and "|".
_RELEASE = _BIGNUM + """
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local who = string.match(all[i], '^([^|]*)|')
  local left = sub(redis.call('HGET', KEYS[1], who) or '0', all[i + 1])
  if left == '0' then
    redis.call('HDEL', KEYS[1], who)
  else
    redis.call('HSET', KEYS[1], who, left)
  end
end
redis.call('DEL', KEYS[2])
return 'ok'
"""

_SCRIPTS = {"apply": _APPLY, "hold": _HOLD, "release": _RELEASE}

# A queued hold: (slot, chain, searcher, bid_wei) and the caller's future.
_PendingHold = tuple[tuple[int, str, str, int], "asyncio.Future[Any]"]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: object, fields: dict[Any, Any]) -> LedgerEntry:
    f = {_text(k): _text(v) for k, v in fields.items()}
    return LedgerEntry(
        entry_id=_text(entry_id),
        account=f["a"],
        kind=f["k"],
        amount_wei=int(f["v"]),
        balance_wei=int(f["b"]),
        cause=cause_from_json(orjson.loads(f["c"])),
        at_ms=int(f["t"]),
    )


class RedisLedger:
    """The ledger methods of ``RedisStore``; see ``node.stores.base.Store`` for the contract."""

    _ledger_sha: dict[str, str] | None = None
    _hold_queue: asyncio.Queue[_PendingHold] | None = None
    _hold_flusher: asyncio.Task[None] | None = None

    if TYPE_CHECKING:

        @property
        def redis(self) -> aioredis.Redis: ...  # provided by RedisStore

    async def _ledger_script(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        if self._ledger_sha is None:
            self._ledger_sha = {}
        try:
            sha = self._ledger_sha.get(name)
            if sha is None:
                sha = self._ledger_sha[name] = await self.redis.script_load(_SCRIPTS[name])
            try:
                return await self.redis.evalsha(sha, len(keys_), *keys_, *args)
            except NoScriptError:  # a restarted server lost its script cache: load, retry once
                sha = self._ledger_sha[name] = await self.redis.script_load(_SCRIPTS[name])
                return await self.redis.evalsha(sha, len(keys_), *keys_, *args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc

    async def apply_ledger(
        self, changes: Sequence[Change], *, once: str, at_ms: int,
        expect: tuple[str, int] | None = None,
    ) -> list[LedgerEntry]:
        keys_ = [
            keys.ledger_balances(),
            keys.ledger_held(),
            keys.ledger_applied(),
            keys.ledger_entries(),
            *(keys.ledger_account(c.account) for c in changes),
        ]
        expected = (expect[0], str(expect[1])) if expect is not None else ("", "")
        args: list[Any] = [once, at_ms, *expected]
        for c in changes:
            cause = orjson.dumps(cause_to_json(c.cause))
            args += [c.account, c.kind, str(c.amount_wei), cause, "1" if c.keep_free else "0"]
        reply = [_text(x) for x in await self._ledger_script("apply", keys_, args)]
        if reply[0] == "!already_applied":
            raise AlreadyApplied("this cause was applied before", once=once)
        if reply[0] == "!stale_balance" and expect is not None:
            raise StaleBalance("the balance changed since it was read", account=expect[0],
                               balance_wei=reply[1])
        if reply[0].startswith("!"):
            data = {"index": int(reply[1]), "account": changes[int(reply[1])].account,
                    "balance_wei": reply[2]}
            if reply[0] == "!withdrawal_exceeds_free_balance":
                free = max(int(reply[2]) - int(reply[3]), 0)
                raise WithdrawalExceedsFreeBalance(
                    "the amount is above the free balance", free_wei=str(free), **data
                )
            raise InsufficientBalance("the amount is above the balance", **data)
        ids, balances = reply[1::2], reply[2::2]
        return [
            LedgerEntry(entry_id, c.account, c.kind, c.amount_wei, int(b), c.cause, at_ms)
            for c, entry_id, b in zip(changes, ids, balances, strict=True)
        ]

    async def is_applied(self, once: str) -> bool:
        try:
            return bool(await self.redis.sismember(keys.ledger_applied(), once))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc

    async def hold_bid(self, slot: int, chain: str, searcher: str, bid_wei: int) -> None:
        """Queued and sent in batches (one script call each), like the bids' appends: one
        round trip per call per bid would cost intake its group commit."""
        if self._hold_queue is None:
            self._hold_queue = asyncio.Queue()
            self._hold_flusher = asyncio.create_task(self._flush_holds(), name="redis-holds")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._hold_queue.put_nowait(((slot, chain, searcher, bid_wei), fut))
        reply = await fut
        if isinstance(reply, list):
            balance, held = int(_text(reply[1])), int(_text(reply[2]))
            raise InsufficientDeposit(
                "the bid is above the searcher's free balance",
                free_wei=str(max(balance - held, 0)),
                balance_wei=str(balance),
            )

    async def _flush_holds(self) -> None:
        """Send every queued hold in batches of at most MAX_HOLD_BATCH, each one script call;
        a failed call fails its batch's holds (StoreUnavailable), never the flusher."""
        queue = self._hold_queue
        assert queue is not None
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < MAX_HOLD_BATCH:
                batch.append(queue.get_nowait())
            keys_: list[str] = []
            args: list[Any] = []
            for (slot, chain, searcher, bid_wei), _ in batch:
                keys_ += [keys.ledger_balances(), keys.ledger_held(), keys.ledger_holds(slot)]
                args += [searcher, chain, str(bid_wei)]
            try:
                replies = await self._ledger_script("hold", keys_, args)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreUnavailable("store closing; bid not held"))
                raise
            except Exception as exc:
                error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            for (_, fut), reply in zip(batch, replies, strict=True):
                if not fut.done():
                    fut.set_result(reply)

    async def _close_ledger(self) -> None:
        """Stop the hold flusher; holds still queued are refused (StoreUnavailable)."""
        if self._hold_flusher is not None:
            self._hold_flusher.cancel()
            try:
                await self._hold_flusher
            except (asyncio.CancelledError, Exception):
                pass
            self._hold_flusher = None
        while self._hold_queue is not None and not self._hold_queue.empty():
            _, fut = self._hold_queue.get_nowait()
            if not fut.done():
                fut.set_exception(StoreUnavailable("store closing; bid not held"))
        self._hold_queue = None

    async def release_holds(self, slot: int) -> None:
        await self._ledger_script("release", [keys.ledger_held(), keys.ledger_holds(slot)], [])

    async def get_balance(self, account: str) -> tuple[int, int]:
        try:
            balance = await self.redis.hget(keys.ledger_balances(), account)
            held = await self.redis.hget(keys.ledger_held(), account)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return int(_text(balance or b"0")), int(_text(held or b"0"))

    async def list_ledger_entries(
        self, account: str | None, *, before: str | None, limit: int
    ) -> list[LedgerEntry]:
        if limit <= 0:
            return []
        key = keys.ledger_entries() if account is None else keys.ledger_account(account)
        try:
            rows = await self.redis.xrevrange(
                key, max="+" if before is None else f"({before}", min="-", count=limit
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return [_entry(eid, fields or {}) for eid, fields in rows or ()]

    async def save_withdrawal(
        self, account: str, amount_wei: int, requested_ms: int, ready_ms: int
    ) -> Withdrawal:
        try:
            n = await self.redis.incr(keys.ledger_withdrawal_ids())
            w = Withdrawal(f"w{n}", account, amount_wei, requested_ms, ready_ms)
            await self.redis.hset(
                keys.ledger_withdrawals(), w.withdrawal_id, orjson.dumps(withdrawal_to_json(w))
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return w

    async def get_withdrawal(self, withdrawal_id: str) -> Withdrawal | None:
        try:
            raw = await self.redis.hget(keys.ledger_withdrawals(), withdrawal_id)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return withdrawal_from_json(orjson.loads(raw)) if raw else None
