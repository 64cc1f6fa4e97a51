"""Pausing CPython's cyclic garbage collector around a deadline's CPU-bound work.

A slot's close (the engine's ``compute_slot_results``) and a member's check of a 2,000-bid
proposal each allocate some 10^5 short-lived, acyclic objects: reference counting frees them
all, but the churn triggers collections that walk every live object of the process (the
engine's book, history, pools) and cost 15-25% of the close's CPU at 2,000 bids
(``bench/member_recheck.py`` and the close measured with and without, decision 82).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

# The young generation's threshold while serving: net tracked allocations between two young
# collections (CPython's default is 700). The intake allocates a few hundred short-lived
# objects a bid, most freed by reference counting before a collection could see them; at 700
# every few bids set off a young collection that walks every object then in flight (512 calls
# a connection), and every tenth of those the middle generation too. 50,000 collects the same
# garbage, 70 times less often (decision 156); cyclic garbage waits at most that many
# allocations, a few MB.
SERVING_GC_THRESHOLD = (50_000, 20, 10)

_lock = threading.Lock()
_pauses = 0


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block's duration.

    Counted, so concurrent users (threads: the in-process committee's members, the engine's
    close beside them) re-enable it only when all are done; a collector disabled by someone
    else stays disabled."""
    global _pauses
    with _lock:
        if _pauses == 0 and gc.isenabled():
            gc.disable()
            _pauses = 1
        elif _pauses > 0:
            _pauses += 1
    try:
        yield
    finally:
        with _lock:
            if _pauses > 0:
                _pauses -= 1
                if _pauses == 0:
                    gc.enable()


def freeze_for_serving() -> None:
    """Once a server has started: move what it loaded (libraries, compiled kernels, ~120,000
    objects that live as long as the process) out of every collection's scans, and collect
    the young generation less often (``SERVING_GC_THRESHOLD``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLD)
