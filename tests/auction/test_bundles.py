"""Intake rules of eth_sendBundle, each refused with its stable code."""

from __future__ import annotations

import orjson
import pytest

from api.searcher import bundle_params
from auction import constants as C
from auction import errors as E
from auction.bundles import compute_bid, compute_cancel
from auction.presets import MAINNET, MINIMAL, Policy, Rollup
from auction.slots import SlotClock
from auction.transactions import decode_transaction
from auction.types import Evidence
from tests.factories import CHAIN, key, make_bid, tx

CLOCK = SlotClock(genesis_ms=0, slot_ms=2000)
SLOT = 1000
NOW = SLOT * 2000 + 10
ROLLUPS = {CHAIN: Rollup(CHAIN)}
EV = Evidence(b"{}", "sig")


def bid_from(params, *, rollups=ROLLUPS, now=NOW, endpoint=None, protected=frozenset()):
    return compute_bid(
        params, searcher=key(1).address, evidence=EV, rollups=rollups, clock=CLOCK, now_ms=now,
        max_slots_ahead=MAINNET.max_slots_ahead, endpoint_rollup=endpoint,
        protected_hashes=protected,
    )


def test_valid_bundle_becomes_a_bid():
    k = key(1)
    t1, t2 = tx(k, gas=50_000, tip_gwei=3), tx(k, gas=30_000, tip_gwei=1)
    b = bid_from([bundle_params([t1, t2], SLOT)])
    assert b.slot == SLOT and b.rollup == CHAIN and b.gas == 80_000
    assert b.bid_wei == 50_000 * 3 * 10**9 + 30_000 * 10**9  # tips when no explicit bid
    assert not b.explicit_bid


def test_explicit_bid_overrides_tips():
    b = bid_from([bundle_params([tx(key(1))], SLOT, bid_wei=123456789)])
    assert b.bid_wei == 123456789 and b.explicit_bid


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([], "invalid_params"),
        ([{"txs": []}], "invalid_params"),  # blockNumber missing
        ({"txs": [], "blockNumber": hex(SLOT)}, "empty_bundle"),
        ({"txs": "0x00", "blockNumber": hex(SLOT)}, "invalid_params"),
        ({"txs": ["zz"], "blockNumber": hex(SLOT)}, "invalid_params"),
        ({"txs": ["0x02c0"], "blockNumber": hex(SLOT)}, "invalid_transaction"),
        ({"txs": ["0x00"], "blockNumber": "0xnothex"}, "invalid_params"),
        ({"txs": ["0x00"], "blockNumber": True}, "invalid_params"),
        ({"txs": ["0x00"], "blockNumber": -5}, "invalid_params"),
        ({"txs": ["0x00"], "blockNumber": hex(SLOT - 1)}, "slot_closed"),
        ({"txs": ["0x00"], "blockNumber": hex(SLOT + 33)}, "slot_too_far_ahead"),
        ("not an object", "invalid_params"),
    ],
)
def test_bad_params_refused_with_code(params, code):
    with pytest.raises(E.BlockspaceError) as info:
        bid_from(params)
    assert info.value.code == code


def test_wrong_chain_is_unknown_rollup():
    with pytest.raises(E.UnknownRollup):
        bid_from([bundle_params([tx(key(1), chain_id=1)], SLOT)])


def test_mixed_chains_refused_at_a_rollups_own_endpoint():
    # Shared sequencing (issue 13): mixed chains make a cross-rollup bundle, which only the
    # deployment-wide endpoints take (tests/auction/test_cross_intake.py covers the rest)
    k = key(1)
    rollups = {CHAIN: Rollup(CHAIN), 10: Rollup(10)}
    with pytest.raises(E.CrossRollupNotAllowedHere):
        bid_from([bundle_params([tx(k), tx(k, chain_id=10)], SLOT)], rollups=rollups,
                 endpoint=CHAIN)


def test_endpoint_rollup_must_match():
    rollups = {CHAIN: Rollup(CHAIN), 10: Rollup(10)}
    with pytest.raises(E.ChainIdMismatch):
        bid_from([bundle_params([tx(key(1))], SLOT)], rollups=rollups, endpoint=10)


def test_too_many_txs_refused():
    k = key(1)
    rollups = {CHAIN: Rollup(CHAIN, policy=MINIMAL.policy)}
    txs = [tx(k) for _ in range(MINIMAL.policy.max_txs_per_bundle + 1)]
    with pytest.raises(E.BundleTooLarge):
        bid_from([bundle_params(txs, SLOT)], rollups=rollups)


