from __future__ import annotations

import pytest

from auction.errors import InvalidParams, SlotClosed, SlotTooFarAhead
from auction.slots import (
    SlotClock,
    check_target_slot,
    compute_deadline_ms,
    compute_slot_at,
    compute_slot_start_ms,
)


@pytest.mark.parametrize("slot_ms", [250, 2000, 12_000])
def test_slot_boundaries(slot_ms):
    c = SlotClock(genesis_ms=1_000, slot_ms=slot_ms)
    for s in (0, 1, 57):
        start, deadline = compute_slot_start_ms(c, s), compute_deadline_ms(c, s)
        assert deadline - start == slot_ms
        assert compute_slot_at(c, start) == s
        assert compute_slot_at(c, deadline - 1) == s
        assert compute_slot_at(c, deadline) == s + 1


def test_bid_accepted_until_deadline_only():
    c = SlotClock(genesis_ms=0, slot_ms=1000)
    check_target_slot(c, 5, 5999, 2)
    with pytest.raises(SlotClosed):
        check_target_slot(c, 5, 6000, 2)
    with pytest.raises(SlotClosed):
        check_target_slot(c, 4, 5500, 2)
    check_target_slot(c, 7, 5500, 2)
    with pytest.raises(SlotTooFarAhead):
        check_target_slot(c, 8, 5500, 2)


def test_silly_slot_length_refused():
    with pytest.raises(InvalidParams):
        SlotClock(0, 0)
