"""The store contract for sealed (encrypted) bids, on both stores (``append_sealed_bid``).

A sealed bid is logged like a bid (closed slot, idempotent by id, the intake limits, its uuid
seen by cancels) plus two slot-wide rules in the same atomic step: one encapsulation per
searcher per slot over every rollup, and one logging per ciphertext. The plaintext readers
(``close_slot``, ``read_log``) never hand one out; ``read_sealed_log`` does, in log order.
"""

from __future__ import annotations

import orjson
import pytest

from auction.errors import (
    CiphertextReplayed,
    EncapsulationLimit,
    SearcherLimitExceeded,
    SlotClosed,
)
from auction.hashing import keccak256, to_hex
from auction.types import Bid, Cancel, Evidence, SealedBid
from node.stores.base import IntakeLimits, Store
from tests.stores.bids import OTHER_ROLLUP, ROLLUP, make_bid, make_cancel, parse_seq

WIDE = IntakeLimits(max_bundles=10_000, max_bytes=10**9)
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20


def make_sealed(
    n: int,
    *,
    searcher: str = ALICE,
    encapsulation: bytes = b"\x01" * 80,
    rollup: int = ROLLUP,
    slot: int = 7,
    uuid: str | None = None,
    ciphertext: bytes | None = None,
) -> SealedBid:
    """A sealed bid built directly (its ciphertext is opaque bytes to a store)."""
    ciphertext = ciphertext if ciphertext is not None else b"\x01" + n.to_bytes(8, "big") * 20
    body = orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "bs_sendEncryptedBundle",
                         "params": [{"ciphertext": to_hex(ciphertext)}]})
    evidence = Evidence(body, f"{searcher}:0x" + "ab" * 65)
    return SealedBid(
        bid_id=to_hex(keccak256(evidence.signature.encode() + b"\n" + body)),
        rollup=rollup, slot=slot, searcher=searcher, max_gas=21_000, received_ms=1_000 + n,
        evidence=evidence, ciphertext=ciphertext, encapsulation=encapsulation,
        ciphertext_hash=to_hex(keccak256(ciphertext)), replacement_uuid=uuid,
    )


@pytest.mark.anyio
async def test_sealed_bids_are_logged_apart_from_the_plaintext_view(store: Store) -> None:
    first = await store.append_sealed_bid(make_sealed(1), WIDE)
    plain = make_bid(2)
    second = await store.append_bid(plain, WIDE)
    third = await store.append_sealed_bid(make_sealed(3), WIDE)
    sealed = await store.read_sealed_log(ROLLUP, 7)
    assert [(e.seq, e.event) for e in sealed] == [(first, make_sealed(1)), (third, make_sealed(3))]
    assert [(e.seq, e.event) for e in await store.read_log(ROLLUP, 7)] == [(second, plain)]
    # One log, one order: the seqs interleave
    assert parse_seq(first) < parse_seq(second) < parse_seq(third)
    assert [e.event for e in await store.close_slot(ROLLUP, 7)] == [plain]
    assert len(await store.read_sealed_log(ROLLUP, 7)) == 2
    with pytest.raises(SlotClosed):
        await store.append_sealed_bid(make_sealed(4), WIDE)


@pytest.mark.anyio
async def test_a_sealed_bid_appended_again_is_logged_once(store: Store) -> None:
    tight = IntakeLimits(max_bundles=2, max_bytes=10**6)
    seq = await store.append_sealed_bid(make_sealed(1), tight)
    assert await store.append_sealed_bid(make_sealed(1), tight) == seq
    assert await store.find_bid_seq(ROLLUP, 7, make_sealed(1).bid_id) == seq
    assert len(await store.read_sealed_log(ROLLUP, 7)) == 1
    # It counted once against the quota it shares with plaintext bids
    await store.append_bid(make_bid(2, searcher=ALICE), tight)
    with pytest.raises(SearcherLimitExceeded):
        await store.append_sealed_bid(make_sealed(3), tight)


@pytest.mark.anyio
async def test_one_encapsulation_per_searcher_per_slot_over_every_rollup(store: Store) -> None:
    await store.append_sealed_bid(make_sealed(1), WIDE)
    await store.append_sealed_bid(make_sealed(2, rollup=OTHER_ROLLUP), WIDE)  # the same one
    for rollup in (ROLLUP, OTHER_ROLLUP):
        with pytest.raises(EncapsulationLimit):
            await store.append_sealed_bid(
                make_sealed(3, rollup=rollup, encapsulation=b"\x02" * 80), WIDE
            )
    # Other searchers and other slots have their own
    await store.append_sealed_bid(make_sealed(4, searcher=BOB, encapsulation=b"\x02" * 80), WIDE)
    await store.append_sealed_bid(make_sealed(5, slot=8, encapsulation=b"\x02" * 80), WIDE)
    assert len(await store.read_sealed_log(ROLLUP, 7)) == 2
    assert len(await store.read_sealed_log(OTHER_ROLLUP, 7)) == 1


@pytest.mark.anyio
async def test_a_ciphertext_is_logged_once_per_slot(store: Store) -> None:
    ciphertext = b"\x01" + b"\x33" * 200
    await store.append_sealed_bid(make_sealed(1, ciphertext=ciphertext), WIDE)
    with pytest.raises(CiphertextReplayed):
        await store.append_sealed_bid(make_sealed(2, ciphertext=ciphertext), WIDE)
    with pytest.raises(CiphertextReplayed):
        await store.append_sealed_bid(
            make_sealed(3, ciphertext=ciphertext, rollup=OTHER_ROLLUP), WIDE
        )
    assert [e.event.bid_id for e in await store.read_sealed_log(ROLLUP, 7)] == [
        make_sealed(1, ciphertext=ciphertext).bid_id
    ]


@pytest.mark.anyio
async def test_a_cancel_finds_a_sealed_bid_under_its_uuid(store: Store) -> None:
    uuid = "11111111222233334444555555555555"
    cancel = make_cancel(ALICE, uuid)
    assert await store.append_cancel(cancel, [7], WIDE, 60_000) == []
    await store.append_sealed_bid(make_sealed(1, uuid=uuid), WIDE)
    later = make_cancel(ALICE, uuid, n=1)
    assert await store.append_cancel(later, [7], WIDE, 60_000) == [7]
    log = await store.read_log(ROLLUP, 7)
    assert [type(e.event) for e in log] == [Cancel]
    assert not any(isinstance(e.event, Bid) for e in log)
