"""The ledger's store contract (node/stores/base.py, LedgerRecords), on memory and Redis."""

from __future__ import annotations

import asyncio
import random

import pytest

from auction.errors import (
    AlreadyApplied,
    EvidenceAlreadyApplied,
    InsufficientBalance,
    InsufficientDeposit,
    StaleBalance,
    WithdrawalExceedsFreeBalance,
)
from auction.ledger import (
    BOND,
    DEPOSIT,
    MAX_AMOUNT_WEI,
    OPERATOR_BOND,
    OPERATOR_REVENUE,
    PAYMENT,
    REVENUE,
    SLASH,
    WITHDRAWAL,
    Cause,
    Change,
    compute_balance,
    compute_chain_key,
)
from node.escrow import StoreEscrow
from node.stores.base import Store

pytestmark = pytest.mark.anyio

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


def deposit(account: str, wei: int, ref: str) -> Change:
    return Change(account, DEPOSIT, wei, Cause(ref=ref))


async def all_entries(store: Store, account: str | None) -> list:
    out, before = [], None
    while True:
        page = await store.list_ledger_entries(account, before=before, limit=7)
        out += page
        if len(page) < 7:
            return out
        before = page[-1].entry_id


async def test_deposit_credits_and_records_an_entry(store: Store) -> None:
    [entry] = await store.apply_ledger([deposit(ALICE, 5, "r1")], once="deposit:r1", at_ms=9)
    assert (entry.account, entry.kind, entry.amount_wei) == (ALICE, DEPOSIT, 5)
    assert entry.balance_wei == 5
    assert entry.cause == Cause(ref="r1") and entry.at_ms == 9
    assert await store.get_balance(ALICE) == (5, 0)
    assert await store.list_ledger_entries(ALICE, before=None, limit=10) == [entry]
    assert await store.is_applied("deposit:r1")


async def test_same_cause_applies_once(store: Store) -> None:
    await store.apply_ledger([deposit(ALICE, 5, "r1")], once="deposit:r1", at_ms=1)
    with pytest.raises(AlreadyApplied):
        await store.apply_ledger([deposit(ALICE, 5, "r1")], once="deposit:r1", at_ms=2)
    assert await store.get_balance(ALICE) == (5, 0)
    assert len(await all_entries(store, None)) == 1


async def test_debit_above_balance_changes_nothing(store: Store) -> None:
    await store.apply_ledger([deposit(ALICE, 5, "r1")], once="deposit:r1", at_ms=1)
    cause = Cause(slot=3, rollup=1, block_hash="0x" + "11" * 32)
    changes = [
        Change(ALICE, PAYMENT, -3, cause),
        Change(ALICE, PAYMENT, -3, cause),
        Change(OPERATOR_REVENUE, REVENUE, 6, cause),
    ]
    with pytest.raises(InsufficientBalance) as info:
        await store.apply_ledger(changes, once="block:x", at_ms=2)
    assert info.value.data["index"] == 1
    assert await store.get_balance(ALICE) == (5, 0)
    assert await store.get_balance(OPERATOR_REVENUE) == (0, 0)
    assert not await store.is_applied("block:x")
    assert len(await all_entries(store, None)) == 1


async def test_amounts_beyond_64_bits_are_exact(store: Store) -> None:
    big = MAX_AMOUNT_WEI
    await store.apply_ledger([deposit(ALICE, big, "a")], once="deposit:a", at_ms=1)
    await store.apply_ledger([deposit(ALICE, big, "b")], once="deposit:b", at_ms=1)
    assert (await store.get_balance(ALICE))[0] == 2 * big
    odd = 10**30 + 9_999_999
    [e] = await store.apply_ledger(
        [Change(ALICE, WITHDRAWAL, -odd, Cause(ref="w"), keep_free=True)], once="w", at_ms=2
    )
    assert e.balance_wei == 2 * big - odd == (await store.get_balance(ALICE))[0]


