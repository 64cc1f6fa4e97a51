"""The ledger's pure rules (auction/ledger.py): amounts, holds, settlement, slashes."""

from __future__ import annotations

import pytest

from auction.errors import (
    InsufficientBalance,
    InsufficientDeposit,
    InvalidAccount,
    InvalidAmount,
    WithdrawalExceedsFreeBalance,
    WithdrawalNotReady,
)
from auction.ledger import (
    BURNED,
    MAX_AMOUNT_WEI,
    OPERATOR_BOND,
    OPERATOR_REVENUE,
    PAYMENT,
    REVENUE,
    Cause,
    Change,
    Withdrawal,
    check_account,
    check_hold,
    compute_block_changes,
    compute_chain_key,
    compute_hold_increase,
    compute_new_balances,
    compute_offender_account,
    compute_once_key,
    compute_slash_changes,
    compute_withdrawal_change,
    parse_amount,
)
from auction.types import Block, WinningBundle

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


@pytest.mark.parametrize("value,wei", [("1", 1), (7, 7), (str(MAX_AMOUNT_WEI), MAX_AMOUNT_WEI)])
def test_amounts_in_range_parse(value, wei):
    assert parse_amount(value) == wei


@pytest.mark.parametrize("value", [
    "0", 0, "-5", -5, MAX_AMOUNT_WEI + 1, str(MAX_AMOUNT_WEI + 1), "1.0", 1.0, "0x1", " 1",
    True, None, [], "9" * 41,
])
def test_amounts_out_of_range_or_mistyped_are_refused(value):
    with pytest.raises(InvalidAmount):
        parse_amount(value)


def test_accounts():
    assert check_account(A) == A and check_account("member:3") == "member:3"
    for bad in ("0xAA" + "aa" * 19, "member:0", "member:x", "operator", "", None):
        with pytest.raises(InvalidAccount):
            check_account(bad)


def test_new_balances_refuse_negative_and_below_holds_with_the_index():
    cause = Cause(ref="r")
    assert compute_new_balances({A: 5}, {}, [Change(A, PAYMENT, -5, cause)]) == {A: 0}
    with pytest.raises(InsufficientBalance) as info:
        compute_new_balances({A: 5}, {}, [Change(B, REVENUE, 1, cause),
                                          Change(A, PAYMENT, -6, cause)])
    assert info.value.data["index"] == 1
    with pytest.raises(WithdrawalExceedsFreeBalance) as w:
        compute_new_balances({A: 5}, {A: 3}, [Change(A, PAYMENT, -3, cause, keep_free=True)])
    assert w.value.data["free_wei"] == "2"


def test_hold_is_the_max_of_a_chain():
    assert compute_hold_increase(0, 10) == 10
    assert compute_hold_increase(10, 7) == 0
    assert compute_hold_increase(10, 12) == 2
    assert compute_chain_key(A, "u", "0x1") == compute_chain_key(A, "u", "0x2")
    assert compute_chain_key(A, None, "0x1") != compute_chain_key(A, None, "0x2")
    check_hold(10, 4, 6)
    check_hold(0, 0, 0)  # a zero bid never needs a deposit
    with pytest.raises(InsufficientDeposit):
        check_hold(10, 4, 7)


def winner(searcher: str, payment: int) -> WinningBundle:
    return WinningBundle(bid_id="0x01", bundle_hash="0x02", searcher=searcher, bid_wei=payment,
                         payment_wei=payment, gas=21_000)


def test_a_blocks_payments_debit_each_winner_and_credit_their_sum():
    block = Block(rollup=1, slot=9, parent_hash="0x", bundles=(winner(A, 3), winner(B, 4),
                                                               winner(A, 2), winner(B, 0)),
                  txs=(), gas_used=0, revenue_wei=9, bid_set_root="0x", block_hash="0xbeef")
    changes = compute_block_changes(block)
    assert [(c.account, c.amount_wei) for c in changes] == [
        (A, -5), (B, -4), (OPERATOR_REVENUE, 9)]
    assert {compute_once_key(c.cause, "x") for c in changes} == {"block:0xbeef"}
    empty = Block(rollup=1, slot=9, parent_hash="0x", bundles=(), txs=(), gas_used=0,
                  revenue_wei=0, bid_set_root="0x", block_hash="0xbeef")
    assert compute_block_changes(empty) == []


def test_slash_takes_a_fraction_gives_the_reporter_a_share_burns_the_rest():
    changes = compute_slash_changes(OPERATOR_BOND, 1001, "0xe1", A, fraction_bps=1000,
                                    reporter_share_bps=5000)
    assert [(c.account, c.amount_wei) for c in changes] == [
        (OPERATOR_BOND, -100), (A, 50), (BURNED, 50)]
    assert sum(c.amount_wei for c in changes) == 0
    assert {compute_once_key(c.cause, "slash") for c in changes} == {"evidence:0xe1"}
    assert compute_offender_account("censorship", "operator 0x" + "12" * 20) == OPERATOR_BOND
    assert compute_offender_account("member_equivocation", "member 4") == "member:4"


def test_withdrawal_waits_for_its_delay():
    w = Withdrawal("w1", A, 5, requested_ms=10, ready_ms=20)
    with pytest.raises(WithdrawalNotReady):
        compute_withdrawal_change(w, 19)
    change = compute_withdrawal_change(w, 20)
    assert (change.amount_wei, change.keep_free, compute_once_key(change.cause, "withdrawal")) == (
        -5, True, "withdrawal:w1")
