"""Bids, cancels and slot results for store tests.

``make_bid`` builds a Bid dataclass directly (fast, for volume and randomized tests);
``make_signed_bid`` goes through ``compute_bid`` from real signed transactions, so a log of them
can be closed with ``compute_slot_result`` exactly as the engine does.
"""

from __future__ import annotations

import dataclasses

from api.searcher import SearcherKey, bundle_params
from auction.bundles import compute_bid, compute_cancel
from auction.hashing import keccak256, to_hex
from auction.presets import MINIMAL, Rollup
from auction.slots import SlotClock, compute_deadline_ms, compute_slot_start_ms
from auction.types import Bid, Cancel, Evidence, Leg, Tx
from node.stores.base import IntakeLimits, Store

ROLLUP = 167_001
CLOCK = SlotClock(genesis_ms=1_700_000_000_000, slot_ms=MINIMAL.slot_ms)
MINIMAL_ROLLUP = Rollup(ROLLUP, "test", MINIMAL.policy)
PARENT_HASH = "0x" + "11" * 32


def _hash(*parts: object) -> str:
    return to_hex(keccak256(repr(parts).encode()))


def make_bid(
    n: int,
    *,
    rollup: int = ROLLUP,
    slot: int = 7,
    searcher: str = "0x" + "aa" * 20,
    size_bytes: int = 120,
    bid_wei: int = 10**15,
    replacement_uuid: str | None = None,
    bundle_hash: str | None = None,
) -> Bid:
    """A bid whose every field is a function of its arguments (same args, equal Bid)."""
    tx_hash = _hash("tx", rollup, slot, searcher, n)
    raw = (bytes.fromhex(tx_hash[2:]) * (size_bytes // 32 + 1))[:size_bytes]
    tx = Tx(
        raw=raw,
        hash=tx_hash,
        tx_type=2,
        chain_id=rollup,
        sender=searcher,
        nonce=n,
        gas_limit=21_000 + n,
        priority_fee_wei=3 * 10**9 + n,
        max_fee_wei=50 * 10**9 + n,
        to="0x" + "bb" * 20,
        access_keys=(f"0x{'cc' * 20}:{n}",),
    )
    # The intake limits count the signed request's bytes: make them exactly ``size_bytes``
    body = (f'{{"n":{n},"slot":{slot},"searcher":"{searcher}"}}'.encode() * size_bytes)[:size_bytes]
    return Bid(
        bid_id=_hash("bid", rollup, slot, searcher, n),
        rollup=rollup,
        slot=slot,
        searcher=searcher,
        bundle_hash=bundle_hash or _hash("bundle", tx_hash),
        txs=(tx,),
        bid_wei=bid_wei + n,
        gas=tx.gas_limit,
        received_ms=CLOCK.genesis_ms + n,
        evidence=Evidence(body=body, signature=f"{searcher}:0x{'00' * 65}"),
        replacement_uuid=replacement_uuid,
        # Values near and past 2**53 and 2**64 must survive JSON exactly
        max_timestamp=2**63 + n,
    )


def make_cancel(
    searcher: str, replacement_uuid: str, *, rollup: int = ROLLUP, n: int = 0
) -> Cancel:
    body = f'{{"cancel":"{replacement_uuid}","n":{n}}}'.encode()
    return Cancel(
        rollup=rollup,
        searcher=searcher,
        replacement_uuid=replacement_uuid,
        received_ms=CLOCK.genesis_ms + n,
        evidence=Evidence(body=body, signature=f"{searcher}:0x{'00' * 65}"),
    )


def make_signed_bid(
    key: SearcherKey,
    slot: int,
    *,
    nonce: int,
    bid_wei: int | None = None,
    gas: int = 60_000,
    priority_fee_wei: int = 2 * 10**9,
    replacement_uuid: str | None = None,
) -> Bid:
    """A Bid built by ``compute_bid`` from a real signed EIP-1559 transaction and request."""
    raw = key.sign_tx(
        type=2,
        chainId=ROLLUP,
        nonce=nonce,
        to="0x" + "42" * 20,
        value=0,
        gas=gas,
        maxFeePerGas=100 * 10**9,
        maxPriorityFeePerGas=priority_fee_wei,
        data=b"",
    )
    params = bundle_params([raw], slot, bid_wei=bid_wei, replacement_uuid=replacement_uuid)
    body = key.request("eth_sendBundle", [params])
    return compute_bid(
        params,
        searcher=key.address,
        evidence=Evidence(body=body, signature=key.sign_body(body)),
        rollups={ROLLUP: MINIMAL_ROLLUP},
        clock=CLOCK,
        now_ms=compute_slot_start_ms(CLOCK, slot),
        max_slots_ahead=MINIMAL.max_slots_ahead,
    )


def make_signed_cancel(key: SearcherKey, slot: int, replacement_uuid: str) -> Cancel:
    params = {"replacementUuid": replacement_uuid}
    body = key.request("eth_cancelBundle", [params])
    return compute_cancel(
        params,
        searcher=key.address,
        evidence=Evidence(body=body, signature=key.sign_body(body)),
        rollup=ROLLUP,
        clock=CLOCK,
        now_ms=compute_slot_start_ms(CLOCK, slot) + 1,
        max_slots_ahead=MINIMAL.max_slots_ahead,
    )


def deadline_ms(slot: int) -> int:
    return compute_deadline_ms(CLOCK, slot)


def parse_seq(seq: str) -> tuple[int, int]:
    """A seq (``<ms>-<n>``) as a tuple that orders like the log."""
    ms, n = seq.split("-")
    return int(ms), int(n)


# Limits wide enough that no store test meets them unless it means to.
WIDE_LIMITS = IntakeLimits(max_bundles=10**6, max_bytes=10**12)
# How long a signed cancel is remembered in these tests (the engine's default).
CANCEL_WINDOW_MS = 7 * 24 * 3600 * 1000


async def log_cancel(
    store: Store, cancel: Cancel, slots: list[int], limits: IntakeLimits = WIDE_LIMITS
) -> list[int]:
    """Log a cancel as the engine does: in its window, against the slot's limits."""
    return await store.append_cancel(cancel, slots, limits, CANCEL_WINDOW_MS)


# A second rollup, for the copies of cross-rollup bundles (docs/shared-sequencing.md).
OTHER_ROLLUP = 10


def make_cross_copies(
    n: int,
    *,
    rollups: tuple[int, ...] = (OTHER_ROLLUP, ROLLUP),
    slot: int = 7,
    searcher: str = "0x" + "aa" * 20,
    size_bytes: int = 120,
    replacement_uuid: str | None = None,
) -> tuple[Bid, ...]:
    """The copies of one cross-rollup bundle, one per rollup (ascending), as
    ``auction.legs.compute_bid_copies`` makes them: each rollup's leg, every other field shared."""
    per = [make_bid(n, rollup=r, slot=slot, searcher=searcher, size_bytes=size_bytes,
                    replacement_uuid=replacement_uuid) for r in sorted(rollups)]
    legs = tuple(Leg(b.rollup, b.txs, b.gas) for b in per)
    shared = per[0]
    return tuple(
        dataclasses.replace(shared, rollup=b.rollup, txs=b.txs, gas=b.gas, legs=legs)
        for b in per
    )
