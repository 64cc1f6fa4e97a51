"""Attacks one hostile searcher could make through the intake (issue 9): each test fails on the
engine before the fix and passes now."""

from __future__ import annotations

import asyncio

import pytest

from api.engine import Engine
from api.searcher import bundle_params
from auction import constants as C
from auction.presets import MAINNET, MINIMAL, Rollup
from auction.types import SlotResult
from committee.records import FAILED_CLOSE
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock, close_slot_of
from tests.api.test_http_rpc import post, send
from tests.factories import CHAIN, key, signed_request, tx

UUID = "12345678-1234-1234-1234-123456789abc"


def cancel(client, k, params, path="/"):
    body, sig = signed_request(k, "eth_cancelBundle", [params])
    return post(client, body, sig, path)[1], (body, sig)


# --- finding 1: one large bid must not halt block production -----------------------------------


def test_bids_that_would_overflow_the_block_header_are_refused(client, engine):
    k = key(1)
    for _ in range(2):
        _, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=2**255))
        assert reply["error"]["data"]["code"] == "bid_too_high"
    huge_tips = tx(k, kind=0, tip_gwei=2**200)
    _, reply = send(client, k, bundle_params([huge_tips], START_SLOT))
    assert reply["error"]["data"]["code"] == "bid_too_high"
    # The largest bids that are accepted still close into a valid block.
    for _ in range(3):
        _, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=C.MAX_BID_WEI))
        assert "result" in reply, reply
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert result.block.revenue_wei == 3 * C.MAX_BID_WEI


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_slot_whose_close_fails_is_published_failed_and_the_clock_moves_on(
    monkeypatch,
) -> None:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN), 10: Rollup(10)},
                    preset=MAINNET, slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    import api.engine as engine_module

    real = engine_module.compute_slot_results

    def broken_for_one_slot(slot, deadline_ms, parts, **kwargs) -> tuple[SlotResult, ...]:
        # The slot's results are computed together: CHAIN's part breaking breaks the slot.
        if slot == START_SLOT and any(p.rollup.chain_id == CHAIN for p in parts):
            raise OverflowError("int too big to convert")
        return real(slot, deadline_ms, parts, **kwargs)

    monkeypatch.setattr(engine_module, "compute_slot_results", broken_for_one_slot)
    await engine.start(run_clock=False)
    k = key(1)
    raw = tx(k)
    await engine.intake.submit_public_tx(["0x" + raw.hex()], endpoint_rollup=None, protected=False)
    clock.ms = (START_SLOT + 3) * SLOT_MS + 5  # three deadlines passed while nobody looked
    engine.start_clock()
    try:
        for _ in range(600):
            if all(engine.chains[cid].closed_through >= START_SLOT + 2 for cid in (CHAIN, 10)):
                break
            await asyncio.sleep(0.05)
    finally:
        await engine.stop()
    # Every later slot, and the other rollup's slots, closed
    for cid in (CHAIN, 10):
        for slot in (START_SLOT + 1, START_SLOT + 2):
            assert await engine.store.get_result(cid, slot) is not None, (cid, slot)
    # One joint close: no rollup's result of the broken slot is stored, and it failed for both.
    assert await engine.store.get_result(10, START_SLOT) is None
    assert await engine.store.get_failed_slot(10, START_SLOT) is not None
    # The broken slot is published as failed, and its public tx waits in a later slot
    failed = await engine.store.get_failed_slot(CHAIN, START_SLOT)
    assert failed is not None and failed.reason == FAILED_CLOSE
    later = [e.event for s in range(START_SLOT + 1, START_SLOT + 4)
             for e in await engine.store.read_log(CHAIN, s)]
    assert any(getattr(ev, "tx", None) is not None and ev.tx.raw == raw for ev in later)


# --- findings 3 and 11: one signature, one spelling, one bid ------------------------------------


def spellings(sig: str) -> list[str]:
    address, s = sig.split(":")
    raw = bytes.fromhex(s[2:])
    v01 = raw[:64] + bytes([raw[64] - 27])
    return [sig, f"{address[2:]}:{s}", f"{address.upper().replace('0X', '0x')}:{s}",
            f"{address}:{s[2:]}", f"{address}:0x{s[2:].upper()}", f"{address}:0x{v01.hex()}"]


