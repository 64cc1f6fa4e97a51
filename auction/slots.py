"""Slot arithmetic. Slot s of a rollup runs from ``start(s)`` to its deadline ``start(s + 1)``.

Time is always an argument (``now_ms``); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from auction.errors import InvalidParams, SlotClosed, SlotTooFarAhead


@dataclass(frozen=True, slots=True)
class SlotClock:
    genesis_ms: int
    slot_ms: int

    def __post_init__(self) -> None:
        if not 50 <= self.slot_ms <= 3_600_000:
            raise InvalidParams("slot length must be between 50 ms and one hour")


def compute_slot_at(clock: SlotClock, now_ms: int) -> int:
    """The slot whose auction is open at ``now_ms`` (slot 0 opens at genesis)."""
    return max(0, (now_ms - clock.genesis_ms) // clock.slot_ms)


def compute_slot_start_ms(clock: SlotClock, slot: int) -> int:
    return clock.genesis_ms + slot * clock.slot_ms


def compute_deadline_ms(clock: SlotClock, slot: int) -> int:
    """Bids for ``slot`` are accepted strictly before this instant."""
    return clock.genesis_ms + (slot + 1) * clock.slot_ms


def compute_slot_timestamp(clock: SlotClock, slot: int) -> int:
    """The block timestamp (seconds) of ``slot``: its deadline, rounded down to a second."""
    return compute_deadline_ms(clock, slot) // 1000


def check_target_slot(clock: SlotClock, slot: int, now_ms: int, max_slots_ahead: int) -> None:
    """Raise unless a bid received at ``now_ms`` may still target ``slot``."""
    current = compute_slot_at(clock, now_ms)
    # Verify the slot's auction has not closed
    if slot < current or now_ms >= compute_deadline_ms(clock, slot):
        raise SlotClosed(
            f"slot {slot} is closed; the open slot is {current}", slot=slot, open_slot=current
        )
    # Verify the slot is not too far ahead
    if slot > current + max_slots_ahead:
        raise SlotTooFarAhead(
            f"slot {slot} is more than {max_slots_ahead} slots ahead of the open slot {current}",
            slot=slot,
            open_slot=current,
        )
