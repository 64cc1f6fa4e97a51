"""JSON-RPC over HTTP: the Flashbots surface, and a precise error for every kind of bad input."""

from __future__ import annotations

import orjson
import pytest

from api.searcher import bundle_params
from auction import constants as C
from tests.api.conftest import START_SLOT, close_slot_of
from tests.factories import CHAIN, key, signed_request, tx


def post(client, body: bytes, sig: str | None = None, path: str = "/"):
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["X-Flashbots-Signature"] = sig
    r = client.post(path, content=body, headers=headers)
    return r.status_code, r.json()


def send(client, k, params, path="/"):
    body, sig = signed_request(k, "eth_sendBundle", [params])
    return post(client, body, sig, path)


def test_send_bundle_returns_flashbots_bundle_hash(client, engine):
    from eth_utils import keccak

    k = key(1)
    t1, t2 = tx(k), tx(k)
    status, reply = send(client, k, bundle_params([t1, t2], START_SLOT, bid_wei=10**15))
    assert status == 200, reply
    expected = "0x" + keccak(keccak(t1) + keccak(t2)).hex()
    assert reply["result"] == {"bundleHash": expected}


def test_bid_takes_part_and_wins(client, engine, clock):
    k = key(1)
    send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15))
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert [o.outcome for o in result.outcomes] == [C.OUTCOME_WON]
    body, sig = signed_request(
        k, "flashbots_getBundleStatsV2",
        [{"bundleHash": result.outcomes[0].bid.bundle_hash, "blockNumber": hex(START_SLOT)}],
    )
    status, reply = post(client, body, sig)
    assert reply["result"]["status"] == "won" and reply["result"]["paymentWei"] == str(10**15)


def test_stats_are_private_to_the_searcher(client, engine):
    k, other = key(1), key(2)
    _, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15))
    h = reply["result"]["bundleHash"]
    body, sig = signed_request(other, "flashbots_getBundleStatsV2",
                               [{"bundleHash": h, "blockNumber": hex(START_SLOT)}])
    _, reply = post(client, body, sig)
    assert reply["error"]["data"]["code"] == "bundle_not_found"


def test_cancel_by_uuid(client, engine):
    k = key(1)
    uuid = "12345678-1234-1234-1234-123456789abc"
    send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15, replacement_uuid=uuid))
    body, sig = signed_request(k, "eth_cancelBundle", [{"replacementUuid": uuid}])
    _, reply = post(client, body, sig)
    assert reply["result"] is True
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    assert [o.outcome for o in result.outcomes] == [C.OUTCOME_CANCELLED]
    assert result.block.bundles == ()


def test_unsigned_chain_and_block_number(client, engine):
    _, reply = post(client, b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}')
    assert reply["result"] == hex(CHAIN)
    _, reply = post(client, b'{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}', path="/rollup/10")
    assert reply["result"] == "0xa"
    _, reply = post(client, b'{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber","params":[]}')
    assert int(reply["result"], 16) == START_SLOT - 1


@pytest.mark.parametrize(
    ("body", "code", "num"),
    [
        (b"{not json", "parse_error", -32700),
        (b"[]", "invalid_request", -32600),
        (b'"str"', "invalid_request", -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}', "invalid_request", -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":5}', "invalid_request", -32600),
        (b'{"jsonrpc":"2.0","id":{},"method":"eth_chainId"}', "invalid_request", -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_nope"}', "method_not_found", -32601),
        (b'{"jsonrpc":"2.0","id":1,"method":"eth_sendBundle","params":[]}', "missing_signature",
         -32001),
    ],
)
def test_bad_requests_get_stable_errors(client, body, code, num):
    status, reply = post(client, body)
    assert status == 200
    assert reply["error"]["data"]["code"] == code and reply["error"]["code"] == num


def test_bad_signature(client):
    k = key(1)
    body, sig = signed_request(k, "eth_sendBundle", [bundle_params([tx(k)], START_SLOT)])
    _, reply = post(client, body + b" ", sig)
    assert reply["error"]["data"]["code"] == "invalid_signature"


def test_wrong_slot(client):
    k = key(1)
    _, reply = send(client, k, bundle_params([tx(k)], START_SLOT - 1))
    assert reply["error"]["data"]["code"] == "slot_closed"
    assert reply["error"]["data"]["open_slot"] == START_SLOT
    _, reply = send(client, k, bundle_params([tx(k)], START_SLOT + 1000))
    assert reply["error"]["data"]["code"] == "slot_too_far_ahead"


def test_oversized_body_refused(client):
    status, reply = post(client, b"x" * (1_048_577))
    assert status == 413 and reply["error"]["data"]["code"] == "request_too_large"


