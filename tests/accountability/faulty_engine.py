"""TEST ONLY: ``blockspace`` whose engine drops one searcher's acknowledged bids at close.

Run as ``python -m tests.accountability.faulty_engine serve ...`` with
``BLOCKSPACE_TEST_DROP_SEARCHER=<address>`` (without it, this is plain ``blockspace``): the
embedded store is replaced by one that, when a slot's log is closed, deletes that searcher's
bids from it first: a censoring operator that acknowledged them (and signed receipts) and then
left them out of the log it proposes. The fault exists only in this test module: nothing in the
engine's own code can turn it on (docs/accountability.md).
"""

from __future__ import annotations

import os
import sys

from auction.types import Bid, LoggedEvent
from node.stores.fencing import CloseLease
from node.stores.memory import MemoryStore

DROP_ENV = "BLOCKSPACE_TEST_DROP_SEARCHER"


class DroppingStore(MemoryStore):
    """The memory store, less the victim's bids in every log it closes."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim = victim.lower()

    async def close_slot(
        self, rollup: int, slot: int, lease: CloseLease | None = None
    ) -> list[LoggedEvent]:
        log = self._log(rollup, slot)
        log.events = [e for e in log.events
                      if not (isinstance(e.event, Bid) and e.event.searcher == self.victim)]
        return await super().close_slot(rollup, slot, lease)


def main() -> int:
    import api.app
    from api.cli import main as cli_main

    victim = os.environ.get(DROP_ENV, "")
    if not victim:  # no fault: exactly ``blockspace`` (the control run)
        return cli_main(sys.argv[1:])

    async def open_dropping_store(url: str, **_: object) -> MemoryStore:
        if url != "memory":
            raise ValueError("the censoring test engine runs on the memory store only")
        return DroppingStore(victim)

    api.app.open_store = open_dropping_store  # type: ignore[assignment]
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