async def test_hold_is_the_max_per_chain_and_summed_over_chains(store: Store) -> None:
    await store.apply_ledger([deposit(ALICE, 100, "r")], once="deposit:r", at_ms=1)
    chain = compute_chain_key(ALICE, "uuid-1", "0x01")
    await store.hold_bid(10, chain, ALICE, 40)
    await store.hold_bid(10, chain, ALICE, 30)  # a lower replacement: the hold stays 40
    await store.hold_bid(10, chain, ALICE, 60)  # a higher one: raised to 60
    assert await store.get_balance(ALICE) == (100, 60)
    other = compute_chain_key(ALICE, None, "0x02")
    with pytest.raises(InsufficientDeposit) as info:
        await store.hold_bid(10, other, ALICE, 41)
    assert info.value.data["free_wei"] == "40"
    assert await store.get_balance(ALICE) == (100, 60)
    await store.hold_bid(11, other, ALICE, 40)  # another slot: holds add up
    assert await store.get_balance(ALICE) == (100, 100)
    await store.release_holds(10)
    assert await store.get_balance(ALICE) == (100, 40)
    await store.release_holds(10)  # twice: nothing more
    assert await store.get_balance(ALICE) == (100, 40)


async def test_withdrawal_keeps_the_holds(store: Store) -> None:
    await store.apply_ledger([deposit(ALICE, 100, "r")], once="deposit:r", at_ms=1)
    await store.hold_bid(10, compute_chain_key(ALICE, None, "0x01"), ALICE, 70)
    w = await store.save_withdrawal(ALICE, 31, 5, 10)
    assert await store.get_withdrawal(w.withdrawal_id) == w
    change = Change(ALICE, WITHDRAWAL, -31, Cause(ref=w.withdrawal_id), keep_free=True)
    with pytest.raises(WithdrawalExceedsFreeBalance) as info:
        await store.apply_ledger([change], once="withdrawal:" + w.withdrawal_id, at_ms=11)
    assert info.value.data["free_wei"] == "30"
    await store.release_holds(10)
    await store.apply_ledger([change], once="withdrawal:" + w.withdrawal_id, at_ms=12)
    assert await store.get_balance(ALICE) == (69, 0)


async def test_randomized_steps_keep_balance_equal_to_entries(store: Store) -> None:
    """After every step: each balance is the sum of its entries, none is negative, the holds
    match a model, and a refused step changed nothing. (A payment may take a balance below its
    holds: it is what a hold was for, and the slot's holds are released with it.)"""
    rng = random.Random(11)
    accounts = [ALICE, BOB, OPERATOR_REVENUE]
    model = {a: 0 for a in accounts}
    holds: dict[tuple[int, str], tuple[str, int]] = {}
    for step in range(120):
        op = rng.choice(["deposit", "pay", "withdraw", "hold", "release"])
        who = rng.choice([ALICE, BOB])
        wei = rng.choice([1, 7, 10**18, 2**70 + 3, rng.randrange(1, 10**6)])
        held = {a: sum(v for (_, _), (s, v) in holds.items() if s == a) for a in accounts}
        try:
            if op == "deposit":
                await store.apply_ledger([deposit(who, wei, str(step))], once=f"d{step}", at_ms=1)
                model[who] += wei
            elif op == "pay":
                cause = Cause(slot=step, rollup=1, block_hash=f"0x{step:064x}")
                await store.apply_ledger(
                    [
                        Change(who, PAYMENT, -wei, cause),
                        Change(OPERATOR_REVENUE, REVENUE, wei, cause),
                    ],
                    once=f"b{step}",
                    at_ms=1,
                )
                model[who] -= wei
                model[OPERATOR_REVENUE] += wei
            elif op == "withdraw":
                change = Change(who, WITHDRAWAL, -wei, Cause(ref=str(step)), keep_free=True)
                await store.apply_ledger([change], once=f"w{step}", at_ms=1)
                model[who] -= wei
            elif op == "hold":
                slot, chain = rng.randrange(3), compute_chain_key(who, str(rng.randrange(2)), "")
                await store.hold_bid(slot, chain, who, wei)
                cur = holds.get((slot, chain), (who, 0))[1]
                holds[(slot, chain)] = (who, max(cur, wei))
            else:
                slot = rng.randrange(3)
                await store.release_holds(slot)
                holds = {k: v for k, v in holds.items() if k[0] != slot}
        except (InsufficientBalance, WithdrawalExceedsFreeBalance, InsufficientDeposit):
            # Refused: the model is unchanged, so the store must be too (checked below)
            if op == "pay":
                assert wei > model[who]
            elif op == "withdraw":
                assert wei > model[who] - held[who]
        held = {a: sum(v for (_, _), (s, v) in holds.items() if s == a) for a in accounts}
        for account in accounts:
            balance, store_held = await store.get_balance(account)
            assert balance == model[account] >= 0
            assert store_held == held[account]
            assert compute_balance(await all_entries(store, account)) == balance