def test_too_many_bytes_refused():
    k = key(1)
    rollups = {CHAIN: Rollup(CHAIN, policy=Policy(max_bundle_bytes=200))}
    with pytest.raises(E.BundleTooLarge):
        bid_from([bundle_params([tx(k), tx(k)], SLOT)], rollups=rollups)


def test_duplicate_tx_refused():
    t = tx(key(1))
    with pytest.raises(E.DuplicateTransaction):
        bid_from([bundle_params([t, t], SLOT)])


def test_shared_nonce_in_one_bundle_refused():
    k = key(1)
    with pytest.raises(E.DuplicateTransaction):
        bid_from([bundle_params([tx(k, nonce=5, tip_gwei=1), tx(k, nonce=5, tip_gwei=2)], SLOT)])


def test_gas_over_bundle_space_refused():
    rollups = {CHAIN: Rollup(CHAIN, policy=Policy(gas_limit=100_000, reserved_public_gas=60_000))}
    with pytest.raises(E.BundleGasTooHigh):
        bid_from([bundle_params([tx(key(1), gas=50_000)], SLOT)], rollups=rollups)


def test_reserve_price():
    rollups = {CHAIN: Rollup(CHAIN, policy=Policy(reserve_price_wei=10**18))}
    with pytest.raises(E.BidTooLow):
        bid_from([bundle_params([tx(key(1))], SLOT, bid_wei=10**17)], rollups=rollups)


def test_zero_bid_refused():
    with pytest.raises(E.BidTooLow):
        bid_from([bundle_params([tx(key(1), tip_gwei=0)], SLOT)])


def test_protected_tx_only_first():
    k = key(1)
    victim, mine = tx(key(2)), tx(k)
    from auction.transactions import decode_transaction

    protected = frozenset({decode_transaction(victim).hash})
    assert bid_from([bundle_params([victim, mine], SLOT)], protected=protected)
    with pytest.raises(E.ProtectedTransactionMisplaced):
        bid_from([bundle_params([mine, victim], SLOT)], protected=protected)


def test_timestamp_window():
    ts = (SLOT + 1) * 2000 // 1000
    p = bundle_params([tx(key(1))], SLOT)
    assert bid_from([{**p, "minTimestamp": ts, "maxTimestamp": ts}])
    assert bid_from([{**p, "minTimestamp": 0, "maxTimestamp": 0}])  # 0 means unset
    with pytest.raises(E.InvalidTimestampRange):
        bid_from([{**p, "maxTimestamp": ts - 1}])
    with pytest.raises(E.InvalidTimestampRange):
        bid_from([{**p, "minTimestamp": ts + 1}])
    with pytest.raises(E.InvalidTimestampRange):
        bid_from([{**p, "minTimestamp": ts + 5, "maxTimestamp": ts + 1}])


def test_reverting_hash_must_be_in_bundle():
    t = tx(key(1))
    from auction.transactions import decode_transaction

    h = decode_transaction(t).hash
    assert bid_from([{**bundle_params([t], SLOT), "revertingTxHashes": [h]}]).reverting_tx_hashes
    with pytest.raises(E.InvalidParams):
        bid_from([{**bundle_params([t], SLOT), "revertingTxHashes": ["0x" + "00" * 32]}])


def test_bad_uuid_refused():
    with pytest.raises(E.InvalidParams):
        bid_from([bundle_params([tx(key(1))], SLOT, replacement_uuid="not-a-uuid")])


def test_bid_id_is_unique_per_signed_request():
    k = key(1)
    t = tx(k)
    a = make_bid(k, [t], SLOT)
    b = make_bid(k, [t], SLOT)
    assert a.bid_id != b.bid_id  # request ids differ, so bodies differ
    assert a.bundle_hash == b.bundle_hash


def test_cancel_needs_uuid():
    with pytest.raises(E.InvalidParams):
        compute_cancel([{}], searcher="0x" + "11" * 20, evidence=EV, rollup=CHAIN, clock=CLOCK,
                       now_ms=0, max_slots_ahead=4)
    c = compute_cancel([{"replacementUuid": "12345678-1234-1234-1234-123456789abc"}],
                       searcher="0x" + "11" * 20, evidence=EV, rollup=CHAIN, clock=CLOCK,
                       now_ms=0, max_slots_ahead=4)
    assert c.replacement_uuid == "12345678123412341234123456789abc"


