"""Builders of real signed data for tests: transactions, signed requests, bids."""

from __future__ import annotations

import itertools
from typing import Any

from api.searcher import SearcherKey, bundle_params
from auction.bundles import compute_bid
from auction.legs import compute_bid_copies
from auction.presets import DEFAULT_CHAIN_ID, MAINNET, Preset, Rollup
from auction.slots import SlotClock
from auction.types import Bid, Evidence

CHAIN = DEFAULT_CHAIN_ID
GWEI = 10**9
_nonces = itertools.count(1)


def key(i: int) -> SearcherKey:
    return SearcherKey.from_seed(i)


def tx(
    k: SearcherKey,
    *,
    nonce: int | None = None,
    chain_id: int = CHAIN,
    gas: int = 21_000,
    tip_gwei: int = 2,
    access: list[tuple[str, str]] | None = None,
    kind: int = 2,
) -> bytes:
    n = next(_nonces) if nonce is None else nonce
    base: dict[str, Any] = {"chainId": chain_id, "nonce": n, "gas": gas, "to": "0x" + "11" * 20,
                            "value": 1, "data": b""}
    if kind == 2:
        base.update(type=2, maxPriorityFeePerGas=tip_gwei * GWEI, maxFeePerGas=100 * GWEI)
    elif kind == 1:
        base.update(type=1, gasPrice=tip_gwei * GWEI)
    else:
        base.update(gasPrice=tip_gwei * GWEI)
    if access and kind in (1, 2):
        by_addr: dict[str, list[str]] = {}
        for a, s in access:
            by_addr.setdefault(a, []).append(s)
        base["accessList"] = [{"address": a, "storageKeys": s} for a, s in by_addr.items()]
    return k.sign_tx(**base)


def signed_request(k: SearcherKey, method: str, params: list[Any]) -> tuple[bytes, str]:
    body = k.request(method, params)
    return body, k.sign_body(body)


def make_bid(
    k: SearcherKey,
    txs: list[bytes],
    slot: int,
    *,
    bid_wei: int | None = 10**15,
    uuid: str | None = None,
    now_ms: int | None = None,
    clock: SlotClock | None = None,
    rollups: dict[int, Rollup] | None = None,
    preset: Preset = MAINNET,
) -> Bid:
    clock = clock or SlotClock(genesis_ms=0, slot_ms=2000)
    now = now_ms if now_ms is not None else slot * clock.slot_ms
    body, sig = signed_request(
        k, "eth_sendBundle", [bundle_params(txs, slot, bid_wei=bid_wei, replacement_uuid=uuid)]
    )
    return compute_bid(
        [bundle_params(txs, slot, bid_wei=bid_wei, replacement_uuid=uuid)],
        searcher=k.address,
        evidence=Evidence(body, sig),
        rollups=rollups or {CHAIN: Rollup(CHAIN, policy=preset.policy)},
        clock=clock,
        now_ms=now,
        max_slots_ahead=preset.max_slots_ahead,
    )


def make_cross_bid(
    k: SearcherKey,
    txs: list[bytes],
    slot: int,
    *,
    rollups: dict[int, Rollup],
    bid_wei: int | None = 10**15,
    uuid: str | None = None,
    clock: SlotClock | None = None,
    preset: Preset = MAINNET,
) -> tuple[Bid, ...]:
    """Every copy of a signed bundle of ``txs`` (of any chains), one per rollup it spans."""
    clock = clock or SlotClock(genesis_ms=0, slot_ms=2000)
    params = bundle_params(txs, slot, bid_wei=bid_wei, replacement_uuid=uuid)
    body, sig = signed_request(k, "eth_sendBundle", [params])
    bid = compute_bid(
        [params],
        searcher=k.address,
        evidence=Evidence(body, sig),
        rollups=rollups,
        clock=clock,
        now_ms=slot * clock.slot_ms,
        max_slots_ahead=preset.max_slots_ahead,
        max_rollups_per_bundle=preset.max_rollups_per_bundle,
    )
    return compute_bid_copies(bid)
