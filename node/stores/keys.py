"""Every Redis key this project uses, in one place. Shape: ``bs:<rollup>:<kind>:<id>``, with one
Redis Cluster hash tag per key (``{s<slot>}``, ``{r<rollup>}`` or ``{c}``; helpers below).

| key                           | type   | what                                          |
|-------------------------------|--------|-----------------------------------------------|
| bs:<rollup>:log:{s<slot>}     | stream | the slot's intake log; field ``e``: event JSON |
| bs:<rollup>:closed:{s<slot>}  | string | exists once the slot's intake is closed        |
| bs:<rollup>:limits:{s<slot>}  | hash   | n:<searcher> bundles, b:<searcher> bytes       |
| bs:<rollup>:index:{s<slot>}   | hash   | bid id, <searcher>:<bundle hash> -> seq;      |
|                               |        | u:<searcher>:<uuid> -> 1 (a bid under the uuid); |
|                               |        | cancel id -> seq (a cancel logged here)       |
| bs:<rollup>:closer:{s<slot>}  | string | "<token> <engine id>" of the close lease;     |
|                               |        | expires (lease); a slot's lease is its lowest |
|                               |        | rollup's (one process closes every rollup)    |
| bs:<rollup>:close_token:{s<slot>} | string | the slot's newest fencing token (INCR per |
|                               |        | lease taken; the close log's fence)           |
| bs:{r<rollup>}:result:<slot>  | string | the slot's result JSON                         |
| bs:{r<rollup>}:results        | zset   | every slot with a result (score = slot)        |
| bs:{r<rollup>}:trimming       | zset   | slots whose intake keys a trim has yet to drop |
| bs:{r<rollup>}:fence          | hash   | slot -> highest close fencing token seen by a  |
|                               |        | results write (docs/redis.md, "Close leases") |
| bs:cancel:<cancel id>         | string | [rollup, [slots]] a signed cancel went into; TTL |
| bs:sealed:{s<slot>}           | hash   | e:<searcher> -> its one encapsulation (hex),  |
|                               |        | c:<ciphertext hash> -> bid id; over every     |
|                               |        | rollup of the slot; TTL (decision 62)         |

Auction history (issue 5, docs/data-api.md), written with the result in one script:

| key                                        | type   | what                                     |
|--------------------------------------------|--------|------------------------------------------|
| bs:{r<rollup>}:history:slots               | zset   | every slot with a history (score = slot) |
| bs:{r<rollup>}:history:summary             | hash   | slot -> summary JSON                     |
| bs:{r<rollup>}:history:block               | hash   | slot -> block order JSON                 |
| bs:{r<rollup>}:history:stats               | hash   | slot -> compact stats row JSON           |
| bs:{r<rollup>}:history:span                | hash   | slot -> "<first id> <last id>" of bids   |
| bs:{r<rollup>}:history:committee           | hash   | slot -> the committee's result JSON      |
| bs:{r<rollup>}:history:failed              | zset   | slots whose committee signing failed     |
| bs:{r<rollup>}:history:bids                | stream | one compact entry per bid                |
| bs:{r<rollup>}:history:outcome:<o>         | stream | pointers (same ids) to bids by outcome   |
| bs:{r<rollup>}:history:searcher:<addr>:<o> | stream | pointers to a searcher's bids by outcome |
| bs:{r<rollup>}:history:cross               | stream | pointers to cross-rollup bundles' bids   |
| bs:{r<rollup>}:history:tally:<addr>        | hash   | a searcher's counters                    |
| bs:{r<rollup>}:history:bucket:<n>          | hash   | stats of slots 100n..100n+99, summed     |
| bs:{r<rollup>}:refusals:<slot>             | stream | refused bids of an open slot (1-day TTL) |

Only ``refusals`` (folded into the history when the slot closes), ``cancel`` (the replay
window of a signed cancel) and ``sealed`` (it bounds intake only while the slot is open) have a
TTL.

Retention (issue 5) trims whole slots: the keys above of the slot, its history entries and its
intake keys. Nothing else expires on its own, since an acknowledged bid must survive until its
slot's result is stored.
"""

