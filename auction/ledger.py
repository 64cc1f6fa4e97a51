"""The escrow ledger's rules (issue 11, stage 2; docs/accountability.md): pure, no I/O.

Every change to an account is an append-only **entry** with its cause; an account's balance is
the sum of its entries and is never negative. Amounts are Python ints of wei (no float, no
scaling): the Redis store does the same arithmetic on decimal strings in Lua.

Accounts are lowercase 0x addresses (searchers, reporters) or one of the reserved names below
(the operator's revenue, the operator's bond, a committee member's stake).

A searcher's **free balance** is its balance minus its **holds**: what its bids in slots not yet
settled could still owe. A bid can cost at most its ``bid_wei`` (payments never exceed bids), a
replacement chain (one ``replacementUuid`` in one slot) can win with one bid at most, and a
searcher can win several bundles of one slot. So the hold for a slot is the sum over the
searcher's chains in that slot of the largest bid of each chain (a bid without a uuid is a chain
of its own), and the holds are summed over every slot not yet settled. A cancelled bid keeps its
hold until its slot settles (it may have reached the committee's block before the cancel).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from auction.errors import (
    InsufficientBalance,
    InsufficientDeposit,
    InvalidAccount,
    InvalidAmount,
    WithdrawalExceedsFreeBalance,
    WithdrawalNotReady,
)
from auction.types import Block

# The largest amount one deposit, withdrawal or bid hold may name (a uint128 on chain).
MAX_AMOUNT_WEI: Final = 2**128 - 1

# Entry kinds.
DEPOSIT: Final = "deposit"
WITHDRAWAL: Final = "withdrawal"
PAYMENT: Final = "payment"  # a winner's payment, debited from a signed block
REVENUE: Final = "revenue"  # the operator's side of a block's payments
BOND: Final = "bond"  # stake or bond credited to a member's or the operator's account
SLASH: Final = "slash"  # taken from an offender's stake or bond
REWARD: Final = "reward"  # the reporter's share of a slash
BURN: Final = "burn"  # the rest of a slash
KINDS: Final = (DEPOSIT, WITHDRAWAL, PAYMENT, REVENUE, BOND, SLASH, REWARD, BURN)

# Basis points: fractions of a slash in 1/10000.
BPS: Final = 10_000

# Reserved accounts.
OPERATOR_REVENUE: Final = "operator:revenue"
OPERATOR_BOND: Final = "operator:bond"
BURNED: Final = "burned"
_MEMBER_STAKE = re.compile(r"^member:[1-9][0-9]{0,4}$")
_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")


def compute_member_account(member: int) -> str:
    """The account holding committee member ``member``'s stake."""
    return f"member:{member}"


def is_account(account: Any) -> bool:
    """A lowercase 0x address or a reserved account's name."""
    return isinstance(account, str) and (
        bool(_ADDRESS.match(account))
        or account in (OPERATOR_REVENUE, OPERATOR_BOND, BURNED)
        or bool(_MEMBER_STAKE.match(account))
    )


def check_account(account: Any) -> str:
    """``account`` if it is one, else raise ``InvalidAccount``."""
    if not is_account(account):
        raise InvalidAccount("not an account: a lowercase 0x address", account=str(account)[:80])
    return str(account)


def check_address(address: Any) -> str:
    """A searcher's or reporter's account: a lowercase 0x address only."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise InvalidAccount("not a lowercase 0x address", account=str(address)[:80])
    return address


def parse_amount(value: Any) -> int:
    """A wire amount (a decimal string, or an int) as wei in 1..MAX_AMOUNT_WEI, else raise
    ``InvalidAmount``: zero, negative, fractional, overflowing and non-numeric amounts alike."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,40}", value):
        value = int(value)
    if not isinstance(value, int) or not 0 < value <= MAX_AMOUNT_WEI:
        raise InvalidAmount(
            "amount_wei must be a decimal string of wei in 1..2**128-1",
            max_wei=str(MAX_AMOUNT_WEI),
        )
    return value


