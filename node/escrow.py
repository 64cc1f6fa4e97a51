"""The settlement seam: the escrow and stake operations the engine needs, behind one interface.

``Escrow`` names what an on-chain escrow and stake contract would do (docs/accountability.md,
"Settlement seam"): credit a deposit (a bridge observed it), hold a bid, debit a signed block's
winners, slash from evidence, execute a withdrawal after its delay. ``StoreEscrow`` implements
it on the engine's store (memory or Redis); a contract client could replace it without the
engine, the intake or the API changing. Every rule is ``auction.ledger``'s; this adds the store.
"""

from __future__ import annotations

from typing import Protocol

from auction.errors import (
    AlreadyApplied,
    EvidenceAlreadyApplied,
    StaleBalance,
    WithdrawalExceedsFreeBalance,
    WithdrawalNotFound,
)
from auction.ledger import (
    DEPOSIT,
    SLASH,
    Cause,
    Change,
    LedgerEntry,
    Withdrawal,
    check_account,
    check_address,
    compute_block_changes,
    compute_chain_key,
    compute_once_key,
    compute_slash_changes,
    compute_withdrawal_change,
)
from auction.types import Bid, Block
from node.stores.base import Store

# Reads and compare-and-set attempts of one slash before giving up (each attempt loses only to
# another change of the offender's stake: another slash, a top-up).
SLASH_ATTEMPTS = 16

class Escrow(Protocol):
    """What an escrow and stake contract does for the engine (one call each)."""

    async def credit_deposit(
        self, account: str, amount_wei: int, ref: str, at_ms: int, *, kind: str = DEPOSIT
    ) -> LedgerEntry: ...

    async def hold_bid(self, bid: Bid) -> None: ...

    async def release_slot(self, slot: int) -> None: ...

    async def settle_block(self, block: Block, at_ms: int) -> list[LedgerEntry]: ...

    async def slash(
        self,
        offender: str,
        evidence_id: str,
        reporter: str,
        at_ms: int,
        *,
        fraction_bps: int,
        reporter_share_bps: int,
    ) -> list[LedgerEntry]: ...

    async def request_withdrawal(
        self, account: str, amount_wei: int, now_ms: int, delay_ms: int
    ) -> Withdrawal: ...

    async def execute_withdrawal(self, withdrawal_id: str, now_ms: int) -> LedgerEntry: ...

    async def get_balance(self, account: str) -> tuple[int, int]: ...


class StoreEscrow:
    """``Escrow`` on the engine's store: each operation one atomic store step."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def credit_deposit(
        self, account: str, amount_wei: int, ref: str, at_ms: int, *, kind: str = DEPOSIT
    ) -> LedgerEntry:
        """Credit a deposit (or, with ``kind`` BOND, a stake or bond) once per reference."""
        change = Change(check_account(account), kind, amount_wei, Cause(ref=ref))
        [entry] = await self.store.apply_ledger(
            [change], once=compute_once_key(change.cause, kind), at_ms=at_ms
        )
        return entry

    async def hold_bid(self, bid: Bid) -> None:
        """Hold what ``bid`` could cost against its searcher's free balance (once for all the
        copies of a cross-rollup bundle: they share a bid id and a slot)."""
        chain = compute_chain_key(bid.searcher, bid.replacement_uuid, bid.bid_id)
        await self.store.hold_bid(bid.slot, chain, bid.searcher, bid.bid_wei)

    async def release_slot(self, slot: int) -> None:
        await self.store.release_holds(slot)

    async def settle_block(self, block: Block, at_ms: int) -> list[LedgerEntry]:
        """Debit a signed block's winners and credit the operator's revenue, once per block
        hash: a block settled before (by this or another engine process) gives []."""
        changes = compute_block_changes(block)
        if not changes:
            return []
        try:
            return await self.store.apply_ledger(
                changes, once=compute_once_key(changes[0].cause, "block"), at_ms=at_ms
            )
        except AlreadyApplied:
            return []

    async def slash(
        self,
        offender: str,
        evidence_id: str,
        reporter: str,
        at_ms: int,
        *,
        fraction_bps: int,
        reporter_share_bps: int,
    ) -> list[LedgerEntry]:
        """Slash ``offender``'s stake for one verified offence, once per evidence id
        (``EvidenceAlreadyApplied`` the second time), crediting the reporter its share."""
        once = compute_once_key(Cause(evidence_id=evidence_id), SLASH)
        reporter = check_address(reporter)
        for _ in range(SLASH_ATTEMPTS):
            if await self.store.is_applied(once):
                raise EvidenceAlreadyApplied("this offence was slashed before",
                                             evidence_id=evidence_id)  # fmt: skip
            stake_wei, _ = await self.store.get_balance(offender)
            changes = compute_slash_changes(
                offender, stake_wei, evidence_id, reporter,
                fraction_bps=fraction_bps, reporter_share_bps=reporter_share_bps,
            )
            try:
                # The fraction is of the stake just read: applied only if it still is (another
                # offence slashed in between is recomputed on, never taken twice from the same
                # stake nor refused).
                return await self.store.apply_ledger(changes, once=once, at_ms=at_ms,
                                                     expect=(offender, stake_wei))  # fmt: skip
            except AlreadyApplied:  # another request applied it in between
                raise EvidenceAlreadyApplied(
                    "this offence was slashed before", evidence_id=evidence_id
                ) from None
            except StaleBalance:
                continue
        raise StaleBalance("the offender's stake kept changing; submit again",
                           account=offender)  # fmt: skip

    async def request_withdrawal(
        self, account: str, amount_wei: int, now_ms: int, delay_ms: int
    ) -> Withdrawal:
        """Record a withdrawal executable after ``delay_ms``; refused above the free balance
        now (execution checks again, atomically)."""
        balance, held = await self.store.get_balance(check_account(account))
        if amount_wei > balance - held:
            raise WithdrawalExceedsFreeBalance(
                "the amount is above the free balance",
                account=account,
                free_wei=str(max(balance - held, 0)),
            )
        return await self.store.save_withdrawal(account, amount_wei, now_ms, now_ms + delay_ms)

    async def execute_withdrawal(self, withdrawal_id: str, now_ms: int) -> LedgerEntry:
        """Debit a requested withdrawal once its delay passed, up to the free balance."""
        withdrawal = await self.store.get_withdrawal(withdrawal_id)
        if withdrawal is None:
            raise WithdrawalNotFound("no such withdrawal", withdrawal_id=withdrawal_id)
        change = compute_withdrawal_change(withdrawal, now_ms)
        [entry] = await self.store.apply_ledger(
            [change], once=compute_once_key(change.cause, "withdrawal"), at_ms=now_ms
        )
        return entry

    async def get_balance(self, account: str) -> tuple[int, int]:
        return await self.store.get_balance(account)