def test_one_request_under_six_spellings_is_one_bid(client, engine):
    k = key(1)
    body, sig = signed_request(k, "eth_sendBundle",
                               [bundle_params([tx(k)], START_SLOT, bid_wei=10**15)])
    hashes = set()
    for spelled in spellings(sig):
        status, reply = post(client, body, spelled)
        assert status == 200 and "result" in reply, (spelled, reply)
        hashes.add(reply["result"]["bundleHash"])
    assert len(hashes) == 1
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert len(result.outcomes) == 1  # counted once against the searcher's quota too
    # The stored evidence is the canonical spelling: every member can bind it
    assert result.outcomes[0].bid.evidence.signature == sig


def test_a_header_without_0x_still_gives_a_bid_members_can_bind(client, engine):
    from committee.checks import check_bid_binding
    from committee.proposal import Proposal

    k = key(1)
    body, sig = signed_request(k, "eth_sendBundle",
                               [bundle_params([tx(k)], START_SLOT, bid_wei=10**15)])
    post(client, body, sig[2:])
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    bid = result.outcomes[0].bid
    head = Proposal(bytes(32), CHAIN, START_SLOT, result.block, None, (), ())
    check_bid_binding(bid, head)  # raised invalid_evidence before: the slot was unsignable


def test_large_requests_are_decoded_off_the_event_loop(client, engine, monkeypatch):
    """Finding 9: a request at or above the offload size is turned into its event in a worker
    thread, so its decoding never holds the event loop that acknowledges other searchers."""
    import threading

    import api.intake as intake_module

    threads: list[tuple[int, int]] = []  # (request bytes, thread that derived it)
    derive = intake_module.compute_intake_event

    def recording(body, *args, **kwargs):
        threads.append((len(body), threading.get_ident()))
        return derive(body, *args, **kwargs)

    monkeypatch.setattr(intake_module, "compute_intake_event", recording)
    loop_thread = client.portal.call(threading.get_ident)
    small, large = key(1), key(2)
    body, sig = signed_request(small, "eth_sendBundle",
                               [bundle_params([tx(small)], START_SLOT, bid_wei=10**15)])
    engine.intake.decode_offload_bytes = len(body) + 1
    assert post(client, body, sig)[0] == 200
    padded = [tx(large, nonce=i) for i in range(3)]
    body2, sig2 = signed_request(large, "eth_sendBundle",
                                 [bundle_params(padded, START_SLOT, bid_wei=10**15)])
    assert len(body2) > len(body)
    assert post(client, body2, sig2)[0] == 200
    (n1, t1), (n2, t2) = threads
    assert (n1, n2) == (len(body), len(body2))
    assert t1 == loop_thread  # below the offload size: decoded in line
    assert t2 != loop_thread  # at or above it: in a worker thread


# --- finding 6: a cancel reveals nothing about others -------------------------------------------


def test_a_cancel_answers_the_same_whatever_other_searchers_did(client, engine):
    me, other = key(1), key(2)
    before, _ = cancel(client, me, {"replacementUuid": UUID})
    send(client, other, bundle_params([tx(other)], START_SLOT, bid_wei=10**15,
                                      replacement_uuid=UUID))
    send(client, other, bundle_params([tx(other)], START_SLOT + 1, bid_wei=10**15))
    after, _ = cancel(client, me, {"replacementUuid": UUID})
    assert before == {**after, "id": before["id"]}
    assert after["result"] is False
    # And the other searcher's bid is untouched
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert [o.outcome for o in result.outcomes] == [C.OUTCOME_WON]


# --- finding 11: a replayed cancel cancels nothing new -----------------------------------------


