"""The public pool's intake view: per-sender caps; a full pool takes only a better fee."""

from __future__ import annotations

import pytest

from auction import errors as E
from auction.pool import PoolView
from auction.presets import Policy
from auction.transactions import decode_transaction
from auction.types import PendingTx, Tx
from tests.factories import key, tx

POLICY = Policy(max_pending_public_txs=3, max_public_txs_per_sender=2)


def t(i: int, *, tip_gwei: int = 2, nonce: int | None = None) -> Tx:
    return decode_transaction(tx(key(i), tip_gwei=tip_gwei, nonce=nonce))


def admit(view: PoolView, x: Tx) -> bool:
    """What the engine does: check, log (here: nothing to write), record."""
    logged = view.check(x)
    if logged:
        view.add(x)
    return logged


def test_sender_over_its_cap_is_refused():
    view = PoolView(POLICY)
    admit(view, t(1, nonce=1))
    admit(view, t(1, nonce=2))
    with pytest.raises(E.SenderLimitExceeded) as excinfo:
        view.check(t(1, nonce=3))
    assert excinfo.value.code == "sender_limit_exceeded" and excinfo.value.data == {"limit": 2}
    assert admit(view, t(2))  # another sender is not affected


def test_pending_txs_count_toward_the_senders_cap():
    view = PoolView(POLICY)
    view.set_pending([PendingTx(t(3, nonce=1), 9, "1-0"), PendingTx(t(3, nonce=2), 9, "1-1")])
    with pytest.raises(E.SenderLimitExceeded):
        view.check(t(3, nonce=3))


def test_full_pool_takes_only_a_better_fee_and_drops_the_cheapest():
    view = PoolView(POLICY)
    cheap, mid, rich = t(10, tip_gwei=1), t(11, tip_gwei=3), t(12, tip_gwei=5)
    for x in (cheap, mid, rich):
        admit(view, x)
    with pytest.raises(E.PublicPoolFull) as excinfo:
        view.check(t(13, tip_gwei=1))  # equal to the cheapest is not better
    assert excinfo.value.data["min_fee_per_gas_wei"] == str(10**9 + 1)
    assert admit(view, t(14, tip_gwei=2))
    assert len(view) == 3 and view.count_sender(cheap.sender) == 0
    # The cheapest is now 2 gwei.
    with pytest.raises(E.PublicPoolFull):
        view.check(t(15, tip_gwei=2))


def test_among_equal_fees_the_newest_leaves_first():
    view = PoolView(POLICY.with_(max_pending_public_txs=2))
    view.set_pending([PendingTx(t(20, tip_gwei=1), 9, "1-0")])
    newer = t(21, tip_gwei=1)
    admit(view, newer)
    admit(view, t(22, tip_gwei=4))
    assert view.count_sender(newer.sender) == 0 and len(view) == 2


def test_a_tx_already_waiting_is_not_logged_again():
    view = PoolView(POLICY)
    x = t(30)
    assert admit(view, x)
    assert not view.check(x)
    view.set_pending([PendingTx(x, 9, "1-0")])
    assert not view.check(x)


def test_one_slot_logs_at_most_two_pools_worth():
    # Displacing the cheapest again and again would grow the slot's log without bound.
    view = PoolView(POLICY)
    for i in range(6):
        assert admit(view, t(40 + i, tip_gwei=1 + i))
    assert view.logged == 6 and len(view) == 3
    with pytest.raises(E.PublicPoolFull) as excinfo:
        view.check(t(49, tip_gwei=99))
    assert excinfo.value.data == {"limit": 6}
    view.clear_arrivals()  # the slot closed
    assert admit(view, t(49, tip_gwei=99))


def test_adopting_a_signed_head_keeps_the_open_slots_arrivals():
    view = PoolView(POLICY)
    arrival = t(50)
    admit(view, arrival)
    view.set_pending([PendingTx(t(51), 9, "1-0")], keep_arrivals=True)
    assert len(view) == 2 and not view.check(arrival) and view.logged == 1
    view.set_pending([])
    assert len(view) == 0 and view.logged == 0
