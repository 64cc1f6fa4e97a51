"""Intake of cross-rollup bundles (issue 13, stage 2a): legs, copies, and every refusal.

Everything here goes through the one core function (``auction.intake.compute_intake_event``) on
real signed requests, as the engine and every committee member call it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.searcher import bundle_params, cross_bundle_params
from auction import codec
from auction import constants as C
from auction.intake import IntakeContext, Refused, compute_intake_event
from auction.legs import compute_bid_copies, compute_bid_copy, is_bid_copy
from auction.presets import MINIMAL, Policy, Preset, Rollup
from auction.slots import SlotClock
from auction.transactions import compute_bundle_hash, compute_tip_wei, decode_transaction
from auction.types import Bid
from tests.factories import CHAIN, key, signed_request, tx

CLOCK = SlotClock(genesis_ms=0, slot_ms=2000)
SLOT = 1000
NOW = SLOT * 2000 + 10
OP, BASE = 10, 8453
ROLLUPS = {CHAIN: Rollup(CHAIN), OP: Rollup(OP), BASE: Rollup(BASE)}
K = key(7)


def ctx(
    *,
    rollup: int = CHAIN,
    endpoint: int | None = None,
    rollups: dict[int, Rollup] = ROLLUPS,
    max_rollups: int = 4,
    protected: frozenset[str] = frozenset(),
) -> IntakeContext:
    return IntakeContext(rollups=rollups, clock=CLOCK, max_slots_ahead=32, default_rollup=rollup,
                         endpoint_rollup=endpoint, max_rollups_per_bundle=max_rollups,
                         protected_hashes=protected)


def send(params: dict[str, Any], context: IntakeContext | None = None) -> Bid | Refused:
    body, sig = signed_request(K, "eth_sendBundle", [params])
    event = compute_intake_event(body, sig, NOW, context or ctx())
    assert isinstance(event, (Bid, Refused))
    return event


def code_of(params: dict[str, Any], context: IntakeContext | None = None) -> str:
    event = send(params, context)
    assert isinstance(event, Refused), event
    return event.error.code


def accepted(params: dict[str, Any], context: IntakeContext | None = None) -> Bid:
    event = send(params, context)
    assert isinstance(event, Bid), event.error.to_dict() if isinstance(event, Refused) else event
    return event


# --- legs and copies ---------------------------------------------------------------------------


def test_a_bundle_has_one_leg_per_chain_in_request_order() -> None:
    a1, b1, a2 = tx(K, gas=50_000), tx(K, chain_id=OP, gas=30_000), tx(K, gas=40_000)
    bid = accepted(bundle_params([a1, b1, a2], SLOT, bid_wei=10**15))
    hashes = [decode_transaction(r).hash for r in (a1, b1, a2)]
    # Verify the legs: by rollup, each that chain's txs in the request's order, its gas
    assert [leg.rollup for leg in bid.legs] == [OP, CHAIN]
    assert [[t.raw for t in leg.txs] for leg in bid.legs] == [[b1], [a1, a2]]
    assert [leg.gas for leg in bid.legs] == [30_000, 90_000]
    # Verify the bundle hash covers every tx in request order (as Flashbots clients compute it)
    assert bid.bundle_hash == compute_bundle_hash(hashes)
    copies = compute_bid_copies(bid)
    assert [c.rollup for c in copies] == [OP, CHAIN]
    for c, leg in zip(copies, bid.legs, strict=True):
        assert (c.txs, c.gas) == (leg.txs, leg.gas)
        assert (c.bid_id, c.bundle_hash, c.searcher, c.bid_wei, c.evidence, c.legs) == (
            bid.bid_id, bid.bundle_hash, bid.searcher, bid.bid_wei, bid.evidence, bid.legs)
    assert copies[0].spans == (CHAIN,) and copies[1].spans == (OP,)
    assert copies[0].rollups == copies[1].rollups == (OP, CHAIN)


def test_the_context_rollup_picks_the_copy_any_copy_gives_all() -> None:
    params = bundle_params([tx(K), tx(K, chain_id=OP), tx(K, chain_id=BASE)], SLOT, bid_wei=10**15)
    body, sig = signed_request(K, "eth_sendBundle", [params])  # one signed request, read thrice
    by_rollup = {r: compute_intake_event(body, sig, NOW, ctx(rollup=r)) for r in ROLLUPS}
    for r, copy in by_rollup.items():
        assert isinstance(copy, Bid) and copy.rollup == r
        assert compute_bid_copies(copy) == tuple(by_rollup[x] for x in sorted(ROLLUPS))
        assert compute_bid_copy(copy, r) == copy
    # A context whose rollup the bundle does not span gets the lowest rollup's copy
    two = bundle_params([tx(K), tx(K, chain_id=OP)], SLOT, bid_wei=10**15)
    assert accepted(two, ctx(rollup=BASE)).rollup == OP


def test_is_bid_copy_answers_as_building_the_copy_would() -> None:
    """``is_bid_copy(x, of)`` is ``x == compute_bid_copy(of, x.rollup)`` for every pair among a
    cross-rollup bundle's copies, a single-rollup bid, and copies with any one field changed
    (the member's sameness check of a slot's copies relies on it)."""
    import dataclasses

    cross = accepted(bundle_params([tx(K), tx(K, chain_id=OP, gas=30_000)], SLOT, bid_wei=10**15))
    single = accepted(bundle_params([tx(K)], SLOT, bid_wei=10**15))
    other = accepted(bundle_params([tx(K, gas=70_000)], SLOT, bid_wei=10**15))
    copies = list(compute_bid_copies(cross))
    changes: dict[str, Any] = {
        "bid_id": "0x" + "ab" * 32, "rollup": BASE, "slot": SLOT + 1, "searcher": "0x" + "cd" * 20,
        "bundle_hash": "0x" + "ef" * 32, "txs": other.txs, "bid_wei": 1, "gas": 1,
        "received_ms": 1, "evidence": other.evidence, "replacement_uuid": "u",
        "reverting_tx_hashes": ("0x" + "12" * 32,), "min_timestamp": 1, "max_timestamp": 2,
        "explicit_bid": not cross.explicit_bid, "legs": cross.legs[:1],
    }
    assert set(changes) == {f.name for f in dataclasses.fields(Bid)}  # every field is varied
    variants = [dataclasses.replace(c, **{k: v}) for c in copies for k, v in changes.items()]
    variants += [dataclasses.replace(single, **{k: v}) for k, v in changes.items() if k != "legs"]
    bids = [*copies, single, other, *variants]
    agreed = 0
    for x in bids:
        for of in bids:
            expected = x == compute_bid_copy(of, x.rollup)
            assert is_bid_copy(x, of) == expected, (x, of)
            agreed += expected
    # Verify the pairs include copies that are (each copy of the other's bundle, a bid itself)
    assert agreed >= len(bids) + 2


def test_single_rollup_bundles_have_no_legs_and_their_encoding_is_unchanged() -> None:
    bid = accepted(bundle_params([tx(K), tx(K)], SLOT, bid_wei=10**15))
    assert bid.legs == () and bid.spans == () and bid.rollups == (CHAIN,)
    assert compute_bid_copies(bid) == (bid,)
    assert "legs" not in codec.bid_to_json(bid)


def test_a_copy_round_trips_through_the_log_encoding() -> None:
    bid = accepted(bundle_params([tx(K), tx(K, chain_id=OP)], SLOT, bid_wei=10**15))
    for copy in compute_bid_copies(bid):
        assert codec.event_from_bytes(codec.event_to_bytes(copy)) == copy


def test_the_bid_is_the_priority_tips_of_every_leg() -> None:
    txs = [tx(K, gas=50_000, tip_gwei=3), tx(K, chain_id=OP, gas=30_000, tip_gwei=5)]
    bid = accepted(bundle_params(txs, SLOT))
    assert bid.bid_wei == sum(compute_tip_wei(decode_transaction(r)) for r in txs)
    assert bid.bid_wei == 50_000 * 3 * 10**9 + 30_000 * 5 * 10**9 and not bid.explicit_bid


def test_a_protected_tx_may_open_its_own_leg() -> None:
    back = tx(K, chain_id=OP)
    victim = tx(key(8))
    protected = frozenset({decode_transaction(victim).hash})
    bid = accepted(bundle_params([back, victim, tx(K)], SLOT, bid_wei=10**15),
                   ctx(protected=protected))
    assert bid.legs[1].txs[0].hash in protected
    # ... but never follow another tx of its leg (a front-run on its rollup)
    params = bundle_params([back, tx(K), victim], SLOT, bid_wei=10**15)
    assert code_of(params, ctx(protected=protected)) == "protected_tx_not_first"


# --- refusals ----------------------------------------------------------------------------------


def test_a_cross_bundle_to_a_rollups_own_endpoint_is_refused() -> None:
    params = bundle_params([tx(K), tx(K, chain_id=OP)], SLOT, bid_wei=10**15)
    for endpoint in (CHAIN, OP, BASE):
        assert code_of(params, ctx(endpoint=endpoint)) == "cross_rollup_not_allowed_here"
    # A single-chain bundle at its own endpoint is taken, at another still refused as before
    single = bundle_params([tx(K, chain_id=OP)], SLOT, bid_wei=10**15)
    assert accepted(single, ctx(endpoint=OP)).rollup == OP
    assert code_of(single, ctx(endpoint=CHAIN)) == "chain_id_mismatch"


def test_a_leg_for_an_unserved_rollup_refuses_the_whole_bundle() -> None:
    params = bundle_params([tx(K), tx(K, chain_id=1)], SLOT, bid_wei=10**15)
    event = send(params)
    assert isinstance(event, Refused) and event.error.code == "unknown_rollup"
    assert event.error.data["chain_id"] == 1


@pytest.mark.parametrize(
    ("stated", "code"),
    [
        ([CHAIN], "leg_chain_mismatch"),  # the OP tx has no stated leg
        ([OP], "leg_chain_mismatch"),
        ([CHAIN, OP, BASE], "empty_leg"),  # BASE named, no tx for it
        ([CHAIN, OP, 1], "empty_leg"),
        ([CHAIN, OP, BASE, 1, 2], "too_many_rollups"),
        ([], "invalid_params"),
        ("0xa", "invalid_params"),
        ([True], "invalid_params"),
        ([CHAIN, CHAIN], "invalid_params"),
        ([-1], "invalid_params"),
        (["0xzz"], "invalid_params"),
        (["10"], "invalid_params"),
        (["0x1" + "0" * 64], "invalid_params"),  # 2**256
        ([{"id": 10}], "invalid_params"),
        ([1.5], "invalid_params"),
    ],
)
def test_the_rollups_field_must_name_exactly_the_legs(stated: Any, code: str) -> None:
    params = bundle_params([tx(K), tx(K, chain_id=OP)], SLOT, bid_wei=10**15)
    assert code_of({**params, "rollups": stated}) == code


def test_the_rollups_field_naming_the_legs_is_accepted_in_any_spelling() -> None:
    params = bundle_params([tx(K), tx(K, chain_id=OP)], SLOT, bid_wei=10**15)
    for stated in ([OP, CHAIN], [hex(CHAIN), "0xA"]):
        assert accepted({**params, "rollups": stated}).rollups == (OP, CHAIN)
    # A single-rollup bundle may state its one rollup too
    assert accepted({**bundle_params([tx(K)], SLOT, bid_wei=10**15), "rollups": [CHAIN]}).legs == ()


def test_cross_bundle_params_state_the_legs() -> None:
    params = cross_bundle_params({OP: [tx(K, chain_id=OP)], CHAIN: [tx(K)]}, SLOT, bid_wei=10**15)
    assert params["rollups"] == [OP, CHAIN]
    assert accepted(params).rollups == (OP, CHAIN)


def test_more_rollups_than_the_preset_allows_are_refused() -> None:
    params = bundle_params([tx(K), tx(K, chain_id=OP), tx(K, chain_id=BASE)], SLOT, bid_wei=10**15)
    assert code_of(params, ctx(max_rollups=2)) == "too_many_rollups"
    assert accepted(params, ctx(max_rollups=3)).rollups == (OP, BASE, CHAIN)
    five = {c: Rollup(c) for c in (1, 2, 3, 4, 5)}
    txs = [tx(K, chain_id=c) for c in five]
    assert code_of(bundle_params(txs, SLOT, bid_wei=10**15), ctx(rollups=five)) == (
        "too_many_rollups")


@pytest.mark.parametrize("bound", [0, Preset().max_rollups_per_bundle - 4, 65])
def test_preset_validates_max_rollups_per_bundle(bound: int) -> None:
    if 1 <= bound <= 64:
        assert Preset(max_rollups_per_bundle=bound).max_rollups_per_bundle == bound
    else:
        with pytest.raises(ValueError, match="max_rollups_per_bundle"):
            Preset(max_rollups_per_bundle=bound)


def _rich_tx(chain_id: int, fee_wei: int) -> bytes:
    return K.sign_tx(type=2, chainId=chain_id, nonce=1, gas=21_000, to="0x" + "22" * 20,
                     value=0, data=b"", maxPriorityFeePerGas=fee_wei, maxFeePerGas=fee_wei)


def test_the_bid_cap_applies_to_the_whole_bundle() -> None:
    # Each leg's tips are under 2**128 - 1 wei; together they are over it
    fee = (1 << 127) // 21_000 + 1
    legs = [_rich_tx(CHAIN, fee), _rich_tx(OP, fee)]
    assert all(compute_tip_wei(decode_transaction(r)) <= C.MAX_BID_WEI for r in legs)
    assert code_of(bundle_params(legs, SLOT)) == "bid_too_high"
    assert code_of(bundle_params(legs, SLOT, bid_wei=C.MAX_BID_WEI + 1)) == "bid_too_high"
    assert accepted(bundle_params(legs, SLOT, bid_wei=C.MAX_BID_WEI)).bid_wei == C.MAX_BID_WEI


def test_size_limits_apply_per_leg_under_each_rollups_policy() -> None:
    rollups = {CHAIN: Rollup(CHAIN), OP: Rollup(OP, policy=MINIMAL.policy)}
    small = MINIMAL.policy.max_txs_per_bundle
    many = [tx(K) for _ in range(small + 1)]
    # More txs than OP allows, all on CHAIN (which allows 100): taken
    bid = accepted(bundle_params([*many, tx(K, chain_id=OP)], SLOT, bid_wei=10**15),
                   ctx(rollups=rollups))
    assert [len(leg.txs) for leg in bid.legs] == [1, small + 1]
    # The same number on OP: its leg is too large
    op_many = [tx(K, chain_id=OP) for _ in range(small + 1)]
    params = bundle_params([tx(K), *op_many], SLOT, bid_wei=10**15)
    assert code_of(params, ctx(rollups=rollups)) == "bundle_too_large"
    # Gas too: a leg over OP's block is refused although CHAIN's block would take it
    heavy = tx(K, chain_id=OP, gas=MINIMAL.policy.gas_limit + 1)
    params = bundle_params([tx(K), heavy], SLOT, bid_wei=10**15)
    assert code_of(params, ctx(rollups=rollups)) == "bundle_gas_too_high"


def test_the_reserve_prices_of_every_spanned_rollup_add_up() -> None:
    rollups = {CHAIN: Rollup(CHAIN, policy=Policy(reserve_price_wei=10**15)),
               OP: Rollup(OP, policy=Policy(reserve_price_wei=2 * 10**15))}
    txs = [tx(K), tx(K, chain_id=OP)]
    assert code_of(bundle_params(txs, SLOT, bid_wei=3 * 10**15 - 1), ctx(rollups=rollups)) == (
        "bid_too_low")
    assert accepted(bundle_params(txs, SLOT, bid_wei=3 * 10**15), ctx(rollups=rollups))


def test_a_refused_cross_bundle_is_filed_under_its_lowest_served_rollup() -> None:
    txs = [tx(K, chain_id=BASE), tx(K), tx(K, chain_id=OP), tx(K, chain_id=1)]
    event = send(bundle_params(txs, SLOT, bid_wei=10**15))
    assert isinstance(event, Refused) and event.error.code == "unknown_rollup"
    assert event.record is not None and event.record.rollup == OP
    assert event.record.bundle_hash == compute_bundle_hash(
        [decode_transaction(r).hash for r in txs])
    # At a rollup's own endpoint it is filed under that endpoint's rollup
    event = send(bundle_params(txs[:3], SLOT, bid_wei=10**15), ctx(endpoint=BASE))
    assert isinstance(event, Refused) and event.record is not None
    assert (event.error.code, event.record.rollup) == ("cross_rollup_not_allowed_here", BASE)


def test_refusal_codes_serialise_on_the_wire() -> None:
    from node.errors import jsonrpc_error

    params = bundle_params([tx(K), tx(K, chain_id=OP)], SLOT, bid_wei=10**15)
    event = send({**params, "rollups": [CHAIN, OP, BASE]})
    assert isinstance(event, Refused)
    answer = orjson.loads(orjson.dumps(jsonrpc_error(1, event.error)))
    assert answer["error"]["code"] == -32024
    assert answer["error"]["data"] == {"code": "empty_leg", "chain_id": BASE}