def test_a_replayed_cancel_does_not_cancel_a_later_bundle(client, engine, clock):
    victim = key(1)
    send(client, victim, bundle_params([tx(victim)], START_SLOT, bid_wei=10**15,
                                       replacement_uuid=UUID))
    reply, (body, sig) = cancel(client, victim, {"replacementUuid": UUID})
    assert reply["result"] is True
    close_slot_of(client, engine, CHAIN, START_SLOT)
    clock.ms += SLOT_MS
    # The victim bids again under the same uuid, in this slot and one ahead
    for slot in (START_SLOT + 1, START_SLOT + 2):
        send(client, victim, bundle_params([tx(victim)], slot, bid_wei=10**15,
                                           replacement_uuid=UUID))
    # An attacker replays the old signed cancel, here and to the other rollup's endpoint
    for path in ("/", "/rollup/10"):
        _, replayed = post(client, body, sig, path)
        assert replayed.get("result") in (True, False), replayed
    for slot in (START_SLOT + 1, START_SLOT + 2):
        clock.ms = (slot + 1) * SLOT_MS + 5
        result = close_slot_of(client, engine, CHAIN, slot)
        assert [o.outcome for o in result.outcomes] == [C.OUTCOME_WON], slot


def test_a_cancel_for_another_rollup_leaves_this_rollups_bundle(client, engine):
    k = key(1)
    send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15, replacement_uuid=UUID))
    reply, _ = cancel(client, k, {"replacementUuid": UUID}, path="/rollup/10")
    assert reply["result"] is False
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert [o.outcome for o in result.outcomes] == [C.OUTCOME_WON]


def test_a_cancel_bound_to_a_slot_cancels_only_there(client, engine):
    k = key(1)
    for slot in (START_SLOT, START_SLOT + 1):
        send(client, k, bundle_params([tx(k)], slot, bid_wei=10**15, replacement_uuid=UUID))
    reply, _ = cancel(client, k, {"replacementUuid": UUID, "blockNumber": hex(START_SLOT + 1)})
    assert reply["result"] is True
    first = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert [o.outcome for o in first.outcomes] == [C.OUTCOME_WON]


# --- finding 9: what one searcher, or all of them, may put in a slot ----------------------------


def test_cancels_count_against_the_searchers_quota(clock):
    policy = MINIMAL.policy.with_(max_bundles_per_searcher_per_slot=3)
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN, policy=policy)},
                    preset=MAINNET, slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    from starlette.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(engine=engine)) as client:
        k = key(1)
        send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15, replacement_uuid=UUID))
        for _ in range(2):
            reply, _ = cancel(client, k, {"replacementUuid": UUID})
            assert reply["result"] is True
        reply, _ = cancel(client, k, {"replacementUuid": UUID})
        assert reply["error"]["data"]["code"] == "searcher_limit_exceeded"


def test_a_slot_takes_a_bounded_number_of_bids_first_come_first_served(clock):
    policy = MINIMAL.policy.with_(max_bids_per_slot=5)
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN, policy=policy)},
                    preset=MAINNET, slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    from starlette.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(engine=engine)) as client:
        codes = []
        for i in range(8):
            k = key(100 + i)  # many keys: the per-searcher quota does not bind
            _, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15))
            codes.append(reply["error"]["data"]["code"] if "error" in reply else "ok")
        assert codes == ["ok"] * 5 + ["slot_full"] * 3
        # The next slot is not affected
        k = key(200)
        _, reply = send(client, k, bundle_params([tx(k)], START_SLOT + 1, bid_wei=10**15))
        assert "result" in reply


def test_the_byte_quota_counts_the_signed_request(clock):
    policy = MINIMAL.policy.with_(max_bytes_per_searcher_per_slot=5_000)
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN, policy=policy)},
                    preset=MAINNET, slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    from starlette.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(engine=engine)) as client:
        k = key(1)
        # Each request carries ~1.9 KB of allowed extra fields around a ~120-byte transaction
        codes = []
        for _ in range(3):
            params = {**bundle_params([tx(k)], START_SLOT, bid_wei=10**15), "note": "x" * 1_800}
            _, reply = send(client, k, params)
            codes.append(reply["error"]["data"]["code"] if "error" in reply else "ok")
        assert codes == ["ok", "ok", "searcher_limit_exceeded"]