from __future__ import annotations

PREFIX = "bs"

# --- Redis Cluster hash tags (docs/redis.md, "Redis Cluster") ----------------------------------
# Redis Cluster places a key by the text inside its first ``{...}`` only, and refuses a script or
# MULTI whose keys fall in different hash slots (CROSSSLOT). Every key is therefore built with
# exactly one tag, chosen by which keys one script touches together. A new key must use one of
# these tags (never its own braces): the tag of the keys it is written with atomically.


def hash_tag(group: str) -> str:
    """The ``{...}`` of a key: keys with the same tag live in one cluster hash slot."""
    return "{" + group + "}"


def slot_tag(slot: int) -> str:
    """Tag of a slot's intake keys, for **every** rollup: a cross-rollup bundle is appended to
    several rollups' logs of one slot in one script (``append_copies``)."""
    return hash_tag(f"s{slot}")


def rollup_tag(rollup: int) -> str:
    """Tag of a rollup's results, history and refusals: the result and its history are written
    in one script; different rollups land on different shards."""
    return hash_tag(f"r{rollup}")


# Tag of every committee record: a slot's records are written for all its rollups together with
# the per-rollup indexes (signed_slots, proposed) in one script. Small: one record per slot.
COMMITTEE_TAG = hash_tag("c")
# The escrow ledger is deployment-wide and its scripts touch several of its keys at once
# (balances, holds, the applied set, the entry streams): one tag, one shard.
LEDGER_TAG = hash_tag("l")


