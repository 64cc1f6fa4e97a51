"""Every Redis key this project uses, in one place. Shape: ``bs:<rollup>:<kind>:<id>``.

| key                        | type   | what                                          |
|----------------------------|--------|-----------------------------------------------|
| bs:<rollup>:log:<slot>     | stream | the slot's intake log; field ``e``: event JSON |
| bs:<rollup>:closed:<slot>  | string | exists once the slot's intake is closed        |
| bs:<rollup>:limits:<slot>  | hash   | n:<searcher> bundles, b:<searcher> bytes       |
| bs:<rollup>:index:<slot>   | hash   | bid id, <searcher>:<bundle hash> -> seq        |
| bs:<rollup>:result:<slot>  | string | the slot's result JSON                         |
| bs:<rollup>:results        | zset   | every slot with a result (score = slot)        |

No key has a TTL.

Retention (issue 5) trims whole slots; nothing here expires on its own, since an acknowledged bid
must survive until its slot's result is stored.
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


def slot_result(rollup: int, slot: int) -> str:
    return f"{PREFIX}:{rollup}:result:{slot}"


def result_slots(rollup: int) -> str:
    return f"{PREFIX}:{rollup}:results"
