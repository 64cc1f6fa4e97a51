"""One path from signed evidence to an event (issue 10): the engine's intake and every committee
member's re-check call the same core function on the same bytes and reach the same event."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

import api.intake
import committee.checks
from api.app import create_app
from api.engine import Engine
from api.searcher import bundle_params, cross_bundle_params
from auction import intake
from auction.presets import MAINNET, Rollup
from auction.types import Bid, Cancel
from committee.checks import check_bid_derivation, check_cancel
from committee.proposal import Proposal
from node.metrics import Metrics
from node.stores.memory import MemoryStore
from tests.api.conftest import SLOT_MS, START_SLOT, FakeClock
from tests.committee.slots import config_of
from tests.factories import CHAIN, key, signed_request, tx

UUID = "12345678-1234-1234-1234-123456789abc"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Every call of ``compute_intake_event``, from the engine and from members, and what it
    returned; both modules are given the same spy around the one core function."""
    seen: list[tuple[str, object]] = []
    real = intake.compute_intake_event

    def spy(body, signature, received_ms, ctx, **kw):  # noqa: ANN001, ANN003
        event = real(body, signature, received_ms, ctx, **kw)
        seen.append((body.decode(), event))
        return event

    monkeypatch.setattr(api.intake, "compute_intake_event", spy)
    monkeypatch.setattr(committee.checks, "compute_intake_event", spy)
    return seen


def test_intake_and_a_member_reach_the_same_event_through_one_function(calls) -> None:
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    k = key(1)
    with TestClient(create_app(engine=engine)) as client:
        for method, params in (
            ("eth_sendBundle", bundle_params([tx(k)], START_SLOT, bid_wei=10**15,
                                             replacement_uuid=UUID)),
            ("eth_cancelBundle", {"replacementUuid": UUID}),
        ):
            body, sig = signed_request(k, method, [params])
            client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
        log = client.portal.call(engine.store.read_log, CHAIN, START_SLOT)  # type: ignore[union-attr]
    at_intake = list(calls)
    assert [type(e) for _, e in at_intake] == [Bid, Cancel]
    # A member re-derives the logged events from their evidence alone
    config = config_of(None)  # type: ignore[arg-type]
    config = type(config)(**{**{f: getattr(config, f) for f in config.__slots__},
                             "rollups": engine.rollups, "clock": engine.clock})
    bid, cancel = (e.event for e in log)
    assert isinstance(bid, Bid) and isinstance(cancel, Cancel)
    check_bid_derivation(config, bid)
    head = Proposal(bytes(32), CHAIN, START_SLOT, None, None, (), ())  # type: ignore[arg-type]
    check_cancel(config, cancel, head)
    by_member = calls[len(at_intake):]
    assert [body for body, _ in by_member] == [body for body, _ in at_intake]
    assert [e for _, e in by_member] == [e for _, e in at_intake] == [bid, cancel]


def test_members_re_derive_each_copy_of_a_cross_rollup_bundle_through_one_function(
    calls,
) -> None:
    # Issue 13: a cross-rollup bundle is logged once per rollup it spans; a member reading a
    # rollup's log re-derives that rollup's copy from the evidence, through the same function
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    rollups = {CHAIN: Rollup(CHAIN), 10: Rollup(10)}
    engine = Engine(store=MemoryStore(), rollups=rollups, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    k = key(2)
    params = cross_bundle_params({CHAIN: [tx(k), tx(k)], 10: [tx(k, chain_id=10)]}, START_SLOT,
                                 bid_wei=10**15)
    with TestClient(create_app(engine=engine)) as client:
        body, sig = signed_request(k, "eth_sendBundle", [params])
        client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
        logs = {r: client.portal.call(engine.store.read_log, r, START_SLOT)  # type: ignore[union-attr]
                for r in rollups}
    assert len(calls) == 1  # intake derived the bundle once, then logged every copy
    copies = {r: log[0].event for r, log in logs.items()}
    assert all(isinstance(c, Bid) and c.rollup == r and c.legs for r, c in copies.items())
    config = config_of(None)  # type: ignore[arg-type]
    config = type(config)(**{**{f: getattr(config, f) for f in config.__slots__},
                             "rollups": engine.rollups, "clock": engine.clock})
    for copy in copies.values():
        assert isinstance(copy, Bid)
        check_bid_derivation(config, copy)
    by_member = calls[1:]
    assert [body for body, _ in by_member] == [body.decode()] * 2
    assert [e for _, e in by_member] == [copies[CHAIN], copies[10]]


def test_an_encrypted_bundle_goes_through_the_one_function_at_intake_and_at_opening(
    calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14: intake derives the sealed bid, and opening derives its bid from the payload,
    # with the same core function a plaintext eth_sendBundle goes through
    import committee.opening
    from auction.types import SealedBid
    from tests.sealed import committee_of, encryptor, plain_request, sealed_call, slot_key

    monkeypatch.setattr(committee.opening, "compute_intake_event", api.intake.compute_intake_event)
    clock = FakeClock(START_SLOT * SLOT_MS + 5)
    engine = Engine(store=MemoryStore(), rollups={CHAIN: Rollup(CHAIN)}, preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())
    committee_info = committee_of(0)[0]
    k = key(3)
    payload = plain_request(k, START_SLOT, uuid=UUID)
    with TestClient(create_app(engine=engine, committee=committee_info)) as client:
        body, sig = sealed_call(k, encryptor(k, START_SLOT).encrypt(payload))
        client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
        sealed = client.portal.call(engine.store.read_sealed_log, CHAIN, START_SLOT)  # type: ignore[union-attr]
    [(intake_body, event)] = calls
    assert intake_body == body.decode() and isinstance(event, SealedBid)
    ctx = engine.intake.intake_context(None)
    opened = committee.opening.compute_openings(committee_info, START_SLOT,
                                                slot_key(0, START_SLOT), sealed, ctx)
    [(opened_body, bid)] = calls[1:]
    assert opened_body == payload.decode() and isinstance(bid, Bid)
    assert opened.openings[0].bids == (bid,)