def slot_log(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:log:{slot_tag(slot)}"


def slot_closed(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:closed:{slot_tag(slot)}"


def slot_limits(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:limits:{slot_tag(slot)}"


def slot_index(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:index:{slot_tag(slot)}"


def index_uuid(searcher: str, replacement_uuid: str) -> str:
    """Field of a slot's index marking that ``searcher`` logged a bid under the uuid there."""
    return f"u:{searcher}:{replacement_uuid}"


def cancel_answer(cancel_id: str) -> str:
    """What a signed cancel did when first seen: it takes effect once (expires)."""
    return f"{PREFIX}:cancel:{cancel_id}"


def sealed_slot(slot: int) -> str:
    """Encrypted-bid bounds of a slot over every rollup: each searcher's one encapsulation and
    the ciphertexts logged (expires: it only matters while the slot takes bids)."""
    return f"{PREFIX}:sealed:{slot_tag(slot)}"


def slot_closer(rollup: int, slot: int) -> str:
    """Lease of the engine process closing the slot (PX lease; several engines share a store).
    The engine takes a slot's lease under its lowest rollup: one process closes every rollup."""
    return f"{PREFIX}:{rollup}:closer:{slot_tag(slot)}"


def close_token(rollup: int, slot: int) -> str:
    """The slot's newest close fencing token (raised by every lease taken anew, never lowered)."""
    return f"{PREFIX}:{rollup}:close_token:{slot_tag(slot)}"


def result_fence(rollup: int) -> str:
    """slot -> the highest close fencing token a results write of the slot carried."""
    return f"{PREFIX}:{rollup_tag(rollup)}:fence"


def slot_result(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:result:{slot}"


def result_slots(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:results"


def trimming_slots(rollup: int) -> str:
    """Slots whose result and history are trimmed but whose intake keys (another hash tag, so
    another script) may still exist: the next trim finishes them."""
    return f"{PREFIX}:{rollup_tag(rollup)}:trimming"


# --- auction history (api/history.py, node/stores/redis_history.py) ----------------------------


def history_slots(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:slots"


def history_summaries(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:summary"


def history_blocks(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:block"


def history_stats(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:stats"


def history_spans(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:span"


def history_committee(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:committee"


def history_failed(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:failed"


def history_bids(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:bids"


def history_by_outcome(rollup: int, outcome: str) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:outcome:{outcome}"


def history_cross(rollup: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:cross"


def history_by_searcher(rollup: int, searcher: str, outcome: str) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:searcher:{searcher}:{outcome}"


def history_tally(rollup: int, searcher: str) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:tally:{searcher}"


def history_bucket(rollup: int, bucket: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:history:bucket:{bucket}"


def slot_refusals(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup_tag(rollup)}:refusals:{slot}"


# --- signing committee (committee/records.py, node/stores/redis_committee.py) -------------------
# A slot is signed once for every rollup: its signed blocks (or failure records, or proposed
# blocks) are written for every rollup of the slot in one script, all or none.
# Every committee key has the one tag {c} (COMMITTEE_TAG): bs:{c}:<rollup>:...
# bs:<rollup>:signed:<slot>   string  the slot's signed block JSON (never expires)
# bs:<rollup>:signed_slots    zset    every slot with a signed block (score = slot)
# bs:<rollup>:failed:<slot>   string  the slot's failure record JSON (never expires)
# bs:<rollup>:proposed       hash    slot -> block hash proposed to the committee (once)
# bs:<rollup>:proposed_slots zset    every slot with a proposed block (score = slot)
# bs:<rollup>:partials:<slot> hash    <committee>:<member>:<root> -> valid partial JSON,
#                                     <committee>:<member> -> root of its first partial
# bs:<rollup>:evidence        stream  member evidence (invalid partials, equivocations), field e
# bs:{c}:fence                hash    slot -> highest close fencing token a committee write carried
# bs:{c}:opening:<slot>       string  a slot's opening record once its key exists (root, key,
#                                     certificate, unfunded ids; no plaintext; the first stays)


def signed_block(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:signed:{slot}"


def signed_slots(rollup: int) -> str:
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:signed_slots"


def failed_slot(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:failed:{slot}"


def proposed(rollup: int) -> str:
    """slot -> the block hash proposed to the committee for it (one per slot, never expires)."""
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:proposed"


def proposed_slots(rollup: int) -> str:
    """Every slot with a proposed block (score = slot): where a pending block is found."""
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:proposed_slots"


def slot_partials(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:partials:{slot}"


def member_evidence(rollup: int) -> str:
    return f"{PREFIX}:{COMMITTEE_TAG}:{rollup}:evidence"


def slot_opening(slot: int) -> str:
    """The opening record of a slot's sealed bids (``committee.sealedset.OpeningRecord``),
    deployment-wide: one key per slot opens every rollup's sealed bids."""
    return f"{PREFIX}:{COMMITTEE_TAG}:opening:{slot}"


def committee_fence() -> str:
    """slot -> the highest close fencing token a committee write of the slot carried."""
    return f"{PREFIX}:{COMMITTEE_TAG}:fence"


# --- the escrow ledger (auction/ledger.py, node/stores/redis_ledger.py) ------------------------
# Deployment-wide (no rollup): one searcher's deposit pays for bids on every rollup. Amounts are
# decimal strings (wei beyond 2**53: the scripts add and compare them as digit strings). Nothing
# here expires: the entries are the record.
# bs:{l}:ledger:balances          hash    account -> balance (the sum of its entries)
# bs:{l}:ledger:held              hash    searcher -> the sum of its holds
# bs:{l}:ledger:holds:<slot>      hash    <searcher>|<chain> -> the chain's hold in the slot
# bs:{l}:ledger:applied           set     once keys (block:<hash>, evidence:<id>, deposit:<ref>, …)
# bs:{l}:ledger:entries           stream  every entry (fields a, k, v, b, c, t)
# bs:{l}:ledger:account:<account> stream  the account's entries, under the same ids
# bs:{l}:ledger:withdrawals       hash    withdrawal id -> JSON
# bs:{l}:ledger:withdrawal_ids    string  counter of withdrawal ids


def ledger_balances() -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:balances"


def ledger_held() -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:held"


def ledger_holds(slot: int) -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:holds:{slot}"


def ledger_applied() -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:applied"


def ledger_entries() -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:entries"


def ledger_account(account: str) -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:account:{account}"


def ledger_withdrawals() -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:withdrawals"


def ledger_withdrawal_ids() -> str:
    return f"{PREFIX}:{LEDGER_TAG}:ledger:withdrawal_ids"
