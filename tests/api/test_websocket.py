"""The websocket transport: same methods and errors as HTTP, plus notifications."""

from __future__ import annotations

import orjson
import pytest

from api.searcher import bundle_params, nonce_request
from tests.api.conftest import START_SLOT, close_slot_of
from tests.factories import CHAIN, key, tx

pytestmark = pytest.mark.timeout(30)


def recv_until(ws, pred, limit=20):
    for _ in range(limit):
        msg = orjson.loads(ws.receive_text())
        if pred(msg):
            return msg
    raise AssertionError("message not received")


def subscribe(ws, k, now_ms: int) -> None:
    """Prove ``k`` on this connection: ask its nonce, send the signed bundle subscription."""
    ws.send_text(nonce_request("n"))
    nonce = recv_until(ws, lambda m: m.get("id") == "n")["result"]
    ws.send_text(k.subscribe_frame(nonce, now_ms))
    reply = recv_until(ws, lambda m: "id" in m)
    assert reply["result"] == "bundles", reply


def test_signed_bid_over_websocket_and_won_notification(client, engine):
    k = key(1)
    body = k.request("eth_sendBundle", [bundle_params([tx(k)], START_SLOT, bid_wei=10**15)])
    with client.websocket_connect("/ws") as ws:
        subscribe(ws, k, engine.now_ms())
        ws.send_text(k.ws_frame(body))
        first_two = [orjson.loads(ws.receive_text()) for _ in range(2)]
        reply = next(m for m in first_two if "id" in m)
        assert "bundleHash" in reply["result"]
        received = next(m for m in first_two if m.get("method") == "bs_subscription")
        assert received["params"]["result"]["event"] == "received"
        close_slot_of(client, engine, CHAIN, START_SLOT)
        won = recv_until(ws, lambda m: m.get("method") == "bs_subscription")
        assert won["params"]["result"]["event"] == "won"
        assert won["params"]["result"]["paymentWei"] == str(10**15)


def test_slot_subscription(client, engine):
    with client.websocket_connect("/ws") as ws:
        ws.send_text('{"jsonrpc":"2.0","id":1,"method":"bs_subscribe","params":["slots"]}')
        assert recv_until(ws, lambda m: "id" in m)["result"] == "slots"
        close_slot_of(client, engine, CHAIN, START_SLOT)
        note = recv_until(ws, lambda m: m.get("method") == "bs_subscription")
        assert note["params"]["result"]["slot"] == START_SLOT