def test_unsigned_garbage_tx(client):
    k = key(1)
    _, reply = send(client, k, {"txs": ["0xdeadbeef"], "blockNumber": hex(START_SLOT)})
    assert reply["error"]["data"]["code"] == "invalid_transaction"
    assert reply["error"]["data"]["index"] == 0


def test_flood_from_one_searcher_is_rate_limited(client, engine):
    k = key(7)
    engine.intake._buckets.clear()
    from api.intake import TokenBucket

    engine.intake._buckets[k.address] = TokenBucket(1, 3, engine.now_ms())
    codes = []
    for _ in range(6):
        _, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15))
        codes.append(reply.get("error", {}).get("data", {}).get("code", "ok"))
    assert codes[:3] == ["ok"] * 3 and set(codes[3:]) == {"rate_limited"}
    # Other searchers are untouched.
    other = key(8)
    _, reply = send(client, other, bundle_params([tx(other)], START_SLOT, bid_wei=10**15))
    assert "result" in reply


def _sample(engine, name: str, **labels: str) -> float | None:
    return engine.metrics.registry.get_sample_value(name, labels)


def test_metrics_do_not_change_when_a_bid_is_accepted_into_an_open_slot(client, engine):
    before = client.get("/metrics").text
    k = key(1)
    status, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15))
    assert "result" in reply, reply
    assert client.get("/metrics").text == before
    close_slot_of(client, engine, CHAIN, START_SLOT)
    assert _sample(engine, "blockspace_bids_accepted_total", transport="http") == 1
    assert _sample(engine, "blockspace_store_seconds_count", op="append_bid") == 1


def test_rejections_are_counted_in_metrics_once_the_slot_closes(client, engine):
    before = client.get("/metrics").text
    post(client, b"{not json")
    assert client.get("/metrics").text == before
    close_slot_of(client, engine, CHAIN, START_SLOT)
    text = client.get("/metrics").text
    assert 'blockspace_requests_rejected_total{code="parse_error",transport="http"} 1.0' in text


def test_a_later_slots_bids_and_quota_refusals_wait_for_that_slots_close(client, engine):
    from auction.presets import Policy, Rollup

    engine.rollups[CHAIN] = Rollup(CHAIN, policy=Policy(max_bundles_per_searcher_per_slot=1))
    k, later = key(9), START_SLOT + 2
    codes = []
    for _ in range(2):
        _, reply = send(client, k, bundle_params([tx(k)], later, bid_wei=10**15))
        codes.append(reply.get("error", {}).get("data", {}).get("code", "ok"))
    assert codes == ["ok", "searcher_limit_exceeded"]
    close_slot_of(client, engine, CHAIN, START_SLOT)
    close_slot_of(client, engine, CHAIN, START_SLOT + 1)
    assert _sample(engine, "blockspace_bids_accepted_total", transport="http") is None
    assert _sample(engine, "blockspace_requests_rejected_total", transport="http",
                   code="searcher_limit_exceeded") is None
    close_slot_of(client, engine, CHAIN, later)
    assert _sample(engine, "blockspace_bids_accepted_total", transport="http") == 1
    assert _sample(engine, "blockspace_requests_rejected_total", transport="http",
                   code="searcher_limit_exceeded") == 1


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["store_ok"] is True


def test_searcher_limit_per_slot(client, engine):
    from auction.presets import Policy, Rollup

    engine.rollups[CHAIN] = Rollup(CHAIN, policy=Policy(max_bundles_per_searcher_per_slot=2))
    k = key(9)
    codes = []
    for _ in range(3):
        _, reply = send(client, k, bundle_params([tx(k)], START_SLOT, bid_wei=10**15))
        codes.append(reply.get("error", {}).get("data", {}).get("code", "ok"))
    assert codes == ["ok", "ok", "searcher_limit_exceeded"]
    _ = orjson


def test_batch_of_unsigned_calls_answered_by_id(client):
    body = (b'[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},'
            b'{"jsonrpc":"2.0","id":"b","method":"eth_blockNumber"},'
            b'{"jsonrpc":"2.0","id":3,"method":"eth_sendBundle","params":[]},'
            b'{"jsonrpc":"2.0","id":4,"method":"nope"}, 5]')
    status, reply = post(client, body)
    assert status == 200 and [r["id"] for r in reply] == [1, "b", 3, 4, None]
    assert reply[0]["result"] == hex(CHAIN) and int(reply[1]["result"], 16) == START_SLOT - 1
    assert reply[2]["error"]["data"]["code"] == "invalid_request"
    assert reply[3]["error"]["data"]["code"] == "method_not_found"
    assert reply[4]["error"]["data"]["code"] == "invalid_request"


