"""Cross-rollup bundles end to end: three rollups, bundles over HTTP and the websocket, the
engine's joint close, the committee (in-process members) signing one slot root, each rollup's
signed block served over HTTP and verified with ``blockspace verify --partner`` including
atomicity; on the memory store and on Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.engine import Engine
from api.searcher import bundle_params, cross_bundle_params
from auction.fairness import check_slot_atomicity
from auction.presets import MAINNET
from auction.slots import compute_deadline_ms, compute_slot_start_ms
from committee.coordinator import Coordinator
from committee.keyfiles import write_committee_file
from committee.local import build_local_members
from committee.records import signed_block_from_json
from node.metrics import Metrics
from node.settings import Settings
from node.stores.base import Store
from node.stores.memory import MemoryStore
from tests.committee.conftest import Dealt
from tests.committee.slots import CLOCK, ROLLUP, SLOT, SLOT_MS, WINDOW_MS, key
from tests.committee.test_coordinator import Clock
from tests.factories import signed_request
from tests.factories import tx as signed_tx

pytestmark = pytest.mark.timeout(120)

A, B = 10, 8453
RIGHT = [A, B, ROLLUP]
SETTINGS3 = Settings(slot_ms=SLOT_MS, rollups=[ROLLUP, A, B], signing_window_ms=WINDOW_MS)


def serve(dealt: Dealt, tmp: Path, store: Store) -> tuple[TestClient, Engine, Clock]:
    clock = Clock(compute_slot_start_ms(CLOCK, SLOT) + 1)
    engine = Engine(store=store, rollups=SETTINGS3.rollup_configs(), preset=MAINNET,
                    slot_ms=SLOT_MS, clock_ms=clock, metrics=Metrics())  # fmt: skip
    members = build_local_members(SETTINGS3, dealt.committee, dealt.shares, tmp, clock_ms=clock)
    Coordinator(engine, dealt.committee, members, signing_window_ms=WINDOW_MS).attach()
    return TestClient(create_app(engine=engine)), engine, clock


def post(client: TestClient, seed: int, params: dict[str, Any], method: str = "eth_sendBundle"):
    body, sig = signed_request(key(seed), method, [params])
    answer = client.post("/", content=body, headers={"X-Flashbots-Signature": sig})
    assert answer.status_code == 200, answer.text
    return answer.json()


def run_slot(client: TestClient, engine: Engine, clock: Clock) -> dict[str, str]:
    """Cross bundles (HTTP and websocket), singles beside them; close; their bundle hashes."""
    k1, k2, k3 = key(71), key(72), key(73)
    hashes = {}
    # Over A and ROLLUP, the best bid of the slot: it wins on both.
    legs = {A: [signed_tx(k1, chain_id=A)], ROLLUP: [signed_tx(k1, chain_id=ROLLUP)]}
    cross = cross_bundle_params(legs, SLOT, bid_wei=9 * 10**15)
    hashes["win"] = post(client, 71, cross)["result"]["bundleHash"]
    # Over all three, by the websocket.
    three = cross_bundle_params({r: [signed_tx(k2, chain_id=r)] for r in RIGHT}, SLOT,
                                bid_wei=3 * 10**15)  # fmt: skip
    body = k2.request("eth_sendBundle", [three])
    with client.websocket_connect("/ws") as ws:
        ws.send_text(k2.ws_frame(body))
        reply = orjson.loads(ws.receive_text())
    assert reply["result"]["rollups"] == RIGHT
    hashes["three"] = reply["result"]["bundleHash"]
    # Over A and B, not touching the default rollup (for getBundleStats at POST /).
    ab = cross_bundle_params({A: [signed_tx(k3, chain_id=A)], B: [signed_tx(k3, chain_id=B)]},
                             SLOT, bid_wei=2 * 10**15)  # fmt: skip
    hashes["ab"] = post(client, 73, ab)["result"]["bundleHash"]
    for i, r in enumerate(RIGHT):
        post(client, 80 + i, bundle_params([signed_tx(key(80 + i), chain_id=r)], SLOT,
                                           bid_wei=10**15))  # fmt: skip
    clock.ms = compute_deadline_ms(CLOCK, SLOT) + 5
    client.portal.call(engine.close_slot, SLOT)  # type: ignore[union-attr]
    return hashes


def check_slot(client: TestClient, dealt: Dealt, tmp: Path, hashes: dict[str, str]) -> None:
    docs = {}
    for r in RIGHT:
        answer = client.get(f"/v1/blocks/{r}/{SLOT}")
        assert answer.status_code == 200, answer.text
        docs[r] = answer.json()
    signed = {r: signed_block_from_json(d) for r, d in docs.items()}
    assert len({s.slot_root for s in signed.values()}) == 1
    check_slot_atomicity({r: s.block for r, s in signed.items()})
    spans = {r: sorted(tuple(w.rollups) for w in s.block.bundles if w.legs)
             for r, s in signed.items()}  # fmt: skip
    assert spans == {A: [(A, B), (A, B, ROLLUP), (A, ROLLUP)], B: [(A, B), (A, B, ROLLUP)],
                     ROLLUP: [(A, B, ROLLUP), (A, ROLLUP)]}  # fmt: skip
    # blockspace verify, with the partner blocks: atomicity checked; without them: exit 3.
    committee = tmp / "committee.json"
    write_committee_file(committee, dealt.committee)
    paths = {}
    for r, d in docs.items():
        paths[r] = tmp / f"block-{r}.json"
        paths[r].write_bytes(orjson.dumps(d))
    for r in RIGHT:
        partners = [a for p in RIGHT if p != r for a in ("--partner", str(paths[p]))]
        args = ["verify", str(paths[r]), "--committee", str(committee)]
        assert main([*args, *partners, "--rollups", ",".join(map(str, RIGHT))]) == 0
        assert main(args) == 3
    # A partner whose cross entry was tampered with (another bid id) is refused.
    lie = dict(docs[A])
    lie["bundles"] = [dict(w, bid_id="0x" + "ab" * 32) if "legs" in w else w
                      for w in docs[A]["bundles"]]  # fmt: skip
    bad = tmp / "bad.json"
    bad.write_bytes(orjson.dumps(lie))
    assert main(["verify", str(paths[ROLLUP]), "--committee", str(committee), "--partner",
                 str(bad), "--partner", str(paths[B])]) == 1  # fmt: skip
    # getBundleStats at POST / finds the A-B bundle (not in the default rollup's log).
    stats = post(client, 73, {"bundleHash": hashes["ab"], "blockNumber": hex(SLOT)},
                 "flashbots_getBundleStatsV2")["result"]  # fmt: skip
    assert stats["status"] == "won" and stats["rollups"] == [A, B]
    assert int(stats["paymentWei"]) == 2 * 10**15  # first price: the whole bid, summed


@pytest.fixture
def memory_client(dealt: Dealt, tmp_path: Path) -> Iterator[tuple[TestClient, Engine, Clock]]:
    client, engine, clock = serve(dealt, tmp_path, MemoryStore())
    with client:
        client.portal.call(lambda: engine.start(run_clock=False))  # type: ignore[union-attr]
        yield client, engine, clock


def test_cross_bundles_end_to_end_on_memory(dealt, tmp_path, memory_client) -> None:
    client, engine, clock = memory_client
    hashes = run_slot(client, engine, clock)
    check_slot(client, dealt, tmp_path, hashes)


@pytest.mark.redis
def test_cross_bundles_end_to_end_on_redis(dealt, tmp_path, redis_server) -> None:
    from node.stores.redis import RedisStore

    store = RedisStore(f"redis://127.0.0.1:{redis_server.port}/13")
    client, engine, clock = serve(dealt, tmp_path, store)
    with client:
        async def start() -> None:
            await store.connect()
            await store.redis.flushdb()
            await engine.start(run_clock=False)

        client.portal.call(start)  # type: ignore[union-attr]
        hashes = run_slot(client, engine, clock)
        check_slot(client, dealt, tmp_path, hashes)
