"""The escrow ledger in memory (mixed into ``MemoryStore``); the rules are ``auction.ledger``'s.

Each method runs without an ``await`` between its checks and its writes, so on one event loop
it is atomic like the Redis store's scripts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from auction.errors import AlreadyApplied, StaleBalance
from auction.ledger import (
    Change,
    LedgerEntry,
    Withdrawal,
    check_hold,
    compute_hold_increase,
    compute_new_balances,
)


@dataclass
class _Ledger:
    balances: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    held: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    holds: dict[int, dict[str, tuple[str, int]]] = field(default_factory=dict)  # slot -> chain
    entries: list[LedgerEntry] = field(default_factory=list)  # in write (and id) order
    applied: set[str] = field(default_factory=set)
    withdrawals: dict[str, Withdrawal] = field(default_factory=dict)
    last_id: tuple[int, int] = (0, 0)


class MemoryLedger:
    """The ledger methods of ``MemoryStore``; see ``node.stores.base.Store`` for the contract."""

    _ledger_state: _Ledger | None = None  # created on first use

    @property
    def _ledger(self) -> _Ledger:
        if self._ledger_state is None:
            self._ledger_state = _Ledger()
        return self._ledger_state

    def _next_entry_id(self) -> str:
        led = self._ledger
        now = int(time.time() * 1000)
        last_ms, last_n = led.last_id
        led.last_id = (now, 0) if now > last_ms else (last_ms, last_n + 1)
        return f"{led.last_id[0]}-{led.last_id[1]}"

    async def apply_ledger(
        self, changes: Sequence[Change], *, once: str, at_ms: int,
        expect: tuple[str, int] | None = None,
    ) -> list[LedgerEntry]:
        led = self._ledger
        if once in led.applied:
            raise AlreadyApplied("this cause was applied before", once=once)
        if expect is not None and led.balances.get(expect[0], 0) != expect[1]:
            raise StaleBalance("the balance changed since it was read", account=expect[0],
                               balance_wei=str(led.balances.get(expect[0], 0)))
        after = compute_new_balances(led.balances, led.held, changes)  # raises, nothing done
        out = []
        running = dict(led.balances)
        for change in changes:
            running[change.account] = running.get(change.account, 0) + change.amount_wei
            entry = LedgerEntry(
                entry_id=self._next_entry_id(),
                account=change.account,
                kind=change.kind,
                amount_wei=change.amount_wei,
                balance_wei=running[change.account],
                cause=change.cause,
                at_ms=at_ms,
            )
            out.append(entry)
        led.balances.update(after)
        led.entries.extend(out)
        led.applied.add(once)
        return out

    async def is_applied(self, once: str) -> bool:
        return once in self._ledger.applied

    async def hold_bid(self, slot: int, chain: str, searcher: str, bid_wei: int) -> None:
        led = self._ledger
        holds = led.holds.setdefault(slot, {})
        current = holds.get(chain, (searcher, 0))[1]
        increase = compute_hold_increase(current, bid_wei)
        check_hold(led.balances.get(searcher, 0), led.held.get(searcher, 0), increase)
        if increase:
            holds[chain] = (searcher, bid_wei)
            led.held[searcher] += increase

    async def release_holds(self, slot: int) -> None:
        led = self._ledger
        for searcher, wei in led.holds.pop(slot, {}).values():
            led.held[searcher] -= wei
            if not led.held[searcher]:
                del led.held[searcher]

    async def get_balance(self, account: str) -> tuple[int, int]:
        led = self._ledger
        return led.balances.get(account, 0), led.held.get(account, 0)

    async def list_ledger_entries(
        self, account: str | None, *, before: str | None, limit: int
    ) -> list[LedgerEntry]:
        bound = _id_key(before) if before is not None else None
        out: list[LedgerEntry] = []
        for entry in reversed(self._ledger.entries):
            if len(out) >= limit:
                break
            if bound is not None and _id_key(entry.entry_id) >= bound:
                continue
            if account is None or entry.account == account:
                out.append(entry)
        return out

    async def save_withdrawal(
        self, account: str, amount_wei: int, requested_ms: int, ready_ms: int
    ) -> Withdrawal:
        led = self._ledger
        w = Withdrawal(f"w{len(led.withdrawals) + 1}", account, amount_wei, requested_ms, ready_ms)
        led.withdrawals[w.withdrawal_id] = w
        return w

    async def get_withdrawal(self, withdrawal_id: str) -> Withdrawal | None:
        return self._ledger.withdrawals.get(withdrawal_id)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, n = entry_id.partition("-")
    try:
        return int(ms), int(n or 0)
    except ValueError:
        return (0, 0)