def test_oversized_batch_refused(client):
    body = b"[" + b",".join([b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'] * 101) + b"]"
    _, reply = post(client, body)
    assert reply["error"]["data"]["code"] == "invalid_request"


def test_public_and_protected_txs_over_json_rpc(client, engine):
    from auction.transactions import decode_transaction

    victim = tx(key(40))
    body = ('{"jsonrpc":"2.0","id":1,"method":"eth_sendPrivateTransaction","params":[{"tx":"0x'
            + victim.hex() + '"}]}').encode()
    _, reply = post(client, body)
    assert reply["result"] == decode_transaction(victim).hash
    plain = tx(key(41))
    body = ('{"jsonrpc":"2.0","id":2,"method":"eth_sendRawTransaction","params":["0x'
            + plain.hex() + '"]}').encode()
    assert post(client, body)[1]["result"] == decode_transaction(plain).hash
    # A sandwich around the protected tx is refused at intake; a back-run is accepted.
    k = key(1)
    _, reply = send(client, k, bundle_params([tx(k), victim], START_SLOT, bid_wei=10**15))
    assert reply["error"]["data"]["code"] == "protected_tx_not_first"
    _, reply = send(client, k, bundle_params([victim, tx(k)], START_SLOT, bid_wei=10**15))
    assert "result" in reply
    result = close_slot_of(client, engine, CHAIN, START_SLOT)
    in_block = [decode_transaction(t).hash for t in result.block.txs]
    assert decode_transaction(plain).hash in in_block
    assert in_block.count(decode_transaction(victim).hash) == 1


def test_bad_public_tx_refused(client):
    _, reply = post(client, b'{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction",'
                            b'"params":["0x1234"]}')
    assert reply["error"]["data"]["code"] == "invalid_transaction"
    _, reply = post(client, b'{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction",'
                            b'"params":[]}')
    assert reply["error"]["data"]["code"] == "invalid_params"


BIG_CHAIN = 2**100
BIG_GAS = 2**70


def _error_data_holds_only_json_scalars(data: dict) -> None:
    for value in data.values():
        assert value is None or isinstance(value, (str, bool, float)) or (
            isinstance(value, int) and -(2**63) <= value < 2**64)


@pytest.mark.parametrize("kind", ["bundle", "raw_tx"])
@pytest.mark.parametrize("field", ["chain_id", "gas"])
def test_huge_integers_in_errors_answer_a_stable_code_not_a_500(client, kind, field):
    k = key(3)
    t = tx(k, chain_id=BIG_CHAIN) if field == "chain_id" else tx(k, gas=BIG_GAS)
    if kind == "bundle":
        body, sig = signed_request(k, "eth_sendBundle",
                                   [bundle_params([t], START_SLOT, bid_wei=10**15)])
        status, reply = post(client, body, sig)
    else:
        body = orjson.dumps({"jsonrpc": "2.0", "id": 5, "method": "eth_sendRawTransaction",
                             "params": ["0x" + t.hex()]})
        status, reply = post(client, body)
    assert status == 200, reply
    data = reply["error"]["data"]
    assert data["code"] in {"unknown_rollup", "bundle_gas_too_high", "invalid_transaction",
                            "invalid_params", "tx_gas_too_high"}, reply
    _error_data_holds_only_json_scalars(data)
    if "chain_id" in data:
        assert data["chain_id"] == str(BIG_CHAIN)
    if "gas" in data:
        assert data["gas"] == str(BIG_GAS)


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", f"/v1/blocks/{CHAIN}/not-a-slot", "slot"),
    ("GET", "/v1/blocks/-1/latest", "rollup"),
    ("GET", f"/v1/committee/evidence/{CHAIN}?limit=0", "limit"),
    ("GET", f"/v1/committee/evidence/{CHAIN}?before=x", "before"),
    ("POST", "/rollup/not-a-chain", "chain_id"),
])
def test_bad_path_and_query_parameters_answer_the_stable_code_shape(client, method, path, field):
    r = client.request(method, path, content=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}')
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_params" and r.json()["data"] == {"field": field}
    assert set(r.json()) == {"code", "message", "data"}


def test_an_unreadable_id_is_answered_as_null_never_echoed(client):
    _, reply = post(client, b'{"jsonrpc":"2.0","id":{"x":1},"method":"eth_chainId"}')
    assert reply["id"] is None and reply["error"]["data"]["code"] == "invalid_request"
    _, replies = post(client, b'[{"jsonrpc":"2.0","id":[1],"method":"eth_chainId"},'
                              b'{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}]')
    assert [r["id"] for r in replies] == [None, 7]