async def test_concurrent_holds_never_pass_the_balance(store: Store) -> None:
    """Fifty bids at once (one batch on Redis): exactly as many are held as the balance
    covers, each refused one changes nothing."""
    await store.apply_ledger([deposit(ALICE, 200, "r")], once="deposit:r", at_ms=1)

    async def hold(n: int) -> bool:
        try:
            await store.hold_bid(7, compute_chain_key(ALICE, None, f"0x{n:02x}"), ALICE, 10)
        except InsufficientDeposit:
            return False
        return True

    held = await asyncio.gather(*(hold(n) for n in range(50)))
    assert sum(held) == 20
    assert await store.get_balance(ALICE) == (200, 200)


# --- concurrent slashes (node/escrow.py, a compare-and-set on the offender's stake) ------------


async def test_a_change_expecting_another_balance_is_refused_whole(store: Store) -> None:
    await store.apply_ledger([deposit(ALICE, 100, "s")], once="deposit:s", at_ms=1)
    with pytest.raises(StaleBalance):
        await store.apply_ledger([deposit(BOB, 5, "t")], once="deposit:t", at_ms=2,
                                 expect=(ALICE, 99))
    assert await store.get_balance(BOB) == (0, 0) and not await store.is_applied("deposit:t")
    # Wei beyond Lua's exact doubles compare exactly
    big = 10**30 + 1
    await store.apply_ledger([deposit(BOB, big, "u")], once="deposit:u", at_ms=3)
    with pytest.raises(StaleBalance):
        await store.apply_ledger([deposit(ALICE, 1, "v")], once="deposit:v", at_ms=4,
                                 expect=(BOB, big - 1))
    await store.apply_ledger([deposit(ALICE, 1, "v")], once="deposit:v", at_ms=4,
                             expect=(BOB, big))
    assert await store.get_balance(ALICE) == (101, 0)


async def test_concurrent_slashes_of_one_offender_all_apply(store: Store) -> None:
    """Distinct offences slashed at once each take their fraction of the stake left by the
    others (in some order), none refused, none taken twice from the same stake; the same
    offence submitted concurrently is slashed once."""
    escrow = StoreEscrow(store)
    stake = 10**18 + 12345
    await escrow.credit_deposit(OPERATOR_BOND, stake, "bond-1", 1, kind=BOND)
    ids = [f"0x{i:064x}" for i in range(1, 9)]
    attempts = [*ids, ids[0], ids[0], ids[3]]  # three repeats of offences also slashed

    async def slash(evidence_id: str) -> str:
        try:
            await escrow.slash(OPERATOR_BOND, evidence_id, BOB, 2, fraction_bps=1000,
                               reporter_share_bps=5000)
        except EvidenceAlreadyApplied:
            return "repeat"
        return "slashed"

    outcomes = await asyncio.gather(*(slash(e) for e in attempts))
    assert sorted(outcomes) == ["repeat"] * 3 + ["slashed"] * len(ids)
    left = stake
    for _ in ids:
        left -= left * 1000 // 10_000
    balance, _ = await store.get_balance(OPERATOR_BOND)
    assert balance == left
    entries = await all_entries(store, OPERATOR_BOND)
    assert compute_balance(entries) == balance
    assert sorted(e.cause.evidence_id for e in entries if e.kind == SLASH) == sorted(ids)