def test_unsigned_calls_and_errors_keep_the_connection(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_text("{garbage")
        assert recv_until(ws, lambda m: "error" in m)["error"]["data"]["code"] == "parse_error"
        ws.send_text('{"body": 5, "signature": "x"}')
        assert recv_until(ws, lambda m: "error" in m)["error"]["data"]["code"] == "invalid_request"
        ws.send_text('{"jsonrpc":"2.0","id":2,"method":"eth_sendBundle","params":[]}')
        err = recv_until(ws, lambda m: "error" in m)
        assert err["id"] == 2 and err["error"]["data"]["code"] == "missing_signature"
        ws.send_text('{"jsonrpc":"2.0","id":3,"method":"bs_subscribe","params":["nope"]}')
        assert recv_until(ws, lambda m: "error" in m)["error"]["data"]["code"] == "invalid_params"
        ws.send_text('{"jsonrpc":"2.0","id":5,"method":"bs_subscribe","params":["bundles"]}')
        assert recv_until(ws, lambda m: "error" in m)["error"]["data"]["code"] == \
            "missing_signature"
        ws.send_text('{"jsonrpc":"2.0","id":6,"method":"bs_subscribe","params":[]}')
        assert recv_until(ws, lambda m: "error" in m)["error"]["data"]["code"] == "invalid_params"
        ws.send_text('{"jsonrpc":"2.0","id":4,"method":"eth_chainId"}')
        assert recv_until(ws, lambda m: m.get("id") == 4)["result"] == hex(CHAIN)


def test_bad_signature_over_websocket(client):
    k = key(1)
    body = k.request("eth_sendBundle", [bundle_params([tx(k)], START_SLOT)])
    frame = orjson.loads(k.ws_frame(body))
    frame["body"] = frame["body"].replace('"id":', '"id": ')
    with client.websocket_connect("/ws") as ws:
        ws.send_text(orjson.dumps(frame).decode())
        err = recv_until(ws, lambda m: "error" in m)
        assert err["error"]["data"]["code"] == "invalid_signature"


def test_oversized_frame_refused(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_text("x" * 1_048_577)
        err = recv_until(ws, lambda m: "error" in m)
        assert err["error"]["data"]["code"] == "request_too_large"


def test_per_rollup_endpoint(client):
    with client.websocket_connect("/rollup/10/ws") as ws:
        ws.send_text('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
        assert recv_until(ws, lambda m: m.get("id") == 1)["result"] == "0xa"


@pytest.mark.parametrize("field", ["chain_id", "gas"])
def test_huge_integers_in_errors_keep_the_connection_answering(client, field):
    k = key(3)
    t = tx(k, chain_id=2**100) if field == "chain_id" else tx(k, gas=2**70)
    body = k.request("eth_sendBundle", [bundle_params([t], START_SLOT, bid_wei=10**15)])
    with client.websocket_connect("/ws") as ws:
        ws.send_text(k.ws_frame(body))
        err = recv_until(ws, lambda m: "error" in m)
        assert err["error"]["data"]["code"] in {"unknown_rollup", "bundle_gas_too_high",
                                                "invalid_params"}, err
        assert err["error"]["data"].get(field, str(2**100 if field == "chain_id" else 2**70)) \
            == str(2**100 if field == "chain_id" else 2**70)
        # The writer is alive: later calls are answered.
        ws.send_text('{"jsonrpc":"2.0","id":9,"method":"eth_chainId"}')
        assert recv_until(ws, lambda m: m.get("id") == 9)["result"] == hex(CHAIN)


def drain_until_reply(ws, rid) -> list[dict]:
    """Every message up to and including the reply with id ``rid``."""
    seen = []
    while True:
        msg = orjson.loads(ws.receive_text())
        seen.append(msg)
        if msg.get("id") == rid:
            return seen


def test_replayed_signed_bid_subscribes_the_replaying_connection_to_nothing(client, engine):
    victim = key(1)
    body = victim.request("eth_sendBundle", [bundle_params([tx(victim)], START_SLOT,
                                                           bid_wei=10**15)])
    frame = victim.ws_frame(body)
    with client.websocket_connect("/ws") as own, client.websocket_connect("/ws") as attacker:
        own.send_text(frame)
        recv_until(own, lambda m: m.get("id") == 1)
        attacker.send_text(frame)  # a copy of the victim's signed frame, sent by someone else
        recv_until(attacker, lambda m: m.get("id") == 1)
        close_slot_of(client, engine, CHAIN, START_SLOT)
        # Notifications of the close are queued before this call's reply (one FIFO outbox).
        attacker.send_text('{"jsonrpc":"2.0","id":99,"method":"eth_chainId"}')
        leaked = [m for m in drain_until_reply(attacker, 99) if m.get("method")]
        assert leaked == []


def test_subscription_replayed_on_another_connection_is_refused(client, engine):
    victim = key(1)
    with client.websocket_connect("/ws") as own, client.websocket_connect("/ws") as attacker:
        own.send_text(nonce_request(1))
        own_nonce = recv_until(own, lambda m: m.get("id") == 1)["result"]
        attacker.send_text(nonce_request(1))
        assert recv_until(attacker, lambda m: m.get("id") == 1)["result"] != own_nonce
        frame = victim.subscribe_frame(own_nonce, engine.now_ms())
        own.send_text(frame)
        assert recv_until(own, lambda m: "id" in m)["result"] == "bundles"
        attacker.send_text(frame)  # the victim's subscription, captured and replayed
        err = recv_until(attacker, lambda m: "id" in m)["error"]
        assert err["data"] == {"code": "invalid_params", "field": "nonce"}
        bid = victim.request("eth_sendBundle", [bundle_params([tx(victim)], START_SLOT)])
        own.send_text(victim.ws_frame(bid))
        assert recv_until(own, lambda m: m.get("method"))["params"]["result"]["event"] == \
            "received"
        close_slot_of(client, engine, CHAIN, START_SLOT)
        assert recv_until(own, lambda m: m.get("method"))["params"]["result"]["event"] == "won"
        attacker.send_text('{"jsonrpc":"2.0","id":99,"method":"eth_chainId"}')
        assert [m for m in drain_until_reply(attacker, 99) if m.get("method")] == []


@pytest.mark.parametrize("skew_ms", [-30_001, 30_001])
def test_stale_or_future_subscription_refused(client, engine, skew_ms):
    k = key(1)
    with client.websocket_connect("/ws") as ws:
        ws.send_text(nonce_request(1))
        nonce = recv_until(ws, lambda m: m.get("id") == 1)["result"]
        ws.send_text(k.subscribe_frame(nonce, engine.now_ms() + skew_ms))
        err = recv_until(ws, lambda m: "id" in m)["error"]
        assert err["data"]["code"] == "invalid_params"
        assert err["data"]["field"] == "timestampMs"
        ws.send_text(k.subscribe_frame(nonce, engine.now_ms() + skew_ms // 2))
        assert recv_until(ws, lambda m: "id" in m)["result"] == "bundles"


def test_subscription_with_a_forged_signature_refused(client, engine):
    victim, forger = key(1), key(2)
    with client.websocket_connect("/ws") as ws:
        ws.send_text(nonce_request(1))
        nonce = recv_until(ws, lambda m: m.get("id") == 1)["result"]
        frame = orjson.loads(forger.subscribe_frame(nonce, engine.now_ms()))
        frame["signature"] = victim.address + ":" + frame["signature"].split(":")[1]
        ws.send_text(orjson.dumps(frame).decode())
        err = recv_until(ws, lambda m: "id" in m)["error"]
        assert err["data"]["code"] == "invalid_signature"


def test_subscription_covers_bids_sent_over_http(client, engine):
    k = key(4)
    with client.websocket_connect("/ws") as ws:
        subscribe(ws, k, engine.now_ms())
        body = k.request("eth_sendBundle", [bundle_params([tx(k)], START_SLOT, bid_wei=10**15)])
        reply = client.post("/", content=body, headers={"X-Flashbots-Signature": k.sign_body(body)})
        note = recv_until(ws, lambda m: m.get("method"))["params"]["result"]
        assert note["event"] == "received"
        assert note["bundleHash"] == reply.json()["result"]["bundleHash"]


def test_signed_calls_alone_subscribe_nothing(client, engine):
    k = key(1)
    body = k.request("eth_sendBundle", [bundle_params([tx(k)], START_SLOT, bid_wei=10**15)])
    with client.websocket_connect("/ws") as ws:
        ws.send_text(k.ws_frame(body))
        recv_until(ws, lambda m: m.get("id") == 1)
        close_slot_of(client, engine, CHAIN, START_SLOT)
        ws.send_text('{"jsonrpc":"2.0","id":99,"method":"eth_chainId"}')
        assert [m for m in drain_until_reply(ws, 99) if m.get("method")] == []
