"""The signing committee's records in Redis (mixed into ``RedisStore``); keys in ``keys.py``.

- A signed block and a failure record exclude each other: a slot's records (one per rollup of
  the slot) are written by one Lua script that checks every rollup's keys first and writes them
  all or none, so a slot is published once, either way, for every rollup together.
- ``record_partial`` is one script: ``HSETNX`` of the (committee, member, signing root) field,
  then, if the member already had a partial for another root, an ``XADD`` of the equivocation
  evidence built from both records. Detection and storage cannot be separated by a crash.
- Nothing here has a TTL: signed blocks, failures, partials and evidence are the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from auction.errors import StoreUnavailable
from committee.records import (
    EVIDENCE_EQUIVOCATION,
    FailedSlot,
    MemberEvidence,
    PartialRecord,
    SignedBlock,
    compute_equivocation_detail,
    evidence_from_json,
    evidence_to_json,
    failed_slot_from_json,
    failed_slot_to_json,
    partial_from_json,
    partial_to_json,
    signed_block_from_store,
    signed_block_to_json,
)
from committee.sealedset import OpeningRecord, opening_record_from_json, opening_record_to_json
from node.stores import keys
from node.stores.fencing import FENCE_LUA, FENCED_REPLY, CloseLease, compute_fenced, token_of

# Each script below guards its writes with the slot's committee fence (the last KEY; the
# fencing token is the last ARGV, 0: unfenced; node/stores/fencing.py) and replies
# {-1, newer token} when refused.
_FENCED = FENCE_LUA + """
if not pass_fence(KEYS[#KEYS], ARGV[1], ARGV[#ARGV]) then
  return {-1, redis.call('HGET', KEYS[#KEYS], ARGV[1])}
end
local n = (#KEYS - 1) / 3
"""

# KEYS: per rollup of the slot (signed, failed, signed_slots), fence. ARGV: slot, then each
# rollup's signed block JSON in KEYS order, token. All or nothing.
_SAVE_SIGNED = _FENCED + """
for i = 0, n - 1 do
  if redis.call('EXISTS', KEYS[3 * i + 1]) == 1 or redis.call('EXISTS', KEYS[3 * i + 2]) == 1 then
    return 0
  end
end
for i = 0, n - 1 do
  redis.call('SET', KEYS[3 * i + 1], ARGV[i + 2])
  redis.call('ZADD', KEYS[3 * i + 3], tonumber(ARGV[1]), ARGV[1])
end
return 1
"""

# KEYS: per rollup of the slot (failed, signed, proposed), fence. ARGV: slot, "1" if a
# proposed slot may be failed, then each rollup's failure JSON in KEYS order, token. All or
# nothing.
_SAVE_FAILED = _FENCED + """
for i = 0, n - 1 do
  if redis.call('EXISTS', KEYS[3 * i + 1]) == 1 or redis.call('EXISTS', KEYS[3 * i + 2]) == 1 then
    return 0
  end
  if ARGV[2] ~= '1' and redis.call('HEXISTS', KEYS[3 * i + 3], ARGV[1]) == 1 then return 0 end
end
for i = 0, n - 1 do redis.call('SET', KEYS[3 * i + 1], ARGV[i + 3]) end
return 1
"""

# KEYS: per rollup of the slot (failed, proposed, proposed_slots), fence. ARGV: slot, then each
# rollup's block hash in KEYS order, token. A slot gets one proposed block per rollup, never
# after a failure record; the same blocks again are fine. All or nothing.
_CLAIM_PROPOSAL = _FENCED + """
for i = 0, n - 1 do
  if redis.call('EXISTS', KEYS[3 * i + 1]) == 1 then return 0 end
  local current = redis.call('HGET', KEYS[3 * i + 2], ARGV[1])
  if current and current ~= ARGV[i + 2] then return 0 end
end
for i = 0, n - 1 do
  redis.call('HSET', KEYS[3 * i + 2], ARGV[1], ARGV[i + 2])
  redis.call('ZADD', KEYS[3 * i + 3], tonumber(ARGV[1]), ARGV[1])
end
return 1
"""

# KEYS: partials, evidence. ARGV: "<committee>:<member>", root hex, record json, evidence prefix
# (the evidence JSON up to and including '"first":'). Returns nil, or {evidence id, first json}.
_RECORD_PARTIAL = """
local field = ARGV[1] .. ':' .. ARGV[2]
if redis.call('HSETNX', KEYS[1], field, ARGV[3]) == 0 then return false end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return false end
local first_root = redis.call('HGET', KEYS[1], ARGV[1])
local first = redis.call('HGET', KEYS[1], ARGV[1] .. ':' .. first_root)
local id = redis.call('XADD', KEYS[2], '*', 'e', ARGV[4] .. first .. ',"second":' .. ARGV[3] .. '}')
return {id, first}
"""

_SCRIPTS = {
    "save_signed": _SAVE_SIGNED,
    "save_failed": _SAVE_FAILED,
    "claim_proposal": _CLAIM_PROPOSAL,
    "record_partial": _RECORD_PARTIAL,
}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCommittee:
    """The committee methods of ``RedisStore``; see ``node.stores.base.Store`` for the contract."""

    _committee_sha: dict[str, str] | None = None

    if TYPE_CHECKING:

        @property
        def redis(self) -> aioredis.Redis: ...  # provided by RedisStore

    async def _committee_script(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        if self._committee_sha is None:
            self._committee_sha = {}
        try:
            sha = self._committee_sha.get(name)
            if sha is None:
                sha = self._committee_sha[name] = await self.redis.script_load(_SCRIPTS[name])
            try:
                return await self.redis.evalsha(sha, len(keys_), *keys_, *args)
            except NoScriptError:  # a restarted server lost its script cache: load, retry once
                sha = self._committee_sha[name] = await self.redis.script_load(_SCRIPTS[name])
                return await self.redis.evalsha(sha, len(keys_), *keys_, *args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc

    async def _committee_get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return value if isinstance(value, bytes) else None

    async def _fenced_script(
        self, name: str, keys_: list[str], args: list[Any], lease: CloseLease | None, slot: int
    ) -> bool:
        """Run a committee write under the slot's committee fence; CloseFenced if stale."""
        token = token_of(lease)
        reply = await self._committee_script(
            name, [*keys_, keys.committee_fence()], [*args, token]
        )
        if isinstance(reply, list) and len(reply) == 2 and reply[0] == FENCED_REPLY:
            raise compute_fenced(slot, token, int(reply[1] or 0), name)
        return bool(reply)

    async def save_signed_blocks(
        self, blocks: Sequence[SignedBlock], lease: CloseLease | None = None
    ) -> bool:
        if not blocks:
            return False
        slot = blocks[0].block.slot
        keys_: list[str] = []
        for b in blocks:
            r = b.block.rollup
            keys_ += [keys.signed_block(r, slot), keys.failed_slot(r, slot), keys.signed_slots(r)]
        docs = [orjson.dumps(signed_block_to_json(b)) for b in blocks]
        return await self._fenced_script("save_signed", keys_, [slot, *docs], lease, slot)

    async def get_signed_block(self, rollup: int, slot: int) -> SignedBlock | None:
        data = await self._committee_get(keys.signed_block(rollup, slot))
        return signed_block_from_store(orjson.loads(data)) if data is not None else None

    async def latest_signed_block(self, rollup: int) -> SignedBlock | None:
        try:
            top = await self.redis.zrange(keys.signed_slots(rollup), -1, -1)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return await self.get_signed_block(rollup, int(_text(top[0]))) if top else None

    async def save_failed_slots(
        self,
        failed: Sequence[FailedSlot],
        *,
        proposed_ok: bool = False,
        lease: CloseLease | None = None,
    ) -> bool:
        if not failed:
            return False
        slot = failed[0].slot
        keys_: list[str] = []
        for f in failed:
            keys_ += [keys.failed_slot(f.rollup, slot), keys.signed_block(f.rollup, slot),
                      keys.proposed(f.rollup)]
        docs = [orjson.dumps(failed_slot_to_json(f)) for f in failed]
        return await self._fenced_script(
            "save_failed", keys_, [slot, "1" if proposed_ok else "0", *docs], lease, slot
        )

    async def claim_proposal(
        self, slot: int, blocks: Sequence[tuple[int, str]], lease: CloseLease | None = None
    ) -> bool:
        keys_: list[str] = []
        for rollup, _ in blocks:
            keys_ += [keys.failed_slot(rollup, slot), keys.proposed(rollup),
                      keys.proposed_slots(rollup)]
        return await self._fenced_script(
            "claim_proposal", keys_, [slot, *(h for _, h in blocks)], lease, slot
        )

    async def list_proposed(self, rollup: int, from_slot: int, limit: int) -> list[tuple[int, str]]:
        try:
            slots = await self.redis.zrangebyscore(
                keys.proposed_slots(rollup), from_slot, "+inf", start=0, num=max(limit, 0)
            )
            if not slots:
                return []
            names = [_text(x) for x in slots]
            hashes = await self.redis.hmget(keys.proposed(rollup), names)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return [(int(n), _text(h)) for n, h in zip(names, hashes, strict=True) if h]

    async def get_failed_slot(self, rollup: int, slot: int) -> FailedSlot | None:
        data = await self._committee_get(keys.failed_slot(rollup, slot))
        return failed_slot_from_json(orjson.loads(data)) if data is not None else None

    async def record_partial(self, partial: PartialRecord) -> MemberEvidence | None:
        member_key = f"{partial.committee_id.hex()}:{partial.member}"
        record = orjson.dumps(partial_to_json(partial))
        # Everything of the evidence but the two records, which the script splices in.
        detail = compute_equivocation_detail(partial.member, partial.slot)
        head = {
            "kind": EVIDENCE_EQUIVOCATION,
            "rollup": partial.rollup,
            "slot": partial.slot,
            "member": partial.member,
            "committee_id": "0x" + partial.committee_id.hex(),
            "detail": detail,
            "recorded_ms": partial.received_ms,
        }
        prefix = orjson.dumps(head)[:-1] + b',"first":'
        reply = await self._committee_script(
            "record_partial",
            [
                keys.slot_partials(partial.rollup, partial.slot),
                keys.member_evidence(partial.rollup),
            ],
            [member_key, partial.signing_root.hex(), record, prefix],
        )
        if not reply:
            return None
        first = partial_from_json(orjson.loads(reply[1]))
        return MemberEvidence(
            kind=EVIDENCE_EQUIVOCATION,
            rollup=partial.rollup,
            slot=partial.slot,
            member=partial.member,
            committee_id=partial.committee_id,
            detail=detail,
            recorded_ms=partial.received_ms,
            first=first,
            second=partial,
        )

    async def list_partials(self, rollup: int, slot: int) -> list[PartialRecord]:
        try:
            fields = await self.redis.hgetall(keys.slot_partials(rollup, slot))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        # Fields <committee>:<member>:<root> hold records; <committee>:<member> a first root.
        records = [
            partial_from_json(orjson.loads(v))
            for k, v in fields.items()
            if _text(k).count(":") == 2
        ]
        return sorted(records, key=lambda p: (p.member, p.received_ms))

    async def save_evidence(self, evidence: MemberEvidence) -> str:
        try:
            eid = await self.redis.xadd(
                keys.member_evidence(evidence.rollup),
                {"e": orjson.dumps(evidence_to_json(evidence))},
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        return _text(eid)

    async def list_evidence(
        self, rollup: int, *, before: str | None, limit: int
    ) -> list[tuple[str, MemberEvidence]]:
        if limit <= 0:
            return []
        try:
            entries = await self.redis.xrevrange(
                keys.member_evidence(rollup),
                max="+" if before is None else f"({before}",
                min="-",
                count=limit,
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc
        out: list[tuple[str, MemberEvidence]] = []
        for eid, fields in entries or ():
            data: Any = (fields or {})[b"e"]
            out.append((_text(eid), evidence_from_json(orjson.loads(data))))
        return out

    async def save_slot_opening(self, slot: int, record: OpeningRecord) -> bool:
        doc = orjson.dumps(opening_record_to_json(record))
        try:
            return bool(await self.redis.set(keys.slot_opening(slot), doc, nx=True))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store failed: {exc}") from exc

    async def get_slot_opening(self, slot: int) -> OpeningRecord | None:
        data = await self._committee_get(keys.slot_opening(slot))
        return opening_record_from_json(orjson.loads(data)) if data is not None else None