def test_huge_timestamps_and_slots_refused():
    p = bundle_params([tx(key(1))], SLOT)
    with pytest.raises(E.InvalidParams):
        bid_from([{**p, "maxTimestamp": 2**64}])
    with pytest.raises(E.InvalidParams):
        bid_from([{**p, "blockNumber": hex(2**70)}])


# --- bounds on every amount and size (issue 9, findings 1, 9 and 12) ------------------------


def signed_bid_from(params, *, rollups=ROLLUPS, body_extra=None):
    """compute_bid over a real signed body (``body_extra`` adds fields to the request object)."""
    k = key(1)
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendBundle", "params": [params]}
    if body_extra:
        request.update(body_extra)
    body = orjson.dumps(request)
    return compute_bid(
        [params], searcher=k.address, evidence=Evidence(body, k.sign_body(body)),
        rollups=rollups, clock=CLOCK, now_ms=NOW, max_slots_ahead=MAINNET.max_slots_ahead,
    )


def test_priority_tips_above_the_maximum_bid_are_refused():
    # 2**200 gwei of gas price: the implied tips overflow the block header's uint256 fields
    huge = tx(key(1), kind=0, tip_gwei=2**200)
    with pytest.raises(E.BidTooHigh) as info:
        bid_from([bundle_params([huge], SLOT)])
    assert info.value.code == "bid_too_high"


@pytest.mark.parametrize("bid", [C.MAX_BID_WEI + 1, 2**255, 2**256 - 1])
def test_explicit_bid_above_the_maximum_is_refused(bid):
    with pytest.raises(E.BidTooHigh):
        bid_from([bundle_params([tx(key(1))], SLOT, bid_wei=bid)])


def test_the_maximum_bid_is_accepted():
    assert bid_from([bundle_params([tx(key(1))], SLOT, bid_wei=C.MAX_BID_WEI)]).bid_wei == (
        C.MAX_BID_WEI
    )


@pytest.mark.parametrize("gas", [0, 1, C.MIN_TX_GAS - 1])
def test_transaction_below_intrinsic_gas_is_refused(gas):
    with pytest.raises(E.InvalidTransaction) as info:
        bid_from([bundle_params([tx(key(1), gas=gas)], SLOT)])
    assert info.value.data["minimum"] == C.MIN_TX_GAS


def test_nonce_at_the_eip_2681_limit_is_refused():
    with pytest.raises(E.InvalidTransaction):
        bid_from([bundle_params([tx(key(1), nonce=2**64 - 1)], SLOT)])
    assert bid_from([bundle_params([tx(key(1), nonce=2**64 - 2)], SLOT)]).txs[0].nonce == 2**64 - 2


def test_padded_signed_request_is_refused():
    params = bundle_params([tx(key(1))], SLOT)
    assert signed_bid_from(params, body_extra={"note": "x" * 1000})
    with pytest.raises(E.BundleTooLarge):
        signed_bid_from(params, body_extra={"note": "x" * 100_000})


def test_reverting_hashes_may_not_repeat():
    t = tx(key(1))
    h = decode_transaction(t).hash
    with pytest.raises(E.InvalidParams):
        bid_from([{**bundle_params([t], SLOT), "revertingTxHashes": [h, h]}])


def test_access_lists_are_bounded():
    rollups = {CHAIN: Rollup(CHAIN, policy=Policy(max_access_keys_per_bundle=8))}
    access = [("0x" + "22" * 20, f"0x{i:064x}") for i in range(9)]
    with pytest.raises(E.BundleTooLarge):
        bid_from([bundle_params([tx(key(1), access=access)], SLOT)], rollups=rollups)
    assert bid_from([bundle_params([tx(key(1), access=access[:8])], SLOT)], rollups=rollups)


def test_cancel_bound_to_a_slot_is_refused_once_that_slot_closed():
    params = {"replacementUuid": "12345678-1234-1234-1234-123456789abc", "blockNumber": hex(SLOT)}
    c = compute_cancel([params], searcher="0x" + "11" * 20, evidence=EV, rollup=CHAIN,
                       clock=CLOCK, now_ms=NOW, max_slots_ahead=4)
    assert c.slot == SLOT
    with pytest.raises(E.SlotClosed):
        compute_cancel([params], searcher="0x" + "11" * 20, evidence=EV, rollup=CHAIN,
                       clock=CLOCK, now_ms=NOW + 2000, max_slots_ahead=4)