@dataclass(frozen=True, slots=True)
class Cause:
    """Why an entry exists: the slot and block of a payment, the evidence of a slash, the
    bridge's reference of a deposit, the id of a withdrawal."""

    slot: int | None = None
    rollup: int | None = None
    block_hash: str | None = None
    evidence_id: str | None = None
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One signed amount for one account. ``keep_free``: the change may not take the balance
    below the account's holds (a withdrawal); otherwise only below zero is refused."""

    account: str
    kind: str
    amount_wei: int
    cause: Cause
    keep_free: bool = False


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An applied change: its id (``<ms>-<n>``, increasing in write order), the balance after
    it and when it was written."""

    entry_id: str
    account: str
    kind: str
    amount_wei: int
    balance_wei: int
    cause: Cause
    at_ms: int


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A requested withdrawal: executable from ``ready_ms`` on, once, up to the free balance."""

    withdrawal_id: str
    account: str
    amount_wei: int
    requested_ms: int
    ready_ms: int


def compute_new_balances(
    balances: Mapping[str, int], held: Mapping[str, int], changes: Sequence[Change]
) -> dict[str, int]:
    """The balances after ``changes`` (applied in order), for the accounts they touch; raise
    ``InsufficientBalance`` or ``WithdrawalExceedsFreeBalance`` (``data.index``: the change)
    and change nothing if one would take a balance below zero, or below its holds."""
    out: dict[str, int] = {}
    for i, change in enumerate(changes):
        before = out.get(change.account, balances.get(change.account, 0))
        after = before + change.amount_wei
        floor = held.get(change.account, 0) if change.keep_free else 0
        # Verify that the balance stays at or above its floor
        if after < floor:
            data = {"index": i, "account": change.account, "balance_wei": str(before)}
            if change.keep_free:
                raise WithdrawalExceedsFreeBalance(
                    "the amount is above the free balance",
                    free_wei=str(max(before - floor, 0)),
                    **data,
                )
            raise InsufficientBalance("the amount is above the balance", **data)
        out[change.account] = after
    return out


def compute_chain_key(searcher: str, replacement_uuid: str | None, bid_id: str) -> str:
    """The hold's chain within a slot: the searcher's replacement uuid, or the bid itself."""
    return f"{searcher}|u:{replacement_uuid}" if replacement_uuid else f"{searcher}|b:{bid_id}"


def compute_hold_increase(current_wei: int, bid_wei: int) -> int:
    """How much a bid of ``bid_wei`` raises its chain's hold of ``current_wei`` (the max)."""
    return max(bid_wei - current_wei, 0)


def check_hold(balance_wei: int, held_wei: int, increase_wei: int) -> None:
    """Raise ``InsufficientDeposit`` if the holds after the increase pass the balance."""
    # Verify that the searcher's open bids could all be paid from its balance
    if increase_wei > 0 and held_wei + increase_wei > balance_wei:
        raise InsufficientDeposit(
            "the bid is above the searcher's free balance",
            free_wei=str(max(balance_wei - held_wei, 0)),
            balance_wei=str(balance_wei),
        )


def compute_block_changes(block: Block) -> list[Change]:
    """A signed block's settlement: each winner's payment debited (summed per searcher, in
    first-win order), the total credited to the operator's revenue. A cross-rollup winner pays
    its share in each rollup's block."""
    cause = Cause(slot=block.slot, rollup=block.rollup, block_hash=block.block_hash)
    paid: dict[str, int] = {}
    for winner in block.bundles:
        if winner.payment_wei > 0:
            paid[winner.searcher] = paid.get(winner.searcher, 0) + winner.payment_wei
    changes = [Change(s, PAYMENT, -wei, cause) for s, wei in paid.items()]
    total = sum(paid.values())
    if total:
        changes.append(Change(OPERATOR_REVENUE, REVENUE, total, cause))
    return changes


