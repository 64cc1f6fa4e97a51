"""Close leases and fencing tokens: one engine process closes each slot, and a stale one cannot
write (docs/redis.md, "Close leases and fencing"; decision 110).

A slot's close is led by whoever holds its *close lease* (``Store.claim_close``). Taking the
lease anew (it was free, or its holder let it expire) returns a *fencing token* higher than
every token taken for the slot before; renewing it keeps the token. Every write of the close
carries the token (a ``CloseLease``) and is checked in the same atomic step as the write:

- the close log (the slot's ``{s<slot>}`` keys): refused if the token is older than the slot's
  newest token (``close_token``, in the same hash tag as the log);
- each rollup's result and history (``{r<rollup>}``) and the committee records of the slot
  (``{c}``: proposal, signed blocks, failure records): each tag keeps its own fence, the highest
  token a write of the slot carried there; a write with a lower token is refused, a higher one
  raises it. On a cluster a script touches one tag only, so a fence lives beside what it guards.

A new holder raises the fence in every tag it will write (``Store.raise_fences``) before it
reads anything of the slot. Why a stale holder S (token s, paused past its lease) can never
overwrite or duplicate what the new holder N (token n > s) writes: take any tag T. Either S's
write to T was applied before N raised T's fence, and then N's reads (all after its raise) see
it, and N adopts it (results and committee records are written once: N's own write of the
same record is refused as already there, and N follows what is stored); or it comes after,
and T refuses it (s < n). Each write and each fence check is one script on the node holding T,
so there is no interleaving inside either; a cluster failover that loses an acknowledged
write is outside this argument as it is outside every write's (``WAIT``, docs/redis.md).
The close is repeatable: the log, once closed, never changes, and the result is a pure
function of it and the signed heads, so N rebuilds exactly what S would have.

Token 0 (``None`` for a lease) is an unfenced write, checked by nothing: single-process callers,
replays, benchmarks, and the completion of a pending slot by whoever builds a later one (its
blocks are fixed by its proposal record, which refuses other blocks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from auction.errors import CloseFenced


@dataclass(frozen=True, slots=True)
class CloseLease:
    """A close lease held: the slot, the rollup it is held under, and its fencing token."""

    rollup: int
    slot: int
    token: int


def token_of(lease: CloseLease | None) -> int:
    """The token a write carries: 0 (unfenced) without a lease."""
    return lease.token if lease is not None else 0


def compute_fenced(slot: int, token: int, seen: int, where: str) -> CloseFenced:
    """The refusal of a stale close write (``seen``: the newer token the store holds)."""
    return CloseFenced(
        f"slot {slot}: a close write ({where}) with fencing token {token} refused; token "
        f"{seen} took the close over",
        slot=slot,
        token=token,
        seen=seen,
        where=where,
    )


# Redis: the fence check every guarded script starts with (one tag: the fence hash is beside
# what it guards). Returns false if ``token`` is older than the slot's fence; otherwise raises
# the fence to ``token`` and returns true. Token 0: unfenced.
FENCE_LUA = """
local function pass_fence(key, slot, token)
  local t = tonumber(token)
  if t == 0 then return true end
  local seen = tonumber(redis.call('HGET', key, slot) or '0')
  if t < seen then return false end
  if t > seen then redis.call('HSET', key, slot, token) end
  return true
end
"""
# The reply of a guarded script that refused a stale token.
FENCED_REPLY = -1

# KEYS: closer, close_token. ARGV: owner, lease ms. Returns the token (0: another holds it).
CLAIM_CLOSE_LUA = """
local held = redis.call('GET', KEYS[1])
if held then
  local sep = string.find(held, ' ', 1, true)
  if sep and string.sub(held, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(held, 1, sep - 1))
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return token
"""

# KEYS: a fence hash. ARGV: slot, token. 1, or FENCED_REPLY with the fence's token.
RAISE_FENCE_LUA = FENCE_LUA + """
if pass_fence(KEYS[1], ARGV[1], ARGV[2]) then return 1 end
return {-1, redis.call('HGET', KEYS[1], ARGV[1])}
"""


# The embedded store forgets the leases and fences of slots this far behind the newest claimed.
MEMORY_KEPT_SLOTS = 4096
MEMORY_SWEEP_EVERY = 256


class MemoryFences:
    """Leases and fences of the embedded store (mixed into ``MemoryStore``): the same contract
    as the Redis scripts, on a monotonic clock. One process holds an embedded store, but its
    contract is the shared one (several engines in one process, tests)."""

    _leases: dict[tuple[int, int], tuple[str, int, float]] | None = None  # owner, token, until
    _close_tokens: dict[tuple[int, int], int] | None = None  # (rollup, slot) -> newest token
    _fences: dict[tuple[str, int], int] | None = None  # (tag, slot) -> highest token
    lease_clock_s: Callable[[], float] = staticmethod(time.monotonic)

    def _fence_state(
        self,
    ) -> tuple[dict[tuple[int, int], tuple[str, int, float]], dict[tuple[int, int], int],
               dict[tuple[str, int], int]]:
        if self._leases is None or self._close_tokens is None or self._fences is None:
            self._leases, self._close_tokens, self._fences = {}, {}, {}
        return self._leases, self._close_tokens, self._fences

    async def claim_close(self, rollup: int, slot: int, owner: str, lease_ms: int) -> int:
        leases, tokens, fences = self._fence_state()
        now = self.lease_clock_s()
        if slot % MEMORY_SWEEP_EVERY == 0:  # bounded memory: slots this old are long closed
            floor = slot - MEMORY_KEPT_SLOTS
            for old in [k for k in leases if k[1] < floor]:
                del leases[old]
            for old in [k for k in tokens if k[1] < floor]:
                del tokens[old]
            for gone in [k for k in fences if k[1] < floor]:
                del fences[gone]
        held = leases.get((rollup, slot))
        if held is not None and held[2] > now:
            if held[0] != owner:
                return 0
            leases[(rollup, slot)] = (owner, held[1], now + lease_ms / 1000)
            return held[1]
        token = tokens[(rollup, slot)] = tokens.get((rollup, slot), 0) + 1
        leases[(rollup, slot)] = (owner, token, now + lease_ms / 1000)
        return token

    async def raise_fences(self, lease: CloseLease, rollups: Sequence[int]) -> None:
        for tag in [*(f"r{r}" for r in rollups), "c"]:
            self._pass_fence(tag, lease.slot, lease, "raise_fences")

    def _check_close_token(self, lease: CloseLease | None) -> None:
        """The close log's fence: refuse a token older than the slot's newest."""
        if lease is None:
            return
        _, tokens, _ = self._fence_state()
        newest = tokens.get((lease.rollup, lease.slot), 0)
        if lease.token < newest:
            raise compute_fenced(lease.slot, lease.token, newest, "close_log")

    def _pass_fence(self, tag: str, slot: int, lease: CloseLease | None, where: str) -> None:
        """Check a write against ``tag``'s fence for the slot and raise it (FENCE_LUA)."""
        if lease is None:
            return
        _, _, fences = self._fence_state()
        seen = fences.get((tag, slot), 0)
        if lease.token < seen:
            raise compute_fenced(slot, lease.token, seen, where)
        fences[(tag, slot)] = lease.token
