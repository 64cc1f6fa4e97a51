"""Every Redis key this project uses, in one place. Shape: ``bs:<rollup>:<kind>:<id>``.

| key                        | type   | what                                          |
|----------------------------|--------|-----------------------------------------------|
| bs:<rollup>:log:<slot>     | stream | the slot's intake log; field ``e``: event JSON |
| bs:<rollup>:closed:<slot>  | string | exists once the slot's intake is closed        |
| bs:<rollup>:limits:<slot>  | hash   | n:<searcher> bundles, b:<searcher> bytes       |
| bs:<rollup>:index:<slot>   | hash   | bid id, <searcher>:<bundle hash> -> seq;      |
|                            |        | u:<searcher>:<uuid> -> 1 (a bid under the uuid) |
| bs:<rollup>:closer:<slot>  | string | the closing engine's id; expires (lease); a   |
|                            |        | slot's lease is its lowest rollup's (one      |
|                            |        | process closes every rollup of a slot)        |
| bs:<rollup>:result:<slot>  | string | the slot's result JSON                         |
| bs:<rollup>:results        | zset   | every slot with a result (score = slot)        |
| bs:cancel:<cancel id>      | string | [rollup, [slots]] a signed cancel went into; TTL |
| bs:sealed:<slot>           | hash   | e:<searcher> -> its one encapsulation (hex),  |
|                            |        | c:<ciphertext hash> -> bid id; over every     |
|                            |        | rollup of the slot; TTL (decision 62)         |

Auction history (issue 5, docs/data-api.md), written with the result in one script:

| key                                     | type   | what                                     |
|-----------------------------------------|--------|------------------------------------------|
| bs:<rollup>:history:slots               | zset   | every slot with a history (score = slot) |
| bs:<rollup>:history:summary             | hash   | slot -> summary JSON                     |
| bs:<rollup>:history:block               | hash   | slot -> block order JSON                 |
| bs:<rollup>:history:stats               | hash   | slot -> compact stats row JSON           |
| bs:<rollup>:history:span                | hash   | slot -> "<first id> <last id>" of bids   |
| bs:<rollup>:history:committee           | hash   | slot -> the committee's result JSON      |
| bs:<rollup>:history:failed              | zset   | slots whose committee signing failed     |
| bs:<rollup>:history:bids                | stream | one compact entry per bid                |
| bs:<rollup>:history:outcome:<o>         | stream | pointers (same ids) to bids by outcome   |
| bs:<rollup>:history:searcher:<addr>:<o> | stream | pointers to a searcher's bids by outcome |
| bs:<rollup>:history:cross               | stream | pointers to cross-rollup bundles' bids   |
| bs:<rollup>:history:tally:<addr>        | hash   | a searcher's counters                    |
| bs:<rollup>:history:bucket:<n>          | hash   | stats of slots 100n..100n+99, summed     |
| bs:<rollup>:refusals:<slot>             | stream | refused bids of an open slot (1-day TTL) |

Only ``refusals`` (folded into the history when the slot closes), ``cancel`` (the replay
window of a signed cancel) and ``sealed`` (it bounds intake only while the slot is open) have a
TTL.

Retention (issue 5) trims whole slots: the keys above of the slot, its history entries and its
intake keys. Nothing else expires on its own, since an acknowledged bid must survive until its
slot's result is stored.
"""

from __future__ import annotations

PREFIX = "bs"


def slot_log(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:log:{slot}"


def slot_closed(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:closed:{slot}"


def slot_limits(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:limits:{slot}"


def slot_index(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:index:{slot}"


def index_uuid(searcher: str, replacement_uuid: str) -> str:
    """Field of a slot's index marking that ``searcher`` logged a bid under the uuid there."""
    return f"u:{searcher}:{replacement_uuid}"


def cancel_answer(cancel_id: str) -> str:
    """What a signed cancel did when first seen: it takes effect once (expires)."""
    return f"{PREFIX}:cancel:{cancel_id}"


def sealed_slot(slot: int) -> str:
    """Encrypted-bid bounds of a slot over every rollup: each searcher's one encapsulation and
    the ciphertexts logged (expires: it only matters while the slot takes bids)."""
    return f"{PREFIX}:sealed:{slot}"


def slot_closer(rollup: int, slot: int) -> str:
    """Lease of the engine process closing the slot (PX lease; several engines share a store).
    The engine takes a slot's lease under its lowest rollup: one process closes every rollup."""
    return f"{PREFIX}:{rollup}:closer:{slot}"


def slot_result(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:result:{slot}"


def result_slots(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:results"


# --- auction history (api/history.py, node/stores/redis_history.py) ----------------------------


def history_slots(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:slots"


def history_summaries(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:summary"


def history_blocks(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:block"


def history_stats(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:stats"


def history_spans(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:span"


def history_committee(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:committee"


def history_failed(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:failed"


def history_bids(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:bids"


def history_by_outcome(rollup: int, outcome: str) -> str:
    return f"{PREFIX}:{rollup}:history:outcome:{outcome}"


def history_cross(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:history:cross"


def history_by_searcher(rollup: int, searcher: str, outcome: str) -> str:
    return f"{PREFIX}:{rollup}:history:searcher:{searcher}:{outcome}"


def history_tally(rollup: int, searcher: str) -> str:
    return f"{PREFIX}:{rollup}:history:tally:{searcher}"


def history_bucket(rollup: int, bucket: int) -> str:
    return f"{PREFIX}:{rollup}:history:bucket:{bucket}"


def slot_refusals(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:refusals:{slot}"


# --- signing committee (committee/records.py, node/stores/redis_committee.py) -------------------
# A slot is signed once for every rollup: its signed blocks (or failure records, or proposed
# blocks) are written for every rollup of the slot in one script, all or none.
# bs:<rollup>:signed:<slot>   string  the slot's signed block JSON (never expires)
# bs:<rollup>:signed_slots    zset    every slot with a signed block (score = slot)
# bs:<rollup>:failed:<slot>   string  the slot's failure record JSON (never expires)
# bs:<rollup>:proposed       hash    slot -> block hash proposed to the committee (once)
# bs:<rollup>:proposed_slots zset    every slot with a proposed block (score = slot)
# bs:<rollup>:partials:<slot> hash    <committee>:<member>:<root> -> valid partial JSON,
#                                     <committee>:<member> -> root of its first partial
# bs:<rollup>:evidence        stream  member evidence (invalid partials, equivocations), field e


def signed_block(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:signed:{slot}"


def signed_slots(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:signed_slots"


def failed_slot(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:failed:{slot}"


def proposed(rollup: int) -> str:
    """slot -> the block hash proposed to the committee for it (one per slot, never expires)."""
    return f"{PREFIX}:{rollup}:proposed"


def proposed_slots(rollup: int) -> str:
    """Every slot with a proposed block (score = slot): where a pending block is found."""
    return f"{PREFIX}:{rollup}:proposed_slots"


def slot_partials(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:partials:{slot}"


def member_evidence(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:evidence"