def compute_slash_changes(
    offender: str,
    stake_wei: int,
    evidence_id: str,
    reporter: str,
    *,
    fraction_bps: int,
    reporter_share_bps: int,
) -> list[Change]:
    """A valid piece of evidence's slash: ``fraction_bps`` of the offender's stake taken, the
    reporter credited ``reporter_share_bps`` of that, the rest burned (so no party, the operator
    included, gains from slashing others beyond the reporter's share). Amounts round down."""
    slashed = stake_wei * fraction_bps // BPS
    reward = slashed * reporter_share_bps // BPS
    cause = Cause(evidence_id=evidence_id, ref=offender)  # every entry names the offender
    return [
        Change(offender, SLASH, -slashed, cause),
        Change(reporter, REWARD, reward, cause),
        Change(BURNED, BURN, slashed - reward, cause),
    ]


def compute_offender_account(kind: str, offender: str) -> str:
    """The account a verdict's offender is slashed from: the operator's bond for censorship
    (and operator equivocation), a member's stake for a member's offence."""
    if offender.startswith("operator "):
        return OPERATOR_BOND
    if offender.startswith("member "):
        return compute_member_account(int(offender.split()[1]))
    raise ValueError(f"no account for offender {offender!r} ({kind})")


def compute_withdrawal_change(withdrawal: Withdrawal, now_ms: int) -> Change:
    """The change that executes ``withdrawal`` at ``now_ms``; raise ``WithdrawalNotReady``
    before its delay passed."""
    # Verify that the withdrawal delay has passed
    if now_ms < withdrawal.ready_ms:
        raise WithdrawalNotReady(
            "the withdrawal delay has not passed", ready_ms=withdrawal.ready_ms, now_ms=now_ms
        )
    return Change(
        withdrawal.account,
        WITHDRAWAL,
        -withdrawal.amount_wei,
        Cause(ref=withdrawal.withdrawal_id),
        keep_free=True,
    )


def compute_balance(entries: Iterable[LedgerEntry]) -> int:
    """An account's balance from its entries: their sum."""
    return sum(e.amount_wei for e in entries)


# --- the cause that makes a change act once ---------------------------------------------------


def compute_once_key(cause: Cause, kind: str) -> str:
    """The key under which a change of ``kind`` for ``cause`` acts at most once: a block's
    hash settles once, a piece of evidence slashes once, a deposit reference or a withdrawal id
    credits or debits once."""
    if cause.block_hash is not None:
        return f"block:{cause.block_hash}"
    if cause.evidence_id is not None:
        return f"evidence:{cause.evidence_id}"
    if cause.ref is not None:
        return f"{kind}:{cause.ref}"
    raise ValueError("a ledger change needs a cause that names it")


# --- JSON (the store's and the API's shape; amounts as decimal strings) -----------------------


def cause_to_json(cause: Cause) -> dict[str, Any]:
    return {
        k: v
        for k, v in (
            ("slot", cause.slot),
            ("rollup", cause.rollup),
            ("block_hash", cause.block_hash),
            ("evidence_id", cause.evidence_id),
            ("ref", cause.ref),
        )
        if v is not None
    }


def cause_from_json(doc: Mapping[str, Any]) -> Cause:
    return Cause(
        slot=doc.get("slot"),
        rollup=doc.get("rollup"),
        block_hash=doc.get("block_hash"),
        evidence_id=doc.get("evidence_id"),
        ref=doc.get("ref"),
    )


def entry_to_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.entry_id,
        "account": entry.account,
        "kind": entry.kind,
        "amount_wei": str(entry.amount_wei),
        "balance_wei": str(entry.balance_wei),
        "cause": cause_to_json(entry.cause),
        "at_ms": entry.at_ms,
    }


def withdrawal_to_json(w: Withdrawal) -> dict[str, Any]:
    return {
        "withdrawal_id": w.withdrawal_id,
        "account": w.account,
        "amount_wei": str(w.amount_wei),
        "requested_ms": w.requested_ms,
        "ready_ms": w.ready_ms,
    }


def withdrawal_from_json(doc: Mapping[str, Any]) -> Withdrawal:
    return Withdrawal(
        withdrawal_id=doc["withdrawal_id"],
        account=doc["account"],
        amount_wei=int(doc["amount_wei"]),
        requested_ms=int(doc["requested_ms"]),
        ready_ms=int(doc["ready_ms"]),
    )
